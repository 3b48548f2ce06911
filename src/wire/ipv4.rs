//! IPv4 (RFC 791). Header options are skipped by IHL; fragments are recognised and reported as
//! [`ParseError::Fragment`], never handed up as a whole segment.

use super::checksum;
use super::field::{read_u16, read_u8, slice, write_bytes, write_u16, write_u8};
use super::{ChecksumCaps, ParseError, Result};
use core::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

pub const MIN_HEADER_LEN: usize = 20;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Version is 4, IHL >= 5, the header fits, and total length is between the header length and
    /// the buffer length (bytes past total length are link padding and ignored).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 4 {
            return Err(ParseError::BadVersion);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(ParseError::BadHeaderLen);
        }
        if hl > len {
            return Err(ParseError::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(ParseError::BadTotalLen);
        }
        if total > len {
            return Err(ParseError::BadTotalLen);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }
    pub fn dscp(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::DSCP_ECN) >> 2
    }
    pub fn ecn(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::DSCP_ECN) & 0x03
    }
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }
    /// MF set or a non-zero offset: this packet is a piece of a larger datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    pub fn ttl(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TTL)
    }
    pub fn protocol(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::PROTOCOL)
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(super::field::read_array::<4>(self.buffer.as_ref(), field::SRC))
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(super::field::read_array::<4>(self.buffer.as_ref(), field::DST))
    }
    /// The header checksum is valid.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        checksum::verify(slice(b, 0..self.header_len()), 0)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload: from the end of the header to total length (zero-copy).
    pub fn payload(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        b.get(self.header_len()..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_ttl(&mut self, v: u8) {
        write_u8(self.buffer.as_mut(), field::TTL, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(slice(self.buffer.as_ref(), 0..hl));
        self.set_checksum(c);
    }
}

/// The fields of an IPv4 header that the stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Length of the upper-layer payload.
    pub payload_len: usize,
    pub ttl: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    pub const DEFAULT_TTL: u8 = 64;

    /// Validates and reads the header. Fragments are an error: the stack does not reassemble.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, caps: ChecksumCaps) -> Result<Self> {
        p.check_len()?;
        if caps.verify_rx && !p.verify_checksum() {
            return Err(ParseError::BadChecksum);
        }
        if p.is_fragment() {
            return Err(ParseError::Fragment);
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()).saturating_sub(p.header_len()),
            ttl: p.ttl(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }
    /// `Err(BadAddress)` when the source cannot be a TCP peer: unspecified, limited broadcast,
    /// multicast (RFC 1122 §4.2.3.10: a SYN from such a source is silently discarded) or
    /// loopback, which never appears on a wire (RFC 1122 §3.2.1.3(g); Linux drops it as a
    /// martian). Subnet broadcasts depend on the interface and are the caller's to check.
    pub fn check_src(&self) -> Result<()> {
        let s = self.src;
        if s.is_unspecified() || s.is_broadcast() || s.is_multicast() || s.is_loopback() {
            return Err(ParseError::BadAddress);
        }
        Ok(())
    }
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN.saturating_add(self.payload_len)
    }
    /// Writes a 20-byte header (no options) into `buf[..20]`, with the checksum when asked.
    pub fn emit(&self, buf: &mut [u8], caps: ChecksumCaps) {
        write_u8(buf, field::VER_IHL, 0x45);
        write_u8(buf, field::DSCP_ECN, (self.dscp << 2) | (self.ecn & 3));
        let total = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        write_u16(buf, field::TOTAL_LEN, total);
        write_u16(buf, field::IDENT, self.ident);
        write_u16(buf, field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        write_u8(buf, field::TTL, self.ttl);
        write_u8(buf, field::PROTOCOL, self.protocol);
        write_u16(buf, field::CHECKSUM, 0);
        write_bytes(buf, field::SRC, &self.src.octets());
        write_bytes(buf, field::DST, &self.dst.octets());
        if caps.compute_tx {
            let c = checksum::checksum(slice(buf, 0..MIN_HEADER_LEN));
            write_u16(buf, field::CHECKSUM, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 24] {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: 6,
            payload_len: 4,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut b = [0u8; 24];
        r.emit(&mut b, ChecksumCaps::default());
        b
    }

    #[test]
    fn roundtrip_and_checksum() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        let r = Ipv4Repr::parse(&p, ChecksumCaps::default()).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(p.payload().len(), 4);
        assert!(p.verify_checksum());
    }

    #[test]
    fn bad_lengths() {
        let mut b = sample();
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), ParseError::BadHeaderLen);
        let mut b = sample();
        b[2] = 0;
        b[3] = 100;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), ParseError::BadTotalLen);
        let mut b = sample();
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), ParseError::BadVersion);
        assert_eq!(Ipv4Packet::new_checked(&b[..10]).unwrap_err(), ParseError::Truncated);
    }

    #[test]
    fn fragment_is_reported() {
        let mut b = sample();
        b[6] |= 0x20; // MF
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(Ipv4Repr::parse(&p, ChecksumCaps::default()).unwrap_err(), ParseError::Fragment);
    }
}
