//! One `Shard` driven by an arbitrary sequence of steps (STYLE §8.5): time moves by an arbitrary
//! Δt, and each step is a segment, raw bytes, a timer run or an application call.
//!
//! Segments are crafted as valid TCP/IP (IPv4 or IPv6, checksums right) between a few fixed
//! addresses and ports, so that they meet the listener, the SYN queue, connections and
//! TIME-WAIT entries. Their sequence and acknowledgment numbers are either arbitrary or relative
//! to what the shard last sent on that 4-tuple (a peer model), which lets the fuzzer complete
//! handshakes, cookie exchanges, data transfer and closes; flags, options, window and payload
//! are arbitrary. Raw arbitrary bytes (and crafted packets with a byte changed) go to
//! `handle_ip` as well.
//!
//! Checks, after every step: no panic; `conn_count`, `syn_queue_len` and `time_wait_len` within
//! the configured bounds; every packet the shard emitted parses with `parse_ip_tcp` (so both
//! checksums are valid) and fits a 1500-byte MTU.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{parse_ip_tcp, Config, ConnId, Event, FourTuple, IcmpError, Secrets, Shard, SynCookies};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::icmp::QuotedTcp;
use xdptcp::wire::{SeqNum, TcpFlags, TcpOptions};

const LISTEN_PORT: u16 = 80;
/// Ports we use: the listener, a closed port, and the local ports of active opens.
const LOCAL_PORTS: [u16; 6] = [LISTEN_PORT, 81, 5000, 5001, 5002, 5003];
const REMOTE_PORTS: [u16; 4] = [1000, 1001, 1002, 80];
const MAX_CONNECTIONS: usize = 6;
const MAX_SYN_BACKLOG: usize = 4;
const MAX_TW_BUCKETS: usize = 3;
const MTU: usize = 1500;

fn local_ip(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
    }
}

fn remote_ip(v6: bool, i: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2 + u16::from(i % 2)))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + i % 2))
    }
}

/// A 4-tuple from the shard's side, picked from the small fixed set.
fn pick_tuple(u: &mut Unstructured<'_>) -> Result<FourTuple> {
    let b: u8 = u.arbitrary()?;
    let v6 = b & 1 != 0;
    let lp = LOCAL_PORTS[usize::from(b >> 1) % LOCAL_PORTS.len()];
    let r: u8 = u.arbitrary()?;
    let rp = REMOTE_PORTS[usize::from(r >> 1) % REMOTE_PORTS.len()];
    Ok(FourTuple::new(SocketAddr::new(local_ip(v6), lp), SocketAddr::new(remote_ip(v6, r & 1), rp)))
}

/// What the peer model knows about a 4-tuple.
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    /// The shard's next sequence number (highest SEG.SEQ + SEG.LEN it sent).
    shard_nxt: u32,
    /// The peer's next sequence number: what the shard last acknowledged, or past what the
    /// peer last sent.
    peer_nxt: u32,
    /// The shard's last TSval (for TSecr).
    shard_tsval: u32,
    /// The peer's timestamp clock.
    peer_ts: u32,
}

/// A sequence-space number: arbitrary, or an offset from what the model expects.
fn number(u: &mut Unstructured<'_>, base: Option<u32>) -> Result<u32> {
    let mode: u8 = u.arbitrary()?;
    Ok(match (mode % 4, base) {
        (0, _) | (_, None) => u.arbitrary()?,
        (1, Some(b)) => b,
        (2, Some(b)) => b.wrapping_add(u32::from(u.arbitrary::<u8>()?)),
        _ => base.unwrap_or(0).wrapping_add(i32::from(u.arbitrary::<i16>()?) as u32),
    })
}

fn options(u: &mut Unstructured<'_>, peer: Option<&Peer>) -> Result<TcpOptions> {
    let present: u8 = u.arbitrary()?;
    let mut o = TcpOptions::default();
    if present & 1 != 0 {
        o.mss = Some(u.arbitrary()?);
    }
    if present & 2 != 0 {
        o.window_scale = Some(u.arbitrary()?);
    }
    o.sack_permitted = present & 4 != 0;
    if present & 8 != 0 {
        let tsval = match peer {
            Some(p) if present & 16 != 0 => p.peer_ts.wrapping_add(u32::from(u.arbitrary::<u8>()?)),
            _ => u.arbitrary()?,
        };
        let tsecr = match peer {
            Some(p) if present & 32 != 0 => p.shard_tsval,
            _ => u.arbitrary()?,
        };
        o.timestamps = Some((tsval, tsecr));
    }
    if present & 64 != 0 {
        let n = u.int_in_range(1..=4u8)?;
        let base = peer.map(|p| p.shard_nxt);
        for i in 0..usize::from(n) {
            let l = number(u, base)?;
            let r = l.wrapping_add(u32::from(u.arbitrary::<u16>()?));
            o.sack_blocks[i] = (SeqNum(l), SeqNum(r));
        }
        o.sack_count = n;
    }
    Ok(o)
}

