//! The whole per-core loop (STYLE §8.8): `Core::poll` over the in-memory link, with no
//! impairment and no delay, so every frame goes through Ethernet/IP/TCP parsing, the shard, the
//! application and the emitter of the core that receives it.
//!
//! - `engine/echo_pingpong_64_conns`: a client core (a shard that connected 64 connections
//!   and a small handler that writes a 100-byte request whenever the previous answer is back)
//!   and a server core (a shard listening on port 80 with `AppKind::Echo`) joined by
//!   `MemLink::pair`. One iteration is one turn of each loop: 64 requests in at the server,
//!   64 echoes in at the client, each answered within the same turn. Elements = frames received
//!   by the two cores (128); both loops run on the bench's one thread, so the time per element
//!   is the cost of one frame on one core, receive to reply.
//! - `engine/syn_flood_cookies`: 64 SYN frames from spoofed sources per iteration into a server
//!   core whose shard answers with cookies; elements = SYNs received (each answered).
//!
//! The in-memory link allocates a `Vec` per frame and keeps the wire in a heap under a mutex;
//! that cost is inside these figures (an AF_XDP link writes into UMEM frames instead). Figures:
//! docs/bench-tcp.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration as StdDuration;
use xdptcp::app::{AppKind, Conn, Handler};
use xdptcp::engine::{Core, RX_BATCH};
use xdptcp::io::mem::{MemConfig, MemLink};
use xdptcp::io::FrameIo;
use xdptcp::net::{FrameSink, Net, NetConfig};
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{Config, FourTuple, Secrets, Shard, SynCookies};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{EtherType, EthernetAddress, EthernetRepr, SeqNum, TcpFlags, TcpOptions};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const PORT: u16 = 80;
const CONNS: usize = 64;
const REQUEST: [u8; 100] = [b'x'; 100];
/// Simulated time per loop turn.
const TURN: Duration = Duration::from_micros(1);

fn net(mac: EthernetAddress, ip: Ipv4Addr) -> Net {
    Net::new(NetConfig {
        mac,
        addrs: vec![IpAddr::V4(ip)],
        own_address: true,
        vlan: None,
        neighbour_ttl: Duration::from_secs(300),
    })
}

fn server_core(cfg: Config) -> Core {
    let mut shard = Shard::new(cfg, Secrets::from_seed(1));
    shard.listen(PORT, None, 4096).unwrap();
    Core::new(0, shard, net(SERVER_MAC, SERVER), AppKind::Echo.build())
}

/// The client application: one request outstanding per connection; the next one leaves as soon
/// as the whole echo of the previous one has been read.
#[derive(Default)]
struct PingPong {
    got: std::collections::HashMap<xdptcp::tcp::ConnId, usize>,
    answers: u64,
}

impl Handler for PingPong {
    fn on_connected(&mut self, c: &mut Conn<'_>) {
        self.got.insert(c.id, 0);
        c.send(&REQUEST).unwrap();
    }
    fn on_data(&mut self, c: &mut Conn<'_>) {
        let mut buf = [0u8; 512];
        let mut n = 0;
        loop {
            let k = c.recv(&mut buf);
            if k == 0 {
                break;
            }
            n += k;
        }
        let got = self.got.entry(c.id).or_insert(0);
        *got += n;
        if *got >= REQUEST.len() {
            *got -= REQUEST.len();
            self.answers += 1;
            c.send(&REQUEST).unwrap();
        }
    }
}

/// Two cores joined by a clean in-memory link.
struct Bed {
    client: Core,
    server: Core,
    a: MemLink,
    b: MemLink,
    now: Instant,
}

impl Bed {
    fn turn(&mut self) -> usize {
        self.now = self.now + TURN;
        self.a.set_now(self.now);
        let n = self.client.poll(self.now, &mut self.a);
        n + self.server.poll(self.now, &mut self.b)
    }
}

fn pingpong_bed() -> Bed {
    let (a, b) = MemLink::pair(MemConfig::default(), 7);
    let now = Instant::from_secs(1000);
    a.set_now(now);
    let shard = Shard::new(Config::default(), Secrets::from_seed(2));
    let mut client = Core::new(
        0,
        shard,
        net(CLIENT_MAC, CLIENT),
        Box::new(PingPong::default()) as Box<dyn xdptcp::app::Handler + Send>,
    );
    client.net.neigh.learn(IpAddr::V4(SERVER), SERVER_MAC, now);
    let mut bed = Bed { client, server: server_core(Config::default()), a, b, now };
    for i in 0..CONNS {
        let local = SocketAddr::new(CLIENT.into(), 40000 + i as u16);
        bed.client.shard.connect(now, local, SocketAddr::new(SERVER.into(), PORT)).unwrap();
    }
    bed
}

