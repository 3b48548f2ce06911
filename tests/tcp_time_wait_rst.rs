//! TIME-WAIT with `rfc1337` off and a RST that fails PAWS.

mod common;

use common::*;
use xdptcp::tcp::{Config, State};
use xdptcp::wire::TcpOptions;

/// With `rfc1337` off (Linux's default `tcp_rfc1337=0`), Linux's `tcp_timewait_state_process`
/// ends TIME-WAIT on a RST at RCV.NXT only `if (!paws_reject && ...)`, and `tcp_paws_reject`
/// applies PAWS to a RST while TS.Recent is younger than TCP_PAWS_MSL (60 s), which in
/// TIME-WAIT it always is (RFC 7323 §5.3 R1): an old duplicate RST does not end TIME-WAIT; a
/// current one at RCV.NXT does.
#[test]
fn rfc1337_off_old_timestamp_rst_does_not_end_time_wait() {
    let cfg = Config { rfc1337: false, ..Config::default() };
    let mut a = Host::new("198.18.0.2", cfg.clone(), 1);
    let mut b = Host::new("198.18.0.1", cfg, 2);
    let (ida, idb) = handshake(&mut a, &mut b);
    a.close(ida);
    exchange(&mut a, &mut b);
    b.close(idb);
    let fin = Seg::parse(&b.take_one());
    let (tsval, _) = fin.options.timestamps.expect("timestamps negotiated");
    a.deliver(&craft_back(&fin));
    let last = Seg::parse(&a.take_one());
    assert_eq!(a.state_of(40000, b.addr(80)), Some(State::TimeWait));
    // An exact RST whose TSval is 10 s older than TS.Recent (an old duplicate).
    let opts = TcpOptions { timestamps: Some((tsval.wrapping_sub(10_000), 0)), ..TcpOptions::default() };
    a.deliver(&craft_opts(b.addr(80), a.addr(40000), last.ack, last.seq, RST, b"", opts, 0));
    assert_eq!(
        a.state_of(40000, b.addr(80)),
        Some(State::TimeWait),
        "a RST failing PAWS ended TIME-WAIT (Linux: paws_reject keeps it)"
    );
    // The same RST with a current TSval ends it.
    let opts = TcpOptions { timestamps: Some((tsval.wrapping_add(1), 0)), ..TcpOptions::default() };
    a.deliver(&craft_opts(b.addr(80), a.addr(40000), last.ack, last.seq, RST, b"", opts, 0));
    assert_eq!(a.state_of(40000, b.addr(80)), None, "a current RST at RCV.NXT ends TIME-WAIT");
}

fn craft_back(s: &Seg) -> Vec<u8> {
    craft_opts(s.src, s.dst, s.seq, s.ack, s.flags, &s.payload, s.options, s.window)
}
