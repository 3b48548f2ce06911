//! L2/L3 glue between frames and the protocols: the stack's addresses, the neighbour (ARP)
//! cache, ICMP (echo, and errors handed to TCP), and dispatch from a frame to the right protocol.
//!
//! Two deployments (see README): the stack *owns* an address the kernel does not have (then it
//! answers ARP, NDP and ICMP echo for it), or it *shares* the host's address and takes over only its
//! ports (then the XDP program passes ARP and ICMP to the kernel, and the kernel keeps answering).

use crate::tcp::{IcmpError, Shard, TxSink, Verdict};
use crate::time::{Duration, Instant};
use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::icmp::IcmpRepr;
use crate::wire::{checksum, ip_proto, ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, ParseError, TcpPacket, TcpRepr};
use core::net::{IpAddr, Ipv4Addr};
use hashbrown::HashMap;

/// What a link offers the stack for transmitting: frames lent one at a time.
///
/// Implemented by `io::xdp` (UMEM frames on the TX ring) and `io::mem` (in-memory link).
pub trait FrameSink {
    /// Lends a buffer of exactly `len` bytes for one outgoing Ethernet frame; `fill` writes the
    /// whole frame into it, which is then queued for transmission. Returns false, without calling
    /// `fill`, when no frame is free or `len` exceeds the frame size: the caller counts it.
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool;
}

/// A sink that keeps every frame: for tests.
impl FrameSink for Vec<Vec<u8>> {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut f = vec![0u8; len];
        fill(&mut f);
        self.push(f);
        true
    }
}

/// The interface as the stack sees it.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub mac: EthernetAddress,
    /// Addresses the stack terminates TCP for.
    pub addrs: Vec<IpAddr>,
    /// The stack owns `addrs` (answers ARP, neighbour solicitations and ICMP echo); false when it shares the host's
    /// addresses and the kernel answers those.
    pub own_address: bool,
    /// 802.1Q tag to put on frames we send (and expect on frames we receive).
    pub vlan: Option<u16>,
    /// How long a learned neighbour stays valid (Linux `base_reachable_time` is 30 s; entries
    /// refreshed by traffic never expire while in use).
    pub neighbour_ttl: Duration,
}

/// L2/L3 counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_frames: u64,
    pub rx_tcp: u64,
    pub rx_arp: u64,
    pub rx_icmp: u64,
    pub tx_arp: u64,
    pub tx_icmp: u64,
    /// Frames not for us (other MAC, other address, other protocol).
    pub rx_not_ours: u64,
    /// Frames that did not parse, by the first error.
    pub rx_malformed: u64,
    pub rx_fragments: u64,
    /// Packets dropped because the next hop's MAC was unknown (an ARP request went out).
    pub tx_no_neighbour: u64,
    pub tx_no_frame: u64,
}

/// IPv4/IPv6 neighbours: learned from ARP and from the source of frames that reach us (the
/// peer of a connection is one hop away on the test bed, or behind the same router otherwise).
///
/// Bounded, so a flood from spoofed sources cannot grow it without limit: beyond half the
/// capacity, sources that only sent a SYN are not learned (their SYN-ACK goes back to the MAC the
/// SYN came from, see `EthTx`), and at capacity nothing new is; entries not refreshed within the
/// TTL are expired by the engine.
#[derive(Debug)]
pub struct Neighbours {
    map: HashMap<IpAddr, (EthernetAddress, Instant)>,
    capacity: usize,
    /// Used when the destination is not on the link (a default router), if known.
    pub gateway_mac: Option<EthernetAddress>,
    /// Sources not learned because the cache was full.
    pub not_learned: u64,
}

impl Default for Neighbours {
    fn default() -> Self {
        Neighbours::with_capacity(Neighbours::DEFAULT_CAPACITY)
    }
}

impl Neighbours {
    pub const DEFAULT_CAPACITY: usize = 65_536;

    pub fn with_capacity(capacity: usize) -> Self {
        Neighbours { map: HashMap::new(), capacity, gateway_mac: None, not_learned: 0 }
    }