fn bench_pingpong(c: &mut Criterion) {
    let mut bed = pingpong_bed();
    // Handshakes, then the ping-pong settles at one request and one echo per connection per turn.
    for _ in 0..1000 {
        bed.turn();
    }
    assert_eq!(bed.server.shard.conn_count(), CONNS);
    let per_turn = 2 * CONNS;
    assert!(per_turn <= 2 * RX_BATCH);
    for _ in 0..100 {
        assert_eq!(bed.turn(), per_turn, "steady state");
    }
    let frames0 = bed.server.stats(&bed.b).io.rx_frames + bed.client.stats(&bed.a).io.rx_frames;
    let mut turns = 0u64;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(per_turn as u64));
    g.bench_function("echo_pingpong_64_conns", |b| {
        b.iter(|| {
            turns += 1;
            bed.turn()
        })
    });
    g.finish();
    let s = bed.server.stats(&bed.b);
    let cl = bed.client.stats(&bed.a);
    assert_eq!(s.io.rx_frames + cl.io.rx_frames - frames0, turns * per_turn as u64, "every turn moved 128 frames");
    assert_eq!((s.tcp.tcp_retrans_segs, s.tcp.tcp_out_rsts, cl.tcp.tcp_retrans_segs), (0, 0, 0));
    assert_eq!((s.io.tx_no_frame, cl.io.tx_no_frame), (0, 0));
    println!(
        "engine/echo_pingpong_64_conns: {turns} turns, server rx {} tx {} frames, client rx {} tx {}",
        s.io.rx_frames, s.io.tx_frames, cl.io.rx_frames, cl.io.tx_frames
    );
}

/// An Ethernet frame carrying a SYN from the `i`-th spoofed source.
fn syn_frame(i: u32) -> Vec<u8> {
    let src = SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | i).into(), 1024 + (i % 60000) as u16);
    let options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((i, 0)),
        ..TcpOptions::default()
    };
    let seg = OutSegment {
        seq: SeqNum(i.wrapping_mul(0x9e37_79b9)),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 64240,
        options,
        payload: (&[], &[]),
    };
    let mut ip: Vec<Vec<u8>> = Vec::new();
    assert!(emit(&mut ip, &FourTuple::new(src, SocketAddr::new(SERVER.into(), PORT)), &seg, 64));
    let eth = EthernetRepr { src: CLIENT_MAC, dst: SERVER_MAC, vlan: None, ethertype: EtherType::Ipv4 };
    let mut f = vec![0u8; eth.header_len()];
    eth.emit(&mut f);
    f.extend_from_slice(&ip[0]);
    f
}

fn bench_syn_flood(c: &mut Criterion) {
    const SOURCES: usize = 4096;
    let frames: Vec<Vec<u8>> = (0..SOURCES as u32).map(syn_frame).collect();
    let (mut a, mut b) = MemLink::pair(MemConfig::default(), 8);
    let mut server = server_core(Config { syncookies: SynCookies::Always, ..Config::default() });
    let now = Instant::from_secs(1000);
    a.set_now(now);
    let mut pos = 0usize;
    let mut turn = |a: &mut MemLink, b: &mut MemLink, server: &mut Core| {
        for f in &frames[pos..pos + RX_BATCH] {
            assert!(a.send_frame(f.len(), &mut |buf: &mut [u8]| buf.copy_from_slice(f)));
        }
        a.flush();
        pos = (pos + RX_BATCH) % SOURCES;
        let n = server.poll(now, b);
        // The flooder takes its SYN-ACKs off the wire, unread.
        a.rx_burst(RX_BATCH, &mut |_, _| {});
        n
    };
    assert_eq!(turn(&mut a, &mut b, &mut server), RX_BATCH);
    let tx0 = server.stats(&b).io.tx_frames;
    assert_eq!(tx0, RX_BATCH as u64, "a SYN-ACK per SYN");
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(RX_BATCH as u64));
    g.bench_function("syn_flood_cookies", |bch| bch.iter(|| turn(&mut a, &mut b, &mut server)));
    g.finish();
    let s = server.stats(&b);
    assert_eq!(s.io.rx_frames, s.io.tx_frames, "every SYN answered");
    assert_eq!((s.conns, s.syn_queue), (0, 0));
    // Net learns the source of every frame for us, spoofed or not.
    println!(
        "engine/syn_flood_cookies: {} SYNs, {} SYN-ACKs; neighbour cache: {} entries",
        s.io.rx_frames,
        s.io.tx_frames,
        server.net.neigh.len()
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_pingpong, bench_syn_flood
}
criterion_main!(benches);
