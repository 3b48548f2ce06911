//! ICMPv4 (RFC 792) echo and destination-unreachable (with fragmentation-needed, RFC 1191), and
//! ICMPv6 (RFC 4443) echo and packet-too-big (RFC 8201). For errors the quoted IP header and the
//! first 8 bytes of the TCP header are decoded into a [`QuotedTcp`] so that the TCP layer can
//! find the connection and check the quoted sequence number (RFC 5927 §4.1).

use super::checksum;
use super::field::{read_u16, read_u32, read_u8, slice, write_bytes, write_u16, write_u32, write_u8};
use super::ipv4::Ipv4Packet;
use super::ipv6::Ipv6Packet;
use super::{ip_proto, ParseError, Result, SeqNum};
use core::net::IpAddr;

pub const HEADER_LEN: usize = 8;

pub mod v4_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// Destination unreachable, code 4: fragmentation needed and DF set.
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

pub mod v6_type {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

/// The part of an offending TCP segment that an ICMP error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Source of the quoted packet: our address when the error is about a segment we sent.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
}

impl QuotedTcp {
    /// Decodes a quoted IPv4 header plus at least 8 bytes of TCP header.
    pub fn parse_v4(quote: &[u8]) -> Result<Self> {
        let ip = Ipv4Packet::new_unchecked(quote);
        if quote.len() < 20 {
            return Err(ParseError::BadQuote);
        }
        if ip.version() != 4 || ip.header_len() < 20 {
            return Err(ParseError::BadQuote);
        }
        if ip.protocol() != ip_proto::TCP {
            return Err(ParseError::BadQuote);
        }
        let t = quote.get(ip.header_len()..).ok_or(ParseError::BadQuote)?;
        Self::tcp_part(IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), t)
    }

    /// Decodes a quoted IPv6 header (no extension headers) plus 8 bytes of TCP header.
    pub fn parse_v6(quote: &[u8]) -> Result<Self> {
        if quote.len() < 40 {
            return Err(ParseError::BadQuote);
        }
        let ip = Ipv6Packet::new_unchecked(quote);
        if ip.version() != 6 || ip.next_header() != ip_proto::TCP {
            return Err(ParseError::BadQuote);
        }
        let t = quote.get(40..).ok_or(ParseError::BadQuote)?;
        Self::tcp_part(IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), t)
    }

    fn tcp_part(src: IpAddr, dst: IpAddr, t: &[u8]) -> Result<Self> {
        if t.len() < 8 {
            return Err(ParseError::BadQuote);
        }
        Ok(QuotedTcp { src, dst, src_port: read_u16(t, 0), dst_port: read_u16(t, 2), seq: SeqNum(read_u32(t, 4)) })
    }
}

/// An ICMP message the stack understands. `data` and quotes borrow from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpRepr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// IPv4 fragmentation needed (type 3 code 4) or IPv6 packet too big: the path MTU.
    PacketTooBig {
        mtu: u32,
        quote: QuotedTcp,
    },
    /// Any other destination unreachable, time exceeded or parameter problem with a TCP quote.
    /// Whether it is a soft or a hard error is TCP's call (`tcp::icmp::IcmpError`).
    Error {
        icmp_type: u8,
        code: u8,
        quote: QuotedTcp,
    },
    /// Anything else; ignored.
    Other {
        icmp_type: u8,
        code: u8,
    },
}

impl<'a> IcmpRepr<'a> {
    /// Parses an ICMPv4 message, verifying its checksum when `verify` is set.
    pub fn parse_v4(msg: &'a [u8], verify: bool) -> Result<Self> {
        if msg.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if verify && !checksum::verify(msg, 0) {
            return Err(ParseError::BadChecksum);
        }
        let (ty, code) = (read_u8(msg, 0), read_u8(msg, 1));
        let body = slice(msg, HEADER_LEN..msg.len());
        Ok(match ty {
            v4_type::ECHO_REQUEST => {
                IcmpRepr::EchoRequest { ident: read_u16(msg, 4), seq_no: read_u16(msg, 6), data: body }
            }
            v4_type::ECHO_REPLY => {
                IcmpRepr::EchoReply { ident: read_u16(msg, 4), seq_no: read_u16(msg, 6), data: body }
            }
            v4_type::DST_UNREACHABLE if code == v4_type::CODE_FRAG_NEEDED => {
                IcmpRepr::PacketTooBig { mtu: u32::from(read_u16(msg, 6)), quote: QuotedTcp::parse_v4(body)? }
            }
            v4_type::DST_UNREACHABLE | v4_type::TIME_EXCEEDED | v4_type::PARAMETER_PROBLEM => {
                IcmpRepr::Error { icmp_type: ty, code, quote: QuotedTcp::parse_v4(body)? }
            }
            _ => IcmpRepr::Other { icmp_type: ty, code },
        })
    }

