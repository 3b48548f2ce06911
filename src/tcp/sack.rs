//! Selective acknowledgment: the receiver's block list and the sender's scoreboard.
//!
//! Read RFC 2018 (SACK), RFC 2883 (D-SACK) and RFC 6675 (SACK-based loss recovery) before
//! editing. Both halves are fixed-size: a peer can make neither grow (the CVE-2019-11477 "SACK
//! panic" class came from per-segment state a peer could inflate). Each is boxed only while it
//! holds something, so an idle connection pays a pointer for each.

use crate::wire::tcp::MAX_SACK_BLOCKS;
use crate::wire::{SeqNum, TcpOptions};

/// Linux `TCP_NUM_SACKS`: the receiver remembers at most four blocks.
pub const RCV_SACK_BLOCKS: usize = 4;

/// RFC 6675 §2 DupThresh.
pub const DUP_THRESH: u32 = 3;

/// The blocks a receiver reports (RFC 2018 §4), kept in the order Linux keeps them
/// (`tp->selective_acks`, updated by `tcp_sack_new_ofo_skb`): the block holding the most
/// recently received segment first, then the others from most to least recently reported.
/// A pending D-SACK block (RFC 2883 §4, Linux `tp->duplicate_sack`) goes in front of them in
/// the next segment only.
#[derive(Debug, Clone, Copy, Default)]
pub struct RcvSack {
    blocks: [(SeqNum, SeqNum); RCV_SACK_BLOCKS],
    n: u8,
    dsack: Option<(SeqNum, SeqNum)>,
}

/// RFC 2018 §4: `(ls, le)` grows to cover `(s, e)` when they overlap or touch (Linux
/// `tcp_sack_extend`). Returns whether it did.
fn extend(b: &mut (SeqNum, SeqNum), s: SeqNum, e: SeqNum) -> bool {
    if b.0.after(e) || s.after(b.1) {
        return false;
    }
    b.0 = b.0.min(s);
    b.1 = b.1.max(e);
    true
}

impl RcvSack {
    /// The reported blocks, most recent first (without the D-SACK block).
    pub fn blocks(&self) -> &[(SeqNum, SeqNum)] {
        self.blocks.get(..usize::from(self.n)).unwrap_or(&[])
    }

    /// Nothing to report: no block and no D-SACK.
    pub fn is_empty(&self) -> bool {
        self.n == 0 && self.dsack.is_none()
    }

    pub fn dsack(&self) -> Option<(SeqNum, SeqNum)> {
        self.dsack
    }

    /// An out-of-order segment `seq..end` was stored (Linux `tcp_sack_new_ofo_skb`). RFC 2018
    /// §4: "The first SACK block MUST specify the contiguous block of data containing the
    /// segment which triggered this ACK"; the block it extends moves to the front, and a new
    /// block pushes the least recent one out when all four are in use.
    pub fn on_ofo(&mut self, seq: SeqNum, end: SeqNum) {
        let n = usize::from(self.n);
        let hit = self.blocks.iter_mut().take(n).position(|b| extend(b, seq, end));
        match hit {
            Some(i) => {
                if let Some(s) = self.blocks.get_mut(..=i) {
                    s.rotate_right(1);
                }
                self.coalesce_first();
            }
            None => {
                // All four in use: the last (least recently reported) is forgotten.
                let keep = n.min(RCV_SACK_BLOCKS - 1);
                if let Some(s) = self.blocks.get_mut(..=keep) {
                    s.rotate_right(1);
                }
                if let Some(b) = self.blocks.first_mut() {
                    *b = (seq, end);
                }
                self.n = (keep + 1) as u8;
            }
        }
    }