struct Harness {
    shard: Shard,
    now: Instant,
    tx: Vec<Vec<u8>>,
    peers: HashMap<FourTuple, Peer>,
    ids: Vec<ConnId>,
    buf: Vec<u8>,
    payload: Vec<u8>,
}

impl Harness {
    fn new(u: &mut Unstructured<'_>) -> Result<Harness> {
        let knobs: u16 = u.arbitrary()?;
        let bufs = [2048usize, 8192, 65536, 262_144];
        let cfg = Config {
            max_connections: MAX_CONNECTIONS,
            max_syn_backlog: MAX_SYN_BACKLOG,
            somaxconn: 3,
            max_tw_buckets: MAX_TW_BUCKETS,
            syncookies: [SynCookies::Off, SynCookies::OnOverflow, SynCookies::Always, SynCookies::OnOverflow]
                [usize::from(knobs & 3)],
            timestamps: knobs & 4 != 0,
            window_scaling: knobs & 8 != 0,
            sack: knobs & 16 != 0,
            rfc1337: knobs & 32 != 0,
            keepalive: knobs & 64 != 0,
            abort_on_overflow: knobs & 128 != 0,
            rcv_buf: bufs[usize::from(knobs >> 8) & 3],
            snd_buf: bufs[usize::from(knobs >> 10) & 3],
            ..Config::default()
        };
        let mut shard = Shard::new(cfg, Secrets::from_seed(u.arbitrary()?));
        let backlog = usize::from(u.arbitrary::<u8>()? % 8);
        shard.listen(LISTEN_PORT, None, backlog).expect("first listen");
        Ok(Harness {
            shard,
            now: Instant::from_secs(1_000_000),
            tx: Vec::new(),
            peers: HashMap::new(),
            ids: Vec::new(),
            buf: vec![0u8; 70_000],
            payload: (0..70_000u32).map(|i| (i * 31 + 7) as u8).collect(),
        })
    }

    fn id(&self, u: &mut Unstructured<'_>) -> Result<Option<ConnId>> {
        if self.ids.is_empty() {
            return Ok(None);
        }
        let i = u.choose_index(self.ids.len())?;
        Ok(self.ids.get(i).copied())
    }

    fn remember(&mut self, id: ConnId) {
        if self.ids.len() >= 16 {
            self.ids.remove(0);
        }
        self.ids.push(id);
    }