    /// Parses an ICMPv6 message; `pseudo` is the IPv6 pseudo-header sum for its checksum.
    pub fn parse_v6(msg: &'a [u8], pseudo: u64, verify: bool) -> Result<Self> {
        if msg.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if verify && !checksum::verify(msg, pseudo) {
            return Err(ParseError::BadChecksum);
        }
        let (ty, code) = (read_u8(msg, 0), read_u8(msg, 1));
        let body = slice(msg, HEADER_LEN..msg.len());
        Ok(match ty {
            v6_type::ECHO_REQUEST => {
                IcmpRepr::EchoRequest { ident: read_u16(msg, 4), seq_no: read_u16(msg, 6), data: body }
            }
            v6_type::ECHO_REPLY => {
                IcmpRepr::EchoReply { ident: read_u16(msg, 4), seq_no: read_u16(msg, 6), data: body }
            }
            v6_type::PACKET_TOO_BIG => {
                IcmpRepr::PacketTooBig { mtu: read_u32(msg, 4), quote: QuotedTcp::parse_v6(body)? }
            }
            v6_type::DST_UNREACHABLE | v6_type::TIME_EXCEEDED | v6_type::PARAMETER_PROBLEM => {
                IcmpRepr::Error { icmp_type: ty, code, quote: QuotedTcp::parse_v6(body)? }
            }
            _ => IcmpRepr::Other { icmp_type: ty, code },
        })
    }

    /// Length of an emitted echo message (other kinds are not emitted by the stack except
    /// through [`emit_frag_needed_v4`]).
    pub fn buffer_len(&self) -> usize {
        match self {
            IcmpRepr::EchoRequest { data, .. } | IcmpRepr::EchoReply { data, .. } => {
                HEADER_LEN.saturating_add(data.len())
            }
            _ => HEADER_LEN,
        }
    }

    /// Writes an ICMPv4 echo request/reply with its checksum. Other kinds write nothing and
    /// return 0.
    pub fn emit_echo_v4(&self, buf: &mut [u8]) -> usize {
        let (ty, ident, seq_no, data) = match *self {
            IcmpRepr::EchoRequest { ident, seq_no, data } => (v4_type::ECHO_REQUEST, ident, seq_no, data),
            IcmpRepr::EchoReply { ident, seq_no, data } => (v4_type::ECHO_REPLY, ident, seq_no, data),
            _ => return 0,
        };
        emit_echo(buf, ty, ident, seq_no, data, 0)
    }

    /// Writes an ICMPv6 echo request/reply; `pseudo` is the pseudo-header sum for its length.
    pub fn emit_echo_v6(&self, buf: &mut [u8], pseudo: u64) -> usize {
        let (ty, ident, seq_no, data) = match *self {
            IcmpRepr::EchoRequest { ident, seq_no, data } => (v6_type::ECHO_REQUEST, ident, seq_no, data),
            IcmpRepr::EchoReply { ident, seq_no, data } => (v6_type::ECHO_REPLY, ident, seq_no, data),
            _ => return 0,
        };
        emit_echo(buf, ty, ident, seq_no, data, pseudo)
    }
}

fn emit_echo(buf: &mut [u8], ty: u8, ident: u16, seq_no: u16, data: &[u8], pseudo: u64) -> usize {
    let len = HEADER_LEN.saturating_add(data.len());
    write_u8(buf, 0, ty);
    write_u8(buf, 1, 0);
    write_u16(buf, 2, 0);
    write_u16(buf, 4, ident);
    write_u16(buf, 6, seq_no);
    write_bytes(buf, HEADER_LEN, data);
    let c = checksum::finish(checksum::sum(slice(buf, 0..len)).wrapping_add(pseudo));
    write_u16(buf, 2, c);
    len
}

/// Writes an ICMPv4 fragmentation-needed message quoting `quote` (the offending IP header and at
/// least 8 bytes of its payload). Used by tests and the traffic tools to craft PTBs.
pub fn emit_frag_needed_v4(buf: &mut [u8], mtu: u16, quote: &[u8]) -> usize {
    let len = HEADER_LEN.saturating_add(quote.len());
    write_u8(buf, 0, v4_type::DST_UNREACHABLE);
    write_u8(buf, 1, v4_type::CODE_FRAG_NEEDED);
    write_u16(buf, 2, 0);
    write_u32(buf, 4, u32::from(mtu));
    write_bytes(buf, HEADER_LEN, quote);
    let c = checksum::checksum(slice(buf, 0..len));
    write_u16(buf, 2, c);
    len
}
