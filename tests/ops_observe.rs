//! Observability of `xdptcp serve` on the veth bed: the Prometheus endpoint (`--metrics`),
//! read with curl inside the server's namespace and parsed with the reference parser of the
//! text format (python3-prometheus-client); `xdptcp ss` (`--control-socket`) against the
//! kernel's own `ss` on the peer's side; and `--pcap` with rotation, read back by tshark.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping (and so does a missing tool).

#![cfg(feature = "xdp")]

mod bed;
use bed::serve_bed::{Bed, BIN, SERIAL};
use bed::{counter, privileged};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Python of Debian's python3-prometheus-client (not a pyenv one).
const PY: &str = "/usr/bin/python3";

/// True when `tool` runs; otherwise a loud skip, or a failure under CI=true.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok =
        Command::new(tool).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{tool} missing (scripts/deps.sh installs it)");
        let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {tool} missing (scripts/deps.sh installs it)\n");
    }
    ok
}

/// Checks every `xdptcp_core_X` family against its summed `xdptcp_X` family with the
/// reference parser, then prints `key value` lines for the test to read.
const PARSE: &str = r#"
import sys, collections
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
checked = 0
for name, f in fams.items():
    if not name.startswith("xdptcp_core_"):
        continue
    base = "xdptcp_" + name[len("xdptcp_core_"):]
    assert base in fams, base
    assert fams[base].type == f.type, (name, f.type, fams[base].type)
    per = collections.defaultdict(float)
    for s in f.samples:
        labels = dict(s.labels)
        labels.pop("core")
        per[tuple(sorted(labels.items()))] += s.value
    total = {tuple(sorted(s.labels.items())): s.value for s in fams[base].samples}
    assert dict(per) == total, (name, dict(per), total)
    checked += 1
def total(n):
    return int(sum(s.value for s in fams[n].samples))
print("checked", checked)
print("cores", len({s.labels["core"] for s in fams["xdptcp_core_connections"].samples}))
for k in ["TcpPassiveOpens", "TcpCurrEstab", "time_wait", "syn_queue", "connections", "io_rx_frames", "xdp_redirected"]:
    print(k, total("xdptcp_" + k))
print("type_TcpCurrEstab", fams["xdptcp_TcpCurrEstab"].type)
print("type_TcpPassiveOpens", fams["xdptcp_TcpPassiveOpens"].type)
"#;

