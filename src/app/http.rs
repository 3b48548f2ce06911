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

#[derive(Debug, Default)]
struct State {
    /// Request bytes not yet parsed.
    head: Vec<u8>,
    /// Response bytes not yet taken by the send buffer.
    out: Vec<u8>,
    close_after: bool,
}

pub struct Http {
    responses: Responses,
    conns: HashMap<ConnId, State>,
}

impl Http {
    pub fn new(body: usize) -> Self {
        Http { responses: Responses::new(body), conns: HashMap::new() }
    }

    fn flush(&mut self, c: &mut Conn<'_>) {
        let Some(s) = self.conns.get_mut(&c.id) else { return };
        if !s.out.is_empty() {
            let n = c.send(&s.out).unwrap_or(0);
            s.out.drain(..n);
        }
        if s.out.is_empty() && s.close_after {
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
        self.conns.insert(c.id, State::default());
    }

    fn on_data(&mut self, c: &mut Conn<'_>) {
        let Some(s) = self.conns.get_mut(&c.id) else { return };
        let mut buf = [0u8; 16384];
        loop {
            let n = c.recv(&mut buf);
            if n == 0 {
                break;
            }
            if s.close_after {
                continue; // after `Connection: close`, further requests are ignored
            }
            s.head.extend_from_slice(buf.get(..n).unwrap_or(&[]));
            // Requests without a body (GET/HEAD) are what a load generator sends; pipelined
            // requests are answered in order.
            while let Some(end) = find_head_end(&s.head, 0) {
                let close = wants_close(s.head.get(..end).unwrap_or(&[]));
                let r = &self.responses;
                s.out.extend_from_slice(if close { &r.close } else { &r.keep_alive });
                s.head.drain(..end);
                if close {
                    s.close_after = true;
                    s.head.clear();
                    break;
                }
            }
            if s.head.len() > MAX_HEAD {
                s.out.extend_from_slice(TOO_LARGE);
                s.close_after = true;
                s.head.clear();
            }
        }
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
    fn response_bytes() {
        let r = Responses::new(10);
        assert_eq!(
            r.keep_alive,
            b"HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabcdefghij"
        );
        assert!(r.close.windows(19).any(|w| w == b"Connection: close\r\n"));
    }
}
