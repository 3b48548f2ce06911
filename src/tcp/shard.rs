//! The per-core protocol instance: listeners, the SYN queue, the connection table, the
//! TIME-WAIT table, timers, events and counters. Sans-IO: time and frames in, frames and events
//! out.
//!
//! Read RFC 9293 §3.10 before editing. Dispatch order for a segment (RFC 9293 §3.10.7, Linux
//! `tcp_v4_rcv`): an established-or-later TCB, else a SYN-queue entry, else TIME-WAIT, else a
//! listener, else CLOSED.

use super::config::Config;
use super::conn::{ApiError, Ctx, Tcb, TcbInfo};
use super::conn_index::ConnIndex;
use super::counters::{Counters, DropReason};
use super::emit::{emit, OutSegment};
use super::event::Event;
use super::icmp::IcmpError;
use super::listener::{Listener, SynEntry};
use super::owners::FlowOwners;
use super::rst_limit::RstLimiter;
use super::secrets::{isn, ts_offset, Key, Secrets};
use super::state::State;
use super::time_wait::table::TimeWaitTable;
use super::tuple::{ConnId, FourTuple, PackedTuple};
use super::TxSink;
use crate::time::Instant;
use crate::wire::{checksum, ip_proto, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, ParseError, SeqNum};
use crate::wire::{ChecksumCaps, TcpFlags, TcpPacket, TcpRepr};
use core::cmp::Reverse;
use core::net::{IpAddr, SocketAddr};
use hashbrown::HashMap;
use std::collections::{BinaryHeap, VecDeque};

/// The outcome of one received segment (kernel `skb_drop_reason` style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Processed (a reply may have been sent or queued).
    Consumed,
    /// Dropped, and counted under the reason.
    Drop(DropReason),
    /// Nothing here holds the flow, and the engine's directory says shard `.0` does: the
    /// engine hands the frame over (one hop; nothing was changed here).
    Foreign(u16),
}

/// One line of a socket listing ([`Shard::list_sockets`]), as `ss -tan` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockEntry {
    pub state: State,
    /// Local address (`None`: a listener on every address) and port.
    pub local: (Option<IpAddr>, u16),
    /// The peer; `None` for a listener.
    pub remote: Option<SocketAddr>,
    /// LISTEN: connections in the accept queue. Otherwise: bytes received and not yet read.
    pub recv_q: u32,
    /// LISTEN: the backlog. Otherwise: bytes sent and not acknowledged, plus bytes queued.
    pub send_q: u32,
}

/// What a timer-heap entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Conn(ConnId),
    Syn(FourTuple),
}

/// The timer heap is never compacted below this many entries (few in unit tests, so that
/// compaction runs in them all the time).
const TIMER_HEAP_COMPACT_MIN: usize = if cfg!(test) { 16 } else { 1024 };

/// Whether the TCB in slab slot `i` has the tuple `key`.
fn holds(slab: &[Slot], i: u32, key: &PackedTuple) -> bool {
    slab.get(i as usize).and_then(|s| s.tcb.as_deref()).is_some_and(|t| t.has_tuple(key))
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    tcb: Option<Box<Tcb>>,
}

/// One core's TCP.
pub struct Shard {
    pub(crate) cfg: Config,
    pub(crate) secrets: Secrets,
    pub(crate) counters: Counters,
    pub(crate) listeners: HashMap<u16, Listener>,
    /// Tuple to slab index of the TCB that holds it (see `conn_index.rs`).
    conns: ConnIndex,
    slab: Vec<Slot>,
    free: Vec<u32>,
    pub(crate) syn_queue: HashMap<FourTuple, SynEntry>,
    pub(crate) time_wait: TimeWaitTable,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// Heap size at which entries nobody answers to are dropped (see `compact_timers`).
    timers_compact_at: usize,
    pub(crate) events: VecDeque<Event>,
    dirty: Vec<ConnId>,
    /// The engine's flow directory when it runs several shards (see [`FlowOwners`]).
    pub(crate) owners: Option<Box<dyn FlowOwners>>,
    /// Ask the directory about flows held nowhere here (off for a frame another shard handed
    /// over: it is judged here, whatever the directory says by now).
    defer: bool,
    /// The bucket of RSTs to segments that match nothing (`rst_rate_limit`).
    rst_limit: Box<RstLimiter>,
}

impl Shard {
    pub fn new(cfg: Config, secrets: Secrets) -> Self {
        Shard {
            counters: Counters::default(),
            listeners: HashMap::new(),
            conns: ConnIndex::default(),
            slab: Vec::new(),
            free: Vec::new(),
            syn_queue: HashMap::new(),
            time_wait: TimeWaitTable::new(cfg.time_wait, &secrets),
            secrets,
            timers: BinaryHeap::new(),
            timers_compact_at: TIMER_HEAP_COMPACT_MIN,
            events: VecDeque::new(),
            dirty: Vec::new(),
            owners: None,
            defer: false,
            rst_limit: Box::default(),
            cfg,
        }
    }

