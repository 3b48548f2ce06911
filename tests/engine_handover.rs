//! Several cores (DESIGN.md "Sharding across cores"): a flow belongs to the core whose queue
//! receives it. A segment that reaches a core which does not hold its flow (on veth the receive
//! queue follows the sender's transmit hash, which the kernel may change) is handed to the
//! holder in one hop, found in the flow directory, counted, and never answered with a wrong
//! RST. A segment nobody holds is judged where it lands (a cookie is validated there, anything
//! else gets the RST of RFC 9293 §3.10.7.1): no walk over the cores.

mod common;
use common::*;
use std::collections::VecDeque;
use std::sync::Arc;
use xdptcp::app::AppKind;
use xdptcp::engine::owners::OwnerDirectory;
use xdptcp::engine::{connect_cores, Core, HandoverConfig};
use xdptcp::io::{FrameIo, IoStats};
use xdptcp::net::{FrameSink, Net, NetConfig};
use xdptcp::tcp::{Config, FourTuple, Secrets, Shard, State, SynCookies};
use xdptcp::time::Duration;
use xdptcp::wire::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};

const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

/// A queue whose frames the test puts in and takes out by hand.
#[derive(Default)]
struct Queue {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

impl FrameIo for Queue {
    fn rx_burst(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8], &mut dyn FrameSink)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(f) = self.rx.pop_front() else { break };
            on_frame(&f, &mut self.tx);
            n += 1;
        }
        n
    }
    fn tx(&mut self) -> &mut dyn FrameSink {
        &mut self.tx
    }
    fn flush(&mut self) {}
    fn stats(&self) -> IoStats {
        IoStats::default()
    }
}

fn ethernet(ip: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { src: CLIENT_MAC, dst: SERVER_MAC, vlan: None, ethertype: EtherType::Ipv4 };
    let mut f = vec![0u8; 14];
    eth.emit(&mut f);
    f.extend_from_slice(ip);
    f
}

fn ip_of(frame: &[u8]) -> Vec<u8> {
    EthernetFrame::new_checked(frame).unwrap().payload().to_vec()
}

fn server_cores(n: usize) -> Vec<Core> {
    server_cores_with(n, plain_cfg(), HandoverConfig::default())
}

fn server_cores_with(n: usize, cfg: Config, handover: HandoverConfig) -> Vec<Core> {
    server_engine(n, cfg, handover).0
}

/// `n` server cores (echo on port 7) joined as `serve` joins them, and their flow directory.
fn server_engine(n: usize, cfg: Config, handover: HandoverConfig) -> (Vec<Core>, Arc<OwnerDirectory>) {
    let mut cores: Vec<Core> = (0..n)
        .map(|i| {
            let mut shard = Shard::new(cfg.clone(), Secrets::from_seed(42));
            shard.listen(7, None, 128).unwrap();
            let net = Net::new(NetConfig {
                mac: SERVER_MAC,
                addrs: vec!["198.18.0.1".parse().unwrap()],
                own_address: false,
                vlan: None,
                neighbour_ttl: Duration::from_secs(60),
            });
            Core::new(i, shard, net, AppKind::Echo.build())
        })
        .collect();
    let dir = connect_cores(&mut cores, &handover);
    (cores, dir)
}

/// Runs every core once (frames handed over arrive on the next turn).
fn turn(cores: &mut [Core], queues: &mut [Queue], now: xdptcp::time::Instant) {
    for _ in 0..3 {
        for (c, q) in cores.iter_mut().zip(queues.iter_mut()) {
            c.poll(now, q);
        }
    }
}