    /// Records `ip` at `mac`. `weak` marks a source that has only sent a SYN so far.
    pub fn learn_from(&mut self, ip: IpAddr, mac: EthernetAddress, now: Instant, weak: bool) {
        if !mac.is_unicast() || mac == EthernetAddress::ZERO {
            return;
        }
        if let Some(e) = self.map.get_mut(&ip) {
            *e = (mac, now);
            return;
        }
        let limit = if weak { self.capacity / 2 } else { self.capacity };
        if self.map.len() >= limit {
            self.not_learned += 1;
            return;
        }
        self.map.insert(ip, (mac, now));
    }

    pub fn learn(&mut self, ip: IpAddr, mac: EthernetAddress, now: Instant) {
        self.learn_from(ip, mac, now, false);
    }
    pub fn lookup(&self, ip: &IpAddr) -> Option<EthernetAddress> {
        self.map.get(ip).map(|e| e.0).or(self.gateway_mac)
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Forgets entries not refreshed within `ttl`.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        self.map.retain(|_, (_, seen)| now.saturating_since(*seen) <= ttl);
    }
}

/// The network layer of one core.
pub struct Net {
    pub cfg: NetConfig,
    pub neigh: Neighbours,
    pub counters: NetCounters,
    /// ARP requests already sent for an address, so a burst of packets asks only once.
    pending_arp: HashMap<Ipv4Addr, Instant>,
    /// Source of the frame being handled: replies to it go back to the MAC it came from, even
    /// when the neighbour cache did not keep that source.
    reply_hint: Option<(IpAddr, EthernetAddress)>,
}

/// What happened to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    Tcp(Verdict),
    Arp,
    Icmp,
    NotOurs,
    Malformed(ParseError),
}

impl Net {
    pub fn new(cfg: NetConfig) -> Self {
        Net {
            cfg,
            neigh: Neighbours::default(),
            counters: NetCounters::default(),
            pending_arp: HashMap::new(),
            reply_hint: None,
        }
    }

    fn is_ours(&self, ip: &IpAddr) -> bool {
        self.cfg.addrs.contains(ip)
    }

    /// A `TxSink` for the TCP layer that puts the link header in front of each IP packet.
    pub fn tx<'a>(&'a mut self, now: Instant, link: &'a mut dyn FrameSink) -> EthTx<'a> {
        EthTx { net: self, link, now }
    }

