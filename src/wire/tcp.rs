//! TCP header (RFC 9293 §3.1) and options: MSS (RFC 9293 §3.7.1), window scale and timestamps
//! (RFC 7323), SACK-permitted and SACK blocks (RFC 2018), NOP, EOL; unknown kinds are skipped by
//! their length. Flags include CWR/ECE (RFC 3168) and AE, the former NS bit (RFC 3540 / AccECN).

use super::checksum;
use super::field::{read_u16, read_u32, read_u8, slice, slice_mut, write_bytes, write_u16, write_u32, write_u8};
use super::{ParseError, Result, SeqNum};
use core::fmt;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    /// Data offset (4 bits), reserved (3 bits), AE (1 bit).
    pub const DOFF_AE: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

pub const MIN_HEADER_LEN: usize = 20;
pub const MAX_HEADER_LEN: usize = 60;
/// At most four SACK blocks fit in 40 bytes of options (RFC 2018 §3).
pub const MAX_SACK_BLOCKS: usize = 4;

pub mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The nine control bits. Stored as the low 9 bits of header bytes 12-13.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x001);
    pub const SYN: TcpFlags = TcpFlags(0x002);
    pub const RST: TcpFlags = TcpFlags(0x004);
    pub const PSH: TcpFlags = TcpFlags(0x008);
    pub const ACK: TcpFlags = TcpFlags(0x010);
    pub const URG: TcpFlags = TcpFlags(0x020);
    pub const ECE: TcpFlags = TcpFlags(0x040);
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// Accurate-ECN bit, formerly NS (RFC 3540, historic).
    pub const AE: TcpFlags = TcpFlags(0x100);
    pub const NONE: TcpFlags = TcpFlags(0);

    pub const fn contains(self, o: TcpFlags) -> bool {
        self.0 & o.0 == o.0
    }
    pub const fn intersects(self, o: TcpFlags) -> bool {
        self.0 & o.0 != 0
    }
    pub const fn union(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | o.0)
    }
    pub const fn without(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !o.0)
    }
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    /// SYN+FIN or SYN+RST: no TCP opens a connection with them, and Linux drops both in
    /// LISTEN (`tcp_rcv_state_process`). A connection that exists judges them bit by bit
    /// instead (RFC 9293 §3.10.7.3-4: RST before SYN), so this is the listener's check.
    pub const fn is_impossible(self) -> bool {
        self.syn() && (self.fin() || self.rst())
    }
    /// `Err(BadFlags)` for a combination no TCP opens with (see [`TcpFlags::is_impossible`]):
    /// the check a receiver applies when no connection matches.
    pub const fn check(self) -> Result<()> {
        if self.is_impossible() {
            Err(ParseError::BadFlags)
        } else {
            Ok(())
        }
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, o: TcpFlags) -> TcpFlags {
        self.union(o)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TcpFlags, &str); 9] = [
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
            (TcpFlags::AE, "AE"),
        ];
        let mut first = true;
        for (fl, n) in NAMES {
            if self.contains(fl) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// One option, borrowed from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// Raw SACK blocks: 8 bytes each (left edge, right edge).
    SackRange(&'a [u8]),
    Timestamps {
        tsval: u32,
        tsecr: u32,
    },
    /// A kind we do not interpret, or a known kind with the wrong length (ignored, as Linux does).
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterator over the options area. Yields `Err(BadOption)` once, then stops, on a length of 0 or
/// 1 or an option that runs past the header. What came before the bad option stays valid:
/// [`TcpOptions::parse`] keeps it, as Linux's `tcp_parse_options` does.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> OptionIter<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        OptionIter { rest: options, done: false }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<TcpOption<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (&k, after) = self.rest.split_first()?;
        match k {
            kind::EOL => {
                self.done = true;
                Some(Ok(TcpOption::EndOfList))
            }
            kind::NOP => {
                self.rest = after;
                Some(Ok(TcpOption::NoOperation))
            }
            _ => {
                let len = match after.first() {
                    Some(&l) => usize::from(l),
                    None => {
                        self.done = true;
                        return Some(Err(ParseError::BadOption));
                    }
                };
                if len < 2 || len > self.rest.len() {
                    self.done = true;
                    return Some(Err(ParseError::BadOption));
                }
                let data = slice(self.rest, 2..len);
                self.rest = self.rest.get(len..).unwrap_or(&[]);
                let opt = match (k, len) {
                    (kind::MSS, 4) => TcpOption::MaxSegmentSize(read_u16(data, 0)),
                    (kind::WSCALE, 3) => TcpOption::WindowScale(read_u8(data, 0)),
                    (kind::SACK_PERMITTED, 2) => TcpOption::SackPermitted,
                    (kind::TIMESTAMPS, 10) => {
                        TcpOption::Timestamps { tsval: read_u32(data, 0), tsecr: read_u32(data, 4) }
                    }
                    (kind::SACK, l) if l >= 10 && data.len() % 8 == 0 => TcpOption::SackRange(data),
                    (kind, _) => TcpOption::Unknown { kind, data },
                };
                Some(Ok(opt))
            }
        }
    }
}