#[test]
fn final_ack_on_the_other_core_is_handed_to_the_owner() {
    let mut cores = server_cores(2);
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut client = Host::new("198.18.0.2", Config { timestamps: false, ..Config::default() }, 9);
    let now = client.now;
    let id = client.connect(40000, "198.18.0.1:7".parse().unwrap());
    // The SYN lands on queue 0: core 0 holds the SYN-RECEIVED entry.
    queues[0].rx.push_back(ethernet(&client.take_one()));
    turn(&mut cores, &mut queues, now);
    let synack = queues[0].tx.pop().expect("SYN-ACK from core 0");
    client.deliver(&ip_of(&synack));
    assert_eq!(client.state(id), Some(State::Established));
    // The ACK (with data) lands on queue 1, whose core has never seen the flow.
    client.shard.send(id, b"hello\n").unwrap();
    client.flush();
    for p in client.take() {
        queues[1].rx.push_back(ethernet(&p));
    }
    turn(&mut cores, &mut queues, now);
    // No RST from core 1; core 0 completed the handshake and echoed.
    assert!(queues[1].tx.iter().all(|f| !Seg::parse(&ip_of(f)).flags.rst()), "core 1 answered a flow it does not own");
    assert!(queues[1].tx.is_empty());
    let echoed: Vec<Seg> = queues[0].tx.drain(..).map(|f| Seg::parse(&ip_of(&f))).collect();
    assert!(echoed.iter().any(|s| s.payload == b"hello\n"), "{echoed:?}");
    // Two frames went to core 1: the final ACK and the data segment.
    assert_eq!(cores[1].forwarded, 2);
    assert_eq!(cores[0].shard.counters().tcp_ext_foreign_shard, 2);
    assert_eq!(cores[0].shard.conn_count(), 1);
    assert_eq!(cores[1].shard.conn_count(), 0);
}

/// A segment no core holds is answered where it lands, once, with no hand-over: its cost does
/// not grow with the number of cores.
#[test]
fn segment_nobody_holds_is_reset_where_it_lands() {
    for n in [1, 2, 4] {
        let mut cores = server_cores(n);
        let mut queues: Vec<Queue> = (0..n).map(|_| Queue::default()).collect();
        let now = xdptcp::time::Instant::from_secs(10);
        let stray = craft("198.18.0.2:5555".parse().unwrap(), "198.18.0.1:7".parse().unwrap(), 100, 777, ACK, b"x");
        queues[n - 1].rx.push_back(ethernet(&stray));
        turn(&mut cores, &mut queues, now);
        let all: Vec<Seg> = queues[n - 1].tx.drain(..).map(|f| Seg::parse(&ip_of(&f))).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(all[0].is(RST));
        assert_eq!(all[0].seq, 777);
        assert!(queues.iter().all(|q| q.tx.is_empty()));
        assert!(cores.iter().all(|c| c.forwarded == 0), "{n} cores: no hand-over");
    }
}

fn client(seed: u64) -> Host {
    Host::new("198.18.0.2", Config { timestamps: false, ..Config::default() }, seed)
}

fn push(q: &mut Queue, h: &mut Host) {
    for p in h.take() {
        q.rx.push_back(ethernet(&p));
    }
}

/// The client connects to port 7; its SYN lands on queue 0 and the answer is delivered back.
fn connect_on_queue_0(cores: &mut [Core], queues: &mut [Queue], c: &mut Host) -> xdptcp::tcp::ConnId {
    let now = c.now;
    let id = c.connect(40000, "198.18.0.1:7".parse().unwrap());
    push(&mut queues[0], c);
    turn(cores, queues, now);
    deliver_all(c, &mut queues[0]);
    id
}

fn deliver_all(h: &mut Host, q: &mut Queue) -> Vec<Seg> {
    let segs: Vec<Vec<u8>> = q.tx.drain(..).map(|f| ip_of(&f)).collect();
    let parsed = segs.iter().map(|p| Seg::parse(p)).collect();
    for p in segs {
        h.deliver(&p);
    }
    parsed
}

