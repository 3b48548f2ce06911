//! IPv6 (RFC 8200): the fixed header, and a walk over extension headers to the upper layer.
//!
//! Hop-by-hop, routing and destination options are skipped by their length; a fragment header is
//! reported as [`ParseError::Fragment`]; ESP (and anything malformed) as
//! [`ParseError::BadExtensionHeader`].

use super::field::{read_array, read_u16, read_u32, read_u8, write_bytes, write_u16, write_u32, write_u8};
use super::{ip_proto, ParseError, Result};
use core::net::Ipv6Addr;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

pub const HEADER_LEN: usize = 40;
/// Extension headers walked before giving up (bounds the loop on crafted chains).
pub const MAX_EXT_HEADERS: usize = 8;

#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 6 {
            return Err(ParseError::BadVersion);
        }
        if HEADER_LEN.wrapping_add(usize::from(self.payload_len())) > len {
            return Err(ParseError::BadTotalLen);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        ((read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) & 0xff) as u8
    }
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::NEXT_HEADER)
    }
    pub fn hop_limit(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::SRC))
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::DST))
    }

    /// Walks the extension headers. Returns the upper-layer protocol and the offset of its header
    /// from the start of the IPv6 header. Never reads past the payload length or the buffer,
    /// even on a packet that did not pass `check_len`.
    pub fn upper_layer(&self) -> Result<(u8, usize)> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let end = HEADER_LEN.wrapping_add(usize::from(self.payload_len())).min(b.len());
        let mut next = self.next_header();
        let mut off = HEADER_LEN;
        // One more round than there are headers to walk: the last one may only find the upper
        // layer behind the MAX_EXT_HEADERS-th extension header.
        for i in 0..=MAX_EXT_HEADERS {
            // Each arm gives the unit and the bias of the Hdr Ext Len field.
            let (unit, bias) = match next {
                ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS | ip_proto::AH | ip_proto::IPV6_FRAG
                    if i == MAX_EXT_HEADERS =>
                {
                    return Err(ParseError::BadExtensionHeader)
                }
                //= https://www.rfc-editor.org/rfc/rfc8200#section-4.3
                //# The Hop-by-Hop Options header, when present, must immediately follow the
                //# IPv6 header.
                // Linux answers any other position with a parameter problem; we drop it.
                ip_proto::HOPOPT if i != 0 => return Err(ParseError::BadExtensionHeader),
                // RFC 8200 §4.3-4.6: Hdr Ext Len in 8-octet units, not counting the first 8.
                ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS => (8, 1),
                // RFC 4302 §2.2: Payload Len in 4-octet units, minus 2.
                ip_proto::AH => (4, 2),
                ip_proto::IPV6_FRAG => return Err(ParseError::Fragment),
                ip_proto::ESP | ip_proto::IPV6_NONXT => return Err(ParseError::BadExtensionHeader),
                upper => return Ok((upper, off)),
            };
            if off.saturating_add(2) > end {
                return Err(ParseError::BadExtensionHeader);
            }
            next = read_u8(b, off);
            let len = usize::from(read_u8(b, off.wrapping_add(1)));
            // At most (255 + 2) * 8 bytes per header, eight headers: no overflow.
            off = off.wrapping_add(len.wrapping_add(bias).wrapping_mul(unit));
            if off > end {
                return Err(ParseError::BadExtensionHeader);
            }
        }
        Err(ParseError::BadExtensionHeader)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// Everything after the fixed header up to the payload length (extension headers included).
    pub fn payload(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        let end = HEADER_LEN.wrapping_add(usize::from(self.payload_len())).min(b.len());
        b.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the 20-bit flow label (RFC 6437), keeping version and traffic class. [`Ipv6Repr`]
    /// emits a zero label; a sender that labels its flows sets it after `emit`.
    pub fn set_flow_label(&mut self, label: u32) {
        let b = self.buffer.as_mut();
        let word = read_u32(b, field::VER_TC_FLOW);
        write_u32(b, field::VER_TC_FLOW, (word & 0xfff0_0000) | (label & 0x000f_ffff));
    }
}

/// The fields of an IPv6 header, with the upper layer found past any extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// Upper-layer protocol (after extension headers).
    pub next_header: u8,
    /// Length of the upper-layer payload.
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header (40 without
    /// extension headers).
    pub upper_offset: usize,
}

impl Ipv6Repr {
    pub const DEFAULT_HOP_LIMIT: u8 = 64;

    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        let (next_header, upper_offset) = p.upper_layer()?;
        let end = HEADER_LEN.wrapping_add(usize::from(p.payload_len())); // <= 40 + 65535
        Ok(Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header,
            payload_len: end.saturating_sub(upper_offset),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            upper_offset,
        })
    }
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
    /// `Err(BadAddress)` when the source cannot be a TCP peer: unspecified (RFC 8200 allows it
    /// only before an address is configured, e.g. for MLD and DAD), multicast (RFC 4291
    /// §2.7: never a source) or loopback (RFC 4291 §2.5.3: never sent outside a node).
    pub fn check_src(&self) -> Result<()> {
        let s = self.src;
        if s.is_unspecified() || s.is_multicast() || s.is_loopback() {
            return Err(ParseError::BadAddress);
        }
        Ok(())
    }
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }
    /// Writes the 40-byte fixed header (no extension headers) into `buf[..40]`.
    pub fn emit(&self, buf: &mut [u8]) {
        write_u32(buf, field::VER_TC_FLOW, (6 << 28) | (u32::from(self.traffic_class) << 20));
        write_u16(buf, field::PAYLOAD_LEN, u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        write_u8(buf, field::NEXT_HEADER, self.next_header);
        write_u8(buf, field::HOP_LIMIT, self.hop_limit);
        write_bytes(buf, field::SRC, &self.src.octets());
        write_bytes(buf, field::DST, &self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, ext: &[u8], upper: &[u8]) -> Vec<u8> {
        let r = Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: next,
            payload_len: ext.len() + upper.len(),
            hop_limit: 64,
            traffic_class: 0,
            upper_offset: 40,
        };
        let mut b = vec![0u8; 40];
        r.emit(&mut b);
        b.extend_from_slice(ext);
        b.extend_from_slice(upper);
        b
    }

    #[test]
    fn walks_hop_by_hop_to_tcp() {
        let ext = [ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0];
        let b = packet(ip_proto::HOPOPT, &ext, &[0u8; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!((r.next_header, r.upper_offset, r.payload_len), (ip_proto::TCP, 48, 20));
    }

    #[test]
    fn fragment_and_esp_are_reported() {
        let b = packet(ip_proto::IPV6_FRAG, &[ip_proto::TCP, 0, 0, 0, 0, 0, 0, 0], &[]);
        assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::Fragment);
        let b = packet(ip_proto::ESP, &[0; 8], &[]);
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            ParseError::BadExtensionHeader
        );
    }

    #[test]
    fn ext_header_past_end_is_an_error() {
        let b = packet(ip_proto::IPV6_OPTS, &[ip_proto::TCP, 200], &[]);
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            ParseError::BadExtensionHeader
        );
    }
}
