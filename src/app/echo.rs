//! `echo` (RFC 862 in spirit): every byte comes back. A line `CLOSE` makes the server close after
//! echoing it; when the peer closes, the server closes too once it has echoed what it read.

use super::{Conn, Handler};
use crate::tcp::{CloseReason, ConnId};
use hashbrown::HashMap;

/// Bytes read but not yet accepted by the send buffer, and whether a close is due after them.
#[derive(Debug, Default)]
struct Pending {
    out: Vec<u8>,
    close_after: bool,
    lines: LineScan,
}

#[derive(Debug, Default)]
pub struct Echo {
    pending: HashMap<ConnId, Pending>,
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
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
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
    fn flush(&mut self, c: &mut Conn<'_>) {
        let Some(p) = self.pending.get_mut(&c.id) else { return };
        if !p.out.is_empty() {
            let n = c.send(&p.out).unwrap_or(0);
            p.out.drain(..n);
        }
        if p.out.is_empty() && p.close_after {
            self.pending.remove(&c.id);
            c.close();
        }
    }
}

impl Handler for Echo {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        self.pending.insert(c.id, Pending::default());
    }

    fn on_data(&mut self, c: &mut Conn<'_>) {
        let Some(p) = self.pending.get_mut(&c.id) else { return };
        // One buffer for the app, not a fresh zeroed one per read.
        if self.buf.is_empty() {
            self.buf = vec![0u8; 16384];
        }
        let buf = &mut self.buf;
        loop {
            let n = c.recv(buf);
            if n == 0 {
                break;
            }
            let data = buf.get(..n).unwrap_or(&[]);
            if p.lines.feed(data) {
                p.close_after = true;
            }
            if p.out.is_empty() {
                // Fast path: straight into the send buffer, keeping only what does not fit.
                let sent = c.send(data).unwrap_or(0);
                p.out.extend_from_slice(data.get(sent..).unwrap_or(&[]));
            } else {
                p.out.extend_from_slice(data);
            }
        }
        self.flush(c);
    }

    fn on_writable(&mut self, c: &mut Conn<'_>) {
        self.flush(c);
    }

    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        if let Some(p) = self.pending.get_mut(&c.id) {
            p.close_after = true;
        }
        self.flush(c);
        if !self.pending.contains_key(&c.id) {
            return;
        }
        // Unknown connection (not accepted through us): just close.
        if self.pending.get(&c.id).is_none_or(|p| p.out.is_empty()) {
            self.pending.remove(&c.id);
            c.close();
        }
    }

    fn on_closed(&mut self, id: ConnId, _reason: CloseReason) {
        self.pending.remove(&id);
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