    /// The first block grew: it may now reach others, which merge into it (Linux
    /// `tcp_sack_maybe_coalesce`).
    fn coalesce_first(&mut self) {
        let mut i = 1;
        while i < usize::from(self.n) {
            let Some(&other) = self.blocks.get(i) else { break };
            let merged = self.blocks.first_mut().is_some_and(|f| extend(f, other.0, other.1));
            if merged {
                if let Some(s) = self.blocks.get_mut(i..usize::from(self.n)) {
                    s.rotate_left(1);
                }
                self.n -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// RCV.NXT moved: blocks it reached are in order now and no longer reported (Linux
    /// `tcp_sack_remove`). `ofo_empty`: nothing is held out of order any more, so every block
    /// goes.
    pub fn on_rcv_nxt(&mut self, rcv_nxt: SeqNum, ofo_empty: bool) {
        if ofo_empty {
            self.n = 0;
            return;
        }
        let mut i = 0;
        while i < usize::from(self.n) {
            let Some(&(s, _)) = self.blocks.get(i) else { break };
            if s.before_eq(rcv_nxt) {
                if let Some(sl) = self.blocks.get_mut(i..usize::from(self.n)) {
                    sl.rotate_left(1);
                }
                self.n -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// Forgets every block (the out-of-order store was pruned, Linux `tcp_sack_reset` in
    /// `tcp_prune_ofo_queue`: a block must never claim data we no longer hold).
    pub fn clear(&mut self) {
        self.n = 0;
        self.dsack = None;
    }

    /// RFC 2883 §4 (1): report `s..e` as a duplicate in the next segment (Linux
    /// `tcp_dsack_set`; a newer duplicate replaces an unsent one).
    pub fn set_dsack(&mut self, s: SeqNum, e: SeqNum) {
        if s.before(e) {
            self.dsack = Some((s, e));
        }
    }

    /// Grows the pending D-SACK block by `s..e` if they touch, or sets it when none is pending
    /// (Linux `tcp_dsack_extend`).
    pub fn extend_dsack(&mut self, s: SeqNum, e: SeqNum) {
        match &mut self.dsack {
            Some(d) => {
                extend(d, s, e);
            }
            None => self.set_dsack(s, e),
        }
    }

    /// Puts the D-SACK block (if any) and then the blocks into `o`; the wire layer keeps as
    /// many as fit (three beside timestamps, RFC 2018 §3). Linux `tcp_options_write` writes them
    /// in this order.
    pub fn fill(&self, o: &mut TcpOptions) {
        let mut k = 0usize;
        let all = self.dsack.iter().chain(self.blocks().iter());
        for (slot, b) in o.sack_blocks.iter_mut().zip(all) {
            *slot = *b;
            k += 1;
        }
        o.sack_count = k.min(MAX_SACK_BLOCKS) as u8;
    }

    /// A segment carrying the options went out: the D-SACK block is reported once (RFC 2883
    /// §4; Linux clears `rx_opt.dsack` when it writes the option).
    pub fn sent(&mut self) {
        self.dsack = None;
    }
}

/// A connection's [`RcvSack`], made by the first out-of-order or duplicate segment and given
/// back once there is nothing left to report: a connection whose data arrives in order (most
/// of them, and every idle one) does not hold its 48 bytes.
#[derive(Debug, Default)]
pub struct LazyRcvSack(Option<Box<RcvSack>>);

impl LazyRcvSack {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|r| r.is_empty())
    }
    pub fn blocks(&self) -> &[(SeqNum, SeqNum)] {
        self.0.as_ref().map_or(&[], |r| r.blocks())
    }
    pub fn dsack(&self) -> Option<(SeqNum, SeqNum)> {
        self.0.as_ref().and_then(|r| r.dsack())
    }
    pub fn fill(&self, o: &mut TcpOptions) {
        if let Some(r) = &self.0 {
            r.fill(o);
        }
    }
    pub fn on_ofo(&mut self, seq: SeqNum, end: SeqNum) {
        self.0.get_or_insert_default().on_ofo(seq, end);
    }
    pub fn set_dsack(&mut self, s: SeqNum, e: SeqNum) {
        if s.before(e) {
            self.0.get_or_insert_default().set_dsack(s, e);
        }
    }
    pub fn extend_dsack(&mut self, s: SeqNum, e: SeqNum) {
        self.0.get_or_insert_default().extend_dsack(s, e);
        self.release_if_empty();
    }
    pub fn on_rcv_nxt(&mut self, rcv_nxt: SeqNum, ofo_empty: bool) {
        if let Some(r) = &mut self.0 {
            r.on_rcv_nxt(rcv_nxt, ofo_empty);
        }
        self.release_if_empty();
    }
    pub fn clear(&mut self) {
        self.0 = None;
    }
    pub fn sent(&mut self) {
        if let Some(r) = &mut self.0 {
            r.sent();
        }
        self.release_if_empty();
    }
    fn release_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|r| r.is_empty()) {
            self.0 = None;
        }
    }
}

/// How many SACKed ranges the sender keeps. Linux tags its retransmission queue, so a peer
/// with a tiny MSS can make it split that queue into many pieces (CVE-2019-11477/11478); here
/// the bound is fixed: past it, a new range beyond every held one is not recorded (it is then
/// treated as not SACKed, which costs a needless retransmission at worst), and a range nearer
/// SND.UNA pushes the furthest one out.
pub const SCOREBOARD_RANGES: usize = 16;

/// The sender's record of SACKed sequence space above SND.UNA (RFC 6675 §3 "scoreboard"):
/// sorted, disjoint, non-touching ranges.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scoreboard {
    ranges: [(SeqNum, SeqNum); SCOREBOARD_RANGES],
    n: u8,
    /// Unsacked octets below this are lost whatever IsLost says: a loss probe sent after
    /// them was SACKed (RFC 8985 §6.2, see `Tcb::tlp_on_ack`). Meaningless below SND.UNA.
    lost_to: Option<SeqNum>,
}

/// What one ACK's SACK option amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SackUpdate {
    /// Bytes SACKed by this ACK that were not SACKed before (RFC 6675 §2: what makes an ACK a
    /// duplicate when SACK is in use).
    pub newly_sacked: u32,
    /// The first block was a D-SACK (RFC 2883 §4): the duplicate range it reports.
    pub dsack: Option<(SeqNum, SeqNum)>,
    /// The D-SACK reported more than was retransmitted, or more than a window (Linux
    /// `tcp_dsack_seen`): set by the TCB, which counts retransmissions.
    pub dsack_dubious: bool,
    /// The D-SACK lay below SND.UNA (reports a spurious retransmission we cannot undo).
    pub dsack_old: bool,
    /// Blocks ignored as invalid (Linux `TCPSACKDiscard`).
    pub discarded: u32,
}