    /// A valid TCP/IP packet from the peer of `t` to the shard.
    fn craft(&mut self, u: &mut Unstructured<'_>) -> Result<(FourTuple, Vec<u8>)> {
        let t = pick_tuple(u)?;
        let known = self.peers.get(&t).copied();
        let flags = TcpFlags(u.arbitrary::<u16>()? & 0x1ff);
        let seq = number(u, known.map(|p| p.peer_nxt))?;
        let ack = number(u, known.map(|p| p.shard_nxt))?;
        let window: u16 = u.arbitrary()?;
        let opts = options(u, known.as_ref())?;
        let len = match u.arbitrary::<u8>()? {
            0..=127 => 0,
            128..=223 => usize::from(u.arbitrary::<u8>()?),
            _ => usize::from(u.arbitrary::<u16>()?) % 3000,
        };
        let payload = &self.payload[..len];
        let seg =
            OutSegment { seq: SeqNum(seq), ack: SeqNum(ack), flags, window, options: opts, payload: (payload, &[]) };
        // From the peer: the tuple seen from the other end.
        let from_peer = FourTuple::new(t.remote, t.local);
        let mut out: Vec<Vec<u8>> = Vec::new();
        if !emit(&mut out, &from_peer, &seg, 64) {
            return Err(libfuzzer_sys::arbitrary::Error::IncorrectFormat);
        }
        let p = self.peers.entry(t).or_default();
        let seg_len = (len as u32).wrapping_add(u32::from(flags.syn())).wrapping_add(u32::from(flags.fin()));
        p.peer_nxt = seq.wrapping_add(seg_len);
        if let Some((tsval, _)) = opts.timestamps {
            p.peer_ts = tsval;
        }
        Ok((t, out.pop().unwrap_or_default()))
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        // Δt: mostly none or small, sometimes past RTOs, delayed ACKs, FIN-WAIT-2, TIME-WAIT.
        let dt = match u.arbitrary::<u8>()? {
            0..=127 => Duration::ZERO,
            128..=191 => Duration::from_micros(u64::from(u.arbitrary::<u16>()?)),
            192..=239 => Duration::from_millis(u64::from(u.arbitrary::<u16>()?)),
            _ => Duration::from_secs(u64::from(u.arbitrary::<u8>()?)),
        };
        self.now = self.now + dt;
        let now = self.now;
        let op: u8 = u.arbitrary()?;
        match op % 16 {
            0..=6 => {
                let (_, pkt) = self.craft(u)?;
                let _ = self.shard.handle_ip(now, &pkt, &mut self.tx);
            }
            7 => {
                // A crafted packet with one byte changed (bad checksums, bad headers).
                let (_, mut pkt) = self.craft(u)?;
                if !pkt.is_empty() {
                    let i = u.choose_index(pkt.len())?;
                    pkt[i] ^= u.arbitrary::<u8>()?.max(1);
                }
                let _ = self.shard.handle_ip(now, &pkt, &mut self.tx);
            }
            8 => {
                let n = u.arbitrary_len::<u8>()?.min(1600);
                let raw = u.bytes(n)?;
                let _ = self.shard.handle_ip(now, raw, &mut self.tx);
            }
            9 => {
                // Run the timers, at `now` or at the next deadline.
                if u.arbitrary::<bool>()? {
                    if let Some(t) = self.shard.poll_timeout() {
                        if t > self.now {
                            self.now = t;
                        }
                    }
                }
                self.shard.handle_timeout(self.now, &mut self.tx);
            }
            10 => {
                let t = pick_tuple(u)?;
                let local = SocketAddr::new(t.local.ip(), 5000 + u16::from(u.arbitrary::<u8>()? % 4));
                if let Ok(id) = self.shard.connect(now, local, t.remote) {
                    self.remember(id);
                }
            }
            11 => {
                while let Some(id) = self.shard.accept(LISTEN_PORT) {
                    self.remember(id);
                }
            }
            12 => {
                if let Some(id) = self.id(u)? {
                    let n = usize::from(u.arbitrary::<u16>()?) % self.payload.len();
                    let _ = self.shard.send(id, &self.payload[..n]);
                }
            }
            13 => {
                if let Some(id) = self.id(u)? {
                    let n = usize::from(u.arbitrary::<u16>()?).min(self.buf.len());
                    let _ = self.shard.recv(id, &mut self.buf[..n]);
                }
            }
            14 => {
                if let Some(id) = self.id(u)? {
                    let _ = match u.arbitrary::<u8>()? % 3 {
                        0 => self.shard.close(now, id, &mut self.tx),
                        1 => self.shard.shutdown(now, id, &mut self.tx),
                        _ => self.shard.abort(now, id, &mut self.tx),
                    };
                }
            }
            _ => match u.arbitrary::<u8>()? % 3 {
                0 => self.shard.rotate_cookie_key(u.arbitrary()?),
                1 => self.shard.set_defer(u.arbitrary()?),
                _ => {
                    // An ICMP error quoting a segment we sent on some tuple.
                    let t = pick_tuple(u)?;
                    let seq = number(u, self.peers.get(&t).map(|p| p.shard_nxt))?;
                    let quote = QuotedTcp {
                        src: t.local.ip(),
                        dst: t.remote.ip(),
                        src_port: t.local.port(),
                        dst_port: t.remote.port(),
                        seq: SeqNum(seq),
                    };
                    let err = match u.int_in_range(0..=2u8)? {
                        0 => IcmpError::PacketTooBig { mtu: u32::from(u.arbitrary::<u16>()?) },
                        k => IcmpError::Unreachable { hard: k == 2, refused: u.arbitrary()?, ends_request: u.arbitrary()? },
                    };
                    let _ = self.shard.handle_icmp_error(now, &quote, err, &mut self.tx);
                }
            },
        }
        self.settle();
        Ok(())
    }

    /// What the engine does after each batch: events to the application, then transmit; then
    /// the checks.
    fn settle(&mut self) {
        let now = self.now;
        while let Some(ev) = self.shard.poll_event() {
            if let Event::Closed(id, _) = ev {
                // As the engine's dispatcher does: the handle is released.
                let _ = self.shard.close(now, id, &mut self.tx);
            }
        }
        self.shard.poll_transmit(now, &mut self.tx);
        let cfg = self.shard.config();
        assert!(self.shard.conn_count() <= cfg.max_connections, "conn_count {}", self.shard.conn_count());
        assert!(self.shard.syn_queue_len() <= cfg.max_syn_backlog, "syn_queue_len {}", self.shard.syn_queue_len());
        assert!(self.shard.time_wait_len() <= cfg.max_tw_buckets, "time_wait_len {}", self.shard.time_wait_len());
        for pkt in self.tx.drain(..) {
            assert!(pkt.len() <= MTU, "emitted a {}-byte packet", pkt.len());
            let (src, dst, seg) = match parse_ip_tcp(&pkt) {
                Ok(x) => x,
                Err(e) => panic!("emitted packet does not parse ({e:?}): {pkt:02x?}"),
            };
            // Feed the peer model: the tuple from the shard's side.
            let t = FourTuple::new(SocketAddr::new(src, seg.src_port), SocketAddr::new(dst, seg.dst_port));
            let p = self.peers.entry(t).or_default();
            let len = (seg.payload.len() as u32)
                .wrapping_add(u32::from(seg.flags.syn()))
                .wrapping_add(u32::from(seg.flags.fin()));
            p.shard_nxt = seg.seq.0.wrapping_add(len);
            if seg.flags.ack() {
                p.peer_nxt = seg.ack.0;
            }
            if let Some((tsval, _)) = seg.options.timestamps {
                p.shard_tsval = tsval;
            }
        }
    }
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut h = Harness::new(&mut u)?;
    while !u.is_empty() {
        h.step(&mut u)?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
