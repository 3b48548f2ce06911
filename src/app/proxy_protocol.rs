//! The PROXY protocol header a relay puts in front of the bytes it forwards, so that the
//! server behind it learns the client's real address (HAProxy's `send-proxy` /
//! `send-proxy-v2`; nginx reads it with `listen ... proxy_protocol`).
//!
//! Read HAProxy's `doc/proxy-protocol.txt` before editing: §2.1 (version 1, one text line) and
//! §2.2 (version 2, binary). Only the sender's side is here, for TCP over IPv4 and IPv6 with
//! the PROXY command; the relay never sends LOCAL (it has no health checks) nor UNKNOWN (its
//! connections always have both endpoints).
//!
//! Pure: addresses in, bytes out, no allocation.

use core::net::{IpAddr, SocketAddr};
use std::io::Write as _;

/// Which header, if any, the relay sends (`--proxy-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// No header: the upstream sees the relay's own address.
    #[default]
    Off,
    /// The text line (§2.1).
    V1,
    /// The binary block (§2.2).
    V2,
}

/// proxy-protocol.txt §2.1: the longest line a receiver must accept (an UNKNOWN line with two
/// full IPv6 addresses), CRLF included. Our longest, TCP6, is 104.
pub const MAX_V1_LEN: usize = 107;
/// §2.2: the 16-byte fixed part plus the TCP-over-IPv6 address block (2·16 + 2·2).
pub const MAX_V2_LEN: usize = 16 + 36;
/// Room for any header this module writes.
pub const MAX_LEN: usize = MAX_V1_LEN + 1;

/// §2.2: the 12 bytes every version-2 header starts with (a null byte at the 5th position: not
/// a C string).
pub const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// §2.2, 13th byte: version 2 in the high nibble, command PROXY (0x1) in the low one.
const V2_VERSION_PROXY: u8 = 0x21;
/// §2.2, 14th byte: address family in the high nibble (AF_INET 0x1, AF_INET6 0x2), transport
/// in the low one (STREAM 0x1).
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;

/// A header ready to send: at most [`MAX_LEN`] bytes, kept inline.
#[derive(Clone, Copy)]
pub struct Header {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for Header {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Header({:?})", self.as_bytes())
    }
}

/// The header that says a connection came from `client` to `server` (the address and port the
/// client connected to). `None` for [`Version::Off`], and when the two are of different
/// families (a connection never is; an IPv4-mapped IPv6 address counts as IPv6, as the socket
/// reported it).
pub fn header(v: Version, client: SocketAddr, server: SocketAddr) -> Option<Header> {
    let mut h = Header { buf: [0; MAX_LEN], len: 0 };
    let n = match (v, client.ip(), server.ip()) {
        (Version::Off, _, _) => return None,
        (Version::V1, IpAddr::V4(s), IpAddr::V4(d)) => v1(&mut h.buf, "TCP4", &s, &d, client.port(), server.port()),
        (Version::V1, IpAddr::V6(s), IpAddr::V6(d)) => v1(&mut h.buf, "TCP6", &s, &d, client.port(), server.port()),
        (Version::V2, IpAddr::V4(s), IpAddr::V4(d)) => {
            v2(&mut h.buf, V2_TCP4, &s.octets(), &d.octets(), client.port(), server.port())
        }
        (Version::V2, IpAddr::V6(s), IpAddr::V6(d)) => {
            v2(&mut h.buf, V2_TCP6, &s.octets(), &d.octets(), client.port(), server.port())
        }
        _ => return None,
    };
    h.len = n as u8;
    Some(h)
}

/// §2.1: `PROXY <TCP4|TCP6> <src> <dst> <sport> <dport>\r\n`, one space between fields.
/// Rust's `Display` of an address is the canonical form the line needs: dotted decimal with no
/// leading zeroes, and RFC 5952 IPv6 (lower-case hex, the longest run of zero groups as `::`).
fn v1(
    out: &mut [u8; MAX_LEN],
    proto: &str,
    src: &dyn core::fmt::Display,
    dst: &dyn core::fmt::Display,
    sp: u16,
    dp: u16,
) -> usize {
    let mut w = std::io::Cursor::new(&mut out[..]);
    // The longest line (TCP6, two full addresses) is 104 bytes: it always fits.
    let _ = write!(w, "PROXY {proto} {src} {dst} {sp} {dp}\r\n");
    w.position() as usize
}

