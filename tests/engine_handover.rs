//! Several cores: a segment that reaches a core which does not own its flow (on veth the
//! receive queue follows the sender's transmit hash, which the kernel may change) is handed to
//! the owning core, counted, and never answered with a wrong RST; a segment nobody owns gets
//! the RST of RFC 9293 §3.10.7.1 once every core has declined it.

mod common;
use common::*;
use std::collections::VecDeque;
use xdptcp::app::AppKind;
use xdptcp::engine::{connect_cores, Core};
use xdptcp::io::{FrameIo, IoStats};
use xdptcp::net::{FrameSink, Net, NetConfig};
use xdptcp::tcp::{Config, Secrets, Shard, State};
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
    let mut cores: Vec<Core> = (0..n)
        .map(|i| {
            let mut shard = Shard::new(plain_cfg(), Secrets::from_seed(42));
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
    connect_cores(&mut cores);
    cores
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

#[test]
fn segment_nobody_owns_gets_one_rst_after_every_core_declined() {
    let mut cores = server_cores(2);
    let mut queues = vec![Queue::default(), Queue::default()];
    let now = xdptcp::time::Instant::from_secs(10);
    let stray = craft("198.18.0.2:5555".parse().unwrap(), "198.18.0.1:7".parse().unwrap(), 100, 777, ACK, b"x");
    queues[1].rx.push_back(ethernet(&stray));
    turn(&mut cores, &mut queues, now);
    let all: Vec<Seg> = queues.iter_mut().flat_map(|q| q.tx.drain(..)).map(|f| Seg::parse(&ip_of(&f))).collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].is(RST));
    assert_eq!(all[0].seq, 777);
}
