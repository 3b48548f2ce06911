//! `serve --pcap FILE`: every frame the stack receives and sends, in classic pcap.
//!
//! The format is the 24-byte file header and a 16-byte header per record (the libpcap file
//! format, draft-ietf-opsawg-pcap §4 and §5), with nanosecond timestamps (magic 0xa1b23c4d)
//! and LINKTYPE_ETHERNET. It is written here rather than through a crate: it is two fixed
//! headers, and owning them keeps the hot side down to one copy into a pooled buffer.
//!
//! Shape: each core owns a [`Tap`]; [`Tapped`] wraps its link for one loop turn (so a core
//! without capture pays one branch per turn and nothing per frame). A tapped frame is copied
//! into a buffer taken from a shared pool and sent over a bounded channel to one writer
//! thread, which writes, rotates and gives the buffer back. A core never waits: when the
//! channel is full, or every buffer is in flight, the frame is not captured and the core
//! counts it in `pcap_dropped`.
//!
//! Rotation is tcpdump's `-C`/`-W` in logrotate's naming: when FILE would grow past the size
//! limit it becomes FILE.1 (FILE.1 becomes FILE.2, and so on) and a fresh FILE starts; at most
//! `files` files exist, counting FILE itself.

use crate::io::{FrameIo, IoStats};
use crate::net::FrameSink;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// File header magic of the nanosecond-resolution variant (written in host order; readers
/// detect the byte order from it).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET (tcpdump.org link-layer header types).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame recorded whole; longer ones are cut (`incl_len < orig_len`).
pub const SNAPLEN: u32 = 65_535;
/// Bytes of the file header and of each record header.
pub const FILE_HEADER_LEN: u64 = 24;
pub const RECORD_HEADER_LEN: u64 = 16;
/// Frames in flight between all cores and the writer (and buffers in the pool): at 2 KiB a
/// frame, at most 8 MiB held for capture.
pub const CHANNEL_DEPTH: usize = 4096;

/// The 24-byte pcap file header: version 2.4, no time zone offset, snap length, Ethernet.
pub fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_NANOS.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    // thiszone (8..12) and sigfigs (12..16) stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_ne_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
    h
}

/// The 16-byte record header of a frame of `orig_len` bytes, `incl_len` of them recorded,
/// taken at `ts_ns` nanoseconds since the UNIX epoch.
pub fn record_header(ts_ns: u64, incl_len: u32, orig_len: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_ne_bytes());
    h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_ne_bytes());
    h[8..12].copy_from_slice(&incl_len.to_ne_bytes());
    h[12..16].copy_from_slice(&orig_len.to_ne_bytes());
    h
}

/// Where and how much to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapConfig {
    pub path: PathBuf,
    /// FILE rotates before it would grow past this many bytes (at least one record is always
    /// written to a fresh file, so a frame larger than the limit still lands).
    pub max_bytes: u64,
    /// Files kept, FILE included (FILE, FILE.1, ... FILE.(files-1)); at least 1.
    pub files: u32,
}

/// What the writer did, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct PcapStats {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub rotations: AtomicU64,
    pub write_errors: AtomicU64,
}

/// A pcap file with size-based rotation. Not thread-safe: the writer thread owns it.
pub struct RotatingWriter {
    cfg: PcapConfig,
    out: BufWriter<File>,
    /// Bytes in the current FILE, header included.
    size: u64,
    stats: Arc<PcapStats>,
}

impl RotatingWriter {
    /// Creates (truncates) FILE and writes its header. Older rotated files are left alone
    /// until the first rotation replaces them.
    pub fn create(cfg: PcapConfig, stats: Arc<PcapStats>) -> std::io::Result<RotatingWriter> {
        let out = Self::open(&cfg.path)?;
        Ok(RotatingWriter { cfg, out, size: FILE_HEADER_LEN, stats })
    }

    fn open(path: &Path) -> std::io::Result<BufWriter<File>> {
        let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
        out.write_all(&file_header())?;
        Ok(out)
    }

