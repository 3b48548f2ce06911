//! LISTEN: the SYN queue of compact SYN-RECEIVED entries, the accept queue, and SYN cookies.
//!
//! RFC 9293 §3.10.7.2 (LISTEN) and §3.10.7.4 for passive SYN-RECEIVED; RFC 4987 §3.6 for
//! cookies. Linux analogues: `tcp_conn_request`, `tcp_check_req`, `cookie_v4_check`.

use super::conn::{Negotiated, SynAckTiming, Tcb};
use super::counters::DropReason;
use super::emit::OutSegment;
use super::event::Event;
use super::icmp::IcmpError;
use super::secrets::{isn, ts_clock, ts_offset};
use super::shard::{Shard, TimerKey, Verdict};
use super::syncookie::{self, CookieOptions};
use super::time_wait::table::TwSlot;
use super::tuple::FourTuple;
use super::TxSink;
use crate::time::{Duration, Instant};
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};
use core::net::IpAddr;
use std::collections::VecDeque;

/// A listening port.
#[derive(Debug)]
pub struct Listener {
    pub port: u16,
    /// Bound address; `None` listens on every local address.
    pub addr: Option<IpAddr>,
    /// min(backlog, somaxconn): bound of the accept queue and of this listener's SYN queue.
    pub backlog: usize,
    pub accept_queue: VecDeque<super::tuple::ConnId>,
    pub syn_queue_len: usize,
    /// When this listener last answered a SYN with a cookie (Linux
    /// `tcp_synq_no_recent_overflow`): cookies are only checked while one may be out there.
    pub last_cookie: Option<Instant>,
}

/// A compact SYN-RECEIVED entry: what the SYN queue holds per half-open connection.
#[derive(Debug, Clone, Copy)]
pub struct SynEntry {
    pub port: u16,
    pub iss: SeqNum,
    pub irs: SeqNum,
    pub neg: Negotiated,
    /// Window scale we offered in the SYN-ACK (0 when the peer offered none).
    pub rcv_wscale: u8,
    pub retries: u8,
    /// The SYN-ACK went again for a retransmitted SYN (not counted in `retries`, which drive
    /// the timer): the handshake is no RTT sample any more (Karn; Linux counts it in the
    /// request's `num_retrans`).
    pub resent: bool,
    /// When the SYN-ACK is due again. While `retries` is 0 it is the first SYN-ACK's send
    /// time plus `rto_initial`, which is how the handshake's RTT is timed (`synack_timing`).
    pub deadline: Instant,
    /// When the last rate-limited answer went out (Linux `last_oow_ack_time` of a request).
    pub last_oow_ack: Option<Instant>,
    /// When the first SYN-ACK went: its timestamp, echoed by the final ACK, shows that the
    /// resent ones were not needed (`synack_timing`).
    pub first_sent: Instant,
}

/// What a valid cookie ACK tells about the handshake it completes.
struct CookieHandshake {
    iss: SeqNum,
    irs: SeqNum,
    neg: Negotiated,
    rcv_wscale: u8,
}

/// How long after the last cookie a cookie ACK is still checked.
const COOKIE_WINDOW: Duration = Duration::from_secs(syncookie::COUNTER_PERIOD_SECS * 2);

impl Shard {
    /// RFC 9293 §3.10.7.2: a segment for a listening port with no connection or SYN-queue entry.
    pub(crate) fn on_listen(
        &mut self,
        now: Instant,
        t: FourTuple,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
        tw_iss: Option<SeqNum>,
    ) -> Verdict {
        let f = seg.flags;
        // First, check for a RST: ignore it.
        if f.rst() {
            return self.dropped(DropReason::RstNoConnection);
        }
        // Second, check for an ACK: a cookie, or "any acknowledgment is bad" -> <SEQ=SEG.ACK><CTL=RST>.
        if f.ack() && !f.syn() {
            return self.on_cookie_ack(now, t, seg, tx);
        }
        if f.ack() {
            // A SYN-ACK to a listener (Figure 11, line 3): reset it (rate-limited: it matches
            // nothing).
            self.send_rst_unmatched(now, &t, seg, tx);
            return self.dropped(DropReason::NoListener);
        }
        // Third, check for a SYN.
        if f.syn() {
            return self.on_syn(now, t, seg, tx, tw_iss);
        }
        // Fourth, other data or control: drop.
        self.dropped(DropReason::NoAck)
    }