/// §2.2: signature, version/command, family/transport, the address block's length (network
/// order), then source address, destination address, source port, destination port.
fn v2(out: &mut [u8; MAX_LEN], fam: u8, src: &[u8], dst: &[u8], sp: u16, dp: u16) -> usize {
    let block = src.len() + dst.len() + 4;
    out[..12].copy_from_slice(&V2_SIGNATURE);
    out[12] = V2_VERSION_PROXY;
    out[13] = fam;
    out[14..16].copy_from_slice(&(block as u16).to_be_bytes());
    let mut at = 16;
    for part in [src, dst, &sp.to_be_bytes(), &dp.to_be_bytes()] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_sends_nothing() {
        assert!(header(Version::Off, sa("198.18.0.2:40000"), sa("198.18.0.1:80")).is_none());
    }

    /// proxy-protocol.txt §2.1's example line, with its addresses.
    #[test]
    fn v1_tcp4_is_the_specs_example_line() {
        let h = header(Version::V1, sa("192.168.0.1:56324"), sa("192.168.0.11:443")).unwrap();
        assert_eq!(h.as_bytes(), b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    }

    #[test]
    fn v1_tcp6_uses_the_canonical_compressed_form() {
        let h = header(Version::V1, sa("[fd00:1813::2]:40000"), sa("[fd00:1813::1]:80")).unwrap();
        assert_eq!(h.as_bytes(), b"PROXY TCP6 fd00:1813::2 fd00:1813::1 40000 80\r\n");
    }

    /// §2.1: the longest TCP4 line is 56 bytes and the longest TCP6 line 104, within the
    /// receiver's 107; no leading zeroes, exactly one space between fields, CRLF last.
    #[test]
    fn v1_longest_lines_fit_the_receivers_limit() {
        let h4 = header(Version::V1, sa("255.255.255.255:65535"), sa("255.255.255.255:65535")).unwrap();
        assert_eq!(h4.as_bytes().len(), 56);
        let full = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        let h6 = header(Version::V1, sa(full), sa(full)).unwrap();
        assert_eq!(h6.as_bytes().len(), 104);
        assert!(h6.as_bytes().len() <= MAX_V1_LEN);
        let h0 = header(Version::V1, sa("10.0.0.7:0"), sa("10.0.0.8:8")).unwrap();
        assert_eq!(h0.as_bytes(), b"PROXY TCP4 10.0.0.7 10.0.0.8 0 8\r\n");
        for h in [h4, h6, h0] {
            let b = h.as_bytes();
            assert!(b.ends_with(b"\r\n"));
            assert_eq!(b.iter().filter(|&&c| c == b'\r' || c == b'\n').count(), 2);
            assert!(!b.windows(2).any(|w| w == b"  "));
            assert_eq!(b.iter().filter(|&&c| c == b' ').count(), 5);
        }
    }

    /// §2.2: signature, 0x21 (version 2, PROXY), 0x11 (AF_INET, STREAM), length 12, then the
    /// addresses and ports in network order: 28 bytes in all.
    #[test]
    fn v2_tcp4_layout() {
        let h = header(Version::V2, sa("198.18.0.2:40000"), sa("198.18.0.1:80")).unwrap();
        let b = h.as_bytes();
        assert_eq!(b.len(), 16 + 12);
        assert_eq!(&b[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(b[12], 0x21);
        assert_eq!(b[13], 0x11);
        assert_eq!(u16::from_be_bytes([b[14], b[15]]), 12);
        assert_eq!(&b[16..20], &[198, 18, 0, 2]);
        assert_eq!(&b[20..24], &[198, 18, 0, 1]);
        assert_eq!(&b[24..26], &40000u16.to_be_bytes());
        assert_eq!(&b[26..28], &80u16.to_be_bytes());
    }

    /// §2.2: 0x21 (AF_INET6, STREAM), length 36 = 2·16 + 2·2; the header is 16 + the length.
    #[test]
    fn v2_tcp6_layout() {
        let h = header(Version::V2, sa("[fd00:1813::2]:40000"), sa("[fd00:1813::1]:443")).unwrap();
        let b = h.as_bytes();
        assert_eq!(b.len(), MAX_V2_LEN);
        assert_eq!(b[..12], V2_SIGNATURE);
        assert_eq!(b[12], 0x21);
        assert_eq!(b[13], 0x21);
        let len = u16::from_be_bytes([b[14], b[15]]);
        assert_eq!(len, 36);
        assert_eq!(b.len(), 16 + usize::from(len));
        let src: std::net::Ipv6Addr = "fd00:1813::2".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00:1813::1".parse().unwrap();
        assert_eq!(&b[16..32], &src.octets());
        assert_eq!(&b[32..48], &dst.octets());
        assert_eq!(&b[48..50], &40000u16.to_be_bytes());
        assert_eq!(&b[50..52], &443u16.to_be_bytes());
    }

    /// A header never mixes families (§2.1: the destination "matches the same family").
    #[test]
    fn mixed_families_give_no_header() {
        for v in [Version::V1, Version::V2] {
            assert!(header(v, sa("198.18.0.2:1"), sa("[::1]:2")).is_none());
        }
    }
}