/// RFC 4987 §3.6 with cookies always on: the cookie ACK is validated on the core it reaches
/// (every core derives the same keys), which then holds the connection. Nothing is handed over.
#[test]
fn cookie_ack_is_validated_where_it_lands() {
    let cfg = Config { syncookies: xdptcp::tcp::SynCookies::Always, ..plain_cfg() };
    let mut cores = server_cores_with(2, cfg, HandoverConfig::default());
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    let now = c.now;
    let id = connect_on_queue_0(&mut cores, &mut queues, &mut c);
    assert_eq!(c.state(id), Some(State::Established));
    assert_eq!(cores[0].shard.syn_queue_len(), 0, "a cookie: no state on core 0");
    c.shard.send(id, b"hi\n").unwrap();
    c.flush();
    push(&mut queues[1], &mut c);
    turn(&mut cores, &mut queues, now);
    let back = deliver_all(&mut c, &mut queues[1]);
    assert!(back.iter().any(|s| s.payload == b"hi\n"), "echoed by core 1: {back:?}");
    assert_eq!(cores[1].shard.conn_count(), 1);
    assert_eq!(cores.iter().map(|c| c.forwarded).sum::<u64>(), 0);
    assert_eq!(cores.iter().map(|c| c.shard.counters().tcp_ext_foreign_shard).sum::<u64>(), 0);
}

/// A SYN retransmitted onto the other queue finds the first core's SYN-queue entry through the
/// directory: exactly one entry, and that core answers it again.
#[test]
fn syn_retransmitted_onto_the_other_queue_leaves_one_entry() {
    let mut cores = server_cores(2);
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    let now = c.now;
    c.connect(40000, "198.18.0.1:7".parse().unwrap());
    let syn = c.take_one();
    queues[0].rx.push_back(ethernet(&syn));
    turn(&mut cores, &mut queues, now);
    let first = Seg::parse(&ip_of(&queues[0].tx.pop().unwrap()));
    queues[1].rx.push_back(ethernet(&syn));
    turn(&mut cores, &mut queues, now);
    assert_eq!(cores[0].shard.syn_queue_len() + cores[1].shard.syn_queue_len(), 1);
    assert_eq!(cores[1].forwarded, 1);
    let again = Seg::parse(&ip_of(&queues[0].tx.pop().expect("core 0 answers the retransmission")));
    assert_eq!((again.seq, again.ack), (first.seq, first.ack));
    assert!(queues[1].tx.is_empty());
}

/// The hang of the first design: the server closed first and holds TIME-WAIT on core 0; the
/// client reuses the port, its new SYN lands on core 1 and its ACKs on core 1 too. The SYN goes
/// to core 0 (RFC 6191 reuse there), and the connection completes, with cookies always on
/// (the ACK is a cookie core 1 validates) and off (the ACK goes to core 0's SYN-queue entry).
#[test]
fn port_reuse_through_time_wait_on_the_other_core_completes() {
    for cookies in [xdptcp::tcp::SynCookies::Always, xdptcp::tcp::SynCookies::OnOverflow] {
        let cfg = Config { syncookies: cookies, ..plain_cfg() };
        let mut cores = server_cores_with(2, cfg, HandoverConfig::default());
        let mut queues = vec![Queue::default(), Queue::default()];
        let mut c = client(9);
        let server: std::net::SocketAddr = "198.18.0.1:7".parse().unwrap();
        time_wait_on_core0(&mut cores, &mut queues, &mut c);
        // A new connection on the same port, a little later; everything now lands on queue 1.
        c.advance(Duration::from_secs(2));
        let now = c.now;
        let id2 = c.connect(40000, server);
        for _ in 0..4 {
            push(&mut queues[1], &mut c);
            turn(&mut cores, &mut queues, now);
            deliver_all(&mut c, &mut queues[0]);
            deliver_all(&mut c, &mut queues[1]);
        }
        assert_eq!(c.state(id2), Some(State::Established), "{cookies:?}");
        c.shard.send(id2, b"again\n").unwrap();
        c.flush();
        let mut echoed = Vec::new();
        for _ in 0..3 {
            push(&mut queues[1], &mut c);
            turn(&mut cores, &mut queues, now);
            echoed.extend(deliver_all(&mut c, &mut queues[0]));
            echoed.extend(deliver_all(&mut c, &mut queues[1]));
        }
        assert!(echoed.iter().any(|s| s.payload == b"again\n"), "{cookies:?}: {echoed:?}");
        assert!(echoed.iter().all(|s| !s.flags.rst()), "{cookies:?}: {echoed:?}");
    }
}

