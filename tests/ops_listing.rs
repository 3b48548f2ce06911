//! `Shard::list_sockets`, what `xdptcp ss` shows: every listener, TCB, SYN-queue entry and
//! TIME-WAIT entry once, with `ss`'s queue columns, in pages of any size.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use xdptcp::tcp::shard::SockEntry;
use xdptcp::tcp::State;
use xdptcp::wire::TcpFlags;

/// Delivers what each side sent to the other until both are quiet.
fn pump(a: &mut Host, b: &mut Host) {
    for _ in 0..20 {
        let (fa, fb) = (a.take(), b.take());
        if fa.is_empty() && fb.is_empty() {
            return;
        }
        for p in &fa {
            b.deliver(p);
        }
        for p in &fb {
            a.deliver(p);
        }
    }
    panic!("no quiet after 20 rounds");
}

/// Every entry, taking pages of `max`; checks each page's size and that positions advance.
fn list_all(h: &Host, max: usize) -> Vec<SockEntry> {
    let mut out = Vec::new();
    let mut from = 0;
    let mut pages = 0;
    loop {
        let before = out.len();
        let next = h.shard.list_sockets(from, max, &mut out);
        assert!(out.len() - before <= max, "page over {max}");
        pages += 1;
        assert!(pages < 1000, "listing does not end");
        match next {
            Some(n) => {
                assert!(n > from, "position did not advance");
                from = n;
            }
            None => return out,
        }
    }
}

/// B listens on 80 and 7; four connections from A are established (one with unread data in
/// B's receive queue, one with unacknowledged data in its send queue), two closed by B first
/// (TIME-WAIT on B), and one SYN from elsewhere waits in B's SYN queue.
#[test]
fn list_sockets_shows_every_state_once_in_pages_of_any_size() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 1);
    let mut b = Host::new("198.18.0.1", plain_cfg(), 2);
    b.shard.listen(80, None, 128).unwrap();
    b.shard.listen(7, Some(b.ip), 64).unwrap();
    let mut ids = Vec::new();
    for port in 40000..40006 {
        let ida = a.connect(port, b.addr(80));
        pump(&mut a, &mut b);
        ids.push((ida, b.shard.accept(80).unwrap()));
    }
    // Unread data at B (Recv-Q), and data B sent that A has not acknowledged yet (Send-Q).
    a.shard.send(ids[0].0, b"hello").unwrap();
    a.flush();
    pump(&mut a, &mut b);
    b.shard.send(ids[1].1, b"unacknowledged").unwrap();
    b.flush();
    let _lost = b.take();
    // B closes two connections first: TIME-WAIT on its side.
    for i in [4, 5] {
        b.close(ids[i].1);
        pump(&mut a, &mut b);
        a.close(ids[i].0);
        pump(&mut a, &mut b);
    }
    // A half-open connection from a peer that never answers the SYN-ACK.
    let stranger: SocketAddr = "198.18.0.9:5555".parse().unwrap();
    b.deliver(&craft(stranger, b.addr(80), 1000, 0, TcpFlags::SYN, b""));

    let all = list_all(&b, 10_000);
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &all {
        *by_state.entry(e.state.name()).or_default() += 1;
    }
    let want: BTreeMap<&str, usize> =
        [("LISTEN", 2), ("ESTABLISHED", 4), ("TIME-WAIT", 2), ("SYN-RECEIVED", 1)].into_iter().collect();
    assert_eq!(by_state, want, "{all:#?}");

    let find = |port: u16| all.iter().find(|e| e.remote == Some(a.addr(port))).unwrap();
    assert_eq!((find(40000).recv_q, find(40000).send_q), (5, 0));
    assert_eq!((find(40001).recv_q, find(40001).send_q), (0, 14));
    assert_eq!(find(40004).state, State::TimeWait);
    assert_eq!(find(40002).local, (Some(b.ip), 80));
    let l80 = all.iter().find(|e| e.state == State::Listen && e.local.1 == 80).unwrap();
    assert_eq!((l80.local.0, l80.remote, l80.send_q), (None, None, 128));
    let l7 = all.iter().find(|e| e.state == State::Listen && e.local.1 == 7).unwrap();
    assert_eq!(l7.local.0, Some(b.ip));
    let half = all.iter().find(|e| e.remote == Some(stranger)).unwrap();
    assert_eq!(half.state, State::SynReceived);

    // Pages of any size list the same entries, in the same order (nothing changed between).
    for max in [1, 2, 3, 7] {
        assert_eq!(list_all(&b, max), all, "pages of {max}");
    }
    // An empty shard lists nothing and is done at once.
    let empty = Host::new("198.18.0.3", plain_cfg(), 3);
    let mut out = Vec::new();
    assert_eq!(empty.shard.list_sockets(0, 5, &mut out), None);
    assert!(out.is_empty());
}
