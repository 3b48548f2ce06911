//! `http`: an HTTP/1.1 server (RFC 9112) that answers every request with `200 OK` and a fixed
//! body of a configured size. Keep-alive is the HTTP/1.1 default; `Connection: close` (or an
//! HTTP/1.0 request without `Connection: keep-alive`) closes after the response.

use super::{Conn, Handler};
use crate::tcp::{CloseReason, ConnId};
use hashbrown::HashMap;

/// Largest request head we buffer; a longer one gets `431` and a close.
pub const MAX_HEAD: usize = 16 * 1024;
pub const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The two `200 OK` responses, built once (shared with the kernel-socket backend, so both
/// backends send the same bytes).
#[derive(Debug)]
pub struct Responses {
    pub keep_alive: Vec<u8>,
    pub close: Vec<u8>,
}

impl Responses {
    pub fn new(body: usize) -> Self {
        let make = |close: bool| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: {body}\r\n{}\r\n",
                if close { "Connection: close\r\n" } else { "" }
            )
            .into_bytes();
            r.extend((0..body).map(|i| b'a' + (i % 26) as u8));
            r
        };
        Responses { keep_alive: make(false), close: make(true) }
    }
}

/// The final response a session owes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    /// `200 OK` with `Connection: close`.
    Close,
    /// `431`: the head grew past [`MAX_HEAD`].
    TooLarge,
}

/// One connection's HTTP state, shared by both backends: the unfinished request head and the
/// responses owed, in order (`queued` keep-alive responses, then at most one final one). The
/// responses themselves are shared; a session keeps only counts and a position, and its owner
/// sends them straight from [`Responses`] (a send buffer here, `sendmsg` on kernel sockets).
#[derive(Debug, Default)]
pub struct HttpSession {
    head: Vec<u8>,
    /// `head[..scanned]` holds no CRLFCRLF start: the next search begins there.
    scanned: usize,
    queued: usize,
    last: Option<Final>,
    /// Bytes of the front response already sent.
    offset: usize,
    /// A final response is owed: later requests are ignored, and the connection closes once
    /// everything owed is sent.
    pub close_after: bool,
}

/// A buffer above this capacity is given back once empty, so an idle connection keeps none.
const SHRINK_OVER: usize = 64 * 1024;

impl HttpSession {
    fn final_bytes(f: Final, r: &Responses) -> &[u8] {
        match f {
            Final::Close => &r.close,
            Final::TooLarge => TOO_LARGE,
        }
    }