/// RFC 2883 §4 as Linux `tcp_check_dsack` applies it: the first block is a D-SACK if it lies
/// below the cumulative ACK, or inside the second block.
pub fn is_dsack(blocks: &[(SeqNum, SeqNum)], ack: SeqNum) -> bool {
    match blocks {
        [(s0, e0), rest @ ..] => {
            if s0.before(ack) {
                return true;
            }
            matches!(rest.first(), Some(&(s1, e1)) if !s0.before(s1) && !e0.after(e1))
        }
        [] => false,
    }
}

impl Scoreboard {
    /// An empty scoreboard (what a connection without one reads).
    pub const EMPTY: Scoreboard =
        Scoreboard { ranges: [(SeqNum(0), SeqNum(0)); SCOREBOARD_RANGES], n: 0, lost_to: None };

    pub fn ranges(&self) -> &[(SeqNum, SeqNum)] {
        self.ranges.get(..usize::from(self.n)).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// RFC 2018 §8: after a retransmission timeout the SACKed bits are turned off (the
    /// receiver may have reneged).
    pub fn clear(&mut self) {
        self.n = 0;
        self.lost_to = None;
    }

    /// RFC 8985 §6.2: every unSACKed octet below `seq` was sent before a segment the peer has
    /// SACKed, long enough before it that reordering cannot explain the gap: mark it lost.
    pub fn mark_lost_to(&mut self, seq: SeqNum) {
        self.lost_to = Some(self.lost_to.map_or(seq, |l| l.max(seq)));
    }

    /// The SACK option of an acceptable ACK. `una` is SND.UNA after this ACK's cumulative
    /// acknowledgment, `snd_max` the highest sequence number sent. Each block is checked before
    /// it is believed (Linux `tcp_is_sackblock_valid`): empty or "wrapping" blocks (right edge
    /// not after the left), blocks reaching past SND.NXT, blocks below SND.UNA and blocks that
    /// overlap an earlier block of the same option are ignored and counted. A D-SACK block
    /// (RFC 2883 §4) is recognised and never enters the scoreboard.
    pub fn on_ack(&mut self, blocks: &[(SeqNum, SeqNum)], ack: SeqNum, una: SeqNum, snd_max: SeqNum) -> SackUpdate {
        self.on_ack_with(blocks, ack, una, snd_max, &mut |_, _| {})
    }

    /// [`Scoreboard::on_ack`], telling `newly` each stretch that becomes SACKed (RACK, RFC 8985
    /// §6.2 steps 2-3, reads what an ACK newly delivers). A block that is not recorded (the
    /// scoreboard is full) is not told either: it is treated as not SACKed everywhere.
    pub fn on_ack_with(
        &mut self,
        blocks: &[(SeqNum, SeqNum)],
        ack: SeqNum,
        una: SeqNum,
        snd_max: SeqNum,
        newly: &mut dyn FnMut(SeqNum, SeqNum),
    ) -> SackUpdate {
        let mut u = SackUpdate::default();
        self.advance(una);
        let dsack = is_dsack(blocks, ack);
        let mut taken: [(SeqNum, SeqNum); MAX_SACK_BLOCKS] = [(SeqNum(0), SeqNum(0)); MAX_SACK_BLOCKS];
        let mut nt = 0usize;
        for (i, &(s, e)) in blocks.iter().enumerate() {
            if i == 0 && dsack {
                // A D-SACK must still be a block of data we sent (Linux validates it too).
                if s.before(e) && !e.after(snd_max) {
                    u.dsack = Some((s, e));
                    u.dsack_old = s.before(una);
                } else {
                    u.discarded += 1;
                }
                continue;
            }
            // Both edges measured forward from SND.UNA: serial comparisons alone would take
            // a block 2^31 away for one in the window.
            let sane = s.before(e) && s.between(una, snd_max) && e.between(una, snd_max);
            let overlaps = taken.iter().take(nt).any(|&(ts, te)| s.before(te) && ts.before(e));
            if !sane || overlaps {
                u.discarded += 1;
                continue;
            }
            if let Some(slot) = taken.get_mut(nt) {
                *slot = (s, e);
                nt += 1;
            }
            u.newly_sacked = u.newly_sacked.saturating_add(self.insert(s, e, newly));
        }
        u
    }

    /// The stretches of `s..e` not SACKed, lowest first.
    pub fn gaps(&self, s: SeqNum, e: SeqNum) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.holes(s, e).map(move |(a, b)| (a, b.min(e))).filter(|(a, b)| a.before(*b))
    }

