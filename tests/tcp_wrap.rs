//! Sequence-number wraparound (RFC 9293 §3.4): connections whose sequence numbers start just
//! below 2^32 and that move more than 4 GiB, so SND.UNA comes round to ISS again.
//!
//! Before the SYN's acknowledgement was tracked on its own, `SND.UNA == ISS` read as "our SYN
//! is not acknowledged" once 2^32 - 1 bytes had been acknowledged: the send side then stalled for
//! ever (nothing sent, no timer), and with data in flight an ACK landing on ISS made it send a
//! byte that is not in the stream.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::secrets::isn;
use xdptcp::tcp::{Config, ConnId, FourTuple, Secrets, State};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{SeqNum, TcpOptions};

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// The stream: byte `o` is `BLOCK[o % P]`. P does not divide 2^32, so a byte taken from the
/// wrong offset (off by one, or by 2^32) is caught.
const P: usize = 65_521;

fn block() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..P)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Checks that `got` is the stream from offset `off` on.
fn check_stream(block: &[u8], off: u64, got: &[u8]) {
    let mut o = (off % P as u64) as usize;
    let mut rest = got;
    while !rest.is_empty() {
        let n = rest.len().min(P - o);
        assert!(rest[..n] == block[o..o + n], "stream corrupted near offset {off}");
        rest = &rest[n..];
        o = (o + n) % P;
    }
}

/// The instant at which a shard with secrets from seed 5 picks `iss` for the tuple (RFC 6528:
/// ISN = keyed hash + a 4 µs clock).
fn time_for_iss(local: SocketAddr, remote: SocketAddr, iss: u32) -> Instant {
    let key = Secrets::from_seed(5).isn_key;
    let h = isn(&key, Instant::from_nanos(0), &FourTuple::new(local, remote)).0;
    Instant::from_nanos(u64::from(iss.wrapping_sub(h)) * 4_000 + (1u64 << 32) * 4_000)
}

/// A server (seed 5) whose ISS for the crafted peer is `iss`, with 64 KiB segments and a
/// 4 MiB send buffer; the peer offers a 1 GiB window (scale 14). Returns (host, id, SND.NXT,
/// the peer's sequence number).
fn big_server(iss: u32) -> (Host, ConnId, u32, u32) {
    let cfg = Config { mss_v4: 65_495, snd_buf: 4 << 20, timestamps: false, ..Config::default() };
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.now = time_for_iss(b.addr(80), peer(), iss);
    b.shard.listen(80, None, 16).unwrap();
    let syn = TcpOptions { mss: Some(65_495), window_scale: Some(14), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 7, 0, SYN, b"", syn, 65535));
    let sa = Seg::parse(&b.take_one());
    assert_eq!(sa.seq, iss, "the server's ISS is the one the test chose");
    b.deliver(&craft_opts(peer(), b.addr(80), 8, iss.wrapping_add(1), ACK, b"", TcpOptions::default(), 65535));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    (b, id, iss.wrapping_add(1), 8)
}

/// The peer's side of a bulk transfer: checks every segment's bytes against the stream and
/// acknowledges. `ack_at` lets the test pick the acknowledgment number.
struct Receiver {
    block: Vec<u8>,
    iss: u32,
    /// Stream bytes acknowledged.
    acked: u64,
    /// Stream bytes seen (highest end).
    seen: u64,
}

impl Receiver {
    /// Stream offset of sequence number `seq` (the first data byte is ISS + 1), given that it
    /// lies within 2^31 of what was acknowledged.
    fn offset(&self, seq: u32) -> u64 {
        let base = SeqNum(self.iss.wrapping_add(1).wrapping_add(self.acked as u32));
        (self.acked as i64 + i64::from(SeqNum(seq).diff(base))) as u64
    }

    /// Takes what the server sent: content checked, returns the highest stream offset seen.
    fn take(&mut self, b: &mut Host) -> usize {
        let segs = b.take_segs();
        for s in &segs {
            let off = self.offset(s.seq);
            check_stream(&self.block, off, &s.payload);
            self.seen = self.seen.max(off + s.payload.len() as u64);
        }
        segs.len()
    }