    /// Dispatches one received frame: ARP, ICMP, or TCP to `shard`.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &[u8],
        shard: &mut Shard,
        link: &mut dyn FrameSink,
    ) -> FrameVerdict {
        self.counters.rx_frames += 1;
        self.reply_hint = None;
        let eth = match EthernetFrame::new_checked(frame) {
            Ok(e) => e,
            Err(e) => return self.malformed(e),
        };
        let dst = eth.dst_addr();
        // IPv6 neighbour solicitations go to a solicited-node multicast MAC (33:33:ff:..).
        let ipv6_multicast = dst.0[0] == 0x33 && dst.0[1] == 0x33;
        if dst != self.cfg.mac && !dst.is_broadcast() && !ipv6_multicast {
            self.counters.rx_not_ours += 1;
            return FrameVerdict::NotOurs;
        }
        let src_mac = eth.src_addr();
        let payload = eth.payload();
        match eth.ethertype() {
            EtherType::Arp => self.on_arp(now, payload, link),
            EtherType::Ipv4 => self.on_ipv4(now, src_mac, payload, shard, link),
            EtherType::Ipv6 => self.on_ipv6(now, src_mac, payload, shard, link),
            _ => {
                self.counters.rx_not_ours += 1;
                FrameVerdict::NotOurs
            }
        }
    }

    fn malformed(&mut self, e: ParseError) -> FrameVerdict {
        if e == ParseError::Fragment {
            self.counters.rx_fragments += 1;
        } else {
            self.counters.rx_malformed += 1;
        }
        FrameVerdict::Malformed(e)
    }

    /// RFC 826: learn the sender; answer requests for an address we own.
    fn on_arp(&mut self, now: Instant, payload: &[u8], link: &mut dyn FrameSink) -> FrameVerdict {
        self.counters.rx_arp += 1;
        let arp = match ArpPacket::new_checked(payload).and_then(|p| ArpRepr::parse(&p)) {
            Ok(a) => a,
            Err(e) => return self.malformed(e),
        };
        let target = IpAddr::V4(arp.target_protocol_addr);
        if !self.is_ours(&target) {
            // Still worth learning a reply to our own request.
            if arp.operation == ArpOperation::Reply {
                self.neigh.learn(IpAddr::V4(arp.source_protocol_addr), arp.source_hardware_addr, now);
            }
            return FrameVerdict::NotOurs;
        }
        self.neigh.learn(IpAddr::V4(arp.source_protocol_addr), arp.source_hardware_addr, now);
        self.pending_arp.remove(&arp.source_protocol_addr);
        if arp.operation == ArpOperation::Request && self.cfg.own_address {
            let reply = ArpRepr {
                operation: ArpOperation::Reply,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: arp.target_protocol_addr,
                target_hardware_addr: arp.source_hardware_addr,
                target_protocol_addr: arp.source_protocol_addr,
            };
            self.send_arp(&reply, arp.source_hardware_addr, link);
        }
        FrameVerdict::Arp
    }

    fn send_arp(&mut self, arp: &ArpRepr, dst: EthernetAddress, link: &mut dyn FrameSink) {
        let eth = EthernetRepr { src: self.cfg.mac, dst, vlan: self.cfg.vlan, ethertype: EtherType::Arp };
        let hl = eth.header_len();
        // 60 bytes: the Ethernet minimum without FCS; the tail is zero padding.
        let len = (hl + arp.buffer_len()).max(60);
        let ok = link.send_frame(len, &mut |buf: &mut [u8]| {
            buf.fill(0);
            eth.emit(buf);
            if let Some(b) = buf.get_mut(hl..) {
                arp.emit(b);
            }
        });
        if ok {
            self.counters.tx_arp += 1;
        } else {
            self.counters.tx_no_frame += 1;
        }
    }

    /// Asks who has `ip` (at most once a second per address).
    pub fn request_arp(&mut self, now: Instant, ip: Ipv4Addr, link: &mut dyn FrameSink) {
        if let Some(t) = self.pending_arp.get(&ip) {
            if now.saturating_since(*t) < Duration::from_secs(1) {
                return;
            }
        }
        let Some(IpAddr::V4(src)) = self.cfg.addrs.iter().find(|a| a.is_ipv4()).copied() else { return };
        self.pending_arp.insert(ip, now);
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: src,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: ip,
        };
        self.send_arp(&req, EthernetAddress::BROADCAST, link);
    }

    fn on_ipv4(
        &mut self,
        now: Instant,
        src_mac: EthernetAddress,
        payload: &[u8],
        shard: &mut Shard,
        link: &mut dyn FrameSink,
    ) -> FrameVerdict {
        let p = match Ipv4Packet::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return self.malformed(e),
        };
        let ip = match Ipv4Repr::parse(&p, ChecksumCaps::default()) {
            Ok(r) => r,
            Err(e) => {
                if e == ParseError::BadChecksum {
                    shard.count_in_error(true);
                }
                return self.malformed(e);
            }
        };
        let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
        if !self.is_ours(&dst) {
            self.counters.rx_not_ours += 1;
            return FrameVerdict::NotOurs;
        }
        let body = p.payload();
        self.reply_hint = Some((src, src_mac));
        match ip.protocol {
            ip_proto::TCP => {
                self.counters.rx_tcp += 1;
                let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, body.len() as u16);
                let v = self.tcp(now, src, dst, body, pseudo, shard, link);
                self.learn_from_tcp(now, src, src_mac, ip.protocol, body, v);
                v
            }
            ip_proto::ICMP => {
                self.neigh.learn_from(src, src_mac, now, false);
                self.counters.rx_icmp += 1;
                match IcmpRepr::parse_v4(body, true) {
                    Ok(m) => self.on_icmp(now, src, dst, m, shard, link),
                    Err(e) => self.malformed(e),
                }
            }
            _ => {
                self.counters.rx_not_ours += 1;
                FrameVerdict::NotOurs
            }
        }
    }

    fn on_ipv6(
        &mut self,
        now: Instant,
        src_mac: EthernetAddress,
        payload: &[u8],
        shard: &mut Shard,
        link: &mut dyn FrameSink,
    ) -> FrameVerdict {
        let p = match Ipv6Packet::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return self.malformed(e),
        };
        let ip = match Ipv6Repr::parse(&p) {
            Ok(r) => r,
            Err(e) => return self.malformed(e),
        };
        let (src, dst) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
        let Some(body) = payload.get(ip.upper_offset..ip.upper_offset + ip.payload_len) else {
            return self.malformed(ParseError::Truncated);
        };
        if ip.next_header == ip_proto::ICMPV6 && body.first() == Some(&NDP_NEIGHBOR_SOLICIT) {
            return self.on_neighbor_solicit(now, src_mac, &ip, body, link);
        }
        if !self.is_ours(&dst) {
            self.counters.rx_not_ours += 1;
            return FrameVerdict::NotOurs;
        }
        self.reply_hint = Some((src, src_mac));
        let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip.next_header, body.len() as u32);
        match ip.next_header {
            ip_proto::TCP => {
                self.counters.rx_tcp += 1;
                let v = self.tcp(now, src, dst, body, pseudo, shard, link);
                self.learn_from_tcp(now, src, src_mac, ip.next_header, body, v);
                v
            }
            ip_proto::ICMPV6 => {
                self.neigh.learn_from(src, src_mac, now, false);
                self.counters.rx_icmp += 1;
                match IcmpRepr::parse_v6(body, pseudo, true) {
                    Ok(m) => self.on_icmp(now, src, dst, m, shard, link),
                    Err(e) => self.malformed(e),
                }
            }
            _ => {
                self.counters.rx_not_ours += 1;
                FrameVerdict::NotOurs
            }
        }
    }

    /// RFC 4861 §7.2.3-7.2.4: answer a neighbour solicitation for an owned address with a
    /// solicited neighbour advertisement carrying our link-layer address (own-address mode; in
    /// shared mode the kernel answers and the XDP program never hands NDP to the stack).
    fn on_neighbor_solicit(
        &mut self,
        now: Instant,
        src_mac: EthernetAddress,
        ip: &Ipv6Repr,
        body: &[u8],
        link: &mut dyn FrameSink,
    ) -> FrameVerdict {
        self.counters.rx_icmp += 1;
        let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip_proto::ICMPV6, body.len() as u32);
        // RFC 4861 §7.1.1: hop limit 255, code 0, at least 24 bytes, valid checksum.
        if ip.hop_limit != 255 || body.len() < 24 || body.get(1) != Some(&0) || !checksum::verify(body, pseudo) {
            return self.malformed(ParseError::BadChecksum);
        }
        let mut t = [0u8; 16];
        if let Some(b) = body.get(8..24) {
            t.copy_from_slice(b);
        }
        let target = core::net::Ipv6Addr::from(t);
        if !self.cfg.own_address || !self.is_ours(&IpAddr::V6(target)) {
            self.counters.rx_not_ours += 1;
            return FrameVerdict::NotOurs;
        }
        // A duplicate-address probe (unspecified source) gets no unicast answer.
        if ip.src.is_unspecified() {
            return FrameVerdict::Icmp;
        }
        self.neigh.learn(IpAddr::V6(ip.src), src_mac, now);
        let mac = self.cfg.mac;
        let na_len = 32; // header 4 + flags 4 + target 16 + target link-layer option 8
        let na = Ipv6Repr {
            src: target,
            dst: ip.src,
            next_header: ip_proto::ICMPV6,
            payload_len: na_len,
            hop_limit: 255,
            traffic_class: 0,
            upper_offset: 40,
        };
        let eth = EthernetRepr { src: mac, dst: src_mac, vlan: self.cfg.vlan, ethertype: EtherType::Ipv6 };
        let hl = eth.header_len();
        let ok = link.send_frame(hl + 40 + na_len, &mut |buf: &mut [u8]| {
            buf.fill(0);
            eth.emit(buf);
            let Some(ipb) = buf.get_mut(hl..) else { return };
            na.emit(ipb);
            let Some(m) = ipb.get_mut(40..40 + na_len) else { return };
            m[0] = NDP_NEIGHBOR_ADVERT;
            // Flags: Solicited and Override (RFC 4861 §4.4).
            m[4] = 0x60;
            m[8..24].copy_from_slice(&target.octets());
            m[24] = 2; // target link-layer address option
            m[25] = 1; // length in units of 8 bytes
            m[26..32].copy_from_slice(&mac.0);
            let c = checksum::finish(
                checksum::sum(m) + checksum::pseudo_header_v6(target, na.dst, ip_proto::ICMPV6, na_len as u32),
            );
            m[2..4].copy_from_slice(&c.to_be_bytes());
        });
        if ok {
            self.counters.tx_icmp += 1;
        } else {
            self.counters.tx_no_frame += 1;
        }
        FrameVerdict::Icmp
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        body: &[u8],
        pseudo: u64,
        shard: &mut Shard,
        link: &mut dyn FrameSink,
    ) -> FrameVerdict {
        let seg = match TcpPacket::new_checked(body).and_then(|t| TcpRepr::parse(&t, pseudo, true)) {
            Ok(s) => s,
            Err(e) => {
                shard.count_in_error(e == ParseError::BadChecksum);
                return self.malformed(e);
            }
        };
        let mut tx = self.tx(now, link);
        FrameVerdict::Tcp(shard.handle_segment(now, dst, src, &seg, &mut tx))
    }

    /// Learns the sender of a TCP segment the shard took (a flow it holds or just made). A
    /// segment that matched nothing (an ACK or RST flood from spoofed sources) teaches nothing:
    /// its RST, if any, went back to the MAC it came from (`reply_hint`), and the cache keeps
    /// its room for real peers. A bare SYN is a weak source (at most half the cache).
    fn learn_from_tcp(
        &mut self,
        now: Instant,
        src: IpAddr,
        mac: EthernetAddress,
        proto: u8,
        body: &[u8],
        v: FrameVerdict,
    ) {
        if v == FrameVerdict::Tcp(Verdict::Consumed) {
            self.neigh.learn_from(src, mac, now, is_pure_syn(proto, body));
        }
    }

    /// ICMP: answer echo for owned addresses; hand errors that quote TCP to the shard.
    fn on_icmp(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        m: IcmpRepr<'_>,
        shard: &mut Shard,
        link: &mut dyn FrameSink,
    ) -> FrameVerdict {
        match m {
            IcmpRepr::EchoRequest { ident, seq_no, data } if self.cfg.own_address => {
                let reply = IcmpRepr::EchoReply { ident, seq_no, data };
                let len = reply.buffer_len();
                let ttl = shard.config().ttl;
                let mut tx = self.tx(now, link);
                let sent = tx.send_ip(src, len + if src.is_ipv4() { 20 } else { 40 }, &mut |buf: &mut [u8]| {
                    emit_icmp_reply(buf, dst, src, &reply, len, ttl);
                });
                if sent {
                    self.counters.tx_icmp += 1;
                }
                FrameVerdict::Icmp
            }
            IcmpRepr::PacketTooBig { mtu, quote } => {
                let mut tx = self.tx(now, link);
                FrameVerdict::Tcp(shard.handle_icmp_error(now, &quote, IcmpError::PacketTooBig { mtu }, &mut tx))
            }
            IcmpRepr::Error { icmp_type, code, quote } => {
                let err = if src.is_ipv4() {
                    IcmpError::from_v4(icmp_type, code)
                } else {
                    IcmpError::from_v6(icmp_type, code)
                };
                let Some(err) = err else {
                    return FrameVerdict::Icmp;
                };
                let mut tx = self.tx(now, link);
                FrameVerdict::Tcp(shard.handle_icmp_error(now, &quote, err, &mut tx))
            }
            _ => FrameVerdict::Icmp,
        }
    }
}

