//! The driver: plays a script against one device under test (DUT), keeping the relative
//! sequence numbering, and records what the DUT answered at each step.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{parse_ip_tcp, FourTuple};
use xdptcp::wire::{checksum, ip_proto, ChecksumCaps, Ipv4Repr, SeqNum, TcpFlags, TcpOptions};

use crate::script::{flags_str, App, Expect, Line, Num, OptSet, Script, Send, Step, WinClass};

/// The /24 of this harness (RFC 2544 benchmarking range; no other test uses 198.19.93.0/24).
pub const DUT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 93, 1);
pub const DRIVER_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 93, 2);

/// One device under test: the Linux kernel in a namespace, or a `Shard` in memory.
pub trait Dut {
    /// Delivers an IPv4 packet from the driver.
    fn inject(&mut self, ip: &[u8]);
    /// The next IPv4 packet the DUT sends to the driver, waiting at most `within_ms`.
    fn next(&mut self, within_ms: u64) -> Option<Vec<u8>>;
    /// Lets `ms` pass; what the DUT sends meanwhile is kept for `next`.
    fn wait(&mut self, ms: u64);
    /// The DUT's clock in milliseconds (Linux: real time; the stack: its virtual clock).
    fn now_ms(&self) -> u64;
    /// An application call on the DUT; `driver` is the driver's address (for connect).
    fn app(&mut self, a: &App, driver: SocketAddr) -> Result<String, String>;
}

/// A DUT segment as the comparison sees it: numbers relative to the ISNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obs {
    pub flags: TcpFlags,
    /// Relative to the DUT's ISN.
    pub seq: i32,
    /// Relative to the driver's ISN.
    pub ack: i32,
    pub win: u16,
    pub opts: OptSet,
    /// SACK blocks in the order sent, relative to the driver's ISN (they name driver data).
    pub sack: Vec<(i64, i64)>,
    pub len: usize,
    /// Absolute, for the `.` checks.
    pub raw_seq: u32,
    pub raw_ack: u32,
}

impl Obs {
    pub fn win_class(&self) -> WinClass {
        if self.win == 0 {
            WinClass::Zero
        } else {
            WinClass::Open
        }
    }
}

impl std::fmt::Display for Obs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} seq={}", flags_str(self.flags), self.seq)?;
        if self.flags.ack() {
            write!(f, " ack={}", self.ack)?;
        }
        // The class only, so equal answers print once; differences print the raw values.
        write!(f, " win={}", if self.win == 0 { "zero" } else { "open" })?;
        if self.len > 0 {
            write!(f, " len={}", self.len)?;
        }
        write!(f, " opts={}", self.opts)?;
        if !self.sack.is_empty() {
            let b: Vec<String> = self.sack.iter().map(|(l, r)| format!("{l}-{r}")).collect();
            write!(f, " sack={}", b.join(","))?;
        }
        Ok(())
    }
}

/// What happened at one script line, on one side.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A line that only acts (`-->`, `wait`).
    Done,
    /// `<-- FLAGS ...`: the segment seen (if any) and how it missed the script, if it did.
    Seg(Option<Obs>, Vec<String>),
    /// `<-- none`: everything that was sent anyway.
    None(Vec<Obs>),
    /// `<-- any`: everything that was sent.
    Drain(Vec<Obs>),
    App(Result<String, String>),
}

struct Driver {
    isn: u32,
    /// The driver's next sequence number (highest end sent).
    nxt: u32,
    port: u16,
    dut_port: u16,
    dut_isn: Option<u32>,
    dut_nxt: Option<u32>,
    /// The last ACK number the DUT sent (absolute).
    dut_ack: Option<u32>,
    /// Last TSval the DUT sent (echoed as TSecr).
    ts_recent: u32,
    /// The DUT's last SYN (IP packet), quoted by ICMP errors.
    last_syn: Option<Vec<u8>>,
}

fn seg_len(flags: TcpFlags, payload: usize) -> u32 {
    payload as u32 + u32::from(flags.syn()) + u32::from(flags.fin())
}

fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