/// A flow whose queue changes mid-transfer completes; every frame that moved is handed over in
/// one hop and counted.
#[test]
fn flow_that_changes_queue_mid_transfer_completes() {
    let mut cores = server_cores(2);
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    let now = c.now;
    let id = c.connect(40000, "198.18.0.1:7".parse().unwrap());
    let mut got = Vec::new();
    let mut sent = Vec::new();
    for round in 0..20u8 {
        let q = if round < 3 { 0 } else { 1 };
        if c.state(id) == Some(State::Established) {
            let chunk = vec![round; 1000];
            c.shard.send(id, &chunk).unwrap();
            sent.extend_from_slice(&chunk);
            c.flush();
        }
        push(&mut queues[q], &mut c);
        turn(&mut cores, &mut queues, now);
        deliver_all(&mut c, &mut queues[0]);
        deliver_all(&mut c, &mut queues[1]);
        got.extend(c.recv_all(id));
    }
    assert_eq!(got, sent, "every byte echoed once, in order");
    assert!(cores[1].forwarded > 0);
    assert_eq!(cores[0].shard.counters().tcp_ext_foreign_shard, cores[1].forwarded);
    assert_eq!(cores[1].shard.conn_count(), 0);
}

/// The hand-over links are bounded: more foreign frames in one burst than the owner's inbox
/// holds are dropped and counted, never queued without bound; TCP recovers them.
#[test]
fn a_full_handover_queue_drops_and_counts() {
    let handover = HandoverConfig { depth: 2, ..HandoverConfig::default() };
    let mut cores = server_cores_with(2, plain_cfg(), handover);
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    let now = c.now;
    let id = connect_on_queue_0(&mut cores, &mut queues, &mut c);
    push(&mut queues[0], &mut c);
    turn(&mut cores, &mut queues, now);
    assert_eq!(cores[0].shard.conn_count(), 1);
    // Ten segments at once, all on queue 1: only core 1 runs before core 0 drains its inbox.
    for k in 0..10u8 {
        c.shard.send(id, &[k; 100]).unwrap();
        c.flush();
    }
    push(&mut queues[1], &mut c);
    cores[1].poll(now, &mut queues[1]);
    assert_eq!(cores[1].forwarded, 2);
    assert_eq!(cores[1].handover_dropped, 8);
}

/// The first connection, all on queue 0, closed by the server first: core 0 holds TIME-WAIT.
fn time_wait_on_core0(cores: &mut [Core], queues: &mut [Queue], c: &mut Host) {
    let server: std::net::SocketAddr = "198.18.0.1:7".parse().unwrap();
    let now = c.now;
    let id = c.connect(40000, server);
    let mut asked = false;
    for _ in 0..6 {
        push(&mut queues[0], c);
        turn(cores, queues, now);
        deliver_all(c, &mut queues[0]);
        if c.state(id) == Some(State::Established) && !asked {
            c.shard.send(id, b"CLOSE\n").unwrap();
            c.flush();
            asked = true;
        }
        for ev in c.take_events() {
            if let xdptcp::tcp::Event::PeerClosed(i) = ev {
                assert_eq!(c.recv_all(i), b"CLOSE\n");
                c.close(i);
            }
        }
    }
    push(&mut queues[0], c);
    turn(cores, queues, now);
    assert_eq!(cores[0].shard.time_wait_len(), 1, "server-side TIME-WAIT on core 0");
}