    /// RFC 9293 §3.10.7.2 third: a SYN. Either a SYN-queue entry, or (queue full, or always) a
    /// cookie; Linux's `tcp_conn_request`.
    fn on_syn(
        &mut self,
        now: Instant,
        t: FourTuple,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
        tw_iss: Option<SeqNum>,
    ) -> Verdict {
        let port = t.local.port();
        let (backlog, syn_len, accept_len) = match self.listeners.get(&port) {
            Some(l) => (l.backlog, l.syn_queue_len, l.accept_queue.len()),
            None => return self.dropped(DropReason::NoListener),
        };
        // A full accept queue drops the SYN, cookies or not (Linux: ListenOverflows).
        if accept_len >= backlog {
            self.counters.tcp_ext_listen_overflows += 1;
            self.counters.tcp_ext_listen_drops += 1;
            return self.dropped(DropReason::AcceptQueueFull);
        }
        let queue_full = syn_len >= backlog || self.syn_queue.len() >= self.cfg.max_syn_backlog;
        use super::config::SynCookies;
        // Deviation: Linux never answers a SYN that reuses a TIME-WAIT tuple with a cookie
        // (`tcp_conn_request`: `&& !isn`), so the new incarnation starts at ISS = the old
        // SND.NXT + 65537 (`tw_iss`). Here a cookie may answer it: with several cores the SYN
        // was handed to the core holding TIME-WAIT, and a cookie lets the connection be made
        // where the client's packets land, instead of living on that core with every segment
        // handed over. The cookie's ISS is not above the old SND.NXT; timestamps (PAWS) keep
        // old duplicates out, as RFC 6191 relies on.
        let want_cookie = match self.cfg.syncookies {
            SynCookies::Always => true,
            SynCookies::OnOverflow => queue_full,
            SynCookies::Off => {
                if queue_full {
                    self.counters.tcp_ext_tcp_req_q_full_drop += 1;
                    self.counters.tcp_ext_listen_drops += 1;
                    return self.dropped(DropReason::SynQueueFull);
                }
                false
            }
        };
        let o = &seg.options;
        let offered_ws = o.window_scale.is_some() && self.cfg.window_scaling;
        let rcv_wscale = if offered_ws { self.cfg.rcv_wscale() } else { 0 };
        let ts_ok = o.timestamps.is_some() && self.cfg.timestamps;
        let sack_ok = o.sack_permitted && self.cfg.sack;
        let local_mss = if t.is_ipv6() { self.cfg.mss_v6 } else { self.cfg.mss_v4 };
        let tso = ts_offset(&self.secrets.ts_key, &t);
        if want_cookie {
            if queue_full {
                self.counters.tcp_ext_tcp_req_q_full_do_cookies += 1;
            }
            // RFC 9293 §3.7.1 (MUST-15): without the option, 536 on IPv4 and 1220 on IPv6.
            let default_mss = if t.is_ipv6() { super::conn::DEFAULT_MSS_V6 } else { super::conn::DEFAULT_MSS_V4 };
            let peer_mss = o.mss.unwrap_or(default_mss).min(local_mss);
            let (cookie, _mss) =
                syncookie::generate(&self.secrets.cookie_key, &t, seg.seq, peer_mss, syncookie::counter(now));
            let ecn = f_ecn_setup(seg.flags);
            let tsval = if ts_ok {
                let copts = CookieOptions {
                    window_scale: if offered_ws { o.window_scale } else { None },
                    sack_permitted: sack_ok,
                    ecn,
                };
                Some(syncookie::encode_ts_options(ts_clock(now).wrapping_add(tso), copts))
            } else {
                None
            };
            if let Some(l) = self.listeners.get_mut(&port) {
                l.last_cookie = Some(now);
            }
            if let Some(o) = &self.owners {
                o.cookie_sent(port, now);
            }
            self.counters.tcp_ext_syncookies_sent += 1;
            // Without timestamps the cookie cannot carry window scale or SACK-permitted, so the
            // SYN-ACK must not offer them (Linux `tcp_clear_options` for such a cookie).
            let (offered_ws, sack_ok) = if ts_ok { (offered_ws, sack_ok) } else { (false, false) };
            let opts = synack_options(
                local_mss,
                offered_ws.then_some(rcv_wscale),
                sack_ok,
                tsval.map(|v| (v, o.timestamps.map_or(0, |x| x.0))),
            );
            self.send_synack(&t, cookie, seg.seq.add(1), opts, tx);
            return Verdict::Consumed;
        }
        let iss = match tw_iss {
            Some(i) => i,
            None => isn(&self.secrets.isn_key, now, &t),
        };
        let entry = SynEntry {
            port,
            iss,
            irs: seg.seq,
            neg: Negotiated {
                peer_mss: o.mss,
                snd_wscale: if offered_ws { o.window_scale } else { None },
                sack_ok,
                ts_recent: if ts_ok { o.timestamps.map(|x| x.0) } else { None },
            },
            rcv_wscale,
            retries: 0,
            resent: false,
            deadline: now + self.cfg.rto_initial,
            last_oow_ack: None,
            first_sent: now,
        };
        self.syn_queue.insert(t, entry);
        self.touched(&t);
        if let Some(l) = self.listeners.get_mut(&port) {
            l.syn_queue_len += 1;
        }
        self.schedule(TimerKey::Syn(t), entry.deadline);
        self.send_synack_for(now, &t, &entry, tx);
        Verdict::Consumed
    }