    /// FILE.n for n >= 1.
    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.cfg.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Appends one frame, rotating first when it would take FILE past the limit.
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> std::io::Result<()> {
        let orig = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl = orig.min(SNAPLEN);
        let rec = RECORD_HEADER_LEN + u64::from(incl);
        if self.size > FILE_HEADER_LEN && self.size + rec > self.cfg.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(&record_header(ts_ns, incl, orig))?;
        self.out.write_all(frame.get(..incl as usize).unwrap_or(frame))?;
        self.size += rec;
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(rec, Ordering::Relaxed);
        Ok(())
    }

    /// FILE -> FILE.1 -> FILE.2 ...; the oldest beyond `files` goes.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let keep = self.cfg.files.max(1);
        if keep > 1 {
            let _ = std::fs::remove_file(self.rotated(keep - 1));
            for n in (1..keep - 1).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.cfg.path, self.rotated(1))?;
        }
        self.out = Self::open(&self.cfg.path)?;
        self.size = FILE_HEADER_LEN;
        self.stats.rotations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One captured frame on its way to the writer.
struct Record {
    ts_ns: u64,
    buf: Vec<u8>,
}

/// The writer thread and what the cores need to feed it.
pub struct Capture {
    records: Sender<Record>,
    pool: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<PcapStats>,
}

impl Capture {
    /// Opens FILE (so a bad path is refused at start) and starts the writer thread.
    pub fn start(cfg: PcapConfig) -> std::io::Result<Capture> {
        let stats = Arc::new(PcapStats::default());
        let path = cfg.path.clone();
        let mut w = RotatingWriter::create(cfg, Arc::clone(&stats))?;
        let (records, rx) = bounded::<Record>(CHANNEL_DEPTH);
        let (pool_tx, pool) = bounded::<Vec<u8>>(CHANNEL_DEPTH);
        let st = Arc::clone(&stats);
        let thread = super::caps::spawn_unprivileged("xdptcp-pcap", move || {
            let mut failed = false;
            loop {
                match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok(r) => {
                        if !failed {
                            if let Err(e) = w.write(r.ts_ns, &r.buf) {
                                eprintln!("xdptcp: --pcap {}: {e}; capture stopped", path.display());
                                st.write_errors.fetch_add(1, Ordering::Relaxed);
                                failed = true;
                            }
                        }
                        let _ = pool_tx.try_send(r.buf);
                    }
                    // Idle: what is buffered reaches the file, so a reader sees it.
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = w.flush();
                    }
                    // Every tap is gone: the cores stopped.
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = w.flush();
        })?;
        Ok(Capture { records, pool, thread: Some(thread), stats })
    }

    /// A tap for one core.
    pub fn tap(&self) -> Tap {
        Tap { records: self.records.clone(), pool: self.pool.clone(), dropped: 0 }
    }

    /// Waits for the writer to drain and close the file. Call after every tap is dropped
    /// (the cores stopped), or it waits for them.
    pub fn finish(mut self) {
        self.join();
    }

    fn join(&mut self) {
        // Our own sender must go too, or the writer never sees the end.
        let (dead, _) = bounded(1);
        self.records = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.join();
    }
}

/// One core's end of the capture.
pub struct Tap {
    records: Sender<Record>,
    pool: Receiver<Vec<u8>>,
    /// Frames not captured: the writer was behind (channel full).
    pub dropped: u64,
}

impl Tap {
    /// Queues a copy of `frame` for the writer, or counts it dropped. Never blocks.
    pub fn record(&mut self, frame: &[u8]) {
        if self.records.is_full() {
            self.dropped += 1;
            return;
        }
        // Buffers come back from the writer; new ones are made only until the pool holds as
        // many as can be in flight (the channel's depth).
        let mut buf = self.pool.try_recv().unwrap_or_else(|_| Vec::with_capacity(2048));
        buf.clear();
        buf.extend_from_slice(frame);
        #[allow(clippy::disallowed_methods)] // pcap timestamps are wall-clock time
        let ts_ns =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        if self.records.try_send(Record { ts_ns, buf }).is_err() {
            self.dropped += 1;
        }
    }
}

