//! `echo` (RFC 862 in spirit): every byte comes back. A line `CLOSE` makes the server close after
//! echoing it; when the peer closes, the server closes too once it has echoed what it read.

use super::{Conn, Handler};
use crate::tcp::{CloseReason, ConnId};
use hashbrown::HashMap;

/// One connection's echo state, shared by both backends: bytes read and not yet taken by the
/// send side (`out[sent..]`), in order, the `CLOSE`-line scanner, and whether a close is due
/// once everything read is echoed.
#[derive(Debug, Default)]
pub struct EchoSession {
    out: Vec<u8>,
    sent: usize,
    lines: LineScan,
    pub close_after: bool,
}

/// Echo output owed above which a connection is not read until it drains: a peer that sends
/// without reading is held back by TCP's window instead of growing our memory.
pub const OUT_HIGH_WATER: usize = 256 * 1024;
/// An output buffer whose capacity exceeds this is given back once drained.
const SHRINK_OVER: usize = 64 * 1024;

impl EchoSession {
    /// Bytes read and not yet taken by the send side.
    pub fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Whether more input should be read now.
    pub fn wants_input(&self) -> bool {
        self.pending() < OUT_HIGH_WATER
    }

    /// Takes bytes read: straight to `write` when nothing is queued (no copy), keeping what it
    /// does not take; behind the queued bytes otherwise, to keep the order. `write` returns the
    /// bytes it took (0: full). Returns the bytes written now.
    pub fn feed<E>(&mut self, data: &[u8], mut write: impl FnMut(&[u8]) -> Result<usize, E>) -> Result<usize, E> {
        if self.lines.feed(data) {
            self.close_after = true;
        }
        let written = if self.pending() == 0 { write(data)?.min(data.len()) } else { 0 };
        if let Some(rest) = data.get(written..).filter(|r| !r.is_empty()) {
            if self.sent > 0 && self.sent >= self.out.len() / 2 {
                // Reclaim the written prefix before it dominates the buffer.
                self.out.drain(..self.sent);
                self.sent = 0;
            }
            self.out.extend_from_slice(rest);
        }
        Ok(written)
    }

    /// Writes queued bytes until done or `write` takes nothing. Returns the bytes written.
    pub fn flush<E>(&mut self, mut write: impl FnMut(&[u8]) -> Result<usize, E>) -> Result<usize, E> {
        let mut total = 0;
        while self.pending() > 0 {
            let n = write(self.out.get(self.sent..).unwrap_or(&[]))?.min(self.pending());
            if n == 0 {
                return Ok(total); // full: the caller hears when there is room
            }
            total += n;
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > SHRINK_OVER {
            self.out = Vec::new();
        }
        Ok(total)
    }
}

#[derive(Debug, Default)]
pub struct Echo {
    sessions: HashMap<ConnId, EchoSession>,
    buf: Vec<u8>,
}

pub const CLOSE_LINE: &[u8] = b"CLOSE";

/// Finds a line that is exactly `CLOSE` (LF-terminated, optional CR) across reads, keeping at most
/// six bytes of the current line (shared with the kernel-socket backend).
#[derive(Debug, Default)]
pub struct LineScan {
    cur: [u8; CLOSE_LINE.len() + 1],
    len: usize,
    too_long: bool,
}

impl LineScan {
    /// Whether `data` completes a `CLOSE` line.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        let mut found = false;
        let mut rest = data;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.push(&rest[..i]);
            let line = &self.cur[..self.len];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            found |= !self.too_long && line == CLOSE_LINE;
            self.len = 0;
            self.too_long = false;
            rest = &rest[i + 1..];
        }
        self.push(rest);
        found
    }

    fn push(&mut self, part: &[u8]) {
        let room = self.cur.len() - self.len;
        let take = part.len().min(room);
        self.cur[self.len..self.len + take].copy_from_slice(&part[..take]);
        self.len += take;
        if part.len() > room {
            self.too_long = true;
        }
    }
}

impl Echo {
    /// Sends what is queued; closes once a closing session has echoed everything.
    fn flush(&mut self, c: &mut Conn<'_>) {
        let Some(p) = self.sessions.get_mut(&c.id) else { return };
        let _ = p.flush(|b| c.send(b));
        if p.pending() == 0 && p.close_after {
            self.sessions.remove(&c.id);
            c.close();
        }
    }
}

impl Handler for Echo {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        self.sessions.insert(c.id, EchoSession::default());
    }

    fn on_data(&mut self, c: &mut Conn<'_>) {
        let Some(p) = self.sessions.get_mut(&c.id) else { return };
        // One buffer for the app, not a fresh zeroed one per read.
        if self.buf.is_empty() {
            self.buf = vec![0u8; 16384];
        }
        // Past the high-water mark the rest stays unread (the window closes on the peer).
        while p.wants_input() {
            let n = c.recv(&mut self.buf);
            if n == 0 {
                break;
            }
            let _ = p.feed(self.buf.get(..n).unwrap_or(&[]), |d| c.send(d));
        }
        self.flush(c);
    }

    fn on_writable(&mut self, c: &mut Conn<'_>) {
        self.flush(c);
        // Output drained: read what waited behind the high-water mark.
        self.on_data(c);
    }

    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        match self.sessions.get_mut(&c.id) {
            Some(p) => {
                p.close_after = true;
                self.flush(c);
            }
            // Unknown connection (not accepted through us): just close.
            None => c.close(),
        }
    }

    fn on_closed(&mut self, id: ConnId, _reason: CloseReason) {
        self.sessions.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> bool {
        let mut l = LineScan::default();
        let mut found = false;
        for p in parts {
            found |= l.feed(p);
        }
        found
    }

    #[test]
    fn close_line_detection() {
        assert!(scan(&[b"hello\nCLOSE\n"]));
        assert!(scan(&[b"CLOSE\r\n"]));
        assert!(scan(&[b"CLO", b"SE\n"]));
        assert!(!scan(&[b"NOCLOSE\n"]));
        assert!(!scan(&[b"CLOSED\n"]));
        assert!(!scan(&[b"CLOSE"]));
        assert!(!scan(&[b"xxxxxxxxxxxxCLOSE\n"]));
        assert!(scan(&[b"CLOSE", b"\r", b"\n"]));
        assert!(!scan(&[b"CLOSE\r\r\n"]));
        assert!(!scan(&[b"xxxxxxx", b"xxxxxCLOSE\n"]));
        assert!(scan(&[b"xxxxxxxxxxxxxxxxxxx\nCLOSE\n"]));
    }
}