    /// Sends <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> for a SYN-queue entry.
    pub(crate) fn send_synack_for(&mut self, now: Instant, t: &FourTuple, e: &SynEntry, tx: &mut dyn TxSink) {
        let local_mss = if t.is_ipv6() { self.cfg.mss_v6 } else { self.cfg.mss_v4 };
        let ts = e.neg.ts_recent.map(|peer| (ts_clock(now).wrapping_add(ts_offset(&self.secrets.ts_key, t)), peer));
        let opts = synack_options(local_mss, e.neg.snd_wscale.map(|_| e.rcv_wscale), e.neg.sack_ok, ts);
        self.send_synack(t, e.iss, e.irs.add(1), opts, tx);
    }

    /// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> for a SYN-queue entry, with the window scaled by the
    /// shift we offered and the timestamp option once negotiated (RFC 7323 §3.2).
    fn send_synrecv_ack(&mut self, now: Instant, t: &FourTuple, e: &SynEntry, tx: &mut dyn TxSink) {
        let shift = if e.neg.snd_wscale.is_some() { e.rcv_wscale } else { 0 };
        let window = (self.cfg.rcv_buf >> shift).min(65535) as u16;
        let ts = e.neg.ts_recent.map(|peer| (ts_clock(now).wrapping_add(ts_offset(&self.secrets.ts_key, t)), peer));
        let seg = OutSegment {
            options: TcpOptions { timestamps: ts, ..TcpOptions::default() },
            ..OutSegment::control(e.iss.add(1), e.irs.add(1), TcpFlags::ACK, window)
        };
        self.transmit_raw(t, &seg, tx);
    }