/// `--syncookies 1` (on overflow), core 0's SYN queue full (a flood on its queue), core 1 quiet.
/// The client reuses its port through core 0's TIME-WAIT; its SYN lands on queue 1 and is
/// handed to core 0, which answers with a cookie (its queue is full) and ends TIME-WAIT. The
/// client's ACK lands on queue 1 like its SYN: core 1 must check the cookie although it sent
/// none itself (the engine shares one "cookies went out" stamp per port, as Linux does for a
/// SO_REUSEPORT group, `synq_overflow_ts`), and the connection is made there.
#[test]
fn cookie_from_the_time_wait_holder_is_validated_where_the_ack_lands() {
    let cfg = Config { syncookies: SynCookies::OnOverflow, max_syn_backlog: 1, ..plain_cfg() };
    let mut cores = server_cores_with(2, cfg, HandoverConfig::default());
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    time_wait_on_core0(&mut cores, &mut queues, &mut c);
    // A flood SYN fills core 0's SYN queue (max_syn_backlog 1).
    let flood = craft("198.18.0.9:1234".parse().unwrap(), "198.18.0.1:7".parse().unwrap(), 5, 0, SYN, b"");
    queues[0].rx.push_back(ethernet(&flood));
    turn(&mut cores, &mut queues, c.now);
    queues[0].tx.clear();
    assert_eq!(cores[0].shard.syn_queue_len(), 1);
    // Port reuse; everything of the new connection lands on queue 1.
    c.advance(Duration::from_secs(2));
    let now = c.now;
    let id2 = c.connect(40000, "198.18.0.1:7".parse().unwrap());
    let mut seen = Vec::new();
    for _ in 0..4 {
        push(&mut queues[1], &mut c);
        turn(&mut cores, &mut queues, now);
        seen.extend(deliver_all(&mut c, &mut queues[0]));
        seen.extend(deliver_all(&mut c, &mut queues[1]));
    }
    let syncookies_sent: u64 = cores.iter().map(|k| k.shard.counters().tcp_ext_syncookies_sent).sum();
    assert!(syncookies_sent >= 1, "core 0 answered the reusing SYN with a cookie");
    assert!(seen.iter().all(|s| !s.flags.rst()), "RST from a server core: {seen:?}");
    assert_eq!(c.state(id2), Some(State::Established));
    assert_eq!(cores.iter().map(|k| k.shard.conn_count()).sum::<usize>(), 1);
}

/// Without TIME-WAIT: core 0 is flooded (cookies on overflow), the client's SYN gets a cookie
/// there, and its ACK reaches queue 1 (the flow moved: veth rehash after a SYN timeout, or
/// `ethtool -X`). Core 1 never sent a cookie itself, and checks it all the same (the shared
/// stamp; Linux `reuse->synq_overflow_ts`).
#[test]
fn cookie_ack_on_a_quiet_core_is_validated() {
    let cfg = Config { syncookies: SynCookies::OnOverflow, max_syn_backlog: 1, ..plain_cfg() };
    let mut cores = server_cores_with(2, cfg, HandoverConfig::default());
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    let now = c.now;
    let flood = craft("198.18.0.9:1234".parse().unwrap(), "198.18.0.1:7".parse().unwrap(), 5, 0, SYN, b"");
    queues[0].rx.push_back(ethernet(&flood));
    turn(&mut cores, &mut queues, now);
    queues[0].tx.clear();
    let id = connect_on_queue_0(&mut cores, &mut queues, &mut c);
    assert_eq!(cores[0].shard.counters().tcp_ext_syncookies_sent, 1);
    assert_eq!(c.state(id), Some(State::Established));
    c.shard.send(id, b"hi\n").unwrap();
    c.flush();
    push(&mut queues[1], &mut c);
    turn(&mut cores, &mut queues, now);
    let back = deliver_all(&mut c, &mut queues[1]);
    assert!(back.iter().all(|s| !s.flags.rst()), "core 1 reset a valid cookie ACK: {back:?}");
    assert!(back.iter().any(|s| s.payload == b"hi\n"), "{back:?}");
}

/// An active open on core 1 for a tuple core 0 holds in TIME-WAIT is refused (the directory
/// knows the tuple): two cores never hold state for one tuple.
#[test]
fn active_open_refuses_a_tuple_another_core_holds() {
    let mut cores = server_cores_with(2, plain_cfg(), HandoverConfig::default());
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(9);
    time_wait_on_core0(&mut cores, &mut queues, &mut c);
    let t = FourTuple::new("198.18.0.1:7".parse().unwrap(), "198.18.0.2:40000".parse().unwrap());
    assert_eq!(cores[1].shard.connect(c.now, t.local, t.remote), Err(xdptcp::tcp::ApiError::AlreadyExists));
    let holders = cores.iter().filter(|k| k.shard.state_of(&t).is_some()).count();
    assert_eq!(holders, 1);
}

/// Counts the directory lookups a shard makes (what "a walk over the cores" would show up as).
struct CountingOwners {
    inner: xdptcp::engine::owners::CoreOwners,
    lookups: Arc<std::sync::atomic::AtomicU64>,
}

