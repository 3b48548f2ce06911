//! Ethernet II frames with at most one IEEE 802.1Q VLAN tag.

use super::field::{read_array, read_u16, slice, slice_mut, write_bytes, write_u16, Field, Rest};
use super::{ParseError, Result};
use core::fmt;

mod field {
    use super::{Field, Rest};
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
    /// With an 802.1Q tag: TCI at 14..16, inner EtherType at 16..18.
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_ETHERTYPE: usize = 16;
    pub const PAYLOAD: Rest = 14..;
}

/// Header length without / with one VLAN tag.
pub const HEADER_LEN: usize = 14;
pub const VLAN_HEADER_LEN: usize = 18;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    pub const ZERO: EthernetAddress = EthernetAddress([0; 6]);
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl core::str::FromStr for EthernetAddress {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or(ParseError::Truncated)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseError::Unsupported)?;
        }
        if parts.next().is_some() {
            return Err(ParseError::Unsupported);
        }
        Ok(EthernetAddress(out))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    Vlan,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(o) => o,
        }
    }
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    /// The frame holds the whole header, including a VLAN tag if the outer type says so.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || (self.has_vlan() && len < VLAN_HEADER_LEN) {
            return Err(ParseError::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(read_array(self.buffer.as_ref(), field::DST.start))
    }
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(read_array(self.buffer.as_ref(), field::SRC.start))
    }
    fn outer_type(&self) -> u16 {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return 0;
        }
        read_u16(b, field::ETHERTYPE)
    }
    pub fn has_vlan(&self) -> bool {
        self.outer_type() == 0x8100
    }
    /// VLAN ID (12 bits) of the 802.1Q tag, if any.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.has_vlan() && self.buffer.as_ref().len() >= VLAN_HEADER_LEN {
            Some(read_u16(self.buffer.as_ref(), field::VLAN_TCI) & 0x0fff)
        } else {
            None
        }
    }
    /// The EtherType of the payload (the inner one when tagged).
    pub fn ethertype(&self) -> EtherType {
        if self.has_vlan() {
            if self.buffer.as_ref().len() < VLAN_HEADER_LEN {
                return EtherType::Vlan;
            }
            EtherType::from(read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE))
        } else {
            EtherType::from(self.outer_type())
        }
    }
    pub fn header_len(&self) -> usize {
        if self.has_vlan() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The payload after the (possibly tagged) header, borrowed from the frame: no copy.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        b.get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        write_bytes(self.buffer.as_mut(), field::DST.start, &a.0);
    }
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        write_bytes(self.buffer.as_mut(), field::SRC.start, &a.0);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        let b = self.buffer.as_mut();
        let len = b.len();
        slice_mut(b, h..len)
    }
}

/// The fields of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    pub vlan: Option<u16>,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(f: &EthernetFrame<T>) -> Result<Self> {
        f.check_len()?;
        Ok(EthernetRepr { src: f.src_addr(), dst: f.dst_addr(), vlan: f.vlan_id(), ethertype: f.ethertype() })
    }
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
    /// Writes the header into the first `header_len()` bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        write_bytes(buf, field::DST.start, &self.dst.0);
        write_bytes(buf, field::SRC.start, &self.src.0);
        match self.vlan {
            Some(id) => {
                write_u16(buf, field::ETHERTYPE, 0x8100);
                write_u16(buf, field::VLAN_TCI, id & 0x0fff);
                write_u16(buf, field::VLAN_ETHERTYPE, self.ethertype.into());
            }
            None => write_u16(buf, field::ETHERTYPE, self.ethertype.into()),
        }
    }
}

/// Bytes after a 14-byte untagged header (helper for callers that know there is no tag).
pub fn untagged_payload(buf: &[u8]) -> &[u8] {
    slice(buf, field::PAYLOAD.start..buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_roundtrip() {
        let r = EthernetRepr {
            src: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst: EthernetAddress::BROADCAST,
            vlan: Some(42),
            ethertype: EtherType::Arp,
        };
        let mut buf = [0u8; 18];
        r.emit(&mut buf);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f).unwrap(), r);
        assert_eq!(f.payload().len(), 0);
        assert!(EthernetFrame::new_checked(&buf[..16]).is_err());
    }
}