    fn send_synack(&mut self, t: &FourTuple, iss: SeqNum, ack: SeqNum, options: TcpOptions, tx: &mut dyn TxSink) {
        let window = self.cfg.rcv_buf.min(65535) as u16;
        let seg = OutSegment { options, ..OutSegment::control(iss, ack, TcpFlags::SYN | TcpFlags::ACK, window) };
        self.transmit_raw(t, &seg, tx);
    }

    /// §3.10.7.4 for a passive SYN-RECEIVED (a SYN-queue entry).
    pub(crate) fn on_syn_received(
        &mut self,
        now: Instant,
        t: FourTuple,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
    ) -> Verdict {
        let Some(e) = self.syn_queue.get(&t).copied() else {
            return self.dropped(DropReason::NoListener);
        };
        let rcv_nxt = e.irs.add(1);
        let snd_nxt = e.iss.add(1);
        // The window our SYN-ACK offered (never scaled, RFC 7323 §2.2).
        let wnd = (self.cfg.rcv_buf as u32).min(65535);
        let f = seg.flags;
        if f.rst() {
            // RFC 5961 §3.2 in SYN-RECEIVED: exact -> back to LISTEN; in window -> challenge ACK
            // (rate-limited, RFC 5961 §7). Linux resets a request on any in-window RST; the
            // exact-match rule keeps a blind RST from doing it.
            if seg.seq == rcv_nxt {
                self.remove_syn_entry(&t);
                self.counters.tcp_attempt_fails += 1;
                return Verdict::Consumed;
            }
            if seg.seq.in_window(rcv_nxt, wnd) && self.syn_recv_answer_allowed(now, &t) {
                self.counters.tcp_ext_tcp_challenge_ack += 1;
                self.send_synrecv_ack(now, &t, &e, tx);
            }
            return self.dropped(DropReason::InvalidRst);
        }
        // RFC 7323 §5.3 R1 holds in SYN-RECEIVED too (Linux `tcp_check_req`, `paws_reject`):
        // TS.Recent is the SYN's TSval, and a segment with an older one is an old duplicate. A
        // RST is exempt, as in the synchronized states (`Tcb::check_paws`).
        let paws_reject = !f.rst() && super::time_wait::paws_rejects(e.neg.ts_recent, seg);
        if f.syn() && !f.ack() && !f.fin() && !paws_reject && seg.seq == e.irs {
            // The peer retransmitted its SYN: our SYN-ACK was lost; send it again, at most once
            // per `tcp_invalid_ratelimit` (Linux `tcp_check_req`).
            if self.syn_recv_answer_allowed(now, &t) {
                self.send_synack_for(now, &t, &e, tx);
                if let Some(q) = self.syn_queue.get_mut(&t) {
                    q.resent = true;
                }
            }
            return Verdict::Consumed;
        }
        // Fifth step first, as Linux's `tcp_check_req` does: an ACK that is not for our SYN-ACK
        // (SND.UNA < SEG.ACK =< SND.NXT fails) goes to the listener whatever its sequence
        // number. The client may be answering a cookie SYN-ACK: cookies were out when its first
        // SYN came, and a retransmission of that SYN made this entry later (or the other way
        // round); a valid cookie replaces the entry. Anything else: <SEQ=SEG.ACK><CTL=RST>.
        if f.ack() && seg.ack != snd_nxt {
            if let Ok(c) = self.check_cookie(now, &t, seg) {
                // The cookie's connection replaces the entry (`from_queue` removes it once the
                // connection holds the tuple).
                let timing = SynAckTiming::default();
                return self.complete_passive(now, t, c.iss, c.irs, c.neg, c.rcv_wscale, timing, seg, tx, true);
            }
            // Rate-limited as a segment that matches nothing: one spoofed SYN makes an entry,
            // and a flood of bad ACKs to it would otherwise be reflected 1:1 past the bucket.
            self.send_rst_unmatched(now, &t, seg, tx);
            return self.dropped(DropReason::InvalidAck);
        }
        // First, the sequence number must be in the window; an unacceptable segment (a SYN
        // included: the SYN check comes after this one) gets an ACK, rate-limited, and the
        // entry stays.
        let len = seg.segment_len();
        let acceptable = seg.seq.in_window(rcv_nxt, wnd) || (len > 0 && seg.seq.add(len - 1).in_window(rcv_nxt, wnd));
        if !acceptable || paws_reject {
            if self.syn_recv_answer_allowed(now, &t) {
                self.send_synrecv_ack(now, &t, &e, tx);
            }
            if paws_reject {
                self.counters.tcp_ext_paws_estab_rejected += 1;
                return self.dropped(DropReason::Paws);
            }
            return self.dropped(DropReason::OutOfWindow);
        }
        if f.syn() {
            // RFC 9293 §3.10.7.4 fourth: a SYN in the window returns a passive SYN-RECEIVED
            // to LISTEN; Linux (`tcp_check_req`, embryonic reset) tells the peer with a RST.
            self.remove_syn_entry(&t);
            self.counters.tcp_attempt_fails += 1;
            self.send_rst_for(&t, seg, tx);
            return self.dropped(DropReason::SynChallenge);
        }
        if !f.ack() {
            return self.dropped(DropReason::NoAck);
        }
        let timing = self.synack_timing(&t, &e, seg);
        self.complete_passive(now, t, e.iss, e.irs, e.neg, e.rcv_wscale, timing, seg, tx, true)
    }