    /// The response at the front of the queue, whole.
    fn front<'r>(&self, r: &'r Responses) -> Option<&'r [u8]> {
        if self.queued > 0 {
            Some(&r.keep_alive)
        } else {
            self.last.map(|f| Self::final_bytes(f, r))
        }
    }

    /// Response bytes owed and not yet sent.
    pub fn pending(&self, r: &Responses) -> usize {
        let last = self.last.map_or(0, |f| Self::final_bytes(f, r).len());
        (self.queued * r.keep_alive.len() + last).saturating_sub(self.offset)
    }

    /// The bytes owed, in order, as up to `max` slices (the unsent rest of the front response,
    /// then whole ones): what one `sendmsg` or a few `send` calls take.
    pub fn unsent<'r>(&self, r: &'r Responses, max: usize, mut f: impl FnMut(&'r [u8])) {
        let Some(front) = self.front(r) else { return };
        if max == 0 {
            return;
        }
        f(front.get(self.offset..).unwrap_or(&[]));
        let mut n = 1;
        let mut keep_alive_after = self.queued.saturating_sub(1);
        while n < max && keep_alive_after > 0 {
            f(&r.keep_alive);
            n += 1;
            keep_alive_after -= 1;
        }
        if let (true, Some(last)) = (self.queued > 0 && keep_alive_after == 0 && n < max, self.last) {
            f(Self::final_bytes(last, r));
        }
    }

    /// Drops `n` sent bytes from the front of what is owed.
    pub fn advance(&mut self, r: &Responses, mut n: usize) {
        while n > 0 {
            let Some(front) = self.front(r) else { return };
            let left = front.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            if self.queued > 0 {
                self.queued -= 1;
            } else {
                self.last = None;
            }
        }
    }

    /// Takes request bytes: one response owed per complete head (RFC 9112 §2.1; requests
    /// without a body, as a load generator sends them), pipelined requests in order. The input
    /// is taken in pieces of at most [`MAX_HEAD`] bytes, so the 431 rule fires on the same input
    /// whatever the reads' sizes.
    pub fn ingest(&mut self, data: &[u8]) {
        for piece in data.chunks(MAX_HEAD) {
            if self.close_after {
                return; // after a closing response, further requests are ignored
            }
            if self.head.is_empty() {
                // Fast path: parse straight from the caller's bytes; keep only a partial head.
                let used = self.answer(piece, 0);
                if !self.close_after {
                    self.head.extend_from_slice(piece.get(used..).unwrap_or(&[]));
                }
            } else {
                self.head.extend_from_slice(piece);
                let mut head = std::mem::take(&mut self.head);
                let used = self.answer(&head, self.scanned);
                head.drain(..used.min(head.len()));
                if self.close_after {
                    head.clear();
                }
                self.head = head;
            }
            self.scanned = self.head.len().saturating_sub(3);
            if self.head.len() > MAX_HEAD {
                self.last = Some(Final::TooLarge);
                self.close_after = true;
                self.head.clear();
                self.scanned = 0;
            }
            if self.head.is_empty() && self.head.capacity() > SHRINK_OVER {
                self.head = Vec::new();
            }
        }
    }

    /// Queues a response for every complete head in `buf` (searching for the next CRLFCRLF
    /// from `from`). Returns the bytes consumed: up to the end of the last head, or all of `buf`
    /// once a head asks to close.
    fn answer(&mut self, buf: &[u8], from: usize) -> usize {
        let mut start = 0;
        let mut from = from;
        while let Some(end) = find_head_end(buf, from.max(start)) {
            if wants_close(buf.get(start..end).unwrap_or(&[])) {
                self.last = Some(Final::Close);
                self.close_after = true;
                return buf.len();
            }
            self.queued += 1;
            start = end;
            from = end;
        }
        start
    }
}

pub struct Http {
    responses: Responses,
    conns: HashMap<ConnId, HttpSession>,
}

impl Http {
    pub fn new(body: usize) -> Self {
        Http { responses: Responses::new(body), conns: HashMap::new() }
    }

    /// Sends what the send buffer takes, straight from the shared responses; closes once a
    /// closing session owes nothing.
    fn flush(&mut self, c: &mut Conn<'_>) {
        let Some(s) = self.conns.get_mut(&c.id) else { return };
        let r = &self.responses;
        loop {
            let mut front: &[u8] = &[];
            s.unsent(r, 1, |b| front = b);
            if front.is_empty() {
                break;
            }
            let n = c.send(front).unwrap_or(0);
            s.advance(r, n);
            if n < front.len() {
                break; // full: on_writable follows
            }
        }
        if s.pending(r) == 0 && s.close_after {
            self.conns.remove(&c.id);
            c.close();
        }
    }
}

/// End of the first request head found at or after `from` (just past its CRLFCRLF).
pub fn find_head_end(b: &[u8], from: usize) -> Option<usize> {
    let tail = b.get(from..)?;
    tail.windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4)
}