/// ICMPv6 neighbour discovery message types (RFC 4861 §4.3, §4.4).
const NDP_NEIGHBOR_SOLICIT: u8 = 135;
const NDP_NEIGHBOR_ADVERT: u8 = 136;

/// A TCP segment with SYN and no ACK: what a (possibly spoofed) first contact looks like.
fn is_pure_syn(proto: u8, l4: &[u8]) -> bool {
    proto == ip_proto::TCP && l4.get(13).is_some_and(|f| f & 0x12 == 0x02)
}

fn emit_icmp_reply(buf: &mut [u8], src: IpAddr, dst: IpAddr, reply: &IcmpRepr<'_>, len: usize, ttl: u8) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Ipv4Repr {
                src: s,
                dst: d,
                protocol: ip_proto::ICMP,
                payload_len: len,
                ttl,
                dscp: 0,
                ecn: 0,
                ident: 0,
                dont_frag: false,
            }
            .emit(buf, ChecksumCaps::default());
            if let Some(b) = buf.get_mut(20..) {
                reply.emit_echo_v4(b);
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            Ipv6Repr {
                src: s,
                dst: d,
                next_header: ip_proto::ICMPV6,
                payload_len: len,
                hop_limit: ttl,
                traffic_class: 0,
                upper_offset: 40,
            }
            .emit(buf);
            let pseudo = checksum::pseudo_header_v6(s, d, ip_proto::ICMPV6, len as u32);
            if let Some(b) = buf.get_mut(40..) {
                reply.emit_echo_v6(b, pseudo);
            }
        }
        _ => {}
    }
}