    /// What a SYN-queue entry knows about its SYN-ACK (Linux `tcp_synack_rtt_meas` reads
    /// `snt_synack` unless the request was retransmitted), given the final ACK `seg`.
    fn synack_timing(&self, t: &FourTuple, e: &SynEntry, seg: &TcpRepr<'_>) -> SynAckTiming {
        let retransmitted = e.retries > 0 || e.resent;
        let sent = (!retransmitted).then(|| e.deadline - self.cfg.rto_initial);
        // Linux counts every SYN-ACK resent (`num_retrans`) and wants a timeout among them.
        let resent = u32::from(e.retries) + u32::from(e.resent);
        // The final ACK echoes the first SYN-ACK's timestamp: that one arrived, and the resent
        // ones were spurious (a dormant radio, a path longer than the 1 s initial RTO), so the
        // connection keeps its initial window (Linux `tcp_try_undo_spurious_syn`).
        // The keyed hash for that TSval is taken only for such a handshake, not on every open.
        let spurious = || {
            let first_tsval = ts_clock(e.first_sent).wrapping_add(ts_offset(&self.secrets.ts_key, t));
            e.neg.ts_recent.is_some() && seg.options.timestamps.is_some_and(|(_, ecr)| ecr == first_tsval)
        };
        let lossy = e.retries > 0 && resent > u32::from(super::conn::LOSS_WINDOW_AFTER) && !spurious();
        SynAckTiming { sent, retransmitted, lossy }
    }

    /// Cookies for every listening port may be out there, sent by someone other than this
    /// shard: the XDP program's SYN shield (`bpf/shield.h`) answers SYNs before they reach a
    /// core. While it does, the engine calls this (at least once per second), so cookie ACKs
    /// are checked (`check_cookie`) for `COOKIE_WINDOW` (128 s) after the last call, as after a
    /// cookie this shard sent itself.
    pub fn note_cookies_out(&mut self, now: Instant) {
        for l in self.listeners.values_mut() {
            l.last_cookie = Some(now);
        }
    }