impl Driver {
    fn driver_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(DRIVER_IP), self.port)
    }

    fn dut_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(DUT_IP), self.dut_port)
    }

    fn build(&mut self, s: &Send) -> Vec<u8> {
        let seq = match s.seq {
            Num::Rel(r) => self.isn.wrapping_add(r as u32),
            Num::Acked => self.dut_ack.unwrap_or(self.nxt),
            Num::Next | Num::Any => self.nxt,
        };
        let dut_isn = self.dut_isn.unwrap_or(0);
        let ack = match s.ack {
            Num::Rel(r) => dut_isn.wrapping_add(r as u32),
            Num::Next => self.dut_nxt.unwrap_or(0),
            Num::Any | Num::Acked => 0,
        };
        let mut o = TcpOptions { mss: s.mss, window_scale: s.ws, sack_permitted: s.sackok, ..TcpOptions::default() };
        if let Some((val, ecr)) = s.ts {
            o.timestamps = Some((val, ecr.unwrap_or(self.ts_recent)));
        }
        for (slot, (l, r)) in o.sack_blocks.iter_mut().zip(&s.sack) {
            *slot = (SeqNum(dut_isn.wrapping_add(*l as u32)), SeqNum(dut_isn.wrapping_add(*r as u32)));
            o.sack_count += 1;
        }
        let data = payload(s.len);
        let seg = OutSegment {
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags: s.flags,
            window: s.win,
            options: o,
            payload: (&data, &[]),
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        assert!(emit(&mut out, &FourTuple::new(self.driver_addr(), self.dut_addr()), &seg, 64));
        let end = seq.wrapping_add(seg_len(s.flags, s.len));
        if after(end, self.nxt) {
            self.nxt = end;
        }
        out.pop().expect("one packet")
    }

    /// ICMP destination unreachable quoting the DUT's last SYN (IP header + 8 bytes).
    fn icmp(&self, code: u8) -> Vec<u8> {
        let syn = self.last_syn.as_ref().expect("an ICMP step needs a SYN from the DUT first");
        let ihl = usize::from(syn[0] & 0x0f) * 4;
        let quote = &syn[..ihl + 8];
        let mut msg = vec![3u8, code, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(quote);
        let c = checksum::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let ip = Ipv4Repr {
            src: DRIVER_IP,
            dst: DUT_IP,
            protocol: ip_proto::ICMP,
            payload_len: msg.len(),
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 7,
            dont_frag: false,
        };
        let mut pkt = vec![0u8; ip.buffer_len()];
        ip.emit(&mut pkt, ChecksumCaps::default());
        pkt[20..].copy_from_slice(&msg);
        pkt
    }

    /// Decodes a DUT packet and updates the learned state. `None` for what is not TCP from
    /// the DUT to the driver.
    fn observe(&mut self, pkt: &[u8]) -> Option<Obs> {
        let (src, dst, r) = parse_ip_tcp(pkt).ok()?;
        if src != IpAddr::V4(DUT_IP) || dst != IpAddr::V4(DRIVER_IP) || r.dst_port != self.port {
            return None;
        }
        if r.flags.syn() {
            self.dut_isn = Some(r.seq.0);
            self.dut_nxt = None;
            self.dut_port = r.src_port;
            self.last_syn = Some(pkt.to_vec());
        }
        if r.flags.ack() {
            self.dut_ack = Some(r.ack.0);
        }
        if let Some((val, _)) = r.options.timestamps {
            self.ts_recent = val;
        }
        let dut_isn = self.dut_isn.unwrap_or(0);
        let o = &r.options;
        let obs = Obs {
            flags: r.flags.without(TcpFlags::PSH),
            seq: r.seq.0.wrapping_sub(dut_isn) as i32,
            ack: r.ack.0.wrapping_sub(self.isn) as i32,
            win: r.window,
            opts: OptSet {
                mss: o.mss.is_some(),
                ws: o.window_scale.is_some(),
                sackok: o.sack_permitted,
                ts: o.timestamps.is_some(),
                sack: o.sack_count > 0,
            },
            sack: o
                .sack_blocks()
                .iter()
                .map(|(l, r)| {
                    (i64::from(l.0.wrapping_sub(self.isn) as i32), i64::from(r.0.wrapping_sub(self.isn) as i32))
                })
                .collect(),
            len: r.payload.len(),
            raw_seq: r.seq.0,
            raw_ack: r.ack.0,
        };
        if !r.flags.rst() {
            let end = r.seq.0.wrapping_add(seg_len(r.flags, r.payload.len()));
            if self.dut_nxt.is_none_or(|n| after(end, n)) {
                self.dut_nxt = Some(end);
            }
        }
        Some(obs)
    }

    /// How `obs` misses `e` (empty when it matches). `dut_nxt` is the DUT's next sequence
    /// number as known before this segment.
    fn check(&self, e: &Expect, obs: &Obs, dut_nxt: Option<u32>, dut_ack: Option<u32>) -> Vec<String> {
        let mut v = Vec::new();
        if obs.flags != e.flags {
            v.push(format!("flags {} != {}", flags_str(obs.flags), flags_str(e.flags)));
        }
        match e.seq {
            Num::Rel(r) if obs.seq != r as i32 => v.push(format!("seq {} != {r}", obs.seq)),
            Num::Next if Some(obs.raw_seq) != dut_nxt => v.push(format!("seq {} is not SND.NXT", obs.seq)),
            _ => {}
        }
        if e.flags.ack() {
            match e.ack {
                Num::Rel(r) if obs.ack != r as i32 => v.push(format!("ack {} != {r}", obs.ack)),
                Num::Next if obs.raw_ack != self.nxt => v.push(format!(
                    "ack {} is not the driver's next seq {}",
                    obs.ack,
                    self.nxt.wrapping_sub(self.isn) as i32
                )),
                Num::Acked if Some(obs.raw_ack) != dut_ack => v.push(format!("ack {} moved", obs.ack)),
                _ => {}
            }
        }
        if let Some(w) = e.win {
            if obs.win_class() != w {
                v.push(format!("window {} is not {w:?}", obs.win));
            }
        }
        if let Some(o) = e.opts {
            if obs.opts != o {
                v.push(format!("options {} != {o}", obs.opts));
            }
        }
        if let Some(b) = &e.sack {
            if &obs.sack != b {
                v.push(format!("sack blocks {:?} != {b:?}", obs.sack));
            }
        }
        if let Some(l) = e.len {
            if obs.len != l {
                v.push(format!("len {} != {l}", obs.len));
            }
        }
        v
    }

    /// The next TCP segment from the DUT within `ms`, skipping anything else.
    fn next_seg(&mut self, dut: &mut dyn Dut, ms: u64) -> Option<Obs> {
        let end = dut.now_ms() + ms;
        loop {
            let pkt = dut.next(end.saturating_sub(dut.now_ms()))?;
            if let Some(o) = self.observe(&pkt) {
                return Some(o);
            }
        }
    }
}

/// Plays `sc` against `dut` and returns one outcome per script line.
pub fn play(sc: &Script, dut: &mut dyn Dut) -> Vec<Outcome> {
    let mut d = Driver {
        isn: sc.isn,
        nxt: sc.isn,
        port: sc.port,
        dut_port: 0,
        dut_isn: None,
        dut_nxt: None,
        dut_ack: None,
        ts_recent: 0,
        last_syn: None,
    };
    sc.lines.iter().map(|l: &Line| step(&mut d, dut, l)).collect()
}

fn step(d: &mut Driver, dut: &mut dyn Dut, l: &Line) -> Outcome {
    match &l.step {
        Step::App(a) => {
            match a {
                App::Listen(p) | App::Connect(p) => d.dut_port = *p,
                _ => {}
            }
            Outcome::App(dut.app(a, d.driver_addr()))
        }
        Step::Send(s) => {
            let pkt = d.build(s);
            dut.inject(&pkt);
            Outcome::Done
        }
        Step::Icmp(code) => {
            let pkt = d.icmp(*code);
            dut.inject(&pkt);
            Outcome::Done
        }
        Step::Wait(ms) => {
            dut.wait(*ms);
            Outcome::Done
        }
        Step::Expect(e) => {
            let (before, acked) = (d.dut_nxt, d.dut_ack);
            match d.next_seg(dut, e.within_ms) {
                Some(o) => {
                    let miss = d.check(e, &o, if o.flags.syn() { Some(o.raw_seq) } else { before }, acked);
                    Outcome::Seg(Some(o), miss)
                }
                None => Outcome::Seg(None, vec![format!("nothing within {} ms", e.within_ms)]),
            }
        }
        Step::Drain(ms) => {
            let end = dut.now_ms() + ms;
            let mut seen = Vec::new();
            while let Some(pkt) = dut.next(end.saturating_sub(dut.now_ms())) {
                if let Some(o) = d.observe(&pkt) {
                    seen.push(o);
                }
            }
            Outcome::Drain(seen)
        }
        Step::ExpectNone(ms) => {
            let end = dut.now_ms() + ms;
            let mut seen = Vec::new();
            while let Some(pkt) = dut.next(end.saturating_sub(dut.now_ms())) {
                if let Some(o) = d.observe(&pkt) {
                    seen.push(o);
                }
            }
            Outcome::None(seen)
        }
    }
}