/// A link whose every received and sent frame is also given to a [`Tap`]; built around the
/// core's link for one loop turn.
pub struct Tapped<'a> {
    link: &'a mut dyn FrameIo,
    tap: &'a mut Tap,
}

impl<'a> Tapped<'a> {
    pub fn new(link: &'a mut dyn FrameIo, tap: &'a mut Tap) -> Self {
        Tapped { link, tap }
    }
}

/// A transmit side that records what it sends.
struct TapSink<'a> {
    sink: &'a mut dyn FrameSink,
    tap: &'a mut Tap,
}

impl FrameSink for TapSink<'_> {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let TapSink { sink, tap } = self;
        sink.send_frame(len, &mut |buf: &mut [u8]| {
            fill(buf);
            tap.record(buf);
        })
    }
}

impl FrameSink for Tapped<'_> {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        TapSink { sink: self.link.tx(), tap: self.tap }.send_frame(len, fill)
    }
}

impl FrameIo for Tapped<'_> {
    fn rx_burst(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8], &mut dyn FrameSink)) -> usize {
        let tap = &mut *self.tap;
        self.link.rx_burst(max, &mut |frame: &[u8], tx: &mut dyn FrameSink| {
            tap.record(frame);
            on_frame(frame, &mut TapSink { sink: tx, tap: &mut *tap });
        })
    }

    fn tx(&mut self) -> &mut dyn FrameSink {
        self
    }

    fn flush(&mut self) {
        self.link.flush();
    }

    fn stats(&self) -> IoStats {
        self.link.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xdptcp-pcap-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d.join("cap.pcap")
    }

    /// A record read back: (sec, nsec, incl, orig, bytes).
    type Rec = (u32, u32, u32, u32, Vec<u8>);

    /// Reads a pcap file back: (header, records).
    fn read(path: &Path) -> (Vec<u8>, Vec<Rec>) {
        let b = std::fs::read(path).unwrap();
        let u = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
        let mut recs = Vec::new();
        let mut o = 24;
        while o < b.len() {
            let incl = u(o + 8) as usize;
            recs.push((u(o), u(o + 4), u(o + 8), u(o + 12), b[o + 16..o + 16 + incl].to_vec()));
            o += 16 + incl;
        }
        assert_eq!(o, b.len(), "records end exactly at the end of the file");
        (b[..24].to_vec(), recs)
    }

    #[test]
    fn header_is_pcap_2_4_nanosecond_ethernet() {
        let h = file_header();
        assert_eq!(u32::from_ne_bytes(h[0..4].try_into().unwrap()), 0xa1b2_3c4d);
        assert_eq!(u16::from_ne_bytes([h[4], h[5]]), 2);
        assert_eq!(u16::from_ne_bytes([h[6], h[7]]), 4);
        assert_eq!(&h[8..16], &[0; 8]);
        assert_eq!(u32::from_ne_bytes(h[16..20].try_into().unwrap()), 65_535);
        assert_eq!(u32::from_ne_bytes(h[20..24].try_into().unwrap()), 1);
    }

    #[test]
    fn record_header_splits_seconds_and_nanoseconds() {
        let h = record_header(1_700_000_000_123_456_789, 60, 60);
        assert_eq!(u32::from_ne_bytes(h[0..4].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_ne_bytes(h[4..8].try_into().unwrap()), 123_456_789);
        assert_eq!(u32::from_ne_bytes(h[8..12].try_into().unwrap()), 60);
        assert_eq!(u32::from_ne_bytes(h[12..16].try_into().unwrap()), 60);
    }

    #[test]
    fn writer_round_trips_frames() {
        let p = tmp("roundtrip");
        let stats = Arc::new(PcapStats::default());
        let mut w = RotatingWriter::create(PcapConfig { path: p.clone(), max_bytes: 1 << 20, files: 2 }, stats.clone())
            .unwrap();
        w.write(5_000_000_007, &[1u8; 60]).unwrap();
        w.write(6_000_000_000, &[2u8; 1514]).unwrap();
        w.flush().unwrap();
        let (h, recs) = read(&p);
        assert_eq!(h, file_header());
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].0, recs[0].1, recs[0].2, recs[0].3), (5, 7, 60, 60));
        assert_eq!(recs[1].4, vec![2u8; 1514]);
        assert_eq!(stats.frames.load(Ordering::Relaxed), 2);
        assert_eq!(stats.bytes.load(Ordering::Relaxed), 16 + 60 + 16 + 1514);
    }

    #[test]
    fn writer_rotates_and_keeps_at_most_files() {
        let p = tmp("rotate");
        let stats = Arc::new(PcapStats::default());
        // 24 + 3 records of 16 + 100 = 372 bytes fit under 400; the fourth rotates.
        let cfg = PcapConfig { path: p.clone(), max_bytes: 400, files: 3 };
        let mut w = RotatingWriter::create(cfg, stats.clone()).unwrap();
        for i in 0..20u8 {
            w.write(u64::from(i), &[i; 100]).unwrap();
        }
        w.flush().unwrap();
        let name = |n: u32| PathBuf::from(format!("{}.{n}", p.display()));
        for f in [p.clone(), name(1), name(2)] {
            let len = std::fs::metadata(&f).unwrap().len();
            assert!(len <= 400, "{} is {len} bytes", f.display());
            let (h, recs) = read(&f);
            assert_eq!(h, file_header());
            assert!(!recs.is_empty());
        }
        assert!(!name(3).exists(), "only three files are kept");
        // The newest frames are in FILE, the ones before in FILE.1.
        let (_, cur) = read(&p);
        let (_, prev) = read(&name(1));
        assert_eq!(cur.last().unwrap().4[0], 19);
        assert_eq!(prev.last().unwrap().4[0] + 1, cur[0].4[0]);
        assert_eq!(stats.rotations.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_frame_larger_than_the_limit_still_lands() {
        let p = tmp("big");
        let cfg = PcapConfig { path: p.clone(), max_bytes: 100, files: 1 };
        let mut w = RotatingWriter::create(cfg, Arc::new(PcapStats::default())).unwrap();
        w.write(1, &[7u8; 500]).unwrap();
        w.write(2, &[8u8; 500]).unwrap();
        w.flush().unwrap();
        let (_, recs) = read(&p);
        assert_eq!(recs.len(), 1, "one file kept: the second frame replaced the first");
        assert_eq!(recs[0].4[0], 8);
    }

    #[test]
    fn tapped_link_records_both_directions_and_counts_drops() {
        let p = tmp("tap");
        let cap = Capture::start(PcapConfig { path: p.clone(), max_bytes: 1 << 20, files: 1 }).unwrap();
        let mut tap = cap.tap();
        let (mut a, mut b) = crate::io::mem::MemLink::pair(Default::default(), 1);
        b.tx().send_frame(64, &mut |f: &mut [u8]| f.fill(0xaa));
        b.flush();
        let mut tapped = Tapped::new(&mut a, &mut tap);
        let mut got = 0;
        tapped.rx_burst(8, &mut |f: &[u8], tx: &mut dyn FrameSink| {
            got += f.len();
            tx.send_frame(70, &mut |o: &mut [u8]| o.fill(0xbb));
        });
        tapped.tx().send_frame(80, &mut |o: &mut [u8]| o.fill(0xcc));
        tapped.flush();
        assert_eq!(got, 64);
        assert_eq!(tap.dropped, 0);
        drop(tap);
        cap.finish();
        let (_, recs) = read(&p);
        let seen: Vec<(usize, u8)> = recs.iter().map(|r| (r.4.len(), r.4[0])).collect();
        assert_eq!(seen, vec![(64, 0xaa), (70, 0xbb), (80, 0xcc)]);
    }
}
