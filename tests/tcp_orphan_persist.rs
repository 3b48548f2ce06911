//! An orphaned connection held in the persist state by a peer that keeps
//! answering with a zero window.

mod common;

use common::*;
use xdptcp::tcp::{Config, State};
use xdptcp::time::Duration;

fn peer() -> std::net::SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// RFC 9293 §3.8.6.1 (MUST-36/37) keeps a connection open while the peer answers zero-window
/// probes, but RFC 1122 §4.2.2.17 leaves a closed (orphaned) connection to the resource
/// policy, and Linux's `tcp_probe_timer` aborts a SOCK_DEAD socket once the backed-off probe
/// interval reaches TCP_RTO_MAX (`tcp_orphan_retries`, "!alive && icsk_backoff >=
/// max_probes"): a peer cannot pin an orphan's send buffer for ever (the Sockstress
/// zero-window hold). Here the peer answers every probe with window 0; the orphan, with 4 KB
/// and its FIN queued, is given up within minutes (the probe interval doubles from the RTO to
/// 120 s), not held for the 6 hours the test waits.
/// The peer takes 4 KB, closes its window, the application queues 4 KB more and closes:
/// an orphan with data and its FIN behind a zero window. The peer then answers every probe
/// with window 0 for up to 6 hours. Returns the probes sent, and how long the orphan lived
/// (None: still there at the end).
fn hold_an_orphan(cfg: Config) -> (u32, Option<Duration>) {
    let (mut b, id, snd, rcv) = established_with(peer(), cfg);
    b.shard.send(id, &[9u8; 4000]).unwrap();
    b.flush();
    let data = b.take_segs();
    let sent: usize = data.iter().map(|s| s.payload.len()).sum();
    assert!(sent > 0);
    // The peer takes everything sent and closes its window.
    let una = snd.wrapping_add(sent as u32);
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", Default::default(), 0));
    b.take();
    b.shard.send(id, &[8u8; 4000]).unwrap();
    b.flush();
    b.take();
    b.close(id);
    b.take();
    let t0 = b.now;
    let mut probes = 0;
    let mut step = 0u64;
    while b.now < t0 + Duration::from_secs(6 * 3600) {
        step += 1;
        b.run_until(t0 + Duration::from_secs(step));
        for s in b.take_segs() {
            if s.flags.rst() {
                continue;
            }
            probes += 1;
            // A live peer answers each probe: its window is still zero.
            b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", Default::default(), 0));
            b.take();
        }
        if matches!(b.state(id), None | Some(State::Closed)) {
            return (probes, Some(b.now.saturating_since(t0)));
        }
    }
    (probes, None)
}

/// RFC 9293 §3.8.6.1 (MUST-36/37) keeps a connection open while the peer answers zero-window
/// probes, but RFC 1122 §4.2.2.17 leaves a closed (orphaned) connection to the resource
/// policy, and Linux's `tcp_probe_timer` aborts a SOCK_DEAD socket once the backed-off probe
/// interval reaches TCP_RTO_MAX (`tcp_orphan_retries`, "!alive && icsk_backoff >=
/// max_probes"): a peer cannot pin an orphan's send buffer for ever (the Sockstress
/// zero-window hold). With the defaults the probe interval doubles from the RTO to 120 s, and
/// the orphan is given up within minutes, not held for the 6 hours the test waits.
#[test]
fn orphan_in_zero_window_persist_is_not_held_forever() {
    let (probes, lived) = hold_an_orphan(plain_cfg());
    assert!(probes > 0, "no probes at all");
    let lived = lived.unwrap_or_else(|| panic!("orphan still there after 6 h and {probes} answered probes"));
    assert!(lived < Duration::from_secs(600), "given up once the interval reached 120 s, not after {lived:?}");
}

/// With an RTO.max so large that the probe interval never reaches it, the orphan is still
/// given up, after 15 probes (Linux's `tcp_retries2` default): no setting of the timers keeps
/// an orphan for ever.
#[test]
fn orphan_in_zero_window_persist_is_given_up_after_15_probes_whatever_the_rto_max() {
    let cfg = Config { rto_max: Duration::from_secs(24 * 3600), ..plain_cfg() };
    let (probes, lived) = hold_an_orphan(cfg);
    assert!(lived.is_some(), "orphan still there after 6 h and {probes} answered probes");
    assert_eq!(probes, 15, "the orphan's probes");
}
