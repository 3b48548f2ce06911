//! Test support: hosts running a `Shard` joined by links whose delivery the test controls,
//! segment crafting, and a decoded view of emitted segments for assertions.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{parse_ip_tcp, Config, ConnId, Event, FourTuple, Secrets, Shard, State, Verdict};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{SeqNum, TcpFlags, TcpOptions};

/// A decoded segment, as the RFC figures write them: <SEQ><ACK><CTL>, plus what else matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

impl Seg {
    pub fn parse(pkt: &[u8]) -> Seg {
        let (src, dst, r) = parse_ip_tcp(pkt).expect("emitted segment must parse with valid checksums");
        Seg {
            src: SocketAddr::new(src, r.src_port),
            dst: SocketAddr::new(dst, r.dst_port),
            seq: r.seq.0,
            ack: r.ack.0,
            flags: r.flags,
            window: r.window,
            options: r.options,
            payload: r.payload.to_vec(),
        }
    }
    pub fn ctl(&self) -> TcpFlags {
        self.flags.without(TcpFlags::PSH)
    }
    pub fn is(&self, ctl: TcpFlags) -> bool {
        self.ctl() == ctl
    }
}

pub const SYN: TcpFlags = TcpFlags::SYN;
pub const ACK: TcpFlags = TcpFlags::ACK;
pub const FIN: TcpFlags = TcpFlags::FIN;
pub const RST: TcpFlags = TcpFlags::RST;
pub fn synack() -> TcpFlags {
    TcpFlags::SYN | TcpFlags::ACK
}
pub fn finack() -> TcpFlags {
    TcpFlags::FIN | TcpFlags::ACK
}
pub fn rstack() -> TcpFlags {
    TcpFlags::RST | TcpFlags::ACK
}

/// One endpoint: a shard, its address, and what it has sent but the test has not delivered.
pub struct Host {
    pub shard: Shard,
    pub ip: IpAddr,
    pub out: Vec<Vec<u8>>,
    pub now: Instant,
    pub events: Vec<Event>,
}

impl Host {
    pub fn new(ip: &str, cfg: Config, seed: u64) -> Host {
        Host {
            shard: Shard::new(cfg, Secrets::from_seed(seed)),
            ip: ip.parse().unwrap(),
            out: Vec::new(),
            now: Instant::from_secs(1000),
            events: Vec::new(),
        }
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, port)
    }

    /// Delivers an IP packet, then lets the shard transmit (one batch).
    pub fn deliver(&mut self, pkt: &[u8]) -> Verdict {
        let v = self.shard.handle_ip(self.now, pkt, &mut self.out);
        self.flush();
        v
    }

    pub fn flush(&mut self) {
        self.shard.poll_transmit(self.now, &mut self.out);
        while let Some(e) = self.shard.poll_event() {
            self.events.push(e);
        }
    }

    /// The application closes `id`; what that sends is queued in `out`.
    pub fn close(&mut self, id: ConnId) {
        self.shard.close(self.now, id, &mut self.out).unwrap();
        self.flush();
    }

    pub fn connect(&mut self, local_port: u16, remote: SocketAddr) -> ConnId {
        let id = self.shard.connect(self.now, self.addr(local_port), remote).unwrap();
        self.flush();
        id
    }

    /// Takes everything sent since the last call.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.out)
    }

    /// Takes exactly one sent segment, panicking otherwise.
    pub fn take_one(&mut self) -> Vec<u8> {
        let mut v = self.take();
        assert_eq!(v.len(), 1, "expected one segment, got {:?}", v.iter().map(|p| Seg::parse(p)).collect::<Vec<_>>());
        v.pop().unwrap()
    }

    pub fn take_segs(&mut self) -> Vec<Seg> {
        self.take().iter().map(|p| Seg::parse(p)).collect()
    }

    pub fn expect_nothing(&mut self) {
        let v = self.take_segs();
        assert!(v.is_empty(), "expected no segment, got {v:?}");
    }

    /// Advances time by `d`, firing timers.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.shard.handle_timeout(self.now, &mut self.out);
        while let Some(e) = self.shard.poll_event() {
            self.events.push(e);
        }
    }

    /// Runs timers until `until` (absolute), stepping to each deadline.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.shard.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.shard.handle_timeout(self.now, &mut self.out);
        }
        self.now = until;
        while let Some(e) = self.shard.poll_event() {
            self.events.push(e);
        }
    }

    pub fn state(&self, id: ConnId) -> Option<State> {
        self.shard.state(id)
    }

    pub fn state_of(&self, local_port: u16, remote: SocketAddr) -> Option<State> {
        self.shard.state_of(&FourTuple::new(self.addr(local_port), remote))
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn recv_all(&mut self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = self.shard.recv(id, &mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        self.flush();
        out
    }
}

/// Figure 6 between two hosts: a.40000 -> b.80 (b listening), accepted, events cleared.
pub fn handshake(a: &mut Host, b: &mut Host) -> (ConnId, ConnId) {
    b.shard.listen(80, None, 128).unwrap();
    let ida = a.connect(40000, b.addr(80));
    b.deliver(&a.take_one());
    a.deliver(&b.take_one());
    b.deliver(&a.take_one());
    let idb = b.shard.accept(80).unwrap();
    a.take_events();
    b.take_events();
    (ida, idb)
}

/// Crafts a segment from `src` to `dst` (what a peer we do not simulate would send).
pub fn craft(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    craft_opts(src, dst, seq, ack, flags, payload, TcpOptions::default(), 65535)
}

#[allow(clippy::too_many_arguments)]
pub fn craft_opts(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &[u8],
    options: TcpOptions,
    window: u16,
) -> Vec<u8> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let seg = OutSegment { seq: SeqNum(seq), ack: SeqNum(ack), flags, window, options, payload: (payload, &[]) };
    assert!(emit(&mut out, &FourTuple::new(src, dst), &seg, 64));
    out.pop().unwrap()
}

/// Config with the defaults, timestamps off (so crafted segments need no TS option).
/// A server connection on 198.18.0.1:80 (no timestamps) made from crafted segments of `peer`:
/// (host, id, SND.NXT, RCV.NXT).
pub fn established_from(peer: SocketAddr) -> (Host, ConnId, u32, u32) {
    established_with(peer, plain_cfg())
}

/// [`established_from`] with `cfg`.
pub fn established_with(peer: SocketAddr, cfg: Config) -> (Host, ConnId, u32, u32) {
    let mut b = Host::new("198.18.0.1", cfg, 21);
    b.shard.listen(80, None, 16).unwrap();
    let isn = 0x1234_0000u32;
    b.deliver(&craft(peer, b.addr(80), isn, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    let (snd, rcv) = (sa.seq.wrapping_add(1), isn.wrapping_add(1));
    b.deliver(&craft(peer, b.addr(80), rcv, snd, ACK, b""));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    (b, id, snd, rcv)
}

/// Delivers everything each side sent to the other until both are quiet.
pub fn exchange(a: &mut Host, b: &mut Host) {
    for _ in 0..100 {
        let (pa, pb) = (a.take(), b.take());
        if pa.is_empty() && pb.is_empty() {
            return;
        }
        for p in pa {
            b.deliver(&p);
        }
        for p in pb {
            a.deliver(&p);
        }
    }
    panic!("no quiescence");
}

pub fn plain_cfg() -> Config {
    Config { timestamps: false, ..Config::default() }
}
