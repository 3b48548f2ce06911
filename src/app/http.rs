//! `http`: an HTTP/1.1 server (RFC 9112) that answers every request with `200 OK` and a fixed
//! body of a configured size. Keep-alive is the HTTP/1.1 default; `Connection: close` (or an
//! HTTP/1.0 request without `Connection: keep-alive`) closes after the response.

use super::{Conn, Handler};
use crate::tcp::{CloseReason, ConnId};
use hashbrown::HashMap;

/// Largest request head we buffer; a longer one gets `431` and a close.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Default)]
struct State {
    /// Request bytes not yet parsed.
    head: Vec<u8>,
    /// Response bytes not yet taken by the send buffer.
    out: Vec<u8>,
    close_after: bool,
}

pub struct Http {
    response: Vec<u8>,
    response_close: Vec<u8>,
    conns: HashMap<ConnId, State>,
}

impl Http {
    pub fn new(body: usize) -> Self {
        let body_bytes: Vec<u8> = (0..body).map(|i| b'a' + (i % 26) as u8).collect();
        let make = |close: bool| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: {body}\r\n{}\r\n",
                if close { "Connection: close\r\n" } else { "" }
            )
            .into_bytes();
            r.extend_from_slice(&body_bytes);
            r
        };
        Http { response: make(false), response_close: make(true), conns: HashMap::new() }
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

/// What a request head asks of the connection.
fn wants_close(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let http10 = request_line.ends_with("HTTP/1.0");
    let mut close = http10;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else { continue };
        if name.trim().eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let t = token.trim();
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    close
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
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
            while let Some(end) = find_head_end(&s.head) {
                let close = wants_close(s.head.get(..end).unwrap_or(&[]));
                s.out.extend_from_slice(if close { &self.response_close } else { &self.response });
                s.head.drain(..end);
                if close {
                    s.close_after = true;
                    s.head.clear();
                    break;
                }
            }
            if s.head.len() > MAX_HEAD {
                s.out.extend_from_slice(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
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
    }
}