impl xdptcp::tcp::FlowOwners for CountingOwners {
    fn owner_elsewhere(&self, t: &FourTuple) -> Option<u16> {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.owner_elsewhere(t)
    }
    fn claim(&self, t: &FourTuple) {
        self.inner.claim(t)
    }
    fn release(&self, t: &FourTuple) {
        self.inner.release(t)
    }
    fn cookie_sent(&self, port: u16, now: xdptcp::time::Instant) {
        self.inner.cookie_sent(port, now)
    }
    fn last_cookie(&self, port: u16) -> Option<xdptcp::time::Instant> {
        self.inner.last_cookie(port)
    }
}

/// Issue "many queues, one owner": a segment that matches nothing costs a core the same work
/// whatever the number of cores. 4,096 ACKs from random tuples go through core 0 of a 1-core
/// and of a 2-core engine whose other core holds 20,000 flows in the directory. On both, core 0
/// answers each with the same RST (RFC 9293 §3.10.7.1), byte for byte; on 2 cores the only
/// extra work is one directory lookup per frame (no walk over the cores, no probe of another
/// core's table), and nothing is handed over. The time per frame is measured, not asserted, by
/// the criterion bench `engine_cores/unmatched_ack_rst/{1,2,4}_cores` (`benches/engine.rs`).
#[test]
fn unmatched_segment_costs_the_same_on_one_and_two_cores() {
    use xdptcp::tcp::FlowOwners;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let frames: Vec<Vec<u8>> = (0..4096)
        .map(|_| {
            let x = next();
            let src: std::net::SocketAddr =
                format!("198.19.{}.{}:{}", (x >> 8) as u8, x as u8, 1024 + (x >> 20) % 60_000).parse().unwrap();
            ethernet(&craft(src, "198.18.0.1:7".parse().unwrap(), (x >> 32) as u32, x as u32, ACK, b""))
        })
        .collect();
    let mut replies: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut lookups = Vec::new();
    for n in [1usize, 2] {
        // Every ACK answered (no RST limit), as the comparison is of the reply path.
        let cfg = Config { rst_rate_limit: 0, ..plain_cfg() };
        let (mut cores, dir) = server_engine(n, cfg, HandoverConfig::default());
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        if n == 2 {
            let other = dir.for_core(1);
            for p in 0..20_000u32 {
                let remote = std::net::SocketAddr::new(std::net::Ipv4Addr::from(0xc613_0000 + p).into(), 40_000);
                other.claim(&FourTuple::new("198.18.0.1:7".parse().unwrap(), remote));
            }
            cores[0]
                .shard
                .set_owners(Box::new(CountingOwners { inner: dir.for_core(0), lookups: Arc::clone(&counted) }));
        }
        let mut q = Queue::default();
        let now = xdptcp::time::Instant::from_secs(10);
        let mut sent = 0usize;
        for f in &frames {
            q.rx.push_back(f.clone());
            if q.rx.len() == 64 {
                sent += cores[0].poll(now, &mut q);
            }
        }
        assert_eq!(sent, 4096);
        assert_eq!(cores.iter().map(|c| c.forwarded).sum::<u64>(), 0, "{n} cores: a frame was handed over");
        assert_eq!(q.tx.len(), 4096, "{n} cores: one RST per unmatched ACK");
        assert!(q.tx.iter().all(|f| Seg::parse(&ip_of(f)).flags.rst()));
        replies.push(std::mem::take(&mut q.tx));
        lookups.push(counted.load(std::sync::atomic::Ordering::Relaxed));
    }
    assert_eq!(replies[0], replies[1], "1 and 2 cores answer the same ACKs differently");
    assert!(lookups[1] <= 4096, "2 cores: {} directory lookups for 4,096 frames", lookups[1]);
}

/// Whether a core's wake descriptor is readable now (a zero-timeout poll).
fn wake_pending(core: &Core) -> bool {
    use std::os::fd::AsRawFd;
    let fd = core.wake_fd().expect("a joined core has a wake descriptor").as_raw_fd();
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll(2) on one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLIN != 0
}