/// The options the stack acts on, gathered from one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    pub sack_blocks: [(SeqNum, SeqNum); MAX_SACK_BLOCKS],
    pub sack_count: u8,
}

impl TcpOptions {
    /// The options of one header. An illegal length (0 or 1, or past the header) ends the
    /// list: the options before it are kept and the segment is processed, as Linux's
    /// `tcp_parse_options` does ("silly options", "don't parse partial options"). RFC 9293
    /// MUST-68: "A TCP implementation MUST be prepared to handle an illegal option length
    /// (e.g., zero)"; refusing the whole segment would leave a peer (or a middlebox that
    /// pads badly) without an answer that Linux gives. [`OptionIter`] still reports the
    /// error for a caller that wants to see it.
    pub fn parse(options: &[u8]) -> Self {
        let mut o = TcpOptions::default();
        for opt in OptionIter::new(options) {
            let Ok(opt) = opt else { break };
            match opt {
                TcpOption::MaxSegmentSize(m) => o.mss = Some(m),
                TcpOption::WindowScale(w) => o.window_scale = Some(w),
                TcpOption::SackPermitted => o.sack_permitted = true,
                TcpOption::Timestamps { tsval, tsecr } => o.timestamps = Some((tsval, tsecr)),
                TcpOption::SackRange(raw) => {
                    // A later SACK option replaces an earlier one; at most four blocks fit.
                    let mut n = 0u8;
                    for (slot, c) in o.sack_blocks.iter_mut().zip(raw.chunks_exact(8)) {
                        *slot = (SeqNum(read_u32(c, 0)), SeqNum(read_u32(c, 4)));
                        n = n.wrapping_add(1);
                    }
                    o.sack_count = n;
                }
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
            }
        }
        o
    }

    /// The SACK blocks carried (at most [`MAX_SACK_BLOCKS`], whatever `sack_count` says).
    pub fn sack_blocks(&self) -> &[(SeqNum, SeqNum)] {
        let n = usize::from(self.sack_count).min(MAX_SACK_BLOCKS);
        self.sack_blocks.get(..n).unwrap_or(&[])
    }

    /// Bytes of everything but the SACK option, in the emitted layout.
    fn fixed_len(&self) -> usize {
        let mss: usize = if self.mss.is_some() { 4 } else { 0 };
        let ts_sackp = match (self.timestamps, self.sack_permitted) {
            (Some(_), _) => 12,
            (None, true) => 4,
            (None, false) => 0,
        };
        let ws = if self.window_scale.is_some() { 4 } else { 0 };
        mss.wrapping_add(ts_sackp).wrapping_add(ws) // at most 20
    }