    /// SACKed segments (RACK.segs_sacked, RFC 8985 §6.2 step 4): each range counts as many
    /// `smss`-sized segments as it takes, one at least (Linux counts `sacked_out` in skbs).
    pub fn sacked_segs(&self, smss: u32) -> u32 {
        self.ranges().iter().map(|r| r.1.distance_from(r.0).div_ceil(smss.max(1)).max(1)).sum()
    }

    /// Bytes of `s..e` not covered yet.
    pub fn uncovered(&self, s: SeqNum, e: SeqNum) -> u32 {
        let covered: u32 = self
            .ranges()
            .iter()
            .map(|&(rs, re)| {
                let lo = s.max(rs);
                let hi = e.min(re);
                if lo.before(hi) {
                    hi.distance_from(lo)
                } else {
                    0
                }
            })
            .sum();
        e.distance_from(s).saturating_sub(covered)
    }

    /// Records `s..e` (valid: inside SND.UNA..SND.MAX) and tells `newly` what it newly
    /// covers. Returns the bytes newly covered.
    fn insert(&mut self, s: SeqNum, e: SeqNum, newly: &mut dyn FnMut(SeqNum, SeqNum)) -> u32 {
        let new = self.uncovered(s, e);
        if new == 0 {
            return 0;
        }
        // Full, and beyond every held range (not touching the last): not recorded (below).
        let dropped = usize::from(self.n) >= SCOREBOARD_RANGES && self.ranges().last().is_some_and(|l| l.1.before(s));
        if !dropped {
            for (a, b) in self.gaps(s, e) {
                newly(a, b);
            }
        }
        let mut out = [(SeqNum(0), SeqNum(0)); SCOREBOARD_RANGES + 1];
        let mut k = 0usize;
        let (mut s, mut e) = (s, e);
        let mut placed = false;
        for &(rs, re) in self.ranges() {
            let slot = if re.before(s) {
                (rs, re)
            } else if e.before(rs) {
                if !placed {
                    if let Some(o) = out.get_mut(k) {
                        *o = (s, e);
                        k += 1;
                    }
                    placed = true;
                }
                (rs, re)
            } else {
                s = s.min(rs);
                e = e.max(re);
                continue;
            };
            if let Some(o) = out.get_mut(k) {
                *o = slot;
                k += 1;
            }
        }
        if !placed {
            if k >= SCOREBOARD_RANGES {
                // Full and beyond every held range: not recorded.
                return 0;
            }
            if let Some(o) = out.get_mut(k) {
                *o = (s, e);
                k += 1;
            }
        }
        let k = k.min(SCOREBOARD_RANGES);
        for (d, o) in self.ranges.iter_mut().zip(out.iter().take(k)) {
            *d = *o;
        }
        self.n = k as u8;
        new
    }

