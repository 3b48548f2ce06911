//! Loss recovery on the veth bed: 100 connections echo a checked byte stream through random loss
//! and reordering on the kernel peer's side, against `serve` (AF_XDP) and then `serve --backend
//! kernel` on the same path. Every byte must come back intact on every connection; the goodput
//! of both and their ratio are printed, not asserted (no timing asserts: `xdptcp bench loss`
//! measures the full 100 x 8 MiB and the README's table carries the ratio).
//!
//! The impairments (see `bench::impairment_script`, DESIGN.md): this kernel has no netem, and
//! AF_XDP transmit bypasses the qdisc on the stack's side, so nftables `numgen random` drops 5 %
//! of TCP packets on the peer interface's ingress and egress hooks, and 2 % of the peer's TCP
//! packets are sent through a slow HTB class on its egress, overtaken by the ones sent after.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping (also when nft or tc is missing).

#![cfg(feature = "xdp")]

mod bed;
use bed::serve_bed::{Bed, BIN, SERIAL};
use bed::{counter, privileged};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const CONNECTIONS: usize = 100;
/// Per connection: small enough that both backends finish in well under a minute on a shared
/// 2-core machine, large enough that each connection loses segments many times over.
const BYTES: u64 = 256 * 1024;

/// True when `tool` runs; false (loud) when it is missing, a failure under CI=true.
fn have(tool: &str) -> bool {
    if Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{tool} is missing (scripts/deps.sh installs it)");
    eprintln!("\n!!! SKIPPED ops_loss: {tool} is missing (scripts/deps.sh installs it)\n");
    false
}

/// The same impairments as `xdptcp bench loss` on its own bed, on this bed's peer interface.
fn impair(bed: &Bed) {
    let dev = format!("xt{}-p", bed.tag);
    let script = format!(
        "set -e\n\
         nft -f - <<'EOF'\n\
         table netdev xdptcp_loss {{\n\
           chain rx {{ type filter hook ingress device \"{dev}\" priority 0; ip protocol tcp numgen random mod 100 < 5 drop; }}\n\
           chain tx {{ type filter hook egress device \"{dev}\" priority 0; ip protocol tcp numgen random mod 100 < 5 drop; }}\n\
         }}\n\
         table ip xdptcp_reorder {{\n\
           chain out {{ type filter hook output priority 0; ip protocol tcp numgen random mod 100 < 2 meta priority set 0x10020; }}\n\
         }}\n\
         EOF\n\
         tc qdisc replace dev {dev} root handle 1: htb default 10\n\
         tc class add dev {dev} parent 1: classid 1:10 htb rate 20gbit quantum 60000\n\
         tc class add dev {dev} parent 1: classid 1:20 htb rate 200mbit quantum 60000\n"
    );
    let o = bed.cli(&["bash", "-c", &script]);
    assert!(o.status.success(), "impairing {dev}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Packets the impairments acted on: the nft drop counters are not kept, so this reads the HTB
/// classes' sent packets (the reorder class must have carried some).
fn reordered_packets(bed: &Bed) -> u64 {
    let o = bed.cli(&["tc", "-s", "class", "show", "dev", &format!("xt{}-p", bed.tag), "classid", "1:20"]);
    let text = String::from_utf8_lossy(&o.stdout);
    text.split_whitespace().skip_while(|w| *w != "Sent").nth(3).and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn kv(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| l.split_once('=').and_then(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v))))
        .collect()
}

/// Runs the checked echo load from the peer and asserts that every connection got every byte
/// back intact. Returns the goodput in Mbit/s.
fn echo_through_loss(bed: &Bed, backend: &str) -> f64 {
    let (c, b) = (CONNECTIONS.to_string(), BYTES.to_string());
    let args = ["bench", "loss", "--target", "198.18.0.1:7", "--connections", &c, "--bytes", &b, "--stall", "45"];
    let o = bed.cli(&[&[BIN][..], &args[..], &["--kv"][..]].concat());
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{backend}: bench loss failed: {out}{err}");
    let m = kv(&out);
    assert_eq!(m.get("verified").copied(), Some(CONNECTIONS as f64), "{backend}: {out}{err}");
    assert_eq!(m.get("mismatches").copied(), Some(0.0), "{backend}: {out}{err}");
    assert_eq!(m.get("bytes").copied(), Some((CONNECTIONS as u64 * BYTES) as f64), "{backend}: {out}{err}");
    let g = m.get("goodput_mbit_per_sec").copied().unwrap_or(0.0);
    eprintln!("ops_loss: {backend}: {CONNECTIONS} x {BYTES} bytes echoed intact, {g:.1} Mbit/s");
    g
}

#[test]
fn echo_intact_through_loss_and_reordering_both_backends() {
    if !privileged("echo_intact_through_loss_and_reordering_both_backends") || !have("nft") || !have("tc") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("b1", "shared");
    impair(&bed);

    bed.serve(&[]);
    let xdp = echo_through_loss(&bed, "xdptcp");
    let summary = bed.stop();
    assert!(counter(&summary, "TcpPassiveOpens") >= CONNECTIONS as u64, "{summary}");
    // 5 % of what the stack sent was dropped: it must have recovered by retransmitting.
    assert!(counter(&summary, "TcpRetransSegs") > 0, "{summary}");
    assert_eq!(counter(&summary, "TcpEstabResets"), 0, "{summary}");
    assert!(reordered_packets(&bed) > 0, "the reorder class carried nothing");

    // The kernel's TCP on the same path, same port, same impairments.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &bed.ns_srv(), BIN, "serve", "--backend", "kernel", "--addr", "198.18.0.1"])
        .args(["--port", "7", "--app", "echo", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    bed.serve_with(c);
    let kernel = echo_through_loss(&bed, "kernel");
    bed.stop();
    eprintln!(
        "ops_loss: goodput xdptcp / kernel = {:.3} ({xdp:.1} / {kernel:.1} Mbit/s; a ratio, printed only)",
        xdp / kernel.max(1e-9)
    );
}

/// The same on a 2-queue bed: the peer's flows spread over both queues (veth delivers on the
/// receive queue of the sender's transmit queue), so both cores recover losses, each for its
/// own connections.
#[test]
fn echo_intact_through_loss_and_reordering_on_two_queues() {
    if !privileged("echo_intact_through_loss_and_reordering_on_two_queues") || !have("nft") || !have("tc") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up_queues("b2", "shared", 2);
    impair(&bed);
    bed.serve(&["--queues", "2"]);
    echo_through_loss(&bed, "xdptcp, 2 queues");
    let summary = bed.stop();
    assert!(counter(&summary, "TcpPassiveOpens") >= CONNECTIONS as u64, "{summary}");
    assert!(counter(&summary, "TcpRetransSegs") > 0, "{summary}");
    assert_eq!(counter(&summary, "TcpEstabResets"), 0, "{summary}");
    assert!(reordered_packets(&bed) > 0, "the reorder class carried nothing");
}
