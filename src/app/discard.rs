//! `discard` (RFC 863 in spirit): read and drop everything; close when the peer does.

use super::{Conn, Handler};

#[derive(Debug, Default)]
pub struct Discard;

impl Handler for Discard {
    fn on_data(&mut self, c: &mut Conn<'_>) {
        c.recv_with(&mut |a, b| a.len() + b.len());
    }
}
