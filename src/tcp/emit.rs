//! Building outgoing segments: IPv4/IPv6 header, TCP header and options, payload, checksums,
//! written straight into the buffer a [`TxSink`] lends.

use super::tuple::FourTuple;
use super::TxSink;
use crate::wire::checksum;
use crate::wire::{ip_proto, ipv4, ipv6, ChecksumCaps, Ipv4Repr, Ipv6Repr, SeqNum, TcpFlags, TcpOptions, TcpRepr};
use core::net::IpAddr;

/// One segment to send, seen from the sender: `tuple.local` is the source.
#[derive(Debug, Clone, Copy)]
pub struct OutSegment<'a> {
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    /// Payload in at most two pieces (a ring buffer's two halves).
    pub payload: (&'a [u8], &'a [u8]),
}

impl OutSegment<'_> {
    pub fn control(seq: SeqNum, ack: SeqNum, flags: TcpFlags, window: u16) -> OutSegment<'static> {
        OutSegment { seq, ack, flags, window, options: TcpOptions::default(), payload: (&[], &[]) }
    }

    pub fn payload_len(&self) -> usize {
        self.payload.0.len() + self.payload.1.len()
    }
}

/// Writes `seg` from `t.local` to `t.remote` into `tx`. Returns false when `tx` had no frame.
pub fn emit(tx: &mut dyn TxSink, t: &FourTuple, seg: &OutSegment<'_>, ttl: u8) -> bool {
    let repr = TcpRepr {
        src_port: t.local.port(),
        dst_port: t.remote.port(),
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: seg.window,
        urgent: 0,
        options: seg.options,
        payload: &[],
    };
    let tcp_len = repr.header_len() + seg.payload_len();
    let (ip_len, pseudo) = match (t.local.ip(), t.remote.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            (ipv4::MIN_HEADER_LEN, checksum::pseudo_header_v4(s, d, ip_proto::TCP, tcp_len as u16))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            (ipv6::HEADER_LEN, checksum::pseudo_header_v6(s, d, ip_proto::TCP, tcp_len as u32))
        }
        // A tuple never mixes families; nothing sensible to send.
        _ => return false,
    };
    let total = ip_len + tcp_len;
    tx.send_ip(t.remote.ip(), total, &mut |buf: &mut [u8]| {
        match (t.local.ip(), t.remote.ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Ipv4Repr {
                src,
                dst,
                protocol: ip_proto::TCP,
                payload_len: tcp_len,
                ttl,
                dscp: 0,
                ecn: 0,
                ident: 0,
                dont_frag: true,
            }
            .emit(buf, ChecksumCaps::default()),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Ipv6Repr {
                src,
                dst,
                next_header: ip_proto::TCP,
                payload_len: tcp_len,
                hop_limit: ttl,
                traffic_class: 0,
                upper_offset: ipv6::HEADER_LEN,
            }
            .emit(buf),
            _ => {}
        }
        let Some(tcp) = buf.get_mut(ip_len..) else {
            return;
        };
        let hl = repr.emit_header(tcp, seg.payload_len());
        let (a, b) = seg.payload;
        if let Some(d) = tcp.get_mut(hl..hl + a.len()) {
            d.copy_from_slice(a);
        }
        if let Some(d) = tcp.get_mut(hl + a.len()..hl + a.len() + b.len()) {
            d.copy_from_slice(b);
        }
        crate::wire::TcpPacket::new_unchecked(tcp).fill_checksum(pseudo);
    })
}