    /// The SACK blocks that `emit` writes: as many as fit in the 40 bytes after the other
    /// options and the NOP NOP kind length prefix. Linux likewise sends fewer blocks when
    /// timestamps take room (`tcp_established_options`).
    pub fn sack_blocks_to_emit(&self) -> &[(SeqNum, SeqNum)] {
        let blocks = self.sack_blocks();
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_len()).saturating_sub(SACK_PREFIX_LEN) / SACK_BLOCK_LEN;
        blocks.get(..room.min(blocks.len())).unwrap_or(&[])
    }

    /// Bytes the options take when emitted (a multiple of 4, at most 40), in the layout Linux
    /// uses: MSS; SACK-permitted + timestamps (or NOP NOP + either); NOP + window scale;
    /// NOP NOP + SACK. Exactly what [`TcpOptions::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let sack = match self.sack_blocks_to_emit().len() {
            0 => 0,
            n => SACK_BLOCK_LEN.wrapping_mul(n).wrapping_add(SACK_PREFIX_LEN), // n <= 4
        };
        self.fixed_len().wrapping_add(sack) // <= 40 by construction of sack_blocks_to_emit
    }

    /// Writes the options into `buf` (at least `buffer_len()` bytes). Returns bytes written,
    /// which is `buffer_len()`. SACK blocks that do not fit are left out (see
    /// [`TcpOptions::sack_blocks_to_emit`]).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut w = Writer { buf, at: 0, limit: MAX_OPTIONS_LEN };
        if let Some(m) = self.mss {
            w.bytes(&[kind::MSS, 4]);
            w.u16(m);
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some((v, e))) => {
                w.bytes(&[kind::SACK_PERMITTED, 2, kind::TIMESTAMPS, 10]);
                w.u32(v);
                w.u32(e);
            }
            (false, Some((v, e))) => {
                w.bytes(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
                w.u32(v);
                w.u32(e);
            }
            (true, None) => w.bytes(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]),
            (false, None) => {}
        }
        if let Some(s) = self.window_scale {
            w.bytes(&[kind::NOP, kind::WSCALE, 3, s]);
        }
        let blocks = self.sack_blocks_to_emit();
        if !blocks.is_empty() {
            // 2 + 8 * (n <= 4) fits a u8.
            let len = SACK_BLOCK_LEN.wrapping_mul(blocks.len()).wrapping_add(2) as u8;
            w.bytes(&[kind::NOP, kind::NOP, kind::SACK, len]);
            for (l, r) in blocks {
                w.u32(l.0);
                w.u32(r.0);
            }
        }
        debug_assert_eq!(w.at, self.buffer_len());
        w.at
    }
}

/// Room for options in a TCP header.
const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - MIN_HEADER_LEN;
/// NOP, NOP, kind, length in front of the SACK blocks.
const SACK_PREFIX_LEN: usize = 4;
const SACK_BLOCK_LEN: usize = 8;

/// Writes option bytes up to `limit`; a write that would pass it is dropped whole.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
    limit: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        // `at <= limit <= 40` and `b` is at most 4 bytes: no overflow.
        let end = self.at.saturating_add(b.len());
        if end <= self.limit {
            write_bytes(self.buf, self.at, b);
            self.at = end;
        }
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
}

/// A view of a TCP segment (header + payload).
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The fixed header fits, the data offset is at least 5, and the header fits the segment.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || hl > len {
            return Err(ParseError::BadDataOffset);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn seq_number(&self) -> SeqNum {
        SeqNum(read_u32(self.buffer.as_ref(), field::SEQ_NUM))
    }
    pub fn ack_number(&self) -> SeqNum {
        SeqNum(read_u32(self.buffer.as_ref(), field::ACK_NUM))
    }
    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::DOFF_AE) >> 4) * 4
    }
    pub fn flags(&self) -> TcpFlags {
        let b = self.buffer.as_ref();
        TcpFlags((u16::from(read_u8(b, field::DOFF_AE) & 1) << 8) | u16::from(read_u8(b, field::FLAGS)))
    }
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }
    /// The raw options area.
    pub fn options(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::OPTIONS..self.header_len())
    }
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }
    /// The checksum over `pseudo` (the pseudo-header sum) and the whole segment is valid.
    pub fn verify_checksum(&self, pseudo: u64) -> bool {
        checksum::verify(self.buffer.as_ref(), pseudo)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        b.get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    pub fn set_seq_number(&mut self, v: SeqNum) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v.0);
    }
    pub fn set_ack_number(&mut self, v: SeqNum) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v.0);
    }
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: TcpFlags) {
        let doff = ((header_len / 4) as u8) << 4;
        write_u8(self.buffer.as_mut(), field::DOFF_AE, doff | ((flags.0 >> 8) as u8 & 1));
        write_u8(self.buffer.as_mut(), field::FLAGS, flags.0 as u8);
    }
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        let len = b.len();
        slice_mut(b, hl..len)
    }
    /// Computes the checksum over the whole buffer, given the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u64) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()).wrapping_add(pseudo));
        self.set_checksum(c);
    }
}