    /// Acknowledges up to stream offset `upto` with a 1 GiB window.
    fn ack(&mut self, b: &mut Host, upto: u64) {
        let ack = self.iss.wrapping_add(1).wrapping_add(upto as u32);
        b.deliver(&craft_opts(peer(), b.addr(80), 8, ack, ACK, b"", TcpOptions::default(), 65535));
        self.acked = upto;
    }
}

/// Feeds the send buffer from the stream until `total` bytes were queued; returns bytes queued.
fn feed(b: &mut Host, id: ConnId, block: &[u8], queued: u64, total: u64) -> u64 {
    let mut q = queued;
    while q < total {
        let o = (q % P as u64) as usize;
        let n = ((P - o) as u64).min(total - q) as usize;
        let took = b.shard.send(id, &block[o..o + n]).unwrap();
        q += took as u64;
        if took < n {
            break;
        }
    }
    b.flush();
    q
}

/// Exactly 2^32 - 1 bytes, all acknowledged: SND.UNA is ISS again. Then more data and a FIN:
/// they must go out (before the fix nothing was sent and no timer ran: a stall for ever), with
/// the right bytes at the right sequence numbers, and the close must complete.
#[test]
fn established_send_continues_after_snd_una_returns_to_iss() {
    let iss = 0xffff_f000;
    let (mut b, id, _snd, _rcv) = big_server(iss);
    let mut r = Receiver { block: block(), iss, acked: 0, seen: 0 };
    let first = (1u64 << 32) - 1;
    let total = first + 300_000;
    let mut queued = 0;
    let block = r.block.clone();
    while r.acked < total {
        // Phase one ends exactly at 2^32 - 1 bytes; phase two is queued once all is acked.
        let limit = if r.acked < first { first } else { total };
        queued = feed(&mut b, id, &block, queued, limit);
        r.take(&mut b);
        assert!(r.seen > r.acked, "stalled: {queued} bytes queued, {} acknowledged, nothing sent", r.acked);
        r.ack(&mut b, r.seen);
        if r.acked == first {
            assert_eq!(b.shard.info(id).unwrap().snd_una, SeqNum(iss), "SND.UNA came round to ISS");
        }
    }
    b.take();
    b.shard.shutdown(b.now, id, &mut b.out).unwrap();
    b.flush();
    let fin = Seg::parse(&b.take_one());
    assert!(fin.flags.fin());
    assert_eq!(fin.seq, iss.wrapping_add(1).wrapping_add(total as u32));
    assert_eq!(b.state(id), Some(State::FinWait1));
}

/// Data in flight across ISS, and the peer acknowledges exactly up to ISS (2^32 - 1 bytes):
/// what follows must still be the stream. Before the fix the sender took the ACK for one that
/// also acknowledged its SYN and sent a byte that is not in the stream.
#[test]
fn established_ack_landing_on_iss_with_data_in_flight() {
    let iss = 0x0000_1000;
    let (mut b, id, _snd, _rcv) = big_server(iss);
    let mut r = Receiver { block: block(), iss, acked: 0, seen: 0 };
    let first = (1u64 << 32) - 1;
    let total = first + 3_000_000;
    let mut queued = 0;
    let block = r.block.clone();
    // Acknowledge everything up to 2 MiB short of ISS...
    while r.acked < first - 2_000_000 {
        queued = feed(&mut b, id, &block, queued, total);
        r.take(&mut b);
        r.ack(&mut b, r.seen.min(first - 2_000_000));
    }
    // ...then let the flight run a megabyte past it, acknowledging only up to ISS - 1.
    while r.seen < first + 1_000_000 {
        queued = feed(&mut b, id, &block, queued, total);
        r.take(&mut b);
        let upto = r.seen.min(first - 1);
        if upto > r.acked {
            r.ack(&mut b, upto);
        }
    }
    // The ACK lands exactly on ISS while a megabyte past it is in flight.
    r.ack(&mut b, first);
    assert_eq!(b.shard.info(id).unwrap().snd_una, SeqNum(iss));
    r.take(&mut b);
    // The retransmission timer resends from SND.UNA: every byte must be the stream's.
    b.advance(Duration::from_secs(2));
    assert!(r.take(&mut b) > 0, "the data in flight is retransmitted");
    while r.acked < total {
        queued = feed(&mut b, id, &block, queued, total);
        r.take(&mut b);
        assert!(r.seen > r.acked, "stalled at {}", r.acked);
        r.ack(&mut b, r.seen);
    }
    assert_eq!(queued, total);
}