/// Scrapes the endpoint with curl inside the server's namespace and parses it.
fn scrape(bed: &Bed, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let o = Command::new("ip").args(["netns", "exec", &bed.ns_srv(), "curl", "-sS", "-f", &url]).output().unwrap();
    assert!(o.status.success(), "curl: {}", String::from_utf8_lossy(&o.stderr));
    let mut p = Command::new(PY)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let r = p.wait_with_output().unwrap();
    assert!(
        r.status.success(),
        "parser: {}\n{}",
        String::from_utf8_lossy(&r.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&r.stdout).to_string()
}

fn value(parsed: &str, key: &str) -> u64 {
    counter(parsed, key)
}

/// `xdptcp ss` lines (no header) as word vectors.
fn xss(sock: &str, args: &[&str]) -> Vec<Vec<String>> {
    let o = Command::new(BIN).args(["ss", "--socket", sock, "-H"]).args(args).output().unwrap();
    assert!(o.status.success(), "xdptcp ss {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

/// Holds `n` kernel connections to the echo port open from the peer's namespace (each one
/// echoed a byte, so it is ESTABLISHED on both sides) until the child's stdin closes.
fn hold(bed: &Bed, n: usize) -> Child {
    let script = r#"
import socket, sys
socks = []
for i in range(int(sys.argv[1])):
    s = socket.create_connection(("198.18.0.1", 7), timeout=5)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"#;
    let mut c = Command::new("ip")
        .args(["netns", "exec", &bed.ns_cli(), PY, "-c", script, &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "holder failed");
    c
}

/// Kernel connections to the stack, from the peer: (local, peer) of every ESTAB socket whose
/// peer is the echo port.
fn kernel_estab(bed: &Bed) -> BTreeSet<(String, String)> {
    let o = bed.cli(&["ss", "-Htan"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 5 && w[0] == "ESTAB" && w[4] == "198.18.0.1:7").then(|| (w[3].to_string(), w[4].to_string()))
        })
        .collect()
}

/// Metrics and `ss` on `queues` queues: N connections closed by the stack (TIME-WAIT on its
/// side), M held open; TcpPassiveOpens is N + M; every per-core family sums to its total;
/// `xdptcp ss` lists the M held connections ESTAB with the 4-tuples the kernel's `ss` shows
/// reversed, the TIME-WAIT entries the gauge counts, the listeners, and SYN-RECV entries.
fn metrics_and_ss(tag: &'static str, queues: u32) {
    if !privileged(&format!("metrics_and_ss_{queues}q")) || !have(PY, &["-c", "import prometheus_client"]) {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up_queues(tag, "shared", queues);
    let sock = format!("/run/xdptcp-test-{tag}.sock");
    // A socket file left by a killed instance must not stop the start.
    let _ = std::fs::remove_file(&sock);
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    bed.serve(&["--metrics", "127.0.0.1:9100", "--control-socket", &sock]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);

    const CLOSED: usize = 30;
    const HELD: usize = 20;
    let out =
        bed.kclient(&["--conns", &CLOSED.to_string(), "--concurrency", "4", "--bytes", "500", "--closer", "server"]);
    assert!(out.contains(&format!("{CLOSED} ok")), "{out}");
    let mut holder = hold(&bed, HELD);

    let m = scrape(&bed, 9100);
    assert!(value(&m, "checked") > 60, "{m}");
    assert_eq!(value(&m, "cores"), u64::from(queues), "{m}");
    assert_eq!(value(&m, "TcpPassiveOpens"), (CLOSED + HELD) as u64, "{m}");
    assert_eq!(value(&m, "TcpCurrEstab"), HELD as u64, "{m}");
    assert!(value(&m, "io_rx_frames") > 0 && value(&m, "xdp_redirected") > 0, "{m}");
    assert!(m.contains("type_TcpCurrEstab gauge") && m.contains("type_TcpPassiveOpens counter"), "{m}");

    // ESTAB: exactly the held connections, 4-tuples reversed from the kernel's view.
    let ours: Vec<Vec<String>> = xss(&sock, &[]);
    let estab: BTreeSet<(String, String)> = ours
        .iter()
        .filter(|w| w[0] == "ESTAB")
        .map(|w| {
            assert_eq!((w[1].as_str(), w[2].as_str()), ("0", "0"), "idle queues: {w:?}");
            assert!(w[5].parse::<u32>().unwrap() < queues, "core column: {w:?}");
            (w[4].clone(), w[3].clone())
        })
        .collect();
    let kernel = kernel_estab(&bed);
    assert_eq!(kernel.len(), HELD, "{kernel:?}");
    assert_eq!(estab, kernel);
    // TIME-WAIT: the stack closed first; the listing agrees with the gauge.
    let tw = xss(&sock, &["state", "time-wait"]);
    assert_eq!(tw.len() as u64, value(&m, "time_wait"), "{tw:?}\n{m}");
    assert_eq!(tw.len(), CLOSED, "{tw:?}");
    assert!(tw.iter().all(|w| w[0] == "TIME-WAIT" && w[3] == "198.18.0.1:7"));
    // Listeners on ports 7 and 80 (bound to --addr), one per core.
    let l = xss(&sock, &["-l"]);
    assert_eq!(l.len(), 2 * queues as usize, "{l:?}");
    assert!(l.iter().all(|w| w[0] == "LISTEN" && w[4] == "*:*"), "{l:?}");
    assert!(l.iter().any(|w| w[3].ends_with(":80")) && l.iter().any(|w| w[3].ends_with(":7")), "{l:?}");
    let all = xss(&sock, &["-a"]);
    assert_eq!(all.len(), l.len() + ours.len(), "{all:?}");

    // SYN-RECV: half-open entries from spoofed SYNs.
    bed.flood(&["--count", "20", "--rate", "2000"]);
    std::thread::sleep(Duration::from_millis(300));
    let sr = xss(&sock, &["state", "syn-recv"]);
    let m2 = scrape(&bed, 9100);
    assert!(!sr.is_empty(), "no SYN-RECV entries listed");
    assert_eq!(sr.len() as u64, value(&m2, "syn_queue"), "{sr:?}\n{m2}");

    // Other paths are 404.
    let o = Command::new("ip")
        .args(["netns", "exec", &bed.ns_srv(), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("http://127.0.0.1:9100/")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "404");

    drop(holder.stdin.take());
    let _ = holder.wait();
    let summary = bed.stop();
    assert!(counter(&summary, "TcpPassiveOpens") >= (CLOSED + HELD) as u64, "{summary}");
    assert!(!std::path::Path::new(&sock).exists(), "control socket left after exit");
}

#[test]
fn metrics_and_ss_one_queue() {
    metrics_and_ss("o1", 1);
}

#[test]
fn metrics_and_ss_two_queues() {
    metrics_and_ss("o2", 2);
}

/// `tshark -r FILE ARGS` output lines.
fn tshark(file: &std::path::Path, args: &[&str]) -> Vec<String> {
    let o = Command::new("tshark").arg("-r").arg(file).args(args).output().unwrap();
    assert!(o.status.success(), "tshark {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect()
}

/// `--pcap` on two queues with 1 MB rotation and 3 files: a bulk transfer rotates the file,
/// short connections at the end leave SYNs and SYN-ACKs in FILE; tshark finds no malformed
/// packet in any file, FILE.1 and FILE.2 exist, nothing beyond, and no file is over the size.
#[test]
fn pcap_rotates_and_tshark_reads_it() {
    if !privileged("pcap_rotates_and_tshark_reads_it") || !have("tshark", &["-v"]) {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join("xdptcp-test-o3");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cap.pcap");
    let mut bed = Bed::up_queues("o3", "shared", 2);
    let f = file.to_str().unwrap();
    bed.serve(&["--pcap", f, "--pcap-max-mb", "1", "--pcap-files", "3", "--control-socket", "none"]);
    let out = bed.kclient(&["--conns", "1", "--bytes", "4000000", "--closer", "client", "--timeout", "60"]);
    assert!(out.contains("1 ok"), "{out}");
    let out = bed.kclient(&["--conns", "20", "--concurrency", "4", "--bytes", "100", "--closer", "mixed"]);
    assert!(out.matches("10 ok").count() == 2, "{out}");
    bed.stop();
    let rotated = |n: u32| dir.join(format!("cap.pcap.{n}"));
    assert!(rotated(1).exists() && rotated(2).exists(), "no rotation");
    assert!(!rotated(3).exists(), "more than 3 files kept");
    for p in [file.clone(), rotated(1), rotated(2)] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 1_000_000, "{} is {len} bytes", p.display());
        let bad = tshark(&p, &["-Y", "_ws.malformed"]);
        assert!(bad.is_empty(), "{}: malformed packets:\n{}", p.display(), bad.join("\n"));
        assert!(!tshark(&p, &[]).is_empty(), "{} is empty", p.display());
    }
    let syn = tshark(&file, &["-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0"]);
    let synack = tshark(&file, &["-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 1"]);
    assert!(!syn.is_empty() && !synack.is_empty(), "SYN {} SYN-ACK {}", syn.len(), synack.len());
    // Checksums as the stack sent them, verified by tshark.
    let bad_sum = tshark(&file, &["-o", "tcp.check_checksum:TRUE", "-Y", "tcp.checksum.status == 0"]);
    assert!(bad_sum.is_empty(), "bad TCP checksums:\n{}", bad_sum.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A used `--metrics` address and a `--control-socket` path that is not a socket are refused
/// at start, naming the flag, before the NIC is touched (no bed, no root needed).
#[test]
fn serve_refuses_busy_metrics_address_and_bad_control_socket() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = Command::new(BIN)
        .args(["serve", "--iface", "lo", "--metrics", &addr, "--control-socket", "none", "--stats-file", "none"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&format!("--metrics {addr}")) && err.contains("in use"), "{err}");

    let dir = std::env::temp_dir().join(format!("xdptcp-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("not-a-socket");
    std::fs::write(&plain, b"keep me").unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--iface", "lo", "--control-socket"])
        .arg(&plain)
        .args(["--stats-file", "none"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--control-socket") && err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
    let _ = std::fs::remove_dir_all(&dir);
}