    /// A cookie ACK for a tuple still in TIME-WAIT here. With the SYN shield on, the SYN that
    /// reused the tuple was answered by the XDP program, which cannot see TIME-WAIT, so the
    /// entry is still here when the handshake's ACK arrives. The ACK stands for that SYN
    /// (sequence number SEG.SEQ - 1, the ACK's timestamps): when TIME-WAIT would have let
    /// that SYN open a new incarnation (RFC 6191, `time_wait::on_segment` says `Reuse`) and
    /// the cookie is valid, TIME-WAIT ends and the connection is made, as if the stack had
    /// answered the SYN with a cookie itself. `None`: not such an ACK; TIME-WAIT judges it.
    ///
    /// The old incarnation's own ACK (SEG.SEQ = RCV.NXT, SEG.ACK = SND.NXT: the peer ACKing
    /// our FIN again) is never taken for one, nor is anything with SYN, RST or FIN.
    pub(crate) fn cookie_ack_in_time_wait(
        &mut self,
        now: Instant,
        t: FourTuple,
        slot: TwSlot,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
    ) -> Option<Verdict> {
        let f = seg.flags;
        if !f.ack() || f.syn() || f.rst() || f.fin() {
            return None;
        }
        let e = self.time_wait.entry(slot)?;
        if seg.seq == e.rcv_nxt && seg.ack == e.snd_nxt {
            return None;
        }
        let listening = self.listeners.get(&t.local.port()).is_some_and(|l| l.addr.is_none_or(|a| a == t.local.ip()));
        if !listening {
            return None;
        }
        let syn = TcpRepr { seq: seg.seq.sub(1), flags: TcpFlags::SYN, payload: &[], ..*seg };
        if super::time_wait::on_segment(&e, &syn, self.cfg.rfc1337) != super::time_wait::TwVerdict::Reuse {
            return None;
        }
        let c = self.check_cookie(now, &t, seg).ok()?;
        // The entry goes before the connection comes (one tuple, one table), but the flow
        // directory is told only once the connection holds the tuple: another core reading
        // it in between would find the tuple held by nobody and make a second connection from
        // the next segment (it carries the same cookie). If no connection is made (accept
        // queue or table full), TIME-WAIT stays.
        self.time_wait.remove(slot);
        let v =
            self.complete_passive(now, t, c.iss, c.irs, c.neg, c.rcv_wscale, SynAckTiming::default(), seg, tx, false);
        if self.find(&t).is_some() {
            self.counters.tcp_ext_tw_recycled += 1;
        } else {
            self.time_wait.insert(&t, &e);
        }
        self.touched(&t);
        Some(v)
    }

    /// RFC 4987 §3.6: an ACK that matches nothing may carry a cookie.
    fn on_cookie_ack(&mut self, now: Instant, t: FourTuple, seg: &TcpRepr<'_>, tx: &mut dyn TxSink) -> Verdict {
        match self.check_cookie(now, &t, seg) {
            Ok(c) => {
                let timing = SynAckTiming::default();
                self.complete_passive(now, t, c.iss, c.irs, c.neg, c.rcv_wscale, timing, seg, tx, false)
            }
            Err(reason) => {
                // Not checked, or a forged or stale cookie (which never creates a
                // connection): the ACK is then what LISTEN says it is, bad, and reset, within
                // the `rst_rate_limit` bucket (a stray-ACK flood lands here).
                self.send_rst_unmatched(now, &t, seg, tx);
                self.dropped(reason)
            }
        }
    }

