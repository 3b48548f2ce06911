//! One connection: the transmission control block and its per-state logic.
//!
//! Read RFC 9293 §3.10, RFC 5961, RFC 7323, RFC 6298, RFC 5681, RFC 2018, RFC 2883 and
//! RFC 6675 before editing (SACK lives in `conn/sack.rs` and `tcp/sack.rs`).
//!
//! Segment processing follows RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4 step by step:
//! [`Tcb::on_segment`] calls `check_sequence`, `check_rst`, `check_syn`, `check_ack`,
//! `process_text` and `check_fin` in the RFC's order. Transmission is deferred: processing sets
//! flags and [`Tcb::output`] (called by the shard once per batch) sends data, FIN, and the ACK,
//! so that a batch of segments yields one ACK (RFC 9293 MUST-58, MUST-59) and a response written
//! by the application carries it.

use super::buffer::{AsmAdd, Assembler, Ring};
use super::cc::{CcAction, Congestion};
use super::config::Config;
use super::counters::{Counters, DropReason};
use super::emit::{emit, OutSegment};
use super::event::{CloseReason, Event};
use super::icmp::IcmpError;
use super::rack::{Rack, ReoWnd};
use super::rtt::RttEstimator;
use super::sack::{LazyRcvSack, Scoreboard};
use super::secrets::ts_clock;
use super::state::State;
use super::time_wait::{self, TwEntry, TwVerdict};
use super::tuple::{ConnId, FourTuple, PackedTuple};
use super::TxSink;
use crate::time::{Duration, Instant};
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};
use std::collections::VecDeque;

mod rack;
mod sack;
mod tlp;

/// RFC 7323 §5.5: a TS.Recent older than 24 days is invalid for PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// RFC 9293 §3.7.1: MSS assumed when the peer sends no MSS option.
pub const DEFAULT_MSS_V4: u16 = 536;
pub const DEFAULT_MSS_V6: u16 = 1220;
/// Linux `TCP_TIMEOUT_MIN` (2 jiffies at HZ=1000): the SYN retransmission after a RST for an
/// unacceptable ACK in SYN-SENT.
const SYN_SENT_RST_RETRY: Duration = Duration::from_millis(2);
/// Bytes a timestamp option takes in every segment (with its two NOPs).
const TS_OPTION_LEN: u32 = 12;

/// Everything a TCB method may touch outside itself.
pub struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub counters: &'a mut Counters,
    pub events: &'a mut VecDeque<Event>,
    pub tx: &'a mut dyn TxSink,
}

/// The options a handshake settled on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Negotiated {
    /// Peer's MSS option (None: RFC 9293 default).
    pub peer_mss: Option<u16>,
    /// Peer's window scale; only used when we offered one too.
    pub snd_wscale: Option<u8>,
    pub sack_ok: bool,
    /// Peer's TSval from its SYN (timestamps on when both sides sent the option).
    pub ts_recent: Option<u32>,
}

/// What a passive handshake knows about its SYN-ACK, for the first RTT sample (RFC 6298
/// (2.2); Linux `tcp_synack_rtt_meas`). A cookie connection knows neither (no state was
/// kept): only the final ACK's TSecr can time it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SynAckTiming {
    /// When the SYN-ACK went, if it went only once (Karn: a resent one gives no sample).
    pub sent: Option<Instant>,
    /// The SYN-ACK was sent more than once (RFC 6298 (5.7)).
    pub retransmitted: bool,
    /// The SYN-ACK was resent more than once, by its timer at least once: the connection
    /// starts from a one-segment window (see [`LOSS_WINDOW_AFTER`]).
    pub lossy: bool,
}

/// The longest the sender SWS override timeout waits (RFC 9293 §3.8.6.2.1: 0.1 to 1 s).
const SWS_OVERRIDE_MAX: Duration = Duration::from_secs(1);

/// IPv6's minimum link MTU (RFC 8200 §5), below which no path MTU estimate goes (RFC 8201 §4).
const IPV6_MIN_MTU: u32 = 1280;

/// RFC 5681 §3.1: "if the SYN or SYN/ACK is lost, the initial window used by a sender after a
/// correctly transmitted SYN MUST be one segment". Linux (`tcp_init_transfer`) does it only
/// after more than one SYN or SYN-ACK retransmission, a timeout among them, since RFC 6298's
/// 1 s initial RTO makes a single one often spurious; so does the stack: one segment once
/// the handshake was resent more than this many times.
pub const LOSS_WINDOW_AFTER: u8 = 1;

/// Per-connection timers (quinn-style: plain deadlines, no callbacks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timers {
    pub rto: Option<Instant>,
    /// RFC 8985 §7.2 probe timeout: armed in front of the RTO (never later than it).
    pub pto: Option<Instant>,
    /// RFC 8985 §6.3 reordering timer.
    pub rack: Option<Instant>,
    pub delack: Option<Instant>,
    pub persist: Option<Instant>,
    pub keepalive: Option<Instant>,
    pub fin_wait2: Option<Instant>,
    pub time_wait: Option<Instant>,
}

impl Timers {
    pub fn next(&self) -> Option<Instant> {
        [self.rto, self.pto, self.rack, self.delack, self.persist, self.keepalive, self.fin_wait2, self.time_wait]
            .into_iter()
            .flatten()
            .min()
    }
    fn clear_all(&mut self) {
        *self = Timers::default();
    }
}

/// The entries of the shard's timer heap a connection answers to: at most two, held in the
/// TCB (no allocation per connection). When a third is needed the later of the two is
/// forgotten; it then pops as stale and is skipped, which is safe because a remembered entry
/// at or before the connection's next deadline always exists (`Shard::settle` pushes one
/// otherwise), and that entry re-arms whatever is still due when it fires.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wakeups([Option<Instant>; 2]);

impl Wakeups {
    /// An entry at or before `at` will wake the connection: nothing to push.
    pub fn covers(&self, at: Instant) -> bool {
        self.0.iter().flatten().any(|q| *q <= at)
    }
    /// Remembers an entry pushed for `at`.
    pub fn track(&mut self, at: Instant) {
        let slot = match self.0 {
            [None, _] => 0,
            [_, None] => 1,
            [Some(a), Some(b)] => usize::from(b > a),
        };
        if let Some(s) = self.0.get_mut(slot) {
            *s = Some(at);
        }
    }
    /// Whether the heap entry for `at` is one of ours (not stale).
    pub fn holds(&self, at: Instant) -> bool {
        self.0.contains(&Some(at))
    }
    /// An entry for `at` popped: whether it is one of ours (then forgotten) or stale.
    pub fn take(&mut self, at: Instant) -> bool {
        match self.0.iter_mut().find(|q| **q == Some(at)) {
            Some(q) => {
                *q = None;
                true
            }
            None => false,
        }
    }
}

/// A time kept in 32 bits, as Linux keeps per-socket times in 32-bit jiffies: milliseconds,
/// wrapping every 49.7 days, for times only ever compared with a recent `now` (the difference
/// is taken with wrapping arithmetic).
fn ms32(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000) as u32
}

/// Seconds in 32 bits (wrapping every 136 years), for the 24-day PAWS idle rule (RFC 7323
/// §5.5), which milliseconds could not span safely; Linux keeps `ts_recent_stamp` in seconds.
fn secs32(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000_000) as u32
}

/// The segment Karn's algorithm is timing (RFC 6298 §3): the sequence number that completes
/// it and when it was sent. Packed to 4-byte alignment so that it takes 12 bytes in the TCB, not
/// 16.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Timed {
    end: SeqNum,
    at: Instant,
}

/// The transmission control block (RFC 9293 §3.3.1).
#[derive(Debug)]
pub struct Tcb {
    pub id: ConnId,
    tuple: PackedTuple,
    pub state: State,
    /// Came from LISTEN (RFC 9293 MUST-11: remember passive vs active SYN-RECEIVED).
    pub passive: bool,
    /// Listener port while the connection waits in an accept queue.
    pub listener: Option<u16>,
    /// The application released its handle (close/abort): the connection is an orphan.
    pub app_closed: bool,
    /// The application shut down the sending side; a FIN follows the queued data.
    pub fin_queued: bool,
    fin_acked: bool,
    /// Our SYN has been acknowledged. Tracked on its own: `SND.UNA == ISS` means "SYN not yet
    /// acknowledged" only until 2^32 - 1 bytes have been acknowledged, when SND.UNA comes
    /// round to ISS again (RFC 9293 §3.4: sequence numbers wrap).
    syn_acked: bool,
    pub close_reason: Option<CloseReason>,

    // Send sequence variables (RFC 9293 §3.3.1, Figure 3).
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    /// Highest sequence number sent (SND.NXT can be pulled back for retransmission).
    pub snd_max: SeqNum,
    pub snd_wnd: u32,
    pub snd_wl1: SeqNum,
    pub snd_wl2: SeqNum,
    /// RFC 5961 §5: MAX.SND.WND, the largest window the peer has offered.
    pub max_snd_wnd: u32,
    /// Data bytes the peer has acknowledged so far (saturating): an old ACK may lie at most
    /// this far below SND.UNA (Linux `bytes_acked` in `tcp_ack`).
    bytes_acked: u32,
    pub snd_wscale: u8,

    // Receive sequence variables (Figure 4).
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    pub rcv_wscale: u8,
    /// RFC 7323 §4.3: Last.ACK.sent.
    last_ack_sent: SeqNum,
    /// Right edge of the receive window we are committed to: the furthest edge an ACK has
    /// offered within the receive buffer. It never moves left (RFC 9293 §3.8.6.2.2, SHLD-14).
    rcv_adv: SeqNum,
    /// The furthest right edge any ACK offered, rounding included (at most 2^shift - 1 past
    /// RCV.ADV): what a peer may fill, so what we accept.
    rcv_edge_max: SeqNum,
    /// A FIN that arrived ahead of missing data, processed once the data is in.
    ooo_fin: Option<SeqNum>,

    // Options.
    pub ts_ok: bool,
    ts_recent: u32,
    /// When TS.Recent was last updated, in seconds (`secs32`; Linux `ts_recent_stamp`). In
    /// SYN-SENT, before there is a TS.Recent, it holds the TSval of our first SYN (0: without
    /// timestamps), which a SYN-ACK echoes when that SYN arrived (`on_segment_syn_sent`); the
    /// TCB has no room for a field of its own.
    ts_recent_stamp: u32,
    ts_offset: u32,
    pub sack_ok: bool,
    /// Payload bytes per segment we send (peer's MSS, minus the timestamp option).
    pub smss: u32,
    /// MSS we advertised.
    rcv_mss: u16,

    pub sndbuf: Ring,
    pub rcvbuf: Ring,
    asm: Assembler,
    /// SACK blocks we report (RFC 2018 §4) and a pending D-SACK (RFC 2883).
    rsack: LazyRcvSack,
    /// What the peer has SACKed above SND.UNA (RFC 6675 §3). Made when the first SACK block
    /// arrives and given back once it is empty outside a recovery, as the rings allocate
    /// lazily: an idle connection does not pay its 132 bytes.
    scoreboard: Option<Box<Scoreboard>>,
    /// RFC 6675 HighRxt, as the end (exclusive) of what this recovery retransmitted.
    high_rxt: SeqNum,
    /// The open Tail Loss Probe episode (RFC 8985 §7.4), if any.
    tlp: Option<tlp::TlpEpisode>,
    /// RACK's record of when data in flight was first sent, and its variables (RFC 8985
    /// §6; bounded, see `tcp/rack.rs`). Made by the first send with SACK and RACK on, given
    /// back once everything is acknowledged.
    rack: Option<Box<Rack>>,
    /// RACK's reordering window state (RFC 8985 §6.2 steps 3-4), which outlives a flight.
    reo: ReoWnd,
    rtt: RttEstimator,
    /// Karn's algorithm without timestamps: (sequence that completes the timed segment, when sent).
    rtt_timing: Option<Timed>,
    pub cc: Congestion,

    pub timers: Timers,
    /// Consecutive retransmission timeouts (or probes) without progress.
    pub retries: u8,
    /// Probes (zero-window or keepalive) sent without an answer: the abort counter.
    probes: u8,
    /// When an acceptable ACK last arrived (Linux `rcv_tstamp`): the proof that a peer which
    /// holds a zero window is still there.
    last_ack_rcvd: u32,
    /// When a segment carrying data last went out (`ms32`; Linux `lsndtime`): the idle
    /// clock of RFC 5681 §4.1.
    last_data_sent: u32,
    /// Exponent of the zero-window probe interval.
    persist_backoff: u8,
    /// The application queued data while nothing was in flight: the next transmission checks
    /// for an idle restart first (RFC 5681 §4.1; Linux checks in `tcp_skb_entail`, when data is
    /// queued, not when a window opens).
    idle_check: bool,
    /// Sender SWS avoidance holds a piece the window cut short with nothing in flight: the
    /// persist timer is the override timeout that sends it (RFC 9293 §3.8.6.2.1 (4)).
    sws_held: bool,
    ack_now: bool,
    /// Full-sized segments received since the last ACK (RFC 5681 §4.2: ACK at least every
    /// second one).
    unacked_segs: u8,
    /// When the last rate-limited ACK went out (`ms32`, 0: never; Linux
    /// `last_oow_ack_time`).
    last_oow_ack: u32,
    /// The last ICMP error reported for this connection and not acted on (Linux
    /// `sk_err_soft`; RFC 9293 SHLD-25: made available to the application in [`TcbInfo`]).
    soft_error: Option<IcmpError>,
    /// Readable event already raised and not yet consumed by a read.
    readable_raised: bool,
    want_writable: bool,
    /// Something changed that `output` must look at.
    pub dirty: bool,
    /// Queued on the shard's list of connections to run `output` on.
    pub in_dirty: bool,
    /// The wake-ups the shard's timer heap holds for this connection (see [`Wakeups`]).
    pub queued: Wakeups,
}

