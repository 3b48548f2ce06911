//! The RST rate limit on the veth bed: `xdptcp flood --kind ack` against `serve` draws at most
//! `--rst-limit` RSTs per second per core (plus one second's burst) and the rest are counted in
//! XdptcpRstRateLimited; meanwhile a kernel client whose connection the server lost (SIGKILL
//! and restart) still gets the stack's RST on its first write (RFC 9293 §3.5.2, Figure 10),
//! as ECONNRESET, within its first retransmission.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping.

#![cfg(feature = "xdp")]

mod bed;
use bed::serve_bed::{Bed, SERIAL};
use bed::{counter, privileged};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: u64 = 100;

fn uptime(summary: &str) -> f64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix("uptime_seconds").and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no uptime_seconds in the summary:\n{summary}"))
}

fn flood_bounded(test: &str, tag: &'static str, queues: u32) {
    if !privileged(test) {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up_queues(tag, "shared", queues);
    let limit = LIMIT.to_string();
    bed.serve(&["--rst-limit", &limit, "--stats-file", "none"]);
    let out = bed.flood(&["--kind", "ack", "--count", "40000", "--seconds", "3"]);
    let summary = bed.stop();
    let secs = uptime(&summary).ceil() as u64;
    let (rsts, limited) = (counter(&summary, "TcpOutRsts"), counter(&summary, "XdptcpRstRateLimited"));
    let bound = queues as u64 * (LIMIT * secs + LIMIT);
    println!("{queues} queue(s): {rsts} RSTs, {limited} rate-limited in {secs} s (bound {bound}); {out}");
    assert!(rsts <= bound, "{rsts} RSTs in {secs} s on {queues} queue(s), bound {bound}\n{out}\n{summary}");
    assert!(limited > 0, "nothing rate-limited\n{out}\n{summary}");
    assert!(rsts + limited >= 1000, "the flood did not reach the stack\n{out}\n{summary}");
}

#[test]
fn ack_flood_rsts_are_bounded_one_queue() {
    flood_bounded("ack_flood_rsts_are_bounded_one_queue", "r1", 1);
}

#[test]
fn ack_flood_rsts_are_bounded_two_queues() {
    flood_bounded("ack_flood_rsts_are_bounded_two_queues", "r2", 2);
}

/// A kernel client on the peer: connects, echoes once, says "ready", waits for a line on
/// stdin, writes again and reports how the connection ended, with the kernel's count of
/// retransmissions (tcp_info.tcpi_total_retrans, the 24th 32-bit word after 8 bytes).
const CLIENT: &str = r#"
import socket, struct, sys, time
s = socket.create_connection(("198.18.0.1", 7), timeout=5)
s.sendall(b"hello")
assert s.recv(16) == b"hello"
print("ready", flush=True)
sys.stdin.readline()
s.settimeout(30)
t = time.monotonic()
try:
    s.sendall(b"after the restart")
    d = s.recv(64)
    print("no reset: %r" % d, flush=True)
except ConnectionResetError:
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    retrans = struct.unpack_from("I", info, 100)[0]
    print("reset after %.3f s, retrans %d" % (time.monotonic() - t, retrans), flush=True)
except socket.timeout:
    print("timeout", flush=True)
"#;

/// RFC 9293 §3.5.2 Figure 10 on the bed, under a spoofed-source ACK flood far above the limit.
#[test]
fn lost_connection_is_reset_during_an_ack_flood() {
    if !privileged("lost_connection_is_reset_during_an_ack_flood") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("r3", "shared");
    let flags = ["--rst-limit", "50", "--stats-file", "none"];
    bed.serve(&flags);
    let mut client = Command::new("ip")
        .args(["netns", "exec", &bed.ns_cli(), "python3", "-c", CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 in the peer namespace (scripts/deps.sh installs it)");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert_eq!(first, "ready", "the client did not connect");
    // The server loses every connection: SIGKILL (no FIN, no RST), then a new process.
    if let Some(mut s) = bed.server.take() {
        s.kill().expect("SIGKILL serve");
        let _ = s.wait();
    }
    bed.serve(&flags);
    let ended = std::thread::scope(|sc| {
        let flood = sc.spawn(|| bed.flood(&["--kind", "ack", "--rate", "20000", "--seconds", "4", "--count", "80000"]));
        // Let the flood drain the bucket first.
        std::thread::sleep(Duration::from_millis(1500));
        let mut stdin = client.stdin.take().expect("stdin");
        writeln!(stdin).expect("tell the client to write");
        let ended = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let out = flood.join().expect("flood thread");
        (ended, out)
    });
    let _ = client.wait();
    let summary = bed.stop();
    let (ended, flood_out) = ended;
    println!("client: {ended}; {flood_out}");
    assert!(ended.starts_with("reset"), "client: {ended}\n{flood_out}\n{summary}");
    let retrans: u32 = ended.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(u32::MAX);
    assert!(retrans <= 1, "reset only after {retrans} retransmissions: {ended}");
    assert!(counter(&summary, "XdptcpRstRateLimited") > 0, "the flood was not limited\n{flood_out}\n{summary}");
}