    /// Validates the cookie an ACK may carry (Linux `cookie_v4_check`): only while cookies may
    /// be out there for its listener (`tcp_synq_no_recent_overflow`), and only with a key of
    /// the current or the previous period. Counts a checked cookie that fails.
    fn check_cookie(&mut self, now: Instant, t: &FourTuple, seg: &TcpRepr<'_>) -> Result<CookieHandshake, DropReason> {
        use super::config::SynCookies;
        let port = t.local.port();
        let here = self.listeners.get(&port).and_then(|l| l.last_cookie);
        let anywhere = self.owners.as_ref().and_then(|o| o.last_cookie(port));
        let recent = [here, anywhere].into_iter().flatten().any(|c| now.saturating_since(c) <= COOKIE_WINDOW);
        let checking = match self.cfg.syncookies {
            SynCookies::Off => false,
            SynCookies::Always => true,
            SynCookies::OnOverflow => recent,
        };
        if !checking {
            return Err(DropReason::NoListener);
        }
        let client_isn = seg.seq.sub(1);
        let keys = [&self.secrets.cookie_key, &self.secrets.cookie_key_prev];
        let mss = match syncookie::check(keys, t, seg.ack, client_isn, syncookie::counter(now)) {
            Ok(m) => m,
            Err(reason) => {
                self.counters.tcp_ext_syncookies_failed += 1;
                return Err(reason);
            }
        };
        let mut neg = Negotiated { peer_mss: Some(mss), ..Negotiated::default() };
        let mut rcv_wscale = 0;
        if let Some((tsval, tsecr)) = seg.options.timestamps {
            if self.cfg.timestamps {
                if let Some(o) = syncookie::decode_ts_options(tsecr) {
                    neg.ts_recent = Some(tsval);
                    neg.sack_ok = o.sack_permitted && self.cfg.sack;
                    if let Some(ws) = o.window_scale {
                        if self.cfg.window_scaling {
                            neg.snd_wscale = Some(ws);
                            rcv_wscale = self.cfg.rcv_wscale();
                        }
                    }
                }
            }
        }
        self.counters.tcp_ext_syncookies_recv += 1;
        Ok(CookieHandshake { iss: seg.ack.sub(1), irs: client_isn, neg, rcv_wscale })
    }

    /// The handshake is complete: a full TCB in ESTABLISHED goes on the accept queue, and the
    /// rest of the segment (data, FIN) is processed by it.
    #[allow(clippy::too_many_arguments)]
    fn complete_passive(
        &mut self,
        now: Instant,
        t: FourTuple,
        iss: SeqNum,
        irs: SeqNum,
        neg: Negotiated,
        rcv_wscale: u8,
        synack: SynAckTiming,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
        from_queue: bool,
    ) -> Verdict {
        let port = t.local.port();
        let (backlog, queued) = match self.listeners.get(&port) {
            Some(l) => (l.backlog, l.accept_queue.len()),
            None => return self.dropped(DropReason::NoListener),
        };
        if queued >= backlog {
            self.counters.tcp_ext_listen_overflows += 1;
            self.counters.tcp_ext_listen_drops += 1;
            if self.cfg.abort_on_overflow {
                if from_queue {
                    self.remove_syn_entry(&t);
                }
                self.send_rst_for(&t, seg, tx);
            }
            // Otherwise the ACK is dropped and the entry kept: the SYN-ACK retransmission
            // makes the client ACK again.
            return self.dropped(DropReason::AcceptQueueFull);
        }
        if self.conn_count() >= self.cfg.max_connections {
            return self.dropped(DropReason::TableFull);
        }
        let tso = ts_offset(&self.secrets.ts_key, &t);
        let id = self.alloc_id();
        let mut tcb = Tcb::established_passive(id, t, &self.cfg, iss, irs, neg, rcv_wscale, tso, seg, synack, now);
        tcb.listener = Some(port);
        self.counters.tcp_passive_opens += 1;
        self.counters.tcp_curr_estab += 1;
        // The connection first, then the SYN-queue entry goes: the flow directory never sees
        // the tuple held by nobody in between (a segment on another core would be reset).
        self.insert_tcb(tcb);
        if from_queue {
            self.remove_syn_entry(&t);
        }
        let became_ready = match self.listeners.get_mut(&port) {
            Some(l) => {
                l.accept_queue.push_back(id);
                l.accept_queue.len() == 1
            }
            None => false,
        };
        if became_ready {
            self.events.push_back(Event::AcceptReady { port });
        }
        // Process whatever else the ACK carried (data, FIN) in ESTABLISHED.
        if !seg.payload.is_empty() || seg.flags.fin() {
            let r = self.with_tcb(now, id, tx, |tcb, ctx| tcb.on_segment(ctx, seg));
            // Queue the connection for output (the ACK of that data or FIN) and its timers.
            self.settle(id);
            if let Some(Err(reason)) = r {
                return self.dropped(reason);
            }
        }
        Verdict::Consumed
    }