/// The TCB's budget: with the allocator's 8-byte header it fills a 464-byte chunk, which keeps
/// an idle connection within the 512 bytes `tests/tcp_tw_memory.rs` measures (issue 10).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<Tcb>() <= 456);

/// Result of an ACK acceptability check.
enum AckCheck {
    Ok,
    Drop,
}

impl Tcb {
    /// The connection's 4-tuple.
    pub fn tuple(&self) -> FourTuple {
        self.tuple.get()
    }

    pub(crate) fn has_tuple(&self, key: &PackedTuple) -> bool {
        self.tuple == *key
    }

    fn blank(id: ConnId, tuple: FourTuple, cfg: &Config, iss: SeqNum, ts_offset: u32, now: Instant) -> Tcb {
        let rcv_mss = if tuple.is_ipv6() { cfg.mss_v6 } else { cfg.mss_v4 };
        Tcb {
            id,
            tuple: PackedTuple::from(tuple),
            state: State::Closed,
            passive: false,
            listener: None,
            app_closed: false,
            fin_queued: false,
            fin_acked: false,
            syn_acked: false,
            close_reason: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            bytes_acked: 0,
            snd_wscale: 0,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_wscale: 0,
            last_ack_sent: SeqNum(0),
            rcv_adv: SeqNum(0),
            rcv_edge_max: SeqNum(0),
            ooo_fin: None,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_stamp: secs32(now),
            ts_offset,
            sack_ok: false,
            smss: u32::from(DEFAULT_MSS_V4),
            rcv_mss,
            sndbuf: Ring::new(cfg.snd_buf),
            rcvbuf: Ring::new(cfg.rcv_buf),
            asm: Assembler::default(),
            rsack: LazyRcvSack::default(),
            scoreboard: None,
            high_rxt: iss,
            tlp: None,
            rack: None,
            reo: ReoWnd::new(iss),
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_timing: None,
            cc: Congestion::new(u32::from(DEFAULT_MSS_V4), cfg.initial_cwnd, iss, cfg.congestion_control),
            timers: Timers::default(),
            retries: 0,
            probes: 0,
            last_ack_rcvd: ms32(now),
            last_data_sent: ms32(now),
            persist_backoff: 0,
            idle_check: false,
            sws_held: false,
            ack_now: false,
            unacked_segs: 0,
            last_oow_ack: 0,
            soft_error: None,
            readable_raised: false,
            want_writable: false,
            dirty: false,
            in_dirty: false,
            queued: Wakeups::default(),
        }
    }

    /// RFC 9293 §3.10.1 OPEN (active): a TCB in SYN-SENT; the SYN goes out on the next
    /// [`Tcb::output`].
    pub fn connect(id: ConnId, tuple: FourTuple, cfg: &Config, iss: SeqNum, ts_offset: u32, now: Instant) -> Tcb {
        let mut t = Tcb::blank(id, tuple, cfg, iss, ts_offset, now);
        t.state = State::SynSent;
        t.rcv_wscale = if cfg.window_scaling { cfg.rcv_wscale() } else { 0 };
        t.ts_ok = cfg.timestamps;
        t.sack_ok = cfg.sack;
        t.dirty = true;
        t
    }

    /// A passive open whose handshake the listener completed (SYN queue entry or cookie): the
    /// TCB starts in ESTABLISHED with the variables RFC 9293 §3.10.7.4 (fifth, SYN-RECEIVED)
    /// sets. `ack_seg` is the ACK that completed the handshake; `synack` what is known of the
    /// SYN-ACK it acknowledges.
    #[allow(clippy::too_many_arguments)]
    pub fn established_passive(
        id: ConnId,
        tuple: FourTuple,
        cfg: &Config,
        iss: SeqNum,
        irs: SeqNum,
        neg: Negotiated,
        rcv_wscale: u8,
        ts_offset: u32,
        ack_seg: &TcpRepr<'_>,
        synack: SynAckTiming,
        now: Instant,
    ) -> Tcb {
        let mut t = Tcb::blank(id, tuple, cfg, iss, ts_offset, now);
        t.passive = true;
        t.irs = irs;
        t.rcv_nxt = irs.add(1);
        t.last_ack_sent = t.rcv_nxt;
        t.snd_una = iss.add(1);
        t.syn_acked = true;
        t.snd_nxt = t.snd_una;
        t.snd_max = t.snd_una;
        t.apply_negotiated(cfg, neg, rcv_wscale);
        // SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK
        t.snd_wnd = u32::from(ack_seg.window) << t.snd_wscale;
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = ack_seg.seq;
        t.snd_wl2 = ack_seg.ack;
        t.rcv_adv = t.rcv_nxt.add(t.rcv_space());
        t.rcv_edge_max = t.rcv_adv;
        // RFC 6582 §3.2: "recover" starts at the ISS. (SND.UNA = ISS + 1 here would keep a
        // loss in the first window from ever starting a fast retransmit: SND.UNA - 1 < recover.)
        t.cc = Congestion::new(t.smss, cfg.initial_cwnd, iss, cfg.congestion_control);
        t.state = State::Established;
        // RFC 7323 §4.3 (2): the final ACK (SEG.SEQ = IRS + 1 = Last.ACK.sent) carries a newer
        // TSval than the SYN; it becomes TS.Recent, so our first segment echoes it (Linux
        // takes it in `tcp_check_req` before the child socket copies `ts_recent`).
        t.update_ts_recent(now, ack_seg);
        // RFC 6298 (2.2): the handshake gives the first RTT sample, as Linux's
        // `tcp_synack_rtt_meas` takes it: from the SYN-ACK's send time if it went once
        // (Karn), else from the ACK's TSecr (RFC 7323 §4.1). Without one the first data
        // would wait the 1 s initial RTO however short the path.
        match synack.sent {
            Some(at) => t.rtt.sample(now.saturating_since(at), cfg.rto_min, cfg.rto_max),
            None => t.rtt_sample_on_ack(now, cfg, ack_seg),
        }
        if synack.retransmitted {
            t.handshake_rto_fallback(cfg);
        }
        if synack.lossy {
            t.cc.cwnd = t.smss;
        }
        t.arm_keepalive(cfg, now);
        t
    }

    /// RFC 6298 (5.7), a MUST: "the RTO MUST be re-initialized to 3 seconds when data
    /// transmission begins" after the SYN or SYN-ACK was retransmitted and no RTT sample could
    /// be taken (Linux `tcp_init_metrics`, `TCP_TIMEOUT_FALLBACK`). Called by a handshake
    /// that retransmitted, once it has tried to sample. Linux also falls back when a handshake
    /// that was not retransmitted gave no sample (a cookie without timestamps); RFC 6298 asks
    /// it only after a retransmission, and only then do we.
    fn handshake_rto_fallback(&mut self, cfg: &Config) {
        if self.rtt.srtt().is_none() {
            self.rtt.fall_back(cfg.rto_max);
        }
    }