    /// Joins the engine's flow directory: from now on this shard reports the flows it holds,
    /// and a segment for a flow it does not hold but another shard does comes back as
    /// [`Verdict::Foreign`]. Flows already held are reported at once.
    pub fn set_owners(&mut self, owners: Box<dyn FlowOwners>) {
        for id in self.conn_ids() {
            if let Some(t) = self.tcb(id).map(|t| t.tuple()) {
                owners.claim(&t);
            }
        }
        for t in self.syn_queue.keys() {
            owners.claim(t);
        }
        for t in self.time_wait.tuples() {
            owners.claim(&t);
        }
        self.owners = Some(owners);
        self.defer = true;
    }

    /// Asks the directory (on, the default with one) or judges every flow here (off: for a
    /// frame another shard handed over).
    pub fn set_defer(&mut self, on: bool) {
        self.defer = on && self.owners.is_some();
    }

    /// After the state held for `t` changed (a SYN-queue entry, TCB or TIME-WAIT entry came or
    /// went): tells the directory whether this shard still holds it.
    pub(crate) fn touched(&self, t: &FourTuple) {
        if let Some(o) = &self.owners {
            if self.owns(t) {
                o.claim(t);
            } else {
                o.release(t);
            }
        }
    }

    /// The shard the directory names for a flow held nowhere here.
    fn elsewhere(&self, t: &FourTuple) -> Option<u16> {
        if !self.defer {
            return None;
        }
        self.owners.as_ref().and_then(|o| o.owner_elsewhere(t))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Installs a new SYN-cookie key; cookies made with the previous one stay valid.
    pub fn rotate_cookie_key(&mut self, key: Key) {
        self.secrets.rotate_cookie_key(key);
    }

    /// Connections with a TCB (every state but LISTEN, passive SYN-RECEIVED and TIME-WAIT
    /// entries of the compact table).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    pub fn syn_queue_len(&self) -> usize {
        self.syn_queue.len()
    }

    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }

    /// Pending timer entries (bounded by a small multiple of the entries that own them;
    /// TIME-WAIT entries have none).
    pub fn timer_heap_len(&self) -> usize {
        self.timers.len()
    }

    /// Slots of the TIME-WAIT ring: its entries, and slots of entries that ended early or moved
    /// on a restart, reclaimed within 2·MSL (see `time_wait::table`).
    pub fn time_wait_slots(&self) -> usize {
        self.time_wait.slots()
    }

    /// Bytes the TIME-WAIT table has allocated (ring and index).
    pub fn time_wait_bytes(&self) -> usize {
        self.time_wait.allocated_bytes()
    }

    // -------------------------------------------------------------------------------------
    // Application interface (RFC 9293 §3.10.1 - §3.10.6)
    // -------------------------------------------------------------------------------------

    /// OPEN (passive): listen on `port` (on every local address, or on `addr` only).
    pub fn listen(&mut self, port: u16, addr: Option<IpAddr>, backlog: usize) -> Result<(), ApiError> {
        if self.listeners.contains_key(&port) {
            return Err(ApiError::AddrInUse);
        }
        self.listeners.insert(
            port,
            Listener {
                port,
                addr,
                backlog: backlog.clamp(1, self.cfg.somaxconn.max(1)),
                accept_queue: VecDeque::new(),
                syn_queue_len: 0,
                last_cookie: None,
            },
        );
        Ok(())
    }

    /// Takes the next established connection from `port`'s accept queue. Raises `Readable` /
    /// `PeerClosed` at once for what arrived before the application took it.
    pub fn accept(&mut self, port: u16) -> Option<ConnId> {
        loop {
            let id = self.listeners.get_mut(&port)?.accept_queue.pop_front()?;
            let Some(tcb) = self.tcb_mut_raw(id) else {
                continue;
            };
            tcb.listener = None;
            let readable = tcb.readable_bytes() > 0;
            let peer_closed = tcb.state.fin_received();
            let closed = tcb.state == State::Closed;
            if readable {
                self.events.push_back(Event::Readable(id));
            }
            if peer_closed {
                self.events.push_back(Event::PeerClosed(id));
            }
            if closed {
                if let Some(r) = self.tcb(id).and_then(|t| t.close_reason) {
                    self.events.push_back(Event::Closed(id, r));
                }
            }
            return Some(id);
        }
    }

    /// OPEN (active): a connection from `local` to `remote`; the SYN leaves on the next
    /// [`Shard::poll_transmit`].
    pub fn connect(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) -> Result<ConnId, ApiError> {
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(ApiError::BadAddress);
        }
        // The TCB keeps the tuple without flow label or scope id, and so must every table.
        let t = FourTuple::new(local, remote).identity();
        if self.owns(&t) || self.owners.as_ref().is_some_and(|o| o.owner_elsewhere(&t).is_some()) {
            return Err(ApiError::AlreadyExists);
        }
        if self.conn_count() >= self.cfg.max_connections {
            return Err(ApiError::NoResources);
        }
        let iss = isn(&self.secrets.isn_key, now, &t);
        let tso = ts_offset(&self.secrets.ts_key, &t);
        let id = self.alloc_id();
        let tcb = Tcb::connect(id, t, &self.cfg, iss, tso, now);
        self.insert_tcb(tcb);
        self.counters.tcp_active_opens += 1;
        self.mark_dirty(id);
        Ok(id)
    }

    /// SEND: queues data; it leaves on the next [`Shard::poll_transmit`].
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, ApiError> {
        let tcb = self.tcb_mut_raw(id).ok_or(ApiError::NoConnection)?;
        let n = tcb.send(data)?;
        if n > 0 {
            self.mark_dirty(id);
        }
        Ok(n)
    }

    /// RECEIVE: copies in-order data into `out`. `Ok(0)` means nothing buffered (check
    /// [`Shard::state`] for end of stream).
    pub fn recv(&mut self, id: ConnId, out: &mut [u8]) -> Result<usize, ApiError> {
        let tcb = self.tcb_mut_raw(id).ok_or(ApiError::NoConnection)?;
        let r = tcb.recv(out);
        if tcb.dirty {
            self.mark_dirty(id);
        }
        r
    }

    /// Zero-copy RECEIVE: `f` sees the buffered bytes and returns how many it consumed.
    pub fn recv_with(&mut self, id: ConnId, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> Result<usize, ApiError> {
        let tcb = self.tcb_mut_raw(id).ok_or(ApiError::NoConnection)?;
        let n = tcb.recv_with(f);
        if tcb.dirty {
            self.mark_dirty(id);
        }
        Ok(n)
    }

    /// Bytes waiting to be read.
    pub fn readable(&self, id: ConnId) -> usize {
        self.tcb(id).map_or(0, |t| t.readable_bytes())
    }

    /// Free space in the send buffer.
    pub fn send_capacity(&self, id: ConnId) -> usize {
        self.tcb(id).map_or(0, |t| t.sndbuf.free())
    }

    /// Asks for a `Writable` event once send space frees (see [`Tcb::want_writable`]).
    pub fn want_writable(&mut self, id: ConnId) {
        if let Some(t) = self.tcb_mut_raw(id) {
            t.want_writable();
        }
    }

    /// Half-close: send FIN after the queued data; keep receiving.
    pub fn shutdown(&mut self, now: Instant, id: ConnId, tx: &mut dyn TxSink) -> Result<(), ApiError> {
        let r = self.with_tcb(now, id, tx, |tcb, ctx| tcb.shutdown(ctx)).ok_or(ApiError::NoConnection)?;
        self.settle(id);
        r
    }

    /// CLOSE: release the handle. The connection finishes its close on its own (FIN, TIME-WAIT)
    /// and the handle becomes invalid.
    pub fn close(&mut self, now: Instant, id: ConnId, tx: &mut dyn TxSink) -> Result<(), ApiError> {
        self.with_tcb(now, id, tx, |tcb, ctx| tcb.close(ctx)).ok_or(ApiError::NoConnection)?;
        self.settle(id);
        Ok(())
    }

    /// ABORT: RST and release the handle.
    pub fn abort(&mut self, now: Instant, id: ConnId, tx: &mut dyn TxSink) -> Result<(), ApiError> {
        self.with_tcb(now, id, tx, |tcb, ctx| tcb.abort(ctx)).ok_or(ApiError::NoConnection)?;
        self.settle(id);
        Ok(())
    }

    /// CLOSE of a listener (RFC 9293 §3.10.4, LISTEN state): `port` stops accepting, and from
    /// now on a SYN to it meets a closed port (RST, §3.10.7.1). As Linux does when a listening
    /// socket closes (`inet_csk_listen_stop`), connections the application has not accepted yet
    /// are reset, and half-open SYN-queue entries are dropped (their final ACK then finds no
    /// listener and is answered with RST). Accepted connections are untouched. Returns how
    /// many were reset or dropped.
    pub fn unlisten(&mut self, now: Instant, port: u16, tx: &mut dyn TxSink) -> Result<usize, ApiError> {
        let l = self.listeners.remove(&port).ok_or(ApiError::NoConnection)?;
        let mut n = 0;
        for id in l.accept_queue {
            if self.with_tcb(now, id, tx, |tcb, ctx| tcb.abort(ctx)).is_some() {
                n += 1;
                self.settle(id);
            }
        }
        let half_open: Vec<FourTuple> =
            self.syn_queue.iter().filter(|(_, e)| e.port == port).map(|(t, _)| *t).collect();
        for t in half_open {
            self.remove_syn_entry(&t);
            n += 1;
        }
        Ok(n)
    }

    /// The ports in LISTEN.
    pub fn listening_ports(&self) -> Vec<u16> {
        self.listeners.keys().copied().collect()
    }

    /// ABORT of every connection with a TCB (an engine that stops: RST to each synchronized
    /// peer, RFC 9293 §3.10.5, rather than leaving it to half-open discovery). TIME-WAIT and
    /// SYN-queue entries hold no peer that waits for data and are left as they are. Returns
    /// how many were aborted.
    pub fn abort_all(&mut self, now: Instant, tx: &mut dyn TxSink) -> usize {
        let ids: Vec<ConnId> = self.conn_ids().collect();
        let mut n = 0;
        for id in ids {
            if self.with_tcb(now, id, tx, |tcb, ctx| tcb.abort(ctx)).is_some() {
                n += 1;
                self.settle(id);
            }
        }
        n
    }

    /// STATUS (RFC 9293 §3.10.6).
    pub fn state(&self, id: ConnId) -> Option<State> {
        self.tcb(id).map(|t| t.state)
    }

    pub fn info(&self, id: ConnId) -> Option<TcbInfo> {
        self.tcb(id).map(|t| t.info())
    }

    pub fn tuple(&self, id: ConnId) -> Option<FourTuple> {
        self.tcb(id).map(|t| t.tuple())
    }

    /// State of whatever holds `t`: a TCB, a SYN-queue entry (SYN-RECEIVED) or a TIME-WAIT
    /// entry.
    pub fn state_of(&self, t: &FourTuple) -> Option<State> {
        let t = &t.identity();
        if let Some(id) = self.conn_get(t) {
            return self.state(id);
        }
        if self.syn_queue.contains_key(t) {
            return Some(State::SynReceived);
        }
        if self.time_wait.contains(t) {
            return Some(State::TimeWait);
        }
        None
    }

    pub fn find(&self, t: &FourTuple) -> Option<ConnId> {
        self.conn_get(t)
    }

    /// Is `t` a flow this shard holds state for (connection, SYN queue, TIME-WAIT)?
    pub fn owns(&self, t: &FourTuple) -> bool {
        let t = &t.identity();
        self.conn_get(t).is_some() || self.syn_queue.contains_key(t) || self.time_wait.contains(t)
    }

    /// A read-only page of the socket listing (`ss -tan`): up to `max` entries from position
    /// `from` appended to `out`. Returns the position to continue from, or `None` once the
    /// listing is complete. Positions run over listeners, then the connection slab, then the
    /// SYN queue, then TIME-WAIT; a page never reorders anything, so its cost is `max` entries
    /// plus, in the two hash tables, a walk over the `from` entries before it (hashbrown has
    /// no seek). Like `ss` reading `/proc/net/tcp`, pages taken while the tables change may
    /// miss or repeat an entry that moved meanwhile. Allocates nothing beyond `out`.
    pub fn list_sockets(&self, from: usize, max: usize, out: &mut Vec<SockEntry>) -> Option<usize> {
        let (nl, ns, nq) = (self.listeners.len(), self.slab.len(), self.syn_queue.len());
        let mut pos = from;
        let mut room = max;
        // Listeners (LISTEN): Recv-Q is the accept queue, Send-Q the backlog, as Linux shows.
        if pos < nl {
            for l in self.listeners.values().skip(pos).take(room) {
                out.push(SockEntry {
                    state: State::Listen,
                    local: (l.addr, l.port),
                    remote: None,
                    recv_q: l.accept_queue.len() as u32,
                    send_q: l.backlog as u32,
                });
                pos += 1;
                room -= 1;
            }
        }
        // TCBs by slab index (an O(1) seek): only the one the table holds for its tuple, so
        // a TCB in TIME-WAIT or CLOSED that the application still holds is not shown twice.
        while room > 0 && pos >= nl && pos < nl + ns {
            let slot = self.slab.get(pos - nl);
            pos += 1;
            let Some(tcb) = slot.and_then(|s| s.tcb.as_deref()) else { continue };
            if self.conn_get(&tcb.tuple()) != Some(tcb.id) {
                continue;
            }
            out.push(SockEntry {
                state: tcb.state,
                local: (Some(tcb.tuple().local.ip()), tcb.tuple().local.port()),
                remote: Some(tcb.tuple().remote),
                recv_q: tcb.rcvbuf.len() as u32,
                send_q: tcb.sndbuf.len() as u32,
            });
            room -= 1;
        }
        let compact = |t: &FourTuple, state: State| SockEntry {
            state,
            local: (Some(t.local.ip()), t.local.port()),
            remote: Some(t.remote),
            recv_q: 0,
            send_q: 0,
        };
        if room > 0 && pos >= nl + ns && pos < nl + ns + nq {
            for t in self.syn_queue.keys().skip(pos - nl - ns).take(room) {
                out.push(compact(t, State::SynReceived));
                pos += 1;
                room -= 1;
            }
        }
        let end = nl + ns + nq + self.time_wait.len();
        if room > 0 && pos >= nl + ns + nq && pos < end {
            for t in self.time_wait.tuples().skip(pos - nl - ns - nq).take(room) {
                out.push(compact(&t, State::TimeWait));
                pos += 1;
            }
        }
        (pos < end).then_some(pos)
    }

    /// The next application event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // -------------------------------------------------------------------------------------
    // Frames in
    // -------------------------------------------------------------------------------------

    /// Parses an IPv4 or IPv6 packet carrying TCP and processes the segment.
    pub fn handle_ip(&mut self, now: Instant, packet: &[u8], tx: &mut dyn TxSink) -> Verdict {
        match parse_ip_tcp(packet) {
            Ok((src, dst, seg)) => self.handle_segment(now, dst, src, &seg, tx),
            Err(e) => {
                self.counters.tcp_in_errs += 1;
                if e == ParseError::BadChecksum {
                    self.counters.tcp_in_csum_errors += 1;
                    return self.dropped(DropReason::BadChecksum);
                }
                self.dropped(DropReason::Malformed)
            }
        }
    }

    /// RFC 9293 §3.10.7 SEGMENT ARRIVES: `seg` came from `remote` to `local` (addresses; the
    /// ports are in `seg`).
    pub fn handle_segment(
        &mut self,
        now: Instant,
        local: IpAddr,
        remote: IpAddr,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
    ) -> Verdict {
        self.counters.tcp_in_segs += 1;
        if !is_valid_source(remote) || seg.src_port == 0 || seg.dst_port == 0 {
            return self.dropped(DropReason::BadAddress);
        }
        let t = FourTuple::new(SocketAddr::new(local, seg.dst_port), SocketAddr::new(remote, seg.src_port));
        if let Some(id) = self.conn_get(&t) {
            // SYN+RST and SYN+FIN reach a connection: RFC 9293 §3.10.7.3/§3.10.7.4 judge them
            // by their bits in order (RST before SYN), as Linux's `tcp_rcv_synsent_state_process`
            // and `tcp_validate_incoming` do.
            let r = self.with_tcb(now, id, tx, |tcb, ctx| tcb.on_segment(ctx, seg));
            self.settle(id);
            return match r {
                Some(Err(reason)) => self.dropped(reason),
                _ => Verdict::Consumed,
            };
        }
        if self.syn_queue.contains_key(&t) {
            // A SYN-queue entry judges SYN+RST and SYN+FIN as RFC 9293 §3.10.7.4 does, RST
            // first (Linux `tcp_check_req`: an embryonic reset).
            return self.on_syn_received(now, t, seg, tx);
        }
        if seg.flags.is_impossible() {
            // No connection here: LISTEN (and a TIME-WAIT record, which would hand a SYN on to
            // the listener) drops SYN+RST and SYN+FIN, as Linux's `tcp_rcv_state_process` does
            // in LISTEN. A flow another shard holds gets it there.
            if let Some(o) = self.elsewhere(&t) {
                self.counters.tcp_in_segs = self.counters.tcp_in_segs.saturating_sub(1);
                return Verdict::Foreign(o);
            }
            self.counters.tcp_in_errs += 1;
            return self.dropped(DropReason::BadFlags);
        }
        let mut tw_iss = None;
        if let Some(slot) = self.time_wait.find(&t) {
            if let Some(v) = self.cookie_ack_in_time_wait(now, t, slot, seg, tx) {
                return v;
            }
            // Still there: a cookie ACK that made no connection leaves TIME-WAIT as it was.
            let Some(slot) = self.time_wait.find(&t) else { return self.dropped(DropReason::NoListener) };
            match self.on_time_wait(now, t, slot, seg, tx) {
                Ok(v) => return v,
                Err(iss) => tw_iss = Some(iss),
            }
        }
        // With several shards, a flow held nowhere here may be held by another one (its
        // packets moved queue): the directory says which, in O(1), and the frame goes there
        // before LISTEN or CLOSED judge it. A SYN too: another shard's SYN-queue entry or
        // TIME-WAIT decides a retransmitted or reusing SYN.
        if tw_iss.is_none() {
            if let Some(o) = self.elsewhere(&t) {
                // Counted where it is processed.
                self.counters.tcp_in_segs = self.counters.tcp_in_segs.saturating_sub(1);
                return Verdict::Foreign(o);
            }
        }
        if let Some(l) = self.listeners.get(&t.local.port()) {
            if l.addr.is_none_or(|a| a == local) {
                let v = self.on_listen(now, t, seg, tx, tw_iss);
                if tw_iss.is_some() {
                    // RFC 6191: TIME-WAIT ends only when the new SYN was taken.
                    if v == Verdict::Consumed {
                        self.time_wait_reused(&t);
                    }
                }
                return v;
            }
        }
        if tw_iss.is_some() {
            // A SYN that could reuse the tuple, but nobody listens: TIME-WAIT stays and ACKs.
            self.time_wait_keep(now, &t, tx);
            return Verdict::Consumed;
        }
        self.reset_unknown(now, &t, seg, tx)
    }

    /// RFC 9293 §3.10.7.1 CLOSED: answer anything but a RST with a RST, within the
    /// `rst_rate_limit` bucket.
    pub fn reset_unknown(&mut self, now: Instant, t: &FourTuple, seg: &TcpRepr<'_>, tx: &mut dyn TxSink) -> Verdict {
        if seg.flags.rst() {
            return self.dropped(DropReason::RstNoConnection);
        }
        self.send_rst_unmatched(now, t, seg, tx);
        self.dropped(DropReason::NoListener)
    }

    /// [`Shard::send_rst_for`] for a segment that matches nothing (CLOSED, or a bad ACK to a
    /// listener or a SYN-queue entry), if the `rst_rate_limit` bucket allows; otherwise only
    /// counted (see [`super::rst_limit`]).
    pub(crate) fn send_rst_unmatched(&mut self, now: Instant, t: &FourTuple, seg: &TcpRepr<'_>, tx: &mut dyn TxSink) {
        if seg.flags.rst() {
            return;
        }
        let (rate, burst) = (self.cfg.rst_rate_limit, self.cfg.rst_rate_burst);
        if !self.rst_limit.allow(now, t.remote.ip(), seg.segment_len() > 0, rate, burst) {
            self.counters.tcp_ext_rst_rate_limited += 1;
            return;
        }
        self.send_rst_for(t, seg, tx);
    }

    /// The reset of RFC 9293 §3.10.7.1 for an offending segment: <SEQ=SEG.ACK><CTL=RST> if it
    /// had an ACK, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Never for a RST.
    pub(crate) fn send_rst_for(&mut self, t: &FourTuple, seg: &TcpRepr<'_>, tx: &mut dyn TxSink) {
        if seg.flags.rst() {
            return;
        }
        let out = if seg.flags.ack() {
            OutSegment::control(seg.ack, SeqNum(0), TcpFlags::RST, 0)
        } else {
            OutSegment::control(SeqNum(0), seg.seq.add(seg.segment_len()), TcpFlags::RST | TcpFlags::ACK, 0)
        };
        self.transmit_raw(t, &out, tx);
    }

    /// Sends a segment that belongs to no TCB (RSTs, SYN-ACKs, TIME-WAIT ACKs).
    pub(crate) fn transmit_raw(&mut self, t: &FourTuple, seg: &OutSegment<'_>, tx: &mut dyn TxSink) {
        if emit(tx, t, seg, self.cfg.ttl) {
            self.counters.tcp_out_segs += 1;
            if seg.flags.rst() {
                self.counters.tcp_out_rsts += 1;
            }
        } else {
            self.counters.tcp_ext_tx_no_frame += 1;
            self.counters.drop(DropReason::TxExhausted);
        }
    }

    /// An ICMP error about a segment we sent (RFC 9293 §3.9.2.2, RFC 5927, RFC 5461): packet
    /// too big lowers the MSS of a connection; an unreachable ends a connection attempt or is
    /// recorded (see [`Tcb::on_icmp_error`]); for a SYN-queue entry see
    /// `Shard::on_icmp_syn_received`.
    pub fn handle_icmp_error(
        &mut self,
        now: Instant,
        quote: &crate::wire::icmp::QuotedTcp,
        err: IcmpError,
        tx: &mut dyn TxSink,
    ) -> Verdict {
        let t = FourTuple::new(SocketAddr::new(quote.src, quote.src_port), SocketAddr::new(quote.dst, quote.dst_port));
        let seq = quote.seq;
        let Some(id) = self.conn_get(&t) else {
            if self.syn_queue.contains_key(&t) {
                return self.on_icmp_syn_received(&t, err, seq);
            }
            if let Some(o) = self.elsewhere(&t) {
                return Verdict::Foreign(o);
            }
            return self.dropped(DropReason::IcmpNoConnection);
        };
        let r = self.with_tcb(now, id, tx, |tcb, ctx| match err {
            IcmpError::PacketTooBig { mtu } => tcb.on_packet_too_big(ctx, mtu, seq),
            IcmpError::Unreachable { .. } => tcb.on_icmp_error(ctx, err, seq),
        });
        self.settle(id);
        match r {
            Some(Err(reason)) => self.dropped(reason),
            _ => Verdict::Consumed,
        }
    }

    pub(crate) fn dropped(&mut self, r: DropReason) -> Verdict {
        self.counters.drop(r);
        Verdict::Drop(r)
    }

    /// Counts a TCP segment the layer below could not parse (TcpInErrs, TcpInCsumErrors).
    pub fn count_in_error(&mut self, bad_checksum: bool) {
        self.counters.tcp_in_segs += 1;
        self.counters.tcp_in_errs += 1;
        if bad_checksum {
            self.counters.tcp_in_csum_errors += 1;
            self.counters.drop(DropReason::BadChecksum);
        } else {
            self.counters.drop(DropReason::Malformed);
        }
    }

    /// Counts a segment another shard received and handed to this one, the flow's holder.
    pub fn count_foreign(&mut self) {
        self.counters.tcp_ext_foreign_shard += 1;
    }

    // -------------------------------------------------------------------------------------
    // Frames out, timers
    // -------------------------------------------------------------------------------------

    /// Sends everything due on connections touched since the last call: data, FINs, ACKs.
    /// The engine calls it once per batch, after the application ran.
    pub fn poll_transmit(&mut self, now: Instant, tx: &mut dyn TxSink) {
        let dirty = core::mem::take(&mut self.dirty);
        for id in &dirty {
            self.with_tcb(now, *id, tx, |tcb, ctx| tcb.output(ctx));
            if let Some(t) = self.tcb_mut_raw(*id) {
                t.in_dirty = false;
            }
            self.settle(*id);
        }
        let mut d = dirty;
        d.clear();
        if self.dirty.is_empty() {
            self.dirty = d;
        }
    }

    /// Earliest instant at which [`Shard::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        match (timer, self.time_wait.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at or before `now`, then transmits what they caused.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut dyn TxSink) {
        self.expire_time_wait(now);
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Conn(id) => {
                    let Some(tcb) = self.tcb_mut_raw(id) else {
                        continue;
                    };
                    if !tcb.queued.take(at) {
                        continue; // stale (see `Wakeups`)
                    }
                    self.with_tcb(now, id, tx, |tcb, ctx| tcb.on_timeout(ctx));
                    self.settle(id);
                }
                TimerKey::Syn(t) => self.on_syn_timer(now, t, tx),
            }
        }
        self.poll_transmit(now, tx);
    }

    pub(crate) fn schedule(&mut self, key: TimerKey, at: Instant) {
        self.timers.push(Reverse((at, key)));
        if self.timers.len() >= self.timers_compact_at {
            self.compact_timers();
        }
    }

    /// Drops the heap entries that would be skipped when they pop: those of freed TCBs and of
    /// gone SYN-queue entries, those a TCB no longer remembers (see `Wakeups`), and repeats.
    /// Without this an entry outlives its owner until its instant (a keepalive deadline two
    /// hours on for every connection closed in the last two hours), and every deadline that
    /// moved earlier leaves one behind until then. Run when the heap has doubled since the last
    /// run, so the work per push stays O(log n) on average and the heap stays within twice what
    /// its owners hold.
    fn compact_timers(&mut self) {
        let mut v = core::mem::take(&mut self.timers).into_vec();
        v.sort_unstable();
        v.dedup();
        v.retain(|Reverse((at, key))| match key {
            TimerKey::Conn(id) => self.tcb(*id).is_some_and(|t| t.queued.holds(*at)),
            TimerKey::Syn(t) => self.syn_queue.contains_key(t),
        });
        self.timers = BinaryHeap::from(v);
        self.timers_compact_at = self.timers.len().saturating_mul(2).max(TIMER_HEAP_COMPACT_MIN);
    }

    // -------------------------------------------------------------------------------------
    // The connection table
    // -------------------------------------------------------------------------------------

    pub(crate) fn alloc_id(&mut self) -> ConnId {
        if let Some(index) = self.free.pop() {
            let generation = self.slab.get(index as usize).map_or(0, |s| s.generation);
            return ConnId { index, generation };
        }
        let index = self.slab.len() as u32;
        self.slab.push(Slot::default());
        ConnId { index, generation: 0 }
    }

    pub(crate) fn insert_tcb(&mut self, tcb: Tcb) {
        let id = tcb.id;
        let t = tcb.tuple();
        let Some(slot) = self.slab.get_mut(id.index as usize) else { return };
        slot.tcb = Some(Box::new(tcb));
        let key = PackedTuple::from(t);
        let tag = self.conns.tag(&key);
        let slab = &self.slab;
        self.conns.insert(tag, id.index, |i| i != id.index && holds(slab, i, &key));
        self.touched(&t);
        self.settle(id);
    }

    /// The TCB the table holds for `t`.
    fn conn_get(&self, t: &FourTuple) -> Option<ConnId> {
        let key = PackedTuple::from(*t);
        let slab = &self.slab;
        let index = self.conns.find(self.conns.tag(&key), |i| holds(slab, i, &key))?;
        slab.get(index as usize).map(|s| ConnId { index, generation: s.generation })
    }

    /// Takes `t` out of the table if the TCB it holds for it is `id`.
    fn conn_remove(&mut self, t: &FourTuple, id: ConnId) -> bool {
        let key = PackedTuple::from(*t);
        let tag = self.conns.tag(&key);
        let slab = &self.slab;
        let is_id = |i: u32| i == id.index && slab.get(i as usize).is_some_and(|s| s.generation == id.generation);
        self.conns.remove(tag, |i| holds(slab, i, &key) && is_id(i)).is_some()
    }

    /// The TCBs the table holds.
    fn conn_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns
            .indexes()
            .filter_map(|index| self.slab.get(index as usize).map(|s| ConnId { index, generation: s.generation }))
    }

    fn tcb(&self, id: ConnId) -> Option<&Tcb> {
        let slot = self.slab.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.tcb.as_deref()
    }

    pub(crate) fn tcb_mut_raw(&mut self, id: ConnId) -> Option<&mut Tcb> {
        let slot = self.slab.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.tcb.as_deref_mut()
    }

    /// Runs `f` on a live TCB with a context.
    pub(crate) fn with_tcb<R>(
        &mut self,
        now: Instant,
        id: ConnId,
        tx: &mut dyn TxSink,
        f: impl FnOnce(&mut Tcb, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let slot = self.slab.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let tcb = slot.tcb.as_deref_mut()?;
        let mut ctx = Ctx { now, cfg: &self.cfg, counters: &mut self.counters, events: &mut self.events, tx };
        let r = f(tcb, &mut ctx);
        Some(r)
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(t) = self.tcb_mut_raw(id) {
            if !t.in_dirty {
                t.in_dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// After a TCB ran: queue it for output, re-arm its timer, and release it once it is done
    /// (CLOSED, or TIME-WAIT moved to the compact table) and nobody holds its handle.
    pub(crate) fn settle(&mut self, id: ConnId) {
        let Some(tcb) = self.tcb_mut_raw(id) else {
            return;
        };
        let needs_output = tcb.dirty;
        let state = tcb.state;
        let released = tcb.app_closed || tcb.listener.is_some();
        if needs_output && !tcb.in_dirty && state != State::Closed {
            tcb.in_dirty = true;
            self.dirty.push(id);
            return; // settled again after output
        }
        if tcb.in_dirty {
            return;
        }
        if state == State::TimeWait {
            let t = tcb.tuple();
            let e = tcb.time_wait_entry();
            tcb.timers = Default::default();
            if self.conn_remove(&t, id) {
                // Linux `tcp_time_wait`: once the batch's output is done, the connection
                // becomes a compact TIME-WAIT entry whether or not the application still holds
                // its handle, so every segment of the tuple meets one set of TIME-WAIT rules
                // (RFC 6191 reuse included). A handle still held keeps the TCB for reading.
                self.enter_time_wait_table(&t, &e);
                self.touched(&t);
            }
            if released {
                self.free_tcb(id);
            }
            return;
        }
        if state == State::Closed {
            // CLOSED: the 4-tuple is free for a new connection at once (Linux unhashes in
            // `tcp_done`), even while the application still holds the handle.
            let t = tcb.tuple();
            if self.conn_remove(&t, id) {
                self.touched(&t);
            }
            if released {
                self.free_tcb(id);
            }
            return;
        }
        // A wake-up at or before the next deadline is already queued: nothing to push. Timers
        // that move later (keepalive, RTO restarts) leave their old entry to fire early and
        // re-arm, so the heap holds a bounded number of entries per connection.
        if let Some(at) = tcb.timers.next() {
            if !tcb.queued.covers(at) {
                tcb.queued.track(at);
                self.schedule(TimerKey::Conn(id), at);
            }
        }
    }

    fn free_tcb(&mut self, id: ConnId) {
        let Some(slot) = self.slab.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        // Out of the table first: the table confirms a tuple against the TCB in the slot.
        if let Some(t) = slot.tcb.as_ref().map(|t| t.tuple()) {
            if self.conn_remove(&t, id) {
                self.touched(&t);
            }
        }
        let Some(slot) = self.slab.get_mut(id.index as usize) else {
            return;
        };
        let tcb = slot.tcb.take();
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        if let Some(tcb) = tcb {
            if matches!(tcb.state, State::Established | State::CloseWait) {
                self.counters.tcp_curr_estab = self.counters.tcp_curr_estab.saturating_sub(1);
            }
        }
    }
}

/// Sources a segment may never come from (RFC 1122 §4.2.3.10, RFC 9293 §3.9.2.2 MUST-?? in
/// spirit: no connection with broadcast or multicast).
fn is_valid_source(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_unspecified() || v.is_broadcast() || v.is_multicast()),
        IpAddr::V6(v) => !(v.is_unspecified() || v.is_multicast()),
    }
}

/// Parses an IP packet (IPv4 or IPv6) carrying TCP, verifying both checksums. Returns
/// (source, destination, segment).
pub fn parse_ip_tcp(packet: &[u8]) -> Result<(IpAddr, IpAddr, TcpRepr<'_>), ParseError> {
    let version = packet.first().map_or(0, |b| b >> 4);
    match version {
        4 => {
            let p = Ipv4Packet::new_checked(packet)?;
            let ip = Ipv4Repr::parse(&p, ChecksumCaps::default())?;
            if ip.protocol != ip_proto::TCP {
                return Err(ParseError::Unsupported);
            }
            let payload = p.payload();
            let tcp = TcpPacket::new_checked(payload)?;
            let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, payload.len() as u16);
            let seg = TcpRepr::parse(&tcp, pseudo, true)?;
            Ok((IpAddr::V4(ip.src), IpAddr::V4(ip.dst), seg))
        }
        6 => {
            let p = Ipv6Packet::new_checked(packet)?;
            let ip = Ipv6Repr::parse(&p)?;
            if ip.next_header != ip_proto::TCP {
                return Err(ParseError::Unsupported);
            }
            let payload = packet.get(ip.upper_offset..ip.upper_offset + ip.payload_len).ok_or(ParseError::Truncated)?;
            let tcp = TcpPacket::new_checked(payload)?;
            let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip_proto::TCP, payload.len() as u32);
            let seg = TcpRepr::parse(&tcp, pseudo, true)?;
            Ok((IpAddr::V6(ip.src), IpAddr::V6(ip.dst), seg))
        }
        _ => Err(ParseError::BadVersion),
    }
}

#[cfg(test)]
mod tests;