/// What a request head asks of the connection, on bytes (no string is built). The request line ending in `HTTP/1.0` means close unless `Connection: keep-alive`;
/// each `Connection` token `close` / `keep-alive` sets or clears the close, the last one winning.
pub fn wants_close(head: &[u8]) -> bool {
    let mut close = false;
    for (i, line) in CrlfLines(Some(head)).enumerate() {
        if i == 0 {
            close = line.ends_with(b"HTTP/1.0");
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if !name.trim_ascii().eq_ignore_ascii_case(b"connection") {
            continue;
        }
        for token in value.split(|&b| b == b',') {
            let t = token.trim_ascii();
            if t.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    close
}

/// Splits on CRLF only (a lone LF stays inside its line).
struct CrlfLines<'b>(Option<&'b [u8]>);

impl<'b> Iterator for CrlfLines<'b> {
    type Item = &'b [u8];
    fn next(&mut self) -> Option<&'b [u8]> {
        let rest = self.0?;
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                self.0 = Some(&rest[i + 2..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

impl Handler for Http {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        self.conns.insert(c.id, HttpSession::default());
    }

    fn on_data(&mut self, c: &mut Conn<'_>) {
        let Some(s) = self.conns.get_mut(&c.id) else { return };
        // Parsed where the bytes lie (no copy); only a partial head is kept.
        c.recv_with(&mut |a, b| {
            s.ingest(a);
            s.ingest(b);
            a.len() + b.len()
        });
        self.flush(c);
    }

    fn on_writable(&mut self, c: &mut Conn<'_>) {
        self.flush(c);
    }

    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        if let Some(s) = self.conns.get_mut(&c.id) {
            s.close_after = true;
            self.flush(c);
        } else {
            c.close();
        }
    }

    fn on_closed(&mut self, id: ConnId, _reason: CloseReason) {
        self.conns.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_header_rules() {
        assert!(!wants_close(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(wants_close(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(wants_close(b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n"));
        assert!(wants_close(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!wants_close(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(wants_close(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"));
        // Only CRLF separates lines.
        assert!(!wants_close(b"GET / HTTP/1.1\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn session_pipelined_and_split_heads() {
        let r = Responses::new(10);
        let mut h = HttpSession::default();
        h.ingest(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HT");
        assert_eq!((h.queued, h.head.len(), h.close_after), (2, 8, false));
        h.ingest(b"TP/1.1\r\n\r");
        assert_eq!(h.queued, 2);
        h.ingest(b"\nGET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!((h.queued, h.close_after, h.last), (3, true, Some(Final::Close)));
        assert!(h.head.is_empty());
        assert_eq!(h.pending(&r), 3 * r.keep_alive.len() + r.close.len());
        let mut pieces = Vec::new();
        h.unsent(&r, 16, |b| pieces.push(b.len()));
        assert_eq!(pieces, vec![r.keep_alive.len(), r.keep_alive.len(), r.keep_alive.len(), r.close.len()]);
        h.advance(&r, r.keep_alive.len() + 5);
        assert_eq!((h.queued, h.offset), (2, 5));
        let mut first = Vec::new();
        h.unsent(&r, 2, |b| first.push(b.len()));
        assert_eq!(first, vec![r.keep_alive.len() - 5, r.keep_alive.len()]);
        h.advance(&r, h.pending(&r));
        assert_eq!((h.queued, h.last, h.pending(&r)), (0, None, 0));
    }

    #[test]
    fn session_oversized_head_gets_431() {
        let r = Responses::new(10);
        let mut h = HttpSession::default();
        h.ingest(&vec![b'x'; MAX_HEAD + 1]);
        assert!(h.close_after);
        assert_eq!(h.last, Some(Final::TooLarge));
        assert_eq!(h.queued, 0);
        let mut all = Vec::new();
        h.unsent(&r, 4, |b| all.extend_from_slice(b));
        assert_eq!(all, TOO_LARGE);
    }

    #[test]
    fn response_bytes() {
        let r = Responses::new(10);
        assert_eq!(
            r.keep_alive,
            b"HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabcdefghij"
        );
        assert!(r.close.windows(19).any(|w| w == b"Connection: close\r\n"));
    }
}