    /// SND.UNA moved to `una`: ranges below it are gone, one straddling it is cut.
    pub fn advance(&mut self, una: SeqNum) {
        // Losses marked below SND.UNA are repaired: forget the mark before serial comparison
        // against a far-away SND.UNA could flip it (2^31 bytes later).
        if self.lost_to.is_some_and(|l| !l.after(una)) {
            self.lost_to = None;
        }
        let mut k = 0usize;
        for i in 0..usize::from(self.n) {
            let Some(&(s, e)) = self.ranges.get(i) else { break };
            if !e.after(una) {
                continue;
            }
            if let Some(d) = self.ranges.get_mut(k) {
                *d = (s.max(una), e);
            }
            k += 1;
        }
        self.n = k as u8;
    }

    /// The right edge of the highest SACKed range.
    pub fn highest_sacked(&self) -> Option<SeqNum> {
        self.ranges().last().map(|r| r.1)
    }

    /// RFC 6675 §4 IsLost(seq), for a `seq` that is not SACKed: true when DupThresh
    /// discontiguous SACKed ranges lie above it, or more than (DupThresh - 1) * SMSS SACKed
    /// bytes.
    pub fn is_lost(&self, seq: SeqNum, smss: u32) -> bool {
        if self.lost_to.is_some_and(|l| seq.before(l)) {
            return true;
        }
        let (bytes, count) = self
            .ranges()
            .iter()
            .filter(|r| r.0.after(seq))
            .fold((0u32, 0u32), |(b, c), r| (b.saturating_add(r.1.distance_from(r.0)), c + 1));
        count >= DUP_THRESH || bytes > (DUP_THRESH - 1).saturating_mul(smss)
    }