    pub(crate) fn remove_syn_entry(&mut self, t: &FourTuple) {
        if let Some(e) = self.syn_queue.remove(t) {
            if let Some(l) = self.listeners.get_mut(&e.port) {
                l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
            }
            self.touched(t);
        }
    }

    /// RFC 5961 §7 / Linux `tcp_oow_rate_limited` for a request: one answer per
    /// `tcp_invalid_ratelimit` to segments that could be part of an ACK loop or a reflection.
    fn syn_recv_answer_allowed(&mut self, now: Instant, t: &FourTuple) -> bool {
        let limit = self.cfg.invalid_ratelimit;
        let Some(e) = self.syn_queue.get_mut(t) else {
            return false;
        };
        match e.last_oow_ack {
            Some(at) if now.saturating_since(at) < limit => {
                self.counters.tcp_ext_tcp_ack_skipped_syn_recv += 1;
                false
            }
            _ => {
                e.last_oow_ack = Some(now);
                true
            }
        }
    }

    /// An ICMP error quoting our SYN-ACK for a SYN-queue entry. As Linux's `tcp_req_err`, the
    /// quoted sequence number must be the entry's ISS (RFC 5927 §4.1), and only the errors
    /// Linux lets end a request do (see `IcmpError::Unreachable::ends_request`).
    pub(crate) fn on_icmp_syn_received(&mut self, t: &FourTuple, err: IcmpError, quoted_seq: SeqNum) -> Verdict {
        let Some(e) = self.syn_queue.get(t) else {
            return self.dropped(DropReason::IcmpNoConnection);
        };
        if quoted_seq != e.iss {
            self.counters.tcp_ext_out_of_window_icmps += 1;
            return self.dropped(DropReason::IcmpOutOfWindow);
        }
        if let IcmpError::Unreachable { ends_request: true, .. } = err {
            self.remove_syn_entry(t);
            self.counters.tcp_attempt_fails += 1;
            self.counters.tcp_ext_listen_drops += 1;
        }
        Verdict::Consumed
    }

    /// SYN-ACK retransmission timer of a SYN-queue entry (`tcp_synack_retries`).
    pub(crate) fn on_syn_timer(&mut self, now: Instant, t: FourTuple, tx: &mut dyn TxSink) {
        let Some(mut e) = self.syn_queue.get(&t).copied() else {
            return;
        };
        if e.deadline > now {
            self.schedule(TimerKey::Syn(t), e.deadline);
            return;
        }
        if e.retries >= self.cfg.synack_retries {
            self.remove_syn_entry(&t);
            return;
        }
        e.retries += 1;
        // RFC 6298 (5.5): double the interval each time.
        e.deadline = now + self.cfg.rto_initial.saturating_mul(1u64 << e.retries.min(16));
        self.syn_queue.insert(t, e);
        self.counters.tcp_retrans_segs += 1;
        self.counters.tcp_ext_tcp_syn_retrans += 1;
        self.send_synack_for(now, &t, &e, tx);
        self.schedule(TimerKey::Syn(t), e.deadline);
    }
}

/// A SYN asks for ECN when it carries both ECE and CWR (RFC 3168 §6.1.1).
fn f_ecn_setup(f: TcpFlags) -> bool {
    f.contains(TcpFlags::ECE | TcpFlags::CWR)
}

/// SYN-ACK options: MSS always; window scale, SACK-permitted and timestamps only when the SYN
/// offered them (RFC 7323 §2.2, §3.2; RFC 2018 §2).
fn synack_options(mss: u16, wscale: Option<u8>, sack: bool, ts: Option<(u32, u32)>) -> TcpOptions {
    TcpOptions { mss: Some(mss), window_scale: wscale, sack_permitted: sack, timestamps: ts, ..TcpOptions::default() }
}
