//! The SYN shield on the veth bed: `xdptcp serve --syn-shield ...` on one end, kernel clients
//! on the other (with `xdp_pass` on the peer's end, which veth needs to deliver XDP_TX frames),
//! while a bounded SYN flood from spoofed sources runs.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping.
#![cfg(feature = "xdp")]

mod bed;
use bed::serve_bed::{Bed, BIN, SERIAL};
use bed::{counter, privileged};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A bounded SYN flood (raw socket, spoofed 198.18.0.0/15 sources) from the peer, in a thread.
fn flood(bed: &Bed, args: &[&str]) -> std::thread::JoinHandle<Output> {
    let ns = bed.ns_cli();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &ns, BIN, "flood", "--target", "198.18.0.1:7"])
            .args(&args)
            .output()
            .expect("flood")
    })
}

fn flood_done(h: std::thread::JoinHandle<Output>) -> String {
    let o = h.join().expect("flood thread");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "flood: {out} {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// What every shielded run shows: the program answered the flood, the cores made no cookie of
/// their own and received none of the flood (a handful of frames per legitimate connection).
fn assert_shielded(summary: &str, legit: u64) {
    let synacks = counter(summary, "syn_shield_synacks");
    assert!(synacks > 20_000, "the program answered the flood: {summary}");
    assert_eq!(counter(summary, "TcpExtSyncookiesSent"), 0, "no core made a cookie: {summary}");
    assert_eq!(counter(summary, "xdp_shield_to_stack"), 0, "{summary}");
    assert!(counter(summary, "TcpExtSyncookiesRecv") >= legit, "legitimate clients came through cookies: {summary}");
    assert!(counter(summary, "TcpPassiveOpens") >= legit, "{summary}");
    assert!(counter(summary, "rx_frames") < synacks / 4, "the flood reached the cores: {summary}");
    assert_eq!(counter(summary, "TcpEstabResets"), 0, "{summary}");
}

/// One queue, shield on: IPv4 and IPv6 kernel clients connect (data both ways, closes from both
/// sides) while the flood runs; every connection completes.
#[test]
fn one_queue_kernel_clients_connect_through_a_flood() {
    if !privileged("one_queue_kernel_clients_connect_through_a_flood") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("h1", "shared");
    bed.serve(&["--syn-shield", "on", "--addr", "fd00:1813::1"]);
    let f = flood(&bed, &["--seconds", "5", "--count", "2000000"]);
    std::thread::sleep(Duration::from_millis(300));
    let out4 = bed.kclient(&[
        "--conns",
        "300",
        "--concurrency",
        "8",
        "--bytes",
        "2000",
        "--closer",
        "mixed",
        "--timeout",
        "20",
    ]);
    let out6 = bed.kclient_to(
        "[fd00:1813::1]:7",
        &["--conns", "200", "--concurrency", "8", "--bytes", "2000", "--closer", "mixed", "--timeout", "20"],
    );
    let fo = flood_done(f);
    let summary = bed.stop();
    eprintln!("{fo}{out4}{out6}{summary}");
    assert_eq!(out4.matches("150 ok").count(), 2, "IPv4 clients under flood: {out4}");
    assert_eq!(out6.matches("100 ok").count(), 2, "IPv6 clients under flood: {out6}");
    assert_shielded(&summary, 500);
}

/// Two queues, two cores, shield on: the flood and the clients spread over both queues; every
/// connection completes, and again when the server closes first and the clients reuse ports
/// whose TIME-WAIT the server holds (the cookie ACK ends TIME-WAIT, RFC 6191).
#[test]
fn two_queues_kernel_clients_connect_through_a_flood() {
    if !privileged("two_queues_kernel_clients_connect_through_a_flood") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up_queues("h2", "shared", 2);
    bed.serve(&["--syn-shield", "on", "--queues", "2", "--cores", "0,1"]);
    let f = flood(&bed, &["--seconds", "8", "--count", "3000000"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = bed.kclient(&[
        "--conns",
        "1000",
        "--concurrency",
        "32",
        "--bytes",
        "2000",
        "--closer",
        "mixed",
        "--timeout",
        "20",
    ]);
    let run = ["--conns", "3000", "--concurrency", "32", "--closer", "server", "--timeout", "10"];
    let reuse: Vec<String> = (0..2).map(|_| bed.kclient(&run)).collect();
    let fo = flood_done(f);
    let summary = bed.stop();
    eprintln!("{fo}{out}{reuse:?}{summary}");
    assert_eq!(out.matches("500 ok").count(), 2, "clients under flood: {out}");
    for (i, r) in reuse.iter().enumerate() {
        assert!(r.contains("3000 ok, 0 connect errors, 0 io errors"), "port reuse round {i}: {r}");
    }
    assert_shielded(&summary, 7000);
    assert_eq!(counter(&summary, "handover_dropped"), 0, "{summary}");
}

/// Port reuse through TIME-WAIT with the shield on and no flood, one queue: the SYNs that
/// reuse a tuple in TIME-WAIT are answered by the program (which cannot see TIME-WAIT), and
/// the cookie ACK ends TIME-WAIT where the SYN would have (TcpExtTWRecycled).
#[test]
fn port_reuse_through_time_wait_with_the_shield() {
    if !privileged("port_reuse_through_time_wait_with_the_shield") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("h4", "shared");
    bed.serve(&["--syn-shield", "on"]);
    let run = ["--conns", "4000", "--concurrency", "64", "--closer", "server", "--timeout", "10"];
    for round in 1..=2 {
        let out = bed.kclient(&run);
        assert!(out.contains("4000 ok, 0 connect errors, 0 io errors"), "round {round}: {out}");
    }
    let summary = bed.stop();
    eprintln!("{summary}");
    assert_eq!(counter(&summary, "TcpPassiveOpens"), 8000, "{summary}");
    assert_eq!(counter(&summary, "TcpExtSyncookiesRecv"), 8000, "every handshake through a program cookie: {summary}");
    assert!(counter(&summary, "TcpExtTWRecycled") > 0, "the test must reuse ports: {summary}");
    assert_eq!(counter(&summary, "TcpEstabResets"), 0, "{summary}");
}

/// `--syn-shield auto`: off while SYNs are few; on within a second of a flood above the rate,
/// said in the per-second line and the stats file; clients connect throughout; off again once
/// the flood has been over for the hold time (10 s).
#[test]
fn auto_switches_on_under_a_flood_and_off_after_it() {
    if !privileged("auto_switches_on_under_a_flood_and_off_after_it") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stats = format!("/tmp/xdptcp-test-{}-h3.stats", std::process::id());
    let mut bed = Bed::up("h3", "shared");
    // The per-second lines are wanted here: the bed's command without --quiet.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &bed.ns_srv(), BIN, "serve", "--iface", &bed.dev_srv(), "--addr", "198.18.0.1"])
        .args(["--port", "7", "--app", "echo", "--syn-shield", "auto", "--syn-shield-rate", "5000"])
        .args(["--stats-file", &stats])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    bed.attach_peer_pass();
    let mut child = c.spawn().expect("serve");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    bed.server = Some(child);
    std::thread::sleep(Duration::from_millis(1500));
    let out = bed.kclient(&["--conns", "100", "--concurrency", "4", "--bytes", "100", "--closer", "client"]);
    assert!(out.contains("100 ok"), "{out}");
    assert_eq!(counter(&bed.stats(&stats), "syn_shield_active"), 0, "off before the flood");

    let f = flood(&bed, &["--seconds", "4", "--rate", "40000", "--count", "200000"]);
    std::thread::sleep(Duration::from_millis(1500));
    let during = bed.stats(&stats);
    let out = bed.kclient(&[
        "--conns",
        "300",
        "--concurrency",
        "8",
        "--bytes",
        "100",
        "--closer",
        "mixed",
        "--timeout",
        "20",
    ]);
    flood_done(f);
    assert_eq!(counter(&during, "syn_shield_active"), 1, "on under the flood:\n{during}");
    assert_eq!(out.matches("150 ok").count(), 2, "clients under the flood: {out}");
    // The hold time after the flood, and a little more.
    std::thread::sleep(Duration::from_secs(11));
    let after = bed.stats(&stats);
    assert_eq!(counter(&after, "syn_shield_active"), 0, "off after the flood:\n{after}");
    assert_eq!(counter(&after, "syn_shield_switches"), 2, "{after}");
    let out = bed.kclient(&["--conns", "100", "--concurrency", "4", "--bytes", "100", "--closer", "client"]);
    assert!(out.contains("100 ok"), "after: {out}");
    bed.stop();
    let _ = reader.join();
    let _ = std::fs::remove_file(&stats);
    // The summary went to the reader with the rest of stdout.
    let lines = lines.lock().unwrap().clone();
    let summary = lines.join("\n");
    assert!(lines.iter().any(|l| l.contains("shield on (auto)")), "per-second line while on: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("shield off (auto)")), "per-second line while off: {lines:#?}");
    assert!(counter(&summary, "syn_shield_synacks") > 10_000, "{summary}");
    assert!(counter(&summary, "TcpPassiveOpens") >= 500, "{summary}");
}