    /// The holes (not SACKed) in `una..snd_max`, lowest first. At most SCOREBOARD_RANGES + 1.
    pub fn holes(&self, una: SeqNum, snd_max: SeqNum) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let mut cursor = una;
        let mut tail_done = false;
        let mut it = self.ranges().iter();
        std::iter::from_fn(move || loop {
            match it.next() {
                Some(&(s, e)) => {
                    let hole = (cursor, s);
                    cursor = cursor.max(e);
                    if hole.0.before(hole.1) {
                        return Some(hole);
                    }
                }
                None => {
                    if tail_done {
                        return None;
                    }
                    tail_done = true;
                    if cursor.before(snd_max) {
                        return Some((cursor, snd_max));
                    }
                    return None;
                }
            }
        })
    }

    /// RFC 6675 §4 SetPipe: the octets in flight. An unSACKed octet counts once if it is not
    /// lost and once more if it was retransmitted (below `high_rxt`, the end of what this
    /// recovery retransmitted). Every octet of a hole shares its IsLost answer, since no
    /// SACKed octet lies inside a hole.
    pub fn pipe(&self, una: SeqNum, snd_max: SeqNum, high_rxt: SeqNum, smss: u32) -> u32 {
        self.holes(una, snd_max).fold(0u32, |p, (a, b)| {
            let mut add = 0u32;
            if !self.is_lost(a, smss) {
                add = b.distance_from(a);
            }
            if high_rxt.after(a) {
                add = add.saturating_add(high_rxt.min(b).distance_from(a));
            }
            p.saturating_add(add)
        })
    }

    /// RFC 6675 §4 NextSeg rules (1) and (3): the first unSACKed octet at or after `high_rxt`
    /// below the highest SACKed octet that is lost (rule 1), else the first one at all (rule 3,
    /// only when `rescue`). Returns the start and the length (at most `smss`) to retransmit.
    pub fn next_seg(
        &self,
        una: SeqNum,
        snd_max: SeqNum,
        high_rxt: SeqNum,
        smss: u32,
        rescue: bool,
    ) -> Option<(SeqNum, u32)> {
        let top = self.highest_sacked()?;
        let mut first = None;
        for (a, b) in self.holes(una, snd_max) {
            if !a.before(top) {
                break;
            }
            let start = a.max(high_rxt);
            if !start.before(b) {
                continue;
            }
            let seg = (start, b.distance_from(start).min(smss));
            if self.is_lost(a, smss) {
                return Some(seg);
            }
            first = first.or(Some(seg));
        }
        if rescue {
            first
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A review finding: a loss mark below SND.UNA is forgotten once SND.UNA passes it, so a
    /// serial comparison 2^31 bytes later cannot flip it into marking new data lost.
    #[test]
    fn a_lost_mark_goes_once_snd_una_passes_it() {
        let mut sb = Scoreboard::default();
        sb.mark_lost_to(SeqNum(1500));
        sb.advance(SeqNum(2000));
        assert!(!sb.is_lost(SeqNum(2000u32.wrapping_add(1 << 31).wrapping_add(10)), 1000));
    }

    fn s(a: u32, b: u32) -> (SeqNum, SeqNum) {
        (SeqNum(a), SeqNum(b))
    }

    #[test]
    fn receiver_most_recent_first_and_coalesce() {
        let mut r = RcvSack::default();
        r.on_ofo(SeqNum(200), SeqNum(300));
        r.on_ofo(SeqNum(400), SeqNum(500));
        r.on_ofo(SeqNum(600), SeqNum(700));
        assert_eq!(r.blocks(), &[s(600, 700), s(400, 500), s(200, 300)]);
        // Extending the oldest block brings it to the front.
        r.on_ofo(SeqNum(300), SeqNum(350));
        assert_eq!(r.blocks(), &[s(200, 350), s(600, 700), s(400, 500)]);
        // Filling the gap 350..400 merges two blocks.
        r.on_ofo(SeqNum(350), SeqNum(400));
        assert_eq!(r.blocks(), &[s(200, 500), s(600, 700)]);
        r.on_ofo(SeqNum(800), SeqNum(900));
        r.on_ofo(SeqNum(1000), SeqNum(1100));
        r.on_ofo(SeqNum(1200), SeqNum(1300));
        // Four at most: the least recent (600..700) went.
        assert_eq!(r.blocks(), &[s(1200, 1300), s(1000, 1100), s(800, 900), s(200, 500)]);
        r.on_rcv_nxt(SeqNum(500), false);
        assert_eq!(r.blocks(), &[s(1200, 1300), s(1000, 1100), s(800, 900)]);
        r.set_dsack(SeqNum(100), SeqNum(150));
        let mut o = TcpOptions { timestamps: Some((1, 2)), ..TcpOptions::default() };
        r.fill(&mut o);
        assert_eq!(o.sack_blocks_to_emit(), &[s(100, 150), s(1200, 1300), s(1000, 1100)]);
        r.sent();
        assert_eq!(r.dsack(), None);
    }

    #[test]
    fn scoreboard_validates_and_merges() {
        let mut b = Scoreboard::default();
        let una = SeqNum(1000);
        let max = SeqNum(10_000);
        let u = b.on_ack(&[s(2000, 3000), s(4000, 5000)], una, una, max);
        assert_eq!(u, SackUpdate { newly_sacked: 2000, ..SackUpdate::default() });
        // Beyond SND.NXT, below SND.UNA (not a D-SACK: not first), empty, overlapping.
        let u = b.on_ack(&[s(5000, 6000), s(9000, 11_000), s(900, 1100), s(5500, 5600)], una, una, max);
        assert_eq!((u.newly_sacked, u.discarded), (1000, 3));
        assert_eq!(b.ranges(), &[s(2000, 3000), s(4000, 6000)]);
        // A D-SACK below the ACK is recognised, not recorded.
        let u = b.on_ack(&[s(500, 600), s(7000, 7100)], una, una, max);
        assert!(u.dsack == Some(s(500, 600)) && u.dsack_old);
        assert_eq!(u.newly_sacked, 100);
        // Four blocks that wrap the sequence space are all rejected.
        let q = 1u32 << 30;
        let u = b.on_ack(&[s(0, q), s(q, 2 * q), s(2 * q, 3 * q), s(3 * q, 0)], una, una, max);
        assert_eq!((u.newly_sacked, u.discarded), (0, 4));
        b.advance(SeqNum(4500));
        assert_eq!(b.ranges(), &[s(4500, 6000), s(7000, 7100)]);
    }

    #[test]
    fn scoreboard_is_bounded() {
        let mut b = Scoreboard::default();
        let una = SeqNum(0);
        let max = SeqNum(1_000_000);
        for i in 0..1000u32 {
            b.on_ack(&[s(10 + i * 10, 11 + i * 10)], una, una, max);
            assert!(b.ranges().len() <= SCOREBOARD_RANGES);
        }
        assert_eq!(b.ranges().len(), SCOREBOARD_RANGES);
        // One nearer SND.UNA still goes in; the furthest goes out.
        b.on_ack(&[s(2, 3)], una, una, max);
        assert_eq!(b.ranges().first(), Some(&s(2, 3)));
        assert_eq!(b.ranges().len(), SCOREBOARD_RANGES);
    }

    #[test]
    fn pipe_and_next_seg() {
        // 10 segments of 100 from 0; 1, 4 and 7 lost, the rest SACKed.
        let mut b = Scoreboard::default();
        let (una, max) = (SeqNum(0), SeqNum(1000));
        for (l, r) in [(200, 400), (500, 700), (800, 1000)] {
            b.on_ack(&[s(l, r)], una, una, max);
        }
        // Segment 0 is unSACKed too (holes 0..100 merged with the first loss).
        let holes: Vec<_> = b.holes(una, max).collect();
        assert_eq!(holes, vec![s(0, 200), s(400, 500), s(700, 800)]);
        assert!(b.is_lost(SeqNum(0), 100));
        assert!(b.is_lost(SeqNum(400), 100));
        assert!(!b.is_lost(SeqNum(700), 100));
        assert_eq!(b.pipe(una, max, una, 100), 100);
        assert_eq!(b.next_seg(una, max, una, 100, false), Some((SeqNum(0), 100)));
        assert_eq!(b.next_seg(una, max, SeqNum(200), 100, false), Some((SeqNum(400), 100)));
        assert_eq!(b.next_seg(una, max, SeqNum(500), 100, false), None);
        assert_eq!(b.next_seg(una, max, SeqNum(500), 100, true), Some((SeqNum(700), 100)));
        assert_eq!(b.pipe(una, max, SeqNum(500), 100), 100 + 300);
    }
}