    fn apply_negotiated(&mut self, cfg: &Config, neg: Negotiated, rcv_wscale: u8) {
        let default_mss = if self.tuple().is_ipv6() { DEFAULT_MSS_V6 } else { DEFAULT_MSS_V4 };
        let peer_mss = neg.peer_mss.unwrap_or(default_mss).max(cfg.min_snd_mss);
        self.ts_ok = neg.ts_recent.is_some() && cfg.timestamps;
        if let Some(ts) = neg.ts_recent {
            self.ts_recent = ts;
        }
        // RFC 7323 §2.2: window scaling only when both sides sent the option.
        match neg.snd_wscale {
            Some(s) if cfg.window_scaling => {
                // RFC 7323 §2.3: a shift above 14 is used as 14.
                self.snd_wscale = s.min(14);
                self.rcv_wscale = rcv_wscale;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = neg.sack_ok && cfg.sack;
        self.rcvbuf.set_limit(cfg.rcv_buf.saturating_add(self.rounding_slack() as usize));
        let ts_len = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        self.smss = u32::from(peer_mss.min(self.rcv_mss)).saturating_sub(ts_len).max(64);
    }

    // ---------------------------------------------------------------------------------------
    // Small helpers
    // ---------------------------------------------------------------------------------------

    /// Receive buffer space from RCV.NXT on. Out-of-order bytes sit past the in-order data
    /// inside the same ring, so this is the ring's free space less the rounding slack (see
    /// [`Tcb::rounding_slack`]).
    fn rcv_space(&self) -> u32 {
        let free = u32::try_from(self.rcvbuf.free()).unwrap_or(u32::MAX);
        // Never more than the window field can say (65535 without window scaling): RCV.WND
        // is what we offer, and a segment beyond it is outside the window (RFC 9293 §3.4).
        let most = 65535u32 << self.rcv_wscale.min(14);
        free.saturating_sub(self.rounding_slack()).min(most)
    }

    /// With window scaling an advertised window is a multiple of 2^RCV.WIND.SHIFT. Keeping an
    /// edge already offered can need up to 2^shift - 1 bytes more than the buffer's own size
    /// (Linux rounds up for the same reason); the ring holds that much beyond `rcv_buf`.
    fn rounding_slack(&self) -> u32 {
        (1u32 << self.rcv_wscale.min(14)) - 1
    }

    /// The part of an earlier offer still open: RCV.ADV - RCV.NXT, rounded up to the window
    /// field's unit.
    fn committed_window(&self) -> u32 {
        if !self.rcv_adv.after(self.rcv_nxt) {
            return 0;
        }
        let unit = self.rounding_slack();
        self.rcv_adv.distance_from(self.rcv_nxt).saturating_add(unit) & !unit
    }

    /// RCV.WND: what we accept from RCV.NXT on. The free buffer space, but never less than an
    /// earlier segment offered: RFC 9293 §3.8.6.2.2 (SHLD-14) says the right edge should not
    /// move left, and with window scaling rounding down alone would move it (Linux
    /// `tcp_select_window`: "never shrink the offered window").
    pub fn rcv_window(&self) -> u32 {
        let offered =
            if self.rcv_edge_max.after(self.rcv_nxt) { self.rcv_edge_max.distance_from(self.rcv_nxt) } else { 0 };
        self.rcv_space().max(self.committed_window()).max(offered)
    }

    /// The window field to put in a segment (scaled; never scaled on a SYN, RFC 7323 §2.2).
    fn window_field(&self, syn: bool) -> u16 {
        if syn {
            return self.rcv_space().min(65535) as u16;
        }
        let s = self.rcv_wscale;
        let committed = self.committed_window();
        // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance, MUST-39): the right edge moves only
        // by at least min(RCV.BUFF/2, Eff.snd.MSS), a closed window included (Linux
        // `__tcp_select_window` offers 0 while less than an MSS is free).
        let offer = if self.edge_growth() >= self.sws_threshold() as i32 { self.rcv_space() } else { committed };
        // Rounded down, but at least the committed window (a multiple of the unit already),
        // so that SEG.ACK + window never lies left of RCV.ADV.
        ((offer >> s).max(committed >> s)).min(65535) as u16
    }

    /// How far the free space would move the right edge past RCV.ADV.
    fn edge_growth(&self) -> i32 {
        self.rcv_nxt.add(self.rcv_space()).diff(self.rcv_adv)
    }

    /// RFC 9293 §3.8.6.2.2: min(RCV.BUFF/2, Eff.snd.MSS), the least step of the right edge.
    fn sws_threshold(&self) -> u32 {
        (self.rcvbuf.limit() as u32 / 2).min(u32::from(self.rcv_mss))
    }

    fn ts_val(&self, now: Instant) -> u32 {
        ts_clock(now).wrapping_add(self.ts_offset)
    }

    /// Options of every segment after the handshake: timestamps, and SACK blocks while the
    /// out-of-order store has data or a D-SACK is pending (RFC 2018 §4: "SHOULD be included
    /// in all ACKs which do not ACK the highest sequence number in the data receiver's queue").
    fn options(&self, now: Instant) -> TcpOptions {
        let mut o = TcpOptions {
            timestamps: if self.ts_ok { Some((self.ts_val(now), self.ts_recent)) } else { None },
            ..TcpOptions::default()
        };
        if self.sack_ok && !self.rsack.is_empty() {
            self.rsack.fill(&mut o);
        }
        o
    }

    fn syn_options(&self, now: Instant, cfg: &Config, synack: bool) -> TcpOptions {
        let mut o = TcpOptions { mss: Some(self.rcv_mss), ..TcpOptions::default() };
        // On a SYN-ACK, echo only what the peer offered (RFC 7323 §2.2, §3.2).
        if cfg.window_scaling && (!synack || self.snd_wscale > 0 || self.rcv_wscale > 0) {
            o.window_scale = Some(self.rcv_wscale);
        }
        if self.ts_ok {
            o.timestamps = Some((self.ts_val(now), if synack { self.ts_recent } else { 0 }));
        }
        o.sack_permitted = self.sack_ok;
        o
    }

    /// The peer SACKed the data at SND.UNA without acknowledging it: it dropped what it had
    /// SACKed (reneging, RFC 2018 §8; Linux `FLAG_SACK_RENEGING`).
    fn sack_reneged(&self) -> bool {
        self.sb().ranges().first().is_some_and(|r| r.0.before_eq(self.snd_una) && self.snd_una.before(r.1))
    }

    /// Bytes in flight: sent and not yet acknowledged (SYN and FIN count one each).
    pub fn flight(&self) -> u32 {
        self.snd_nxt.distance_from(self.snd_una)
    }

    /// Sequence number of the first byte in the send queue: SND.UNA once our SYN is
    /// acknowledged, ISS + 1 before.
    fn data_seq(&self) -> SeqNum {
        if self.syn_acked {
            self.snd_una
        } else {
            self.iss.add(1)
        }
    }

    /// Our SYN-ACK of an active (simultaneous) open is not acknowledged yet: SYN-RECEIVED, or
    /// the FIN-WAIT-1 a CLOSE entered from it (RFC 9293 §3.10.4).
    fn in_syn_received(&self) -> bool {
        !self.syn_acked && matches!(self.state, State::SynReceived | State::FinWait1)
    }

    /// Sequence number our FIN has (or will have): just past all queued data.
    pub(super) fn fin_seq(&self) -> SeqNum {
        self.data_seq().add(self.sndbuf.len() as u32)
    }

    fn raise(&mut self, ctx: &mut Ctx<'_>, ev: Event) {
        // Connections still in an accept queue have no owner to tell.
        if self.listener.is_none() && !self.app_closed {
            ctx.events.push_back(ev);
        }
    }

    fn set_state(&mut self, ctx: &mut Ctx<'_>, to: State) {
        let from = self.state;
        if from == to {
            return;
        }
        let estab = |s: State| matches!(s, State::Established | State::CloseWait);
        // RFC 4022 tcpEstabResets (Linux `tcp_set_state`): every direct move from ESTABLISHED
        // or CLOSE-WAIT to CLOSED, whatever the cause (RST in or out, timeouts).
        if estab(from) && to == State::Closed {
            ctx.counters.tcp_estab_resets += 1;
        }
        if estab(from) && !estab(to) {
            ctx.counters.tcp_curr_estab = ctx.counters.tcp_curr_estab.saturating_sub(1);
        } else if !estab(from) && estab(to) {
            ctx.counters.tcp_curr_estab = ctx.counters.tcp_curr_estab.saturating_add(1);
        }
        self.state = to;
        self.dirty = true;
    }

    /// Enters CLOSED: flush queues, stop timers, tell the application why.
    fn enter_closed(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        if self.close_reason.is_none() {
            ctx.counters.tcp_ext_closed += 1;
        }
        self.set_state(ctx, State::Closed);
        self.timers.clear_all();
        self.sndbuf.clear();
        self.asm.clear();
        self.rsack.clear();
        self.scoreboard = None;
        // RFC 9293 says to flush the queues on a reset; Linux keeps what was received in order
        // (a read returns it, then ECONNRESET), and so do we: a relay passes on what the peer
        // sent before it reset. Only the application's own abort drops it.
        if reason == CloseReason::Aborted {
            self.rcvbuf.clear();
        }
        self.close_reason = Some(reason);
        self.raise(ctx, Event::Closed(self.id, reason));
    }

    /// RFC 9293 §3.10.7.4 fourth/eighth: TIME-WAIT, with the 2·MSL timer.
    fn enter_time_wait(&mut self, ctx: &mut Ctx<'_>) {
        ctx.counters.tcp_ext_closed += 1;
        self.set_state(ctx, State::TimeWait);
        let tw = ctx.now + ctx.cfg.time_wait;
        self.timers.clear_all();
        self.timers.time_wait = Some(tw);
        self.sndbuf.clear();
        ctx.counters.tcp_ext_tw += 1;
        self.close_reason = Some(CloseReason::Normal);
        self.raise(ctx, Event::Closed(self.id, CloseReason::Normal));
    }

    fn arm_rto(&mut self, now: Instant) {
        if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
    }

    pub(super) fn restart_rto(&mut self, now: Instant) {
        self.timers.rto = Some(now + self.rtt.rto());
    }

    fn arm_keepalive(&mut self, cfg: &Config, now: Instant) {
        if cfg.keepalive {
            self.timers.keepalive = Some(now + cfg.keepalive_time);
        }
    }

    /// RFC 5961 §7 / Linux `tcp_oow_rate_limited`: at most one challenge or out-of-window ACK
    /// per connection per `invalid_ratelimit`.
    fn oow_ack_allowed(&mut self, now: Instant, cfg: &Config) -> bool {
        let since = Duration::from_millis(u64::from(ms32(now).wrapping_sub(self.last_oow_ack)));
        if self.last_oow_ack != 0 && since < cfg.invalid_ratelimit {
            return false;
        }
        self.last_oow_ack = ms32(now).max(1);
        true
    }

    /// Sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> now, if the rate limit allows. As in Linux
    /// (`tcp_oow_rate_limited`), only segments that could be part of an ACK loop are limited:
    /// pure ACKs, RSTs and SYNs; a retransmitted data segment or FIN is always re-ACKed.
    fn send_oow_ack(&mut self, ctx: &mut Ctx<'_>, challenge: bool, seg: &TcpRepr<'_>) {
        let loop_prone = seg.segment_len() == 0 || seg.flags.syn() || seg.flags.rst();
        if loop_prone && !self.oow_ack_allowed(ctx.now, ctx.cfg) {
            if challenge {
                ctx.counters.tcp_ext_tcp_ack_skipped_challenge += 1;
            }
            return;
        }
        if challenge {
            ctx.counters.tcp_ext_tcp_challenge_ack += 1;
        }
        self.send_ack(ctx);
    }

    fn send_ack(&mut self, ctx: &mut Ctx<'_>) {
        let seg = OutSegment {
            options: self.options(ctx.now),
            // SND.NXT as the peer knows it: after a timeout pulled SND.NXT back for
            // retransmission, SND.MAX (Linux `tcp_acceptable_seq`).
            ..OutSegment::control(self.snd_max, self.rcv_nxt, TcpFlags::ACK, self.window_field(false))
        };
        self.transmit(ctx, &seg);
    }

    /// Puts one segment on the wire and does the bookkeeping every sent segment needs.
    fn transmit(&mut self, ctx: &mut Ctx<'_>, seg: &OutSegment<'_>) -> bool {
        if !send_out(ctx, &self.tuple(), seg) {
            return false;
        }
        self.note_sent(seg.flags, seg.ack, seg.window);
        true
    }

    /// After a segment left: remember what it acknowledged and advertised.
    fn note_sent(&mut self, flags: TcpFlags, ack: SeqNum, window: u16) {
        if flags.ack() {
            self.last_ack_sent = ack;
            let scale = if flags.syn() { 0 } else { self.rcv_wscale };
            // The committed edge moves right only, and only as far as the buffer holds: a
            // window rounded up past the buffer commits nothing new (Linux keeps rcv_wnd then).
            let edge = ack.add(u32::from(window) << scale);
            if edge.after(self.rcv_edge_max) {
                self.rcv_edge_max = edge;
            }
            let within = self.rcv_nxt.add(self.rcv_space());
            let edge = if edge.after(within) { within } else { edge };
            if edge.after(self.rcv_adv) {
                self.rcv_adv = edge;
            }
            self.ack_now = false;
            self.unacked_segs = 0;
            self.timers.delack = None;
            self.rsack.sent();
        }
    }

    /// Sends <SEQ=SND.NXT><CTL=RST,ACK> and enters CLOSED (application abort or abort on data).
    fn send_reset_and_close(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        let seg = OutSegment::control(self.snd_max, self.rcv_nxt, TcpFlags::RST | TcpFlags::ACK, 0);
        self.transmit(ctx, &seg);
        self.enter_closed(ctx, reason);
    }

    // ---------------------------------------------------------------------------------------
    // SEGMENT ARRIVES
    // ---------------------------------------------------------------------------------------

    /// RFC 9293 §3.10.7.3 and §3.10.7.4: one segment for this connection.
    pub fn on_segment(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        self.dirty = true;
        match self.state {
            State::SynSent => self.on_segment_syn_sent(ctx, seg),
            State::Closed | State::Listen => Err(DropReason::NoListener),
            // The compact TIME-WAIT record never sees SYN+RST or SYN+FIN (`handle_segment`
            // drops them where no connection is); the TCB in its last batch answers alike.
            State::TimeWait if seg.flags.is_impossible() => Err(DropReason::BadFlags),
            State::TimeWait => self.on_segment_time_wait(ctx, seg),
            _ => self.on_segment_other(ctx, seg),
        }
    }

    /// RFC 9293 §3.10.7.3 SYN-SENT.
    fn on_segment_syn_sent(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        let f = seg.flags;
        // First, check the ACK bit.
        let mut ack_ok = false;
        if f.ack() {
            // If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless RST) and discard.
            if seg.ack.before_eq(self.iss) || seg.ack.after(self.snd_max) {
                if !f.rst() {
                    let rst = OutSegment::control(seg.ack, SeqNum(0), TcpFlags::RST, 0);
                    self.transmit(ctx, &rst);
                    // RFC 9293 Figure 9: the RST sends the peer's old half back to LISTEN, so
                    // our SYN may go again at once. Linux re-arms the retransmission timer at
                    // `TCP_TIMEOUT_MIN` when no SYN was retransmitted yet ("previous FIN/ACK or
                    // RST/ACK might be ignored"); only then, so a blind stream of bad ACKs
                    // cannot make the SYN go faster than its backoff.
                    if self.retries == 0 {
                        self.timers.rto = Some(ctx.now + SYN_SENT_RST_RETRY);
                    }
                }
                return Err(DropReason::InvalidAck);
            }
            // SND.UNA < SEG.ACK =< SND.NXT: acceptable.
            ack_ok = true;
        }
        // Second, check the RST bit.
        if f.rst() {
            // RFC 5961 §3 as RFC 9293 applies it here: with an acceptable ACK the RST's sequence
            // number is checked too; Linux accepts any RST that acks our SYN (the peer has no
            // RCV.NXT we could know yet other than via SEG.SEQ), and so do we.
            if ack_ok {
                ctx.counters.tcp_attempt_fails += 1;
                self.enter_closed(ctx, CloseReason::Refused);
                return Ok(());
            }
            return Err(DropReason::InvalidRst);
        }
        // Third (security) does not apply. Fourth, check the SYN bit.
        if !f.syn() {
            // Fifth: neither SYN nor RST: drop.
            return Err(DropReason::NoAck);
        }
        // A FIN with the SYN does not stop the SYN: "If there are other controls or text in
        // the segment, continue processing at the sixth step" (established below), or, in a
        // simultaneous open, queue them for after ESTABLISHED (the peer resends its FIN).
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq.add(1);
        self.rcv_adv = self.rcv_nxt;
        self.rcv_edge_max = self.rcv_nxt;
        let o = &seg.options;
        let neg = Negotiated {
            peer_mss: o.mss,
            snd_wscale: if self.rcv_wscale > 0 || ctx.cfg.window_scaling { o.window_scale } else { None },
            sack_ok: o.sack_permitted,
            ts_recent: if self.ts_ok { o.timestamps.map(|t| t.0) } else { None },
        };
        // A SYN-ACK that echoes our first SYN's timestamp (kept in `ts_recent_stamp` until
        // now) answers that SYN: the resends were spurious, and the initial window stays
        // (Linux `tcp_try_undo_spurious_syn` in `tcp_rcv_synsent_state_process`; it wants a
        // nonzero echo).
        let first_syn_tsval = self.ts_recent_stamp;
        let spurious =
            self.ts_ok && seg.flags.ack() && o.timestamps.is_some_and(|(_, ecr)| ecr != 0 && ecr == first_syn_tsval);
        let offered_wscale = self.rcv_wscale;
        self.apply_negotiated(ctx.cfg, neg, offered_wscale);
        if self.ts_ok {
            self.ts_recent_stamp = secs32(ctx.now);
        }
        self.cc = Congestion::new(self.smss, ctx.cfg.initial_cwnd, self.iss, ctx.cfg.congestion_control);
        if self.retries > LOSS_WINDOW_AFTER && !spurious {
            // RFC 5681 §3.1 as Linux applies it (`LOSS_WINDOW_AFTER`): our SYN was lost.
            self.cc.cwnd = self.smss;
        }
        if ack_ok {
            // SND.UNA <- SEG.ACK; our SYN is acked: ESTABLISHED.
            self.rtt_sample_on_ack(ctx.now, ctx.cfg, seg);
            if self.retries > 0 {
                self.handshake_rto_fallback(ctx.cfg);
            }
            self.snd_una = seg.ack;
            self.syn_acked = true;
            if self.snd_nxt.before(self.snd_una) {
                self.snd_nxt = self.snd_una;
            }
            self.timers.rto = None;
            self.retries = 0;
            // RFC 7323 §2.2: the window in a SYN is never scaled.
            self.snd_wnd = u32::from(seg.window);
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.set_state(ctx, State::Established);
            self.arm_keepalive(ctx.cfg, ctx.now);
            self.raise(ctx, Event::Connected(self.id));
            if self.fin_queued {
                self.set_state(ctx, State::FinWait1);
            }
            // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, possibly carrying queued data: output().
            self.ack_now = true;
            if !seg.payload.is_empty() || f.fin() {
                // Continue at the sixth step with the SYN trimmed away.
                let rest = TcpRepr { seq: seg.seq.add(1), flags: seg.flags.without(TcpFlags::SYN), ..*seg };
                if self.process_text(ctx, &rest).is_ok() {
                    self.check_fin(ctx, &rest);
                }
            }
            Ok(())
        } else {
            // Simultaneous open (Figure 7): enter SYN-RECEIVED and send <SEQ=ISS><ACK=RCV.NXT>
            // <CTL=SYN,ACK>; output() sends it because SND.NXT goes back to ISS.
            self.snd_wnd = u32::from(seg.window);
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.set_state(ctx, State::SynReceived);
            self.snd_nxt = self.iss;
            self.timers.rto = None;
            Ok(())
        }
    }

    /// TIME-WAIT, for segments that arrive in the batch that entered it: after that batch the
    /// connection is a compact entry (`Shard::settle`). The rules are the entry's
    /// ([`time_wait::on_segment`]), so both answer alike.
    fn on_segment_time_wait(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        let e = self.time_wait_entry();
        let restart = |t: &mut Tcb, ctx: &Ctx<'_>| t.timers.time_wait = Some(ctx.now + ctx.cfg.time_wait);
        match time_wait::on_segment(&e, seg, ctx.cfg.rfc1337) {
            TwVerdict::Drop(r) => {
                if r == DropReason::TimeWaitRst {
                    ctx.counters.tcp_ext_tw_rst_ignored += 1;
                }
                Err(r)
            }
            // A SYN that could reuse the tuple meets the compact entry once the batch is over
            // (its retransmission); until then it is answered as an unacceptable segment.
            v @ (TwVerdict::Ack { .. } | TwVerdict::Reuse) => {
                let (restart_timer, limited) = match v {
                    TwVerdict::Ack { restart, limited } => (restart, limited),
                    _ => (false, true),
                };
                if restart_timer {
                    restart(self, ctx);
                }
                if limited && !self.oow_ack_allowed(ctx.now, ctx.cfg) {
                    ctx.counters.tcp_ext_tcp_ack_skipped_time_wait += 1;
                } else {
                    self.ack_now = true;
                }
                Ok(())
            }
            TwVerdict::Refresh => {
                restart(self, ctx);
                if let (true, Some((tsval, _))) = (self.ts_ok, seg.options.timestamps) {
                    self.ts_recent = tsval;
                    self.ts_recent_stamp = secs32(ctx.now);
                }
                Ok(())
            }
            TwVerdict::Kill => {
                self.timers.clear_all();
                self.set_state(ctx, State::Closed);
                Ok(())
            }
        }
    }

    /// What the TIME-WAIT table keeps of this connection.
    pub(crate) fn time_wait_entry(&self) -> TwEntry {
        let deadline = self.timers.time_wait.unwrap_or_default();
        TwEntry {
            snd_nxt: self.snd_max,
            rcv_nxt: self.rcv_nxt,
            ts_recent: self.ts_recent(),
            ts_offset: self.ts_offset,
            window: self.window_field(false),
            deadline,
            // The 32-bit stamp back on the full clock: the latest instant at or before the
            // TIME-WAIT deadline (a recent time) that has it.
            last_oow_ack: (self.last_oow_ack != 0)
                .then(|| deadline - Duration::from_millis(u64::from(ms32(deadline).wrapping_sub(self.last_oow_ack)))),
        }
    }

    /// RFC 9293 §3.10.7.4: every state from SYN-RECEIVED on.
    fn on_segment_other(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        // RFC 7323 §5.3 PAWS (before the sequence check, as R1-R3 there say).
        self.check_paws(ctx, seg)?;
        // Second (done first for RST, since an unacceptable RST gets no ACK): RFC 5961 §3.
        if seg.flags.rst() {
            return self.check_rst(ctx, seg);
        }
        let orig = *seg;
        // First, check sequence number.
        let seg = self.check_sequence(ctx, seg)?;
        // Fourth, check the SYN bit.
        self.check_syn(ctx, &seg)?;
        // Fifth, check the ACK field.
        self.check_ack(ctx, &seg, &orig)?;
        // RFC 7323 §4.3: TS.Recent <- SEG.TSval when SEG.SEQ =< Last.ACK.sent; done only once
        // the ACK has been found acceptable, so a blind segment that draws a challenge ACK
        // cannot move TS.Recent and make PAWS reject the real peer (Linux moved this into
        // `tcp_ack` for that reason).
        self.update_ts_recent(ctx.now, &orig);
        if matches!(self.state, State::Closed | State::TimeWait) && seg.payload.is_empty() && !seg.flags.fin() {
            return Ok(());
        }
        // Sixth (URG) is not supported: urgent data is delivered inline, as Linux's
        // `tcp_stdurg`-off, SO_OOBINLINE-on behaviour would. Seventh, the segment text.
        self.process_text(ctx, &seg)?;
        // Eighth, check the FIN bit.
        self.check_fin(ctx, &seg);
        Ok(())
    }

    /// RFC 7323 §5.3: reject a segment whose TSval is older than TS.Recent (R1), unless
    /// TS.Recent is more than 24 days old (R3 / §5.5). RSTs are exempt (Linux does the same).
    fn check_paws(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        if !self.ts_ok || seg.flags.rst() {
            return Ok(());
        }
        let Some((tsval, _)) = seg.options.timestamps else {
            return Ok(());
        };
        if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
            if u64::from(secs32(ctx.now).wrapping_sub(self.ts_recent_stamp)) > PAWS_IDLE.as_millis() / 1000 {
                self.ts_recent = tsval;
                self.ts_recent_stamp = secs32(ctx.now);
                return Ok(());
            }
            ctx.counters.tcp_ext_paws_estab_rejected += 1;
            self.dsack_old(ctx, seg.seq, seg.payload.len());
            self.send_oow_ack(ctx, false, seg);
            return Err(DropReason::Paws);
        }
        Ok(())
    }

    /// RFC 9293 §3.10.7.4 second, with RFC 5961 §3.2.
    fn check_rst(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        let wnd = self.rcv_window().max(1);
        // After the peer's FIN, a RST may carry the FIN's own number (RCV.NXT - 1): several
        // stacks reset a closing connection from the sequence number they last sent. Linux
        // (`tcp_reset_check`) takes it as exact in CLOSE-WAIT, LAST-ACK and CLOSING; so do we.
        // (TIME-WAIT has its own rules, RFC 1337.) A blind attacker gains nothing: the
        // number is one more value next to RCV.NXT, not a window.
        let fin_seq_rst =
            seg.seq == self.rcv_nxt.sub(1) && matches!(self.state, State::CloseWait | State::LastAck | State::Closing);
        // 1) outside the window: drop silently.
        if !seg.seq.in_window(self.rcv_nxt, wnd) && !fin_seq_rst {
            return Err(DropReason::InvalidRst);
        }
        // 3) in the window but not exactly RCV.NXT: challenge ACK.
        if seg.seq != self.rcv_nxt && !fin_seq_rst {
            self.send_oow_ack(ctx, true, seg);
            return Err(DropReason::InvalidRst);
        }
        // 2) exactly RCV.NXT: reset, per state.
        match self.state {
            State::SynReceived => {
                // Active SYN-RECEIVED (passive ones live in the SYN queue): "connection refused".
                ctx.counters.tcp_attempt_fails += 1;
                self.enter_closed(ctx, CloseReason::Refused);
            }
            State::Established | State::CloseWait => {
                self.enter_closed(ctx, CloseReason::Reset);
            }
            State::FinWait1 | State::FinWait2 => {
                self.enter_closed(ctx, CloseReason::Reset);
            }
            State::Closing | State::LastAck => {
                self.enter_closed(ctx, CloseReason::Normal);
            }
            // TIME-WAIT has its own rules (`on_segment_time_wait`).
            State::Closed | State::Listen | State::SynSent | State::TimeWait => {}
        }
        Ok(())
    }

    /// RFC 9293 §3.10.7.4 first: the acceptability test of Table 6, then trimming to the window.
    /// An unacceptable segment draws <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    fn check_sequence<'s>(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'s>) -> Result<TcpRepr<'s>, DropReason> {
        let mut seg = *seg;
        // Figure 7 line 6: in an active SYN-RECEIVED, the peer's SYN-ACK repeats its SYN
        // (SEG.SEQ = IRS) and acknowledges ours. Linux (`tcp_validate_incoming`) lets it through
        // as the ACK it is; so do we, with the duplicate SYN trimmed away.
        if self.in_syn_received()
            && !self.passive
            && seg.flags.syn()
            && seg.flags.ack()
            && seg.seq == self.irs
            && seg.ack == self.snd_max
        {
            seg.seq = seg.seq.add(1);
            seg.flags = seg.flags.without(TcpFlags::SYN);
            // The repeated SYN is old sequence space: Linux answers it with an ACK
            // (`tcp_data_queue`, "a retransmit ... force an immediate ack").
            self.ack_now = true;
        }
        let seg_len = seg.segment_len();
        let wnd = self.rcv_window();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            (_, _) => seg.seq.in_window(self.rcv_nxt, wnd) || seg.seq.add(seg_len - 1).in_window(self.rcv_nxt, wnd),
        };
        // RCV.WND = 0: "special allowance should be made to accept valid ACKs": a segment at
        // RCV.NXT is processed for its ACK, its text is cut off below.
        let zero_window_ack = wnd == 0 && seg.seq == self.rcv_nxt && seg.flags.ack();
        if !acceptable && !zero_window_ack {
            self.dsack_old(ctx, seg.seq, seg.payload.len());
            self.send_oow_ack(ctx, false, &seg);
            return Err(DropReason::OutOfWindow);
        }
        // Trim the front: bytes (and a SYN) before RCV.NXT are old.
        if seg.seq.before(self.rcv_nxt) {
            let mut cut = self.rcv_nxt.distance_from(seg.seq);
            if seg.flags.syn() {
                // The SYN's sequence number is trimmed, the flag stays: RFC 5961 §4 answers a
                // SYN in a synchronized state with a challenge ACK "irrespective of the sequence
                // number" (the fourth step).
                cut -= 1;
                seg.seq = seg.seq.add(1);
            }
            let c = (cut as usize).min(seg.payload.len());
            // Linux `tcp_data_queue`: "Partial packet, seq < rcv_next < end_seq": D-SACK the
            // old part.
            self.dsack_old(ctx, seg.seq, c);
            seg.payload = seg.payload.get(c..).unwrap_or(&[]);
            seg.seq = seg.seq.add(c as u32);
            // Something old was retransmitted: our ACK was probably lost; repeat it.
            self.ack_now = true;
        }
        // Trim the tail: nothing beyond RCV.NXT + RCV.WND (a FIN there is dropped too).
        let off = seg.seq.distance_from(self.rcv_nxt) as usize;
        let room = (wnd as usize).saturating_sub(off);
        if seg.payload.len() > room {
            seg.payload = seg.payload.get(..room).unwrap_or(&[]);
            seg.flags = seg.flags.without(TcpFlags::FIN);
            self.ack_now = true;
        }
        Ok(seg)
    }

    fn update_ts_recent(&mut self, now: Instant, orig: &TcpRepr<'_>) {
        if !self.ts_ok || orig.flags.syn() {
            return;
        }
        if let Some((tsval, _)) = orig.options.timestamps {
            if orig.seq.before_eq(self.last_ack_sent) && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_stamp = secs32(now);
            }
        }
    }

    /// RFC 9293 §3.10.7.4 fourth, with RFC 5961 §4: a SYN in a synchronized state draws a
    /// challenge ACK and is dropped.
    fn check_syn(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        if !seg.flags.syn() {
            return Ok(());
        }
        ctx.counters.tcp_ext_tcp_syn_challenge += 1;
        self.send_oow_ack(ctx, true, seg);
        Err(DropReason::SynChallenge)
    }

    /// RFC 9293 §3.10.7.4 fifth, with the RFC 5961 §5 ACK range check.
    fn check_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, orig: &TcpRepr<'_>) -> Result<(), DropReason> {
        // RFC 7323 §2.2: the window of a SYN (the peer's SYN-ACK in a simultaneous open) is
        // never scaled.
        let wnd_shift = if orig.flags.syn() { 0 } else { self.snd_wscale };
        if !seg.flags.ack() {
            // "if the ACK bit is off, drop the segment and return"
            return Err(DropReason::NoAck);
        }
        if self.in_syn_received() {
            // SND.UNA < SEG.ACK =< SND.NXT enters ESTABLISHED; otherwise <SEQ=SEG.ACK><CTL=RST>.
            if !(seg.ack.after(self.snd_una) && seg.ack.before_eq(self.snd_max)) {
                let rst = OutSegment::control(seg.ack, SeqNum(0), TcpFlags::RST, 0);
                self.transmit(ctx, &rst);
                return Err(DropReason::InvalidAck);
            }
            // A CLOSE in SYN-RECEIVED went on to FIN-WAIT-1 already (RFC 9293 §3.10.4): the
            // handshake completes there.
            if self.state == State::SynReceived {
                self.set_state(ctx, State::Established);
            }
            self.snd_wnd = u32::from(seg.window) << wnd_shift;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.arm_keepalive(ctx.cfg, ctx.now);
            self.raise(ctx, Event::Connected(self.id));
            if self.fin_queued && self.state == State::Established {
                // A CLOSE issued in SYN-RECEIVED with data queued takes effect now (RFC 9293
                // §3.10.4: "queue for processing after entering ESTABLISHED state").
                self.set_state(ctx, State::FinWait1);
            }
        }
        match self.ack_acceptable(seg) {
            AckCheck::Ok => {}
            AckCheck::Drop => {
                // "discarded and an ACK sent back" (RFC 5961 §5.2), rate-limited.
                self.send_oow_ack(ctx, true, seg);
                return Err(DropReason::InvalidAck);
            }
        }
        // A simultaneous open completing here, after its SYN or SYN-ACK was retransmitted:
        // RFC 6298 (5.7) once the ACK has had its chance to give a sample.
        let handshake_retransmitted = !self.syn_acked && self.retries > 0;
        self.process_ack(ctx, seg, wnd_shift, orig.payload.is_empty() && !orig.flags.fin() && !orig.flags.syn());
        if handshake_retransmitted {
            self.handshake_rto_fallback(ctx.cfg);
        }
        // Keepalive: any acceptable segment proves the peer alive.
        if ctx.cfg.keepalive {
            self.probes = 0;
            self.arm_keepalive(ctx.cfg, ctx.now);
        }
        match self.state {
            State::FinWait1 if self.fin_acked => {
                self.set_state(ctx, State::FinWait2);
                if self.app_closed {
                    // Linux: an orphan waits `tcp_fin_timeout` for the peer's FIN.
                    self.timers.fin_wait2 = Some(ctx.now + ctx.cfg.fin_timeout);
                }
            }
            State::Closing if self.fin_acked => self.enter_time_wait(ctx),
            State::LastAck if self.fin_acked => self.enter_closed(ctx, CloseReason::Normal),
            _ => {}
        }
        Ok(())
    }

    /// RFC 5961 §5.2: acceptable iff (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT. As Linux
    /// (`tcp_ack`: "do not accept ACK for bytes we never sent"), the distance below SND.UNA is
    /// also bounded by what was ever acknowledged: an ACK of sequence space before our first
    /// byte is as blind as one beyond SND.NXT.
    fn ack_acceptable(&self, seg: &TcpRepr<'_>) -> AckCheck {
        let lo = self.snd_una.sub(self.max_snd_wnd.min(self.bytes_acked));
        if seg.ack.between(lo, self.snd_max) {
            AckCheck::Ok
        } else {
            AckCheck::Drop
        }
    }

    /// ESTABLISHED processing of an acceptable ACK: advance SND.UNA, free acknowledged data,
    /// update the send window, RTT, congestion control, timers.
    fn process_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, wnd_shift: u8, pure: bool) {
        let ack = seg.ack;
        let wnd = u32::from(seg.window) << wnd_shift;
        // RFC 9293 §3.8.6.1 (MUST-37): a peer that answers keeps the connection open, however
        // long its window stays zero (Linux resets `icsk_probes_out` on every ACK).
        self.probes = 0;
        self.last_ack_rcvd = ms32(ctx.now);
        let old_una = self.snd_una;
        let was_recovering = self.cc.is_recovering();
        // RFC 2018 / RFC 6675: the scoreboard first, against SND.UNA as this ACK leaves it
        // (Linux `tcp_ack` updates SND.UNA before `tcp_sacktag_write_queue`).
        // RFC 5682 §3 (SACK-enhanced F-RTO) step 3.b, as Linux's FLAG_ORIG_SACK_ACKED: after a
        // timeout, go-back-N has sent again [SND.UNA, SND.NXT); what lies in [SND.NXT,
        // recover) went out once, before the timeout. If the first acknowledgment after the
        // timeout delivers any of that (cumulatively or by a new SACK block), not everything
        // was lost: the timeout was spurious (a delayed ACK, a stalled receiver) and is undone.
        // An ACK that reaches "recover" at once undoes it too: RFC 5682 step 2.a would fall
        // back to the conventional recovery there, Linux (whose cumulative ACKs set
        // FLAG_ORIG_SACK_ACKED) undoes, and so do we.
        // Only while F-RTO is armed: the RACK log is not walked on every ACK.
        let frto = self.cc.frto_armed().then(|| {
            let (nxt, high) = (self.snd_nxt, self.frto_originals_end());
            (nxt, high, if nxt.before(high) { self.sb().uncovered(nxt, high) } else { 0 })
        });
        let sack = self.sack_on_ack(ctx, seg);
        let mut spurious_rto = false;
        if let Some((nxt, high, originals_unsacked)) = frto.filter(|_| ack.after(old_una) || sack.newly_sacked > 0) {
            let from = ack.max(nxt);
            let still_unsacked = if from.before(high) { self.sb().uncovered(from, high) } else { 0 };
            spurious_rto = still_unsacked < originals_unsacked;
            if !spurious_rto {
                // RFC 5682 §3 step 3.a in effect: the loss was real; F-RTO judges once.
                self.cc.frto_done();
            }
        }
        if ack.after(self.snd_una) {
            let mut acked = ack.distance_from(self.snd_una);
            self.rtt_sample_on_ack(ctx.now, ctx.cfg, seg);
            let mut data = acked;
            if !self.syn_acked {
                data = data.saturating_sub(1); // our SYN
                self.syn_acked = true;
            }
            let queued = self.sndbuf.len() as u32;
            if self.fin_queued && data > queued {
                // The FIN is acknowledged.
                self.fin_acked = true;
                data = queued;
            }
            self.sndbuf.consume(data as usize);
            self.sndbuf.release_if_idle();
            self.bytes_acked = self.bytes_acked.saturating_add(data);
            self.snd_una = ack;
            if self.snd_nxt.before(ack) {
                self.snd_nxt = ack;
            }
            self.retries = 0;
            self.probes = 0;
            // RFC 6298 (5.2)/(5.3): stop the timer when all is acked, else restart it.
            if self.snd_una == self.snd_max {
                self.timers.rto = None;
                self.timers.pto = None;
                self.rack = None;
            } else if self.sack_reneged() {
                // The ACK stopped at data the peer SACKed: it reneged, or SND.UNA only looks so
                // for a moment. Linux `tcp_check_sack_reneging` gives it max(SRTT / 16, 10 ms)
                // before the timeout that sends everything again.
                let wait = self.rtt.srtt().map_or(Duration::ZERO, |s| Duration(s.0 / 16));
                self.timers.rto = Some(ctx.now + wait.max(Duration::from_millis(10)));
                self.timers.pto = None;
            } else {
                self.restart_rto(ctx.now);
                self.schedule_loss_probe(ctx);
            }
            acked = data;
            let flight = self.flight();
            // CUBIC's clock: milliseconds (wrapping), and the smoothed RTT.
            let now_ms = (ctx.now.as_nanos() / 1_000_000) as u32;
            let rtt_ms = self.rtt.srtt().map_or(0, |d| d.as_millis().min(u64::from(u32::MAX)) as u32);
            if self.cc.on_ack(acked, self.snd_una, flight, self.smss, now_ms, rtt_ms) == CcAction::RetransmitFirst {
                self.retransmit_first(ctx);
            }
            self.sack_partial_ack(ctx);
            if self.want_writable && self.sndbuf.free() > 0 && !self.fin_queued {
                self.want_writable = false;
                self.raise(ctx, Event::Writable(self.id));
            }
        } else if ack == self.snd_una && pure && wnd == self.snd_wnd && self.snd_max != self.snd_una {
            // RFC 5681 §2: a duplicate ACK. With SACK, RFC 6675 §2 also asks that it SACK
            // something new (an ACK without blocks still counts: a peer that stopped sending
            // them must not leave us waiting for the timer).
            if self.sack_ok {
                if sack.newly_sacked > 0 || seg.options.sack_count == 0 {
                    self.cc.count_dupack();
                }
            } else {
                let flight = self.flight();
                if self.cc.on_dupack(self.snd_una, self.snd_max, flight, self.smss) == CcAction::RetransmitFirst {
                    ctx.counters.tcp_ext_tcp_fast_retrans += 1;
                    self.retransmit_first(ctx);
                }
            }
        }
        if spurious_rto {
            self.undo_spurious_rto(ctx);
        }
        self.rack_on_ack(ctx, sack, was_recovering);
        if self.tlp.is_some() {
            let pure_dup = ack == old_una && pure && seg.options.sack_count == 0;
            self.tlp_on_ack(ctx, ack, sack, pure_dup);
        }
        if self.sack_ok {
            self.sack_maybe_recover(ctx);
        }
        // Window update: if SND.UNA =< SEG.ACK and (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
        // SND.WL2 =< SEG.ACK)).
        if old_una.before_eq(ack)
            && (self.snd_wl1.before(seg.seq) || (self.snd_wl1 == seg.seq && self.snd_wl2.before_eq(ack)))
        {
            let opened = self.snd_wnd == 0 && wnd > 0;
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if opened {
                self.timers.persist = None;
                self.probes = 0;
                self.persist_backoff = 0;
            }
        }
    }

    /// RTT measurement: RFC 7323 §4.1 from TSecr, otherwise Karn's algorithm (RFC 6298 §3).
    fn rtt_sample_on_ack(&mut self, now: Instant, cfg: &Config, seg: &TcpRepr<'_>) {
        if self.ts_ok {
            if let Some((_, tsecr)) = seg.options.timestamps {
                if tsecr != 0 {
                    let ms = self.ts_val(now).wrapping_sub(tsecr);
                    if ms < 60_000 {
                        self.rtt.sample(Duration::from_millis(u64::from(ms)), cfg.rto_min, cfg.rto_max);
                    }
                    return;
                }
            }
        }
        if let Some(Timed { end, at: sent }) = self.rtt_timing {
            if seg.ack.after_eq(end) {
                self.rtt.sample(now.saturating_since(sent), cfg.rto_min, cfg.rto_max);
                self.rtt_timing = None;
            }
        }
    }

    /// RFC 9293 §3.10.7.4 seventh: deliver in-order data, hold out-of-order data.
    fn process_text(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Result<(), DropReason> {
        if seg.payload.is_empty() {
            return Ok(());
        }
        if !matches!(self.state, State::Established | State::FinWait1 | State::FinWait2) {
            // "This should not occur since a FIN has been received": ignore the text.
            return Ok(());
        }
        if self.app_closed {
            // Linux (`tcp_rcv_state_process`, TCPAbortOnData): new data for a connection whose
            // application is gone is answered with a RST.
            ctx.counters.tcp_ext_tcp_abort_on_data += 1;
            self.send_reset_and_close(ctx, CloseReason::Aborted);
            return Err(DropReason::DataAfterClose);
        }
        let off = seg.seq.distance_from(self.rcv_nxt) as usize;
        let had_holes = !self.asm.is_empty();
        let n = self.rcvbuf.write_at(off, seg.payload);
        if n < seg.payload.len() {
            ctx.counters.drop(DropReason::RcvBufFull);
        }
        self.dsack_held(ctx, off, n);
        // RFC 9293 §3.10.7.4 seventh: in-order data is always taken; when the out-of-order
        // store is full, its far end gives way (never the data at RCV.NXT).
        match self.asm.add(off, off + n) {
            AsmAdd::Added => self.sack_stored(off, n),
            AsmAdd::AddedPruned => {
                ctx.counters.tcp_ext_ofo_pruned += 1;
                // Linux `tcp_prune_ofo_queue` resets the SACK state: no block may claim
                // data we dropped.
                self.rsack.clear();
                self.sack_stored(off, n);
            }
            AsmAdd::Refused => {
                ctx.counters.tcp_ext_tcp_ofo_drop += 1;
                self.ack_now = true;
                return Ok(());
            }
        }
        let ready = self.asm.pop_front();
        if ready > 0 {
            self.rcvbuf.commit(ready);
            self.rcv_nxt = self.rcv_nxt.add(ready as u32);
            self.rsack.on_rcv_nxt(self.rcv_nxt, self.asm.is_empty() && self.ooo_fin.is_none());
            if !self.readable_raised {
                self.readable_raised = true;
                self.raise(ctx, Event::Readable(self.id));
            }
        }
        if off > 0 || had_holes {
            // RFC 5681 §4.2: out-of-order data, or data that fills a hole, is ACKed at once.
            // Linux compresses SACK-carrying ACKs after the third for one RCV.NXT
            // (`tcp_comp_sack_nr`, at most 1 ms late); we send each at once, as the RFC says
            // (the differential scenarios set `tcp_comp_sack_nr=0`).
            if off > 0 {
                ctx.counters.tcp_ext_tcp_ofo_queue += 1;
            }
            self.ack_now = true;
        } else {
            self.unacked_segs = self.unacked_segs.saturating_add(1);
            if self.unacked_segs >= 2 {
                self.ack_now = true;
            } else if self.timers.delack.is_none() {
                self.timers.delack = Some(ctx.now + ctx.cfg.delayed_ack);
            }
        }
        if let Some(fs) = self.ooo_fin {
            if fs == self.rcv_nxt {
                self.ooo_fin = None;
                self.fin_arrived(ctx);
            }
        }
        Ok(())
    }

    /// RFC 9293 §3.10.7.4 eighth: check the FIN bit.
    fn check_fin(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
        if !seg.flags.fin() {
            return;
        }
        let fin_seq = seg.seq.add(seg.payload.len() as u32);
        if fin_seq != self.rcv_nxt {
            if fin_seq.after(self.rcv_nxt) && !self.state.fin_received() {
                // Ahead of missing data: remember it (FIN implies PUSH once the data is in).
                // Linux queues it out of order, so its sequence number is SACKed too.
                self.ooo_fin = Some(fin_seq);
                if self.sack_ok {
                    self.rsack.on_ofo(fin_seq, fin_seq.add(1));
                }
                self.ack_now = true;
            }
            return;
        }
        self.fin_arrived(ctx);
    }

    fn fin_arrived(&mut self, ctx: &mut Ctx<'_>) {
        if self.state.fin_received() {
            // A retransmitted FIN (CLOSE-WAIT, CLOSING, LAST-ACK): re-ACK it.
            self.ack_now = true;
            return;
        }
        // Advance RCV.NXT over the FIN and acknowledge it.
        self.rcv_nxt = self.rcv_nxt.add(1);
        self.rsack.on_rcv_nxt(self.rcv_nxt, self.asm.is_empty());
        self.ack_now = true;
        self.raise(ctx, Event::PeerClosed(self.id));
        match self.state {
            State::SynReceived | State::Established => self.set_state(ctx, State::CloseWait),
            State::FinWait1 => {
                if self.fin_acked {
                    self.enter_time_wait(ctx);
                } else {
                    self.set_state(ctx, State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(ctx),
            _ => {}
        }
    }

    // ---------------------------------------------------------------------------------------
    // Output
    // ---------------------------------------------------------------------------------------

    /// Sends what is due: SYN / SYN-ACK, new data within min(SND.WND, cwnd), FIN, and an ACK if
    /// one is owed and nothing else carried it. Called once per batch by the shard.
    pub fn output(&mut self, ctx: &mut Ctx<'_>) {
        self.dirty = false;
        match self.state {
            State::SynSent | State::SynReceived => {
                if self.snd_nxt == self.iss {
                    self.send_syn(ctx);
                }
                return;
            }
            State::Closed | State::Listen => return,
            State::TimeWait => {
                if self.ack_now {
                    self.send_ack(ctx);
                }
                return;
            }
            // FIN-WAIT-1 entered from SYN-RECEIVED (RFC 9293 §3.10.4): the SYN-ACK goes (again)
            // ahead of the FIN.
            _ if self.in_syn_received() && self.snd_nxt == self.iss => self.send_syn(ctx),
            _ => {}
        }
        if self.cc.in_recovery && self.cc.sack_mode {
            self.sack_recovery_send(ctx);
        } else {
            self.send_data(ctx);
        }
        if self.ack_now {
            self.send_ack(ctx);
        }
        // RFC 9293 §3.8.6.1: probe a zero window while data waits; and the override timeout of
        // sender SWS avoidance for a piece it holds (§3.8.6.2.1).
        let unsent = self.unsent_bytes();
        if (self.snd_wnd == 0 || self.sws_held) && (unsent > 0 || self.fin_due()) && self.flight() == 0 {
            if self.timers.persist.is_none() {
                // The SWS override timeout is 0.1 to 1 s (§3.8.6.2.1); the RTO may be longer.
                let iv = if self.snd_wnd == 0 { self.rtt.rto() } else { self.rtt.rto().min(SWS_OVERRIDE_MAX) };
                self.timers.persist = Some(ctx.now + iv);
            }
        } else {
            self.timers.persist = None;
        }
    }

    fn send_syn(&mut self, ctx: &mut Ctx<'_>) {
        let synack = self.state != State::SynSent;
        let (flags, ack) =
            if synack { (TcpFlags::SYN | TcpFlags::ACK, self.rcv_nxt) } else { (TcpFlags::SYN, SeqNum(0)) };
        let seg = OutSegment {
            options: self.syn_options(ctx.now, ctx.cfg, synack),
            ..OutSegment::control(self.iss, ack, flags, self.window_field(true))
        };
        if !synack && self.retries == 0 {
            self.ts_recent_stamp = seg.options.timestamps.map_or(0, |(val, _)| val);
        }
        if self.retries > 0 {
            ctx.counters.tcp_retrans_segs += 1;
        }
        // Sent or not (no frame free), the SYN counts as sent: the retransmission timer
        // recovers a lost one either way, so the connection never waits without a timer.
        self.transmit(ctx, &seg);
        self.snd_nxt = self.iss.add(1);
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if synack {
            // A simultaneous open's SYN-ACK carries the SYN's number: its ACK times the SYN-ACK
            // (Linux `tcp_send_synack` sends the SYN's buffer again, stamped anew), never the
            // SYN, whose timing would count the wait for the peer's SYN. Resent: no sample
            // (Karn).
            self.rtt_timing = (self.retries == 0).then_some(Timed { end: self.snd_nxt, at: ctx.now });
        } else if self.rtt_timing.is_none() && self.retries == 0 {
            self.rtt_timing = Some(Timed { end: self.snd_nxt, at: ctx.now });
        }
        self.arm_rto(ctx.now);
    }

    /// Data bytes queued but not yet sent (from SND.NXT on).
    fn unsent_bytes(&self) -> u32 {
        let sent = self.snd_nxt.distance_from(self.data_seq());
        (self.sndbuf.len() as u32).saturating_sub(sent)
    }

    fn fin_due(&self) -> bool {
        self.fin_queued && !self.fin_acked && self.snd_nxt == self.fin_seq()
    }

    /// Sends new (or, after a timeout, re-sends) data from SND.NXT, then the FIN when due.
    /// Re-sending after a timeout (SND.NXT below SND.MAX) skips what the peer SACKed, and that
    /// data does not count as in flight (Linux's Loss state sends only what is not SACKed, and
    /// `tcp_packets_in_flight` leaves SACKed segments out).
    fn send_data(&mut self, ctx: &mut Ctx<'_>) {
        self.send_data_sws(ctx, false);
    }

    /// [`Tcb::send_data`]; `sws_override`: the override timeout expired, so a piece that
    /// sender SWS avoidance held goes now.
    fn send_data_sws(&mut self, ctx: &mut Ctx<'_>, sws_override: bool) {
        self.restart_cwnd_after_idle(ctx);
        self.sws_held = false;
        loop {
            // Re-sending below SND.MAX: from the first hole at or after SND.NXT, up to the
            // SACKed range that ends it.
            let mut sacked_ahead = None;
            if self.snd_nxt.before(self.snd_max) {
                if let Some(sb) = self.scoreboard.as_deref() {
                    let (start, end) =
                        sb.holes(self.snd_nxt, self.snd_max).next().unwrap_or((self.snd_max, self.snd_max));
                    self.snd_nxt = start;
                    sacked_ahead = end.before(self.snd_max).then_some(end);
                }
            }
            let unsent = self.unsent_bytes();
            let in_flight = match (&self.scoreboard, self.cc.rto_recovery) {
                (Some(sb), true) => sb.uncovered(self.snd_una, self.snd_nxt),
                _ => self.flight(),
            };
            // SACKed data is out of the network but not out of the peer's window, which ends
            // at SND.UNA + SND.WND whatever it holds beyond SND.UNA (RFC 9293 §3.8.6): the two
            // limits are taken apart, as Linux's `tcp_cwnd_test` and `tcp_snd_wnd_test` are.
            let usable = self.cc.cwnd.saturating_sub(in_flight).min(self.snd_wnd.saturating_sub(self.flight()));
            let room = self.payload_room();
            let mut n = unsent.min(usable).min(room);
            let mut sack_cut = false;
            if let Some(s) = sacked_ahead {
                let gap = s.distance_from(self.snd_nxt);
                if gap < n {
                    (n, sack_cut) = (gap, true);
                }
            }
            let fin_here = self.fin_queued && !self.fin_acked && n == unsent;
            if n == 0 {
                // A bare FIN occupies one sequence number: it waits for window like data.
                if fin_here && self.fin_due() && usable > 0 {
                    self.send_segment(ctx, self.snd_nxt, 0, true);
                }
                return;
            }
            // RFC 9293 §3.8.6.2.1 (sender SWS avoidance, MUST-38): a piece cut short by the
            // window (not the end of the queued data) goes only if it is at least half the
            // largest window the peer offered (3), or when the override timeout expires (4).
            // With data in flight the next ACK brings the window on; with none, the persist
            // timer is the override (Linux: `tcp_snd_wnd_test` fails, the probe timer's
            // `tcp_write_wakeup` then sends what fits), one RTO later.
            // New data only: a resend after a timeout (SND.NXT below SND.MAX) goes with what
            // the window takes, as Linux's `__tcp_retransmit_skb` sends it.
            let window_cut = !sack_cut && n < room && n < unsent && !self.snd_nxt.before(self.snd_max);
            if window_cut && n < self.max_snd_wnd / 2 && !sws_override {
                self.sws_held = in_flight == 0;
                return;
            }
            if !self.send_segment(ctx, self.snd_nxt, n, fin_here) {
                return;
            }
        }
    }

    /// RFC 5681 §4.1: "a TCP SHOULD set cwnd to no more than RW before beginning
    /// transmission if the TCP has not sent data in an interval exceeding the retransmission
    /// timeout". As Linux (`tcp_slow_start_after_idle_check` when new data is queued, with
    /// `tcp_cwnd_restart`): idle means nothing in flight, and the time is counted from the
    /// last data segment sent (`lsndtime`, set in `tcp_event_data_sent`), not from the last
    /// segment received, so a server that answers after a long pause restarts too. New data
    /// waiting with nothing in flight is the moment Linux checks (the data was just queued).
    ///
    /// Nothing in flight is SND.MAX = SND.UNA (Linux `packets_out == 0`), not SND.NXT = SND.UNA:
    /// a timeout sets SND.NXT back to SND.UNA with data still out, and that is loss recovery,
    /// not idleness. Checked once per application write that found nothing in flight
    /// (`idle_check`), as Linux checks when data is queued: a window the peer held shut,
    /// keeping that data from going, does not halve cwnd again when it opens.
    fn restart_cwnd_after_idle(&mut self, ctx: &mut Ctx<'_>) {
        if !std::mem::take(&mut self.idle_check) {
            return;
        }
        if !ctx.cfg.slow_start_after_idle || self.snd_max != self.snd_una || self.unsent_bytes() == 0 {
            return;
        }
        let idle = Duration::from_millis(u64::from(ms32(ctx.now).wrapping_sub(self.last_data_sent)));
        let rto = self.rtt.rto();
        if idle > rto {
            let iw = self.smss.saturating_mul(ctx.cfg.initial_cwnd.max(1));
            self.cc.restart_after_idle(idle, rto, iw);
        }
    }

    /// Sends `len` data bytes starting at `seq` (and the FIN after them if `fin`), advancing
    /// SND.NXT when `seq` is SND.NXT. Returns false when no frame was available.
    fn send_segment(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, len: u32, fin: bool) -> bool {
        let off = seq.distance_from(self.data_seq()) as usize;
        let (a, b) = self.sndbuf.peek(off, len as usize);
        let mut flags = TcpFlags::ACK;
        let end_of_queue = off + (len as usize) >= self.sndbuf.len();
        if len > 0 && end_of_queue {
            flags = flags | TcpFlags::PSH;
        }
        if fin {
            flags = flags | TcpFlags::FIN;
        }
        let seg = OutSegment {
            seq,
            ack: self.rcv_nxt,
            flags,
            window: self.window_field(false),
            options: self.options(ctx.now),
            payload: (a, b),
        };
        let old_max = self.snd_max;
        let is_retrans = seq.before(old_max);
        let sent = send_out(ctx, &self.tuple(), &seg);
        if sent {
            let (flags, ack, window) = (seg.flags, seg.ack, seg.window);
            self.note_sent(flags, ack, window);
        }
        if len > 0 {
            // Linux `tcp_event_data_sent`: every segment with data, a retransmission too.
            self.last_data_sent = ms32(ctx.now);
        }
        // Without a free frame the segment is treated as sent and lost (as Linux treats a
        // failed transmit): SND.NXT moves and the retransmission timer is armed, so a SYN,
        // FIN or data is never left without a timer.
        let end = seq.add(len + u32::from(fin));
        if is_retrans {
            ctx.counters.tcp_retrans_segs += 1;
            // Karn: no RTT sample from retransmitted data.
            self.rtt_timing = None;
        } else if self.rtt_timing.is_none() && !self.ts_ok {
            self.rtt_timing = Some(Timed { end, at: ctx.now });
        }
        if seq == self.snd_nxt {
            self.snd_nxt = end;
        }
        if self.snd_nxt.after(self.snd_max) {
            self.snd_max = self.snd_nxt;
        }
        self.arm_rto(ctx.now);
        if is_retrans {
            self.reo.on_retransmit();
            self.rack_on_retransmit(ctx, seq, end.min(old_max));
        }
        // A segment that straddles SND.MAX (go-back-N reaching new data) sends the part beyond
        // it for the first time.
        if end.after(old_max) {
            self.rack_on_send(ctx, end);
        }
        if !is_retrans {
            // RFC 8985 §7.2: new data went out; the probe timer covers the new tail.
            self.schedule_loss_probe(ctx);
        }
        sent
    }

    /// Fast retransmit / NewReno partial ACK: re-send one segment at SND.UNA.
    fn retransmit_first(&mut self, ctx: &mut Ctx<'_>) {
        self.retransmit_at(ctx, self.snd_una, self.smss);
    }

    /// Re-sends up to `max_len` bytes of queued data from `seq` (at or after SND.UNA), with
    /// the FIN if they reach it and it was sent. Returns the sequence space re-sent (0: none).
    pub(super) fn retransmit_at(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, max_len: u32) -> u32 {
        let queued = (self.sndbuf.len() as u32).saturating_sub(seq.distance_from(self.data_seq()));
        // A retransmission never reaches past SND.MAX: bytes never sent would go out without
        // SND.MAX moving, and the peer's ACK for them would then read as acknowledging unsent
        // data (RFC 9293 §3.10.7.4) and be refused, wedging both ends. That happened when the
        // original segment had been shortened to make room for SACK blocks and the
        // retransmission, carrying none, had room for more.
        let sent = self.snd_max.distance_from(seq);
        let len = queued.min(max_len).min(self.payload_room()).min(sent);
        let fin = self.fin_queued && !self.fin_acked && len == queued && self.snd_max.after(self.fin_seq());
        if len == 0 && !fin {
            return 0;
        }
        self.send_segment(ctx, seq, len, fin);
        len + u32::from(fin)
    }

    // ---------------------------------------------------------------------------------------
    // Timeouts (RFC 9293 §3.10.8)
    // ---------------------------------------------------------------------------------------

    /// Fires every timer due at `now`.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let due = |t: Option<Instant>| t.is_some_and(|d| d <= now);
        if due(self.timers.time_wait) {
            // TIME-WAIT TIMEOUT: delete the TCB, enter CLOSED.
            self.timers.clear_all();
            self.set_state(ctx, State::Closed);
            return;
        }
        if due(self.timers.fin_wait2) {
            self.timers.fin_wait2 = None;
            ctx.counters.tcp_ext_tcp_fin_wait2_timeouts += 1;
            self.enter_closed(ctx, CloseReason::TimedOut);
            return;
        }
        if due(self.timers.pto) {
            self.timers.pto = None;
            self.on_pto(ctx);
        }
        if due(self.timers.rack) {
            self.timers.rack = None;
            self.on_rack_timer(ctx);
        }
        if due(self.timers.rto) {
            self.timers.rto = None;
            self.on_rto(ctx);
            if self.state == State::Closed {
                return;
            }
        }
        if due(self.timers.persist) {
            self.timers.persist = None;
            self.on_persist(ctx);
            if self.state == State::Closed {
                return;
            }
        }
        if due(self.timers.keepalive) {
            self.timers.keepalive = None;
            self.on_keepalive(ctx);
            if self.state == State::Closed {
                return;
            }
        }
        if due(self.timers.delack) {
            self.timers.delack = None;
            ctx.counters.tcp_ext_tcp_delayed_acks += 1;
            self.ack_now = true;
            self.dirty = true;
        }
    }

    fn retry_limit(&self, cfg: &Config) -> u8 {
        match self.state {
            // Passive SYN-RECEIVED lives in the SYN queue (`tcp_synack_retries`); a TCB in
            // SYN-RECEIVED came from a simultaneous open, and its SYN-ACKs continue the SYN's
            // retries under `tcp_syn_retries`, as Linux's `tcp_write_timeout` counts both
            // states against `icsk_syn_retries`.
            State::SynSent => cfg.syn_retries,
            State::SynReceived if !self.passive => cfg.syn_retries,
            State::SynReceived => cfg.synack_retries,
            _ if self.app_closed => cfg.orphan_retries,
            _ => cfg.retries2,
        }
    }

    /// RETRANSMISSION TIMEOUT: back off (RFC 6298 (5.5)), collapse cwnd (RFC 5681 §3.1),
    /// go back to SND.UNA and send again; past the retry limit, abort.
    fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd_una == self.snd_max {
            return;
        }
        ctx.counters.tcp_ext_tcp_timeouts += 1;
        if self.snd_wnd == 0 && self.state.is_synchronized() && !self.app_closed {
            self.on_rto_zero_window(ctx);
            return;
        }
        if self.retries >= self.retry_limit(ctx.cfg) {
            ctx.counters.tcp_ext_tcp_abort_on_timeout += 1;
            if matches!(self.state, State::SynSent | State::SynReceived) {
                ctx.counters.tcp_attempt_fails += 1;
            }
            self.enter_closed(ctx, CloseReason::TimedOut);
            return;
        }
        let first = self.retries == 0;
        self.retries += 1;
        // What the peer SACKed stays SACKed, and go-back-N from SND.UNA skips it (see
        // `send_data`), unless the data at SND.UNA itself is SACKed: a receiver that SACKs what
        // it does not acknowledge has dropped it (reneged), and everything is sent again. RFC
        // 2018 §8 lets a sender turn the SACKed bits off at every timeout; Linux keeps them
        // (`tcp_timeout_mark_lost`, TcpExtTCPSACKReneging), which spares a lossy path the
        // resending of a window the peer holds, one slow-start round after another.
        if self.sack_reneged() {
            ctx.counters.tcp_ext_tcp_sack_reneging += 1;
            self.scoreboard = None;
        }
        // Linux `tcp_retransmit_timer`: a timeout ends any probe episode.
        self.tlp = None;
        self.timers.pto = None;
        self.rack_on_rto();
        self.rtt.backoff(ctx.cfg.rto_max);
        self.rtt_timing = None;
        let flight = self.flight();
        if first {
            self.cc.on_rto(self.snd_max, flight, self.smss);
        } else {
            // RFC 5681 §3.1 equation (4) is for a segment not yet resent by the timer: a
            // repeated timeout keeps ssthresh (Linux `tcp_enter_loss`) and restarts at one MSS.
            self.cc.on_repeated_rto(self.smss);
        }
        self.snd_nxt = self.snd_una;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            ctx.counters.tcp_ext_tcp_syn_retrans += 1;
        }
        self.dirty = true;
        self.output(ctx);
        self.restart_rto(ctx.now);
    }

    /// The end of what F-RTO may count as sent only once, before the timeout: the timeout's
    /// recovery point, or the start of the first piece above go-back-N's position that was
    /// itself a retransmission before the timeout (a loss probe's copy of the last segment, an
    /// RFC 6675 rescue), whichever is lower. A SACK for such a copy proves nothing about the
    /// originals (Linux counts only never-retransmitted segments for FLAG_ORIG_SACK_ACKED).
    fn frto_originals_end(&self) -> SeqNum {
        let (nxt, high) = (self.snd_nxt, self.cc.recover);
        self.rack
            .as_deref()
            .into_iter()
            .flat_map(|r| r.log.pieces(self.snd_una))
            .filter(|p| p.retrans && p.end.after(nxt))
            .map(|p| p.start.max(nxt))
            .fold(high, SeqNum::min)
    }

    /// F-RTO found the last timeout spurious (`process_ack`): its window reduction is undone
    /// (RFC 4015 §3, `Congestion::undo_rto`) and go-back-N stops, since what it had yet to
    /// resend was delivered; a hole that is really there is left to SACK recovery and RACK, as
    /// Linux's undo unmarks the lost segments (`tcp_undo_cwnd_reduction`).
    fn undo_spurious_rto(&mut self, ctx: &mut Ctx<'_>) {
        ctx.counters.tcp_ext_tcp_spurious_rtos += 1;
        self.cc.undo_rto(self.smss, self.snd_una);
        self.retries = 0;
        if self.snd_nxt.before(self.snd_max) {
            self.snd_nxt = self.snd_max;
        }
        if self.snd_una != self.snd_max {
            self.restart_rto(ctx.now);
            self.schedule_loss_probe(ctx);
        }
        self.dirty = true;
    }

    /// The retransmission timer fired while the peer advertises a zero window over data in
    /// flight (it shrank the window, RFC 9293 §3.8.6 / §3.8.6.1, MUST-34/35). Nothing can be
    /// sent, so this is not a loss: the retransmission of the first segment serves as a window
    /// probe and the retry limit is not spent while the peer keeps answering. As Linux
    /// (`tcp_retransmit_timer`, "receiver dastardly shrinks window", and
    /// `tcp_rtx_probe0_timed_out`), the connection is given up only when nothing acceptable
    /// has come back for twice the maximum RTO; orphans go the normal way (retry limit).
    fn on_rto_zero_window(&mut self, ctx: &mut Ctx<'_>) {
        let silent = Duration::from_millis(u64::from(ms32(ctx.now).wrapping_sub(self.last_ack_rcvd)));
        if silent > ctx.cfg.rto_max.saturating_mul(2) {
            ctx.counters.tcp_ext_tcp_abort_on_timeout += 1;
            self.enter_closed(ctx, CloseReason::TimedOut);
            return;
        }
        self.rtt.backoff(ctx.cfg.rto_max);
        self.rtt_timing = None;
        ctx.counters.tcp_ext_tcp_zero_window_probes += 1;
        self.retransmit_first(ctx);
        self.restart_rto(ctx.now);
    }

    /// Sends <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>: an old sequence number that any live peer
    /// answers with an ACK carrying its window (zero-window probe and keepalive, as Linux's
    /// `tcp_xmit_probe_skb`).
    fn send_probe(&mut self, ctx: &mut Ctx<'_>) {
        let seg = OutSegment {
            options: self.options(ctx.now),
            ..OutSegment::control(self.snd_una.sub(1), self.rcv_nxt, TcpFlags::ACK, self.window_field(false))
        };
        self.transmit(ctx, &seg);
    }

    fn on_persist(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd_wnd != 0 {
            if self.sws_held {
                // The override timeout: what the window takes goes now.
                self.send_data_sws(ctx, true);
            }
            return;
        }
        // An orphan (the application closed) may not be held open by a peer that answers every
        // probe with a zero window (a Sockstress-style hold of its send buffer): RFC 1122
        // §4.2.2.17 leaves it to the resource policy, and Linux's `tcp_probe_timer` gives a
        // SOCK_DEAD socket up once its backed-off probe interval reaches TCP_RTO_MAX (`alive`
        // false, `tcp_orphan_retries` 0), about 5 minutes with a 200 ms RTO (0.2 + 0.4 + ... +
        // 102.4 + 120 s); so do we, and after 15 probes (`tcp_retries2`) whatever the RTO, so
        // that a small RTO or a large RTO.max cannot keep an orphan for ever.
        let interval = self.rtt.rto().saturating_mul(1u64 << self.persist_backoff.min(15));
        let orphan_done = self.app_closed && (interval >= ctx.cfg.rto_max || self.persist_backoff >= 15);
        if self.probes >= self.retry_limit(ctx.cfg) || orphan_done {
            ctx.counters.tcp_ext_tcp_abort_on_timeout += 1;
            self.enter_closed(ctx, CloseReason::TimedOut);
            return;
        }
        self.probes += 1;
        self.persist_backoff = self.persist_backoff.saturating_add(1);
        ctx.counters.tcp_ext_tcp_zero_window_probes += 1;
        self.send_probe(ctx);
        // Exponential backoff of the probe interval (RFC 9293 §3.8.6.1 lets it grow). Its own
        // exponent: `probes` is reset by every answer, the interval only when the window opens.
        let shift = u32::from(self.persist_backoff.min(10));
        let iv = self.rtt.rto().saturating_mul(1u64 << shift).min(ctx.cfg.rto_max);
        self.timers.persist = Some(ctx.now + iv);
    }

    fn on_keepalive(&mut self, ctx: &mut Ctx<'_>) {
        if !matches!(self.state, State::Established | State::CloseWait | State::FinWait2) {
            return;
        }
        if self.snd_una != self.snd_max || !self.sndbuf.is_empty() {
            // Data in flight: the retransmission timer watches the peer already.
            self.arm_keepalive(ctx.cfg, ctx.now);
            return;
        }
        if self.probes >= ctx.cfg.keepalive_probes {
            // The peer may be back (rebooted, or only its path was down) holding a half-open
            // connection: Linux's `tcp_keepalive_timer` tells it with a RST
            // (`tcp_send_active_reset`) before the connection is dropped; so do we.
            ctx.counters.tcp_ext_tcp_abort_on_timeout += 1;
            self.send_reset_and_close(ctx, CloseReason::TimedOut);
            return;
        }
        self.probes += 1;
        ctx.counters.tcp_ext_tcp_keepalive += 1;
        self.send_probe(ctx);
        self.timers.keepalive = Some(ctx.now + ctx.cfg.keepalive_intvl);
    }

    // ---------------------------------------------------------------------------------------
    // User calls (RFC 9293 §3.10.2 - §3.10.5)
    // ---------------------------------------------------------------------------------------

    /// Asks for a `Writable` event once acknowledged data frees send space. A short `send`
    /// arms it by itself; a sender that sizes its writes by the free space never writes short
    /// and arms it here when it finds none.
    pub fn want_writable(&mut self) {
        self.want_writable = true;
    }

    /// SEND: queues as much of `data` as the send buffer takes. Returns the bytes taken.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, ApiError> {
        match self.state {
            State::Closed => return Err(ApiError::Closed),
            State::Listen => return Err(ApiError::NotConnected),
            _ if self.fin_queued => return Err(ApiError::Shutdown),
            _ => {}
        }
        let n = self.sndbuf.push(data);
        if n < data.len() {
            self.want_writable = true;
        }
        if n > 0 {
            self.dirty = true;
            self.idle_check |= self.snd_max == self.snd_una;
        }
        Ok(n)
    }

    /// RECEIVE: copies buffered in-order data out. Returns 0 at end of stream (FIN received and
    /// everything read) or when nothing is buffered yet.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, ApiError> {
        let n = self.rcvbuf.read(out);
        self.after_read(n);
        if n == 0 && self.state == State::Closed && self.close_reason != Some(CloseReason::Normal) {
            return Err(ApiError::Closed);
        }
        Ok(n)
    }

    /// Zero-copy read: `f` sees the buffered data (at most two slices) and returns how many
    /// bytes it consumed.
    pub fn recv_with(&mut self, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> usize {
        let (a, b) = self.rcvbuf.peek(0, self.rcvbuf.len());
        let n = f(a, b).min(a.len() + b.len());
        self.rcvbuf.consume(n);
        self.after_read(n);
        n
    }

    /// After the application read `n` bytes: maybe announce the larger window.
    fn after_read(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if self.rcvbuf.is_empty() {
            self.readable_raised = false;
            if self.asm.is_empty() {
                self.rcvbuf.release_if_idle();
            }
        }
        if !self.state.is_synchronized() || self.state.fin_received() {
            return;
        }
        // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): a window update only once the right
        // edge can move by min(RCV.BUFF/2, Eff.snd.MSS), a closed window included.
        if self.edge_growth() >= self.sws_threshold() as i32 {
            self.ack_now = true;
            self.dirty = true;
        }
    }

    pub fn readable_bytes(&self) -> usize {
        self.rcvbuf.len()
    }

    /// Shut down the sending side: a FIN follows the queued data (RFC 9293 §3.10.4 CLOSE for
    /// the send direction; reading continues).
    pub fn shutdown(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ApiError> {
        match self.state {
            State::Closed => return Err(ApiError::Closed),
            State::Listen => return Err(ApiError::NotConnected),
            State::SynSent => {
                // "delete the TCB, return "ok"" for a CLOSE in SYN-SENT.
                self.enter_closed(ctx, CloseReason::Normal);
                return Ok(());
            }
            _ if self.fin_queued => return Ok(()),
            _ => {}
        }
        self.fin_queued = true;
        self.dirty = true;
        match self.state {
            State::Established => self.set_state(ctx, State::FinWait1),
            //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.4
            //# If no SENDs have been issued and there is no pending data to send, then form a
            //# FIN segment and send it, and enter FIN-WAIT-1 state; otherwise, queue for
            //# processing after entering ESTABLISHED state.
            // Linux `tcp_close_state` likewise (SYN_RECV -> FIN_WAIT1). The SYN-ACK stays
            // unacknowledged in FIN-WAIT-1 (`output` resends it, `check_ack` completes it).
            State::SynReceived if self.sndbuf.is_empty() => self.set_state(ctx, State::FinWait1),
            State::CloseWait => self.set_state(ctx, State::LastAck),
            _ => {}
        }
        Ok(())
    }

    /// CLOSE: the application releases the handle. Unread data makes it an abort, as Linux
    /// does (RFC 2525 §2.17).
    pub fn close(&mut self, ctx: &mut Ctx<'_>) {
        if self.app_closed {
            return;
        }
        if !self.rcvbuf.is_empty() && self.state.is_synchronized() && self.state != State::TimeWait {
            ctx.counters.tcp_ext_tcp_abort_on_close += 1;
            self.send_reset_and_close(ctx, CloseReason::Aborted);
            self.app_closed = true;
            return;
        }
        let _ = self.shutdown(ctx);
        self.app_closed = true;
        if self.state == State::FinWait2 {
            self.timers.fin_wait2 = Some(ctx.now + ctx.cfg.fin_timeout);
        }
    }

    /// ABORT (RFC 9293 §3.10.5): send a RST in synchronized states and enter CLOSED.
    pub fn abort(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(
            self.state,
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait
        ) {
            self.send_reset_and_close(ctx, CloseReason::Aborted);
        } else if self.state != State::Closed {
            self.enter_closed(ctx, CloseReason::Aborted);
        }
        self.app_closed = true;
    }

    /// RFC 5927 §4.1 / RFC 8201: an ICMP packet-too-big for a segment in flight. Lowers the MSS
    /// (never below the floor) and re-sends what is in flight at the new size.
    pub fn on_packet_too_big(&mut self, ctx: &mut Ctx<'_>, mtu: u32, quoted_seq: SeqNum) -> Result<(), DropReason> {
        // RFC 5927 §4.1: act only if the quoted sequence number is in SND.UNA..SND.NXT.
        if !quoted_seq.in_window(self.snd_una, self.snd_max.distance_from(self.snd_una)) {
            ctx.counters.tcp_ext_out_of_window_icmps += 1;
            return Err(DropReason::IcmpOutOfWindow);
        }
        // RFC 8201 §4: the path MTU never goes below IPv6's minimum link MTU; Linux
        // (`tcp_v6_err`) ignores a packet-too-big that says less.
        if self.tuple().is_ipv6() && mtu < IPV6_MIN_MTU {
            return Err(DropReason::IcmpBadMtu);
        }
        let hdrs = if self.tuple().is_ipv6() { 60 } else { 40 };
        let ts_len = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        let new = mtu.saturating_sub(hdrs + ts_len).max(u32::from(ctx.cfg.min_snd_mss).saturating_sub(ts_len));
        ctx.counters.tcp_ext_tcp_mtup_icmp += 1;
        if new < self.smss {
            self.smss = new;
            // Re-send what is in flight at the new size (Linux `tcp_simple_retransmit`).
            self.snd_nxt = self.snd_una;
            self.dirty = true;
        }
        Ok(())
    }

    /// An ICMP destination unreachable, time exceeded or parameter problem quoting a segment of
    /// this connection (RFC 9293 §3.9.2.2).
    ///
    /// The quoted sequence number must lie in SND.UNA..SND.NXT (RFC 5927 §4.1), which in
    /// SYN-SENT means exactly ISS: a blind attacker must guess it. While the connection is being
    /// opened (SYN-SENT, active SYN-RECEIVED) the error ends the attempt, hard or soft: RFC 9293
    /// §3.9.2.2 notes this widespread treatment of soft errors during establishment (RFC 5461
    /// §4), and Linux's `tcp_v4_err` does the same. In synchronized states no error aborts
    /// (MUST-56 for soft ones; for hard ones RFC 9293 notes that implementations commonly do
    /// not abort, and Linux does not): it is recorded for the application (SHLD-25).
    pub fn on_icmp_error(&mut self, ctx: &mut Ctx<'_>, err: IcmpError, quoted_seq: SeqNum) -> Result<(), DropReason> {
        let IcmpError::Unreachable { refused, .. } = err else {
            return Ok(());
        };
        if !quoted_seq.in_window(self.snd_una, self.snd_max.distance_from(self.snd_una)) {
            ctx.counters.tcp_ext_out_of_window_icmps += 1;
            return Err(DropReason::IcmpOutOfWindow);
        }
        match self.state {
            State::SynSent | State::SynReceived => {
                ctx.counters.tcp_attempt_fails += 1;
                let reason = if refused { CloseReason::Refused } else { CloseReason::Unreachable };
                self.enter_closed(ctx, reason);
            }
            _ => self.soft_error = Some(err),
        }
        Ok(())
    }

    /// Counters and state as `ss -ti` would show them.
    pub fn info(&self) -> TcbInfo {
        TcbInfo {
            state: self.state,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            snd_wnd: self.snd_wnd,
            rcv_nxt: self.rcv_nxt,
            rcv_wnd: self.rcv_window(),
            smss: self.smss,
            cwnd: self.cc.cwnd,
            ssthresh: self.cc.ssthresh,
            rto: self.rtt.rto(),
            srtt: self.rtt.srtt(),
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            ts_ok: self.ts_ok,
            sack_ok: self.sack_ok,
            sack_ranges: self.sb().ranges().len() as u8,
            unacked: self.flight(),
            retries: self.retries,
            soft_error: self.soft_error,
        }
    }

    /// TS.Recent, when timestamps are in use.
    pub fn ts_recent(&self) -> Option<u32> {
        if self.ts_ok {
            Some(self.ts_recent)
        } else {
            None
        }
    }
}

/// Emits a segment and counts it (TcpOutSegs, TcpOutRsts, or a transmit failure).
fn send_out(ctx: &mut Ctx<'_>, t: &FourTuple, seg: &OutSegment<'_>) -> bool {
    if !emit(ctx.tx, t, seg, ctx.cfg.ttl) {
        ctx.counters.tcp_ext_tx_no_frame += 1;
        ctx.counters.drop(DropReason::TxExhausted);
        return false;
    }
    ctx.counters.tcp_out_segs += 1;
    if seg.flags.rst() {
        ctx.counters.tcp_out_rsts += 1;
    }
    true
}

/// A snapshot of a connection's variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcbInfo {
    pub state: State,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    pub snd_wnd: u32,
    pub rcv_nxt: SeqNum,
    pub rcv_wnd: u32,
    pub smss: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub rto: Duration,
    pub srtt: Option<Duration>,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub ts_ok: bool,
    pub sack_ok: bool,
    /// Ranges on the SACK scoreboard (bounded by [`super::sack::SCOREBOARD_RANGES`]).
    pub sack_ranges: u8,
    pub unacked: u32,
    pub retries: u8,
    /// The last ICMP error reported and not acted on (RFC 9293 SHLD-25).
    pub soft_error: Option<IcmpError>,
}

/// Errors of the user calls (RFC 9293 §3.10 "error: ..." responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("connection does not exist")]
    NoConnection,
    #[error("connection closed")]
    Closed,
    #[error("connection not yet open")]
    NotConnected,
    #[error("connection closing: sending side shut down")]
    Shutdown,
    #[error("connection already exists")]
    AlreadyExists,
    #[error("address already in use")]
    AddrInUse,
    #[error("insufficient resources")]
    NoResources,
    #[error("address family mismatch")]
    BadAddress,
}