/// A parsed TCP segment: every header field and the options, payload borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Validates lengths and (if `verify`) the checksum against the pseudo-header sum; options
    /// are read as [`TcpOptions::parse`] reads them (an illegal length ends them).
    /// Flag combinations are not judged here; see [`TcpFlags::is_impossible`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &TcpPacket<&'a T>, pseudo: u64, verify: bool) -> Result<Self> {
        p.check_len()?;
        if verify && !p.verify_checksum(pseudo) {
            return Err(ParseError::BadChecksum);
        }
        let options = TcpOptions::parse(p.options());
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window_len(),
            urgent: p.urgent_at(),
            options,
            payload: p.payload(),
        })
    }

    /// 20 bytes plus the options as emitted: at most 60.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN.wrapping_add(self.options.buffer_len())
    }
    pub fn buffer_len(&self) -> usize {
        self.header_len().saturating_add(self.payload.len())
    }
    /// Sequence space the segment occupies: payload plus one for SYN and one for FIN.
    pub fn segment_len(&self) -> u32 {
        let mut n = self.payload.len() as u32;
        if self.flags.syn() {
            n = n.wrapping_add(1);
        }
        if self.flags.fin() {
            n = n.wrapping_add(1);
        }
        n
    }

    /// Writes header, options and payload into `buf[..buffer_len()]`; computes the checksum when
    /// `pseudo` is given (pass the pseudo-header sum for `buffer_len()` bytes).
    pub fn emit(&self, buf: &mut [u8], pseudo: Option<u64>) {
        let hl = self.emit_header(buf, self.payload.len());
        write_bytes(buf, hl, self.payload);
        if let Some(ps) = pseudo {
            let end = hl.saturating_add(self.payload.len());
            TcpPacket::new_unchecked(slice_mut(buf, 0..end)).fill_checksum(ps);
        }
    }

    /// Writes header and options only (payload written by the caller); checksum field zeroed.
    /// Returns the header length.
    pub fn emit_header(&self, buf: &mut [u8], _payload_len: usize) -> usize {
        let hl = self.header_len();
        {
            let mut p = TcpPacket::new_unchecked(&mut *buf);
            p.set_src_port(self.src_port);
            p.set_dst_port(self.dst_port);
            p.set_seq_number(self.seq);
            p.set_ack_number(self.ack);
            p.set_header_len_and_flags(hl, self.flags);
            p.set_window_len(self.window);
            p.set_checksum(0);
            p.set_urgent_at(self.urgent);
        }
        let opts = slice_mut(buf, field::OPTIONS..hl);
        let written = self.options.emit(opts);
        debug_assert_eq!(written, hl.wrapping_sub(MIN_HEADER_LEN));
        hl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options exactly as Linux 6.x sends them on a SYN: MSS 1460, SACK-permitted, TS, NOP, WS 7.
    const LINUX_SYN_OPTIONS: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
        0x03, 0x07,
    ];

    #[test]
    fn linux_syn_options() {
        let o = TcpOptions::parse(&LINUX_SYN_OPTIONS);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((0x00010203, 0)));
        assert_eq!(o.window_scale, Some(7));
        let mut b = [0u8; 40];
        assert_eq!(o.emit(&mut b), 20);
        assert_eq!(&b[..20], &LINUX_SYN_OPTIONS);
    }

    #[test]
    fn bad_option_lengths() {
        for bad in [&[2u8, 0, 0, 0][..], &[2, 1, 0, 0], &[8, 10, 0, 0], &[1, 2]] {
            assert_eq!(OptionIter::new(bad).last(), Some(Err(ParseError::BadOption)), "{bad:?}");
            assert_eq!(TcpOptions::parse(bad), TcpOptions::default(), "{bad:?}");
        }
        // Linux `tcp_parse_options`: what precedes an illegal length is kept.
        let o = TcpOptions::parse(&[2, 4, 5, 0xb4, 1, 1, 254, 0]);
        assert_eq!(o.mss, Some(1460));
        // Unknown kinds are skipped by their length; EOL ends the list.
        let o = TcpOptions::parse(&[30, 4, 9, 9, 3, 3, 2, 0, 2, 4]);
        assert_eq!(o.window_scale, Some(2));
        assert_eq!(o.mss, None);
    }
}