/// The eventfd's count, read (and so emptied).
fn wake_count(core: &Core) -> u64 {
    use std::os::fd::AsRawFd;
    let fd = core.wake_fd().expect("a joined core has a wake descriptor").as_raw_fd();
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64 from the core's non-blocking eventfd.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

/// A core that sleeps is woken by the first segment handed to it, and only once however many
/// follow before it wakes (one eventfd write per sleep); once it has woken, hand-overs find it
/// awake and write nothing, and the segments wait in its inbox for its next turn.
#[test]
fn a_sleeping_core_is_woken_once_by_the_segments_handed_to_it() {
    let mut cores = server_cores(2);
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(11);
    let now = c.now;
    let id = connect_on_queue_0(&mut cores, &mut queues, &mut c);
    assert_eq!(c.state(id), Some(State::Established));
    // The handshake's last ACK reaches core 0 on its own queue.
    push(&mut queues[0], &mut c);
    turn(&mut cores, &mut queues, now);
    assert!(!wake_pending(&cores[0]), "nothing handed over yet");

    // Core 0 finds nothing to do and goes to sleep; two segments of its flow land on queue 1.
    assert!(cores[0].going_to_sleep(), "an empty inbox: the core sleeps");
    for chunk in [&b"one\n"[..], &b"two\n"[..]] {
        c.shard.send(id, chunk).unwrap();
        c.flush();
        push(&mut queues[1], &mut c);
    }
    cores[1].poll(now, &mut queues[1]);
    assert_eq!(cores[1].forwarded, 2);
    assert!(wake_pending(&cores[0]), "the first hand-over wakes the sleeping core");
    assert_eq!(wake_count(&cores[0]), 1, "one write for the two segments");
    cores[0].woke(true);
    assert!(!wake_pending(&cores[0]));

    // Awake: a hand-over writes nothing; the core finds the segments on its turn.
    c.shard.send(id, b"three\n").unwrap();
    c.flush();
    push(&mut queues[1], &mut c);
    cores[1].poll(now, &mut queues[1]);
    assert!(!wake_pending(&cores[0]), "an awake core is not woken");
    turn(&mut cores, &mut queues, now);
    let back: Vec<u8> = deliver_all(&mut c, &mut queues[0]).into_iter().flat_map(|s| s.payload).collect();
    assert_eq!(back, b"one\ntwo\nthree\n");
}

/// A core about to sleep whose inbox already holds a segment stays awake, and the hand-overs
/// that follow do not write its eventfd; a wake written during a sleep that ended on its own is
/// emptied by `woke(true)`, so it does not cut the next sleep short.
#[test]
fn a_core_with_segments_waiting_does_not_sleep() {
    let mut cores = server_cores(2);
    let mut queues = vec![Queue::default(), Queue::default()];
    let mut c = client(12);
    let now = c.now;
    let id = connect_on_queue_0(&mut cores, &mut queues, &mut c);
    c.shard.send(id, b"early\n").unwrap();
    c.flush();
    push(&mut queues[1], &mut c);
    cores[1].poll(now, &mut queues[1]);
    assert!(!cores[0].going_to_sleep(), "a segment waits: the core stays awake");
    c.shard.send(id, b"late\n").unwrap();
    c.flush();
    push(&mut queues[1], &mut c);
    cores[1].poll(now, &mut queues[1]);
    assert!(!wake_pending(&cores[0]), "a core that stayed awake is not woken");

    turn(&mut cores, &mut queues, now);
    let back: Vec<u8> = deliver_all(&mut c, &mut queues[0]).into_iter().flat_map(|s| s.payload).collect();
    assert_eq!(back, b"early\nlate\n");

    // A sleep whose wake was written but which ended by its timeout: woke(true) empties it.
    assert!(cores[0].going_to_sleep());
    c.shard.send(id, b"x\n").unwrap();
    c.flush();
    push(&mut queues[1], &mut c);
    cores[1].poll(now, &mut queues[1]);
    assert!(wake_pending(&cores[0]));
    cores[0].woke(true);
    assert!(!wake_pending(&cores[0]), "the old wake is gone");
}