/// The TCP layer's `TxSink` on top of a link: resolves the next hop and writes the Ethernet
/// header in front of the IP packet, in the same frame (no copy).
pub struct EthTx<'a> {
    net: &'a mut Net,
    link: &'a mut dyn FrameSink,
    now: Instant,
}

impl TxSink for EthTx<'_> {
    fn send_ip(&mut self, dst: IpAddr, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let hinted = self.net.reply_hint.filter(|(ip, _)| *ip == dst).map(|(_, mac)| mac);
        let Some(mac) = hinted.or_else(|| self.net.neigh.lookup(&dst)) else {
            self.net.counters.tx_no_neighbour += 1;
            if let IpAddr::V4(v4) = dst {
                self.net.request_arp(self.now, v4, self.link);
            }
            // Counted as sent-and-lost: TCP retransmits once the neighbour is known.
            return true;
        };
        let eth = EthernetRepr {
            src: self.net.cfg.mac,
            dst: mac,
            vlan: self.net.cfg.vlan,
            ethertype: if dst.is_ipv4() { EtherType::Ipv4 } else { EtherType::Ipv6 },
        };
        let hl = eth.header_len();
        let ok = self.link.send_frame(hl + len, &mut |buf: &mut [u8]| {
            eth.emit(buf);
            if let Some(b) = buf.get_mut(hl..) {
                fill(b);
            }
        });
        if !ok {
            self.net.counters.tx_no_frame += 1;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spoofed SYN flood cannot grow the cache past half its capacity, real peers (frames
    /// other than a bare SYN) still get in up to the full capacity, and idle entries expire.
    #[test]
    fn neighbour_cache_is_bounded_under_spoofed_syns() {
        let mut n = Neighbours::with_capacity(100);
        let mac = EthernetAddress([2, 0, 0, 0, 0, 9]);
        for i in 0..1000u32 {
            n.learn_from(IpAddr::V4(Ipv4Addr::from(0xc612_0100 + i)), mac, Instant::from_secs(1), true);
        }
        assert_eq!(n.len(), 50);
        for i in 0..1000u32 {
            n.learn_from(IpAddr::V4(Ipv4Addr::from(0xc613_0100 + i)), mac, Instant::from_secs(1), false);
        }
        assert_eq!(n.len(), 100);
        assert!(n.not_learned > 0);
        n.expire(Instant::from_secs(100), Duration::from_secs(60));
        assert!(n.is_empty());
    }
}
