//! Operating `xdptcp serve` on the veth bed: stopping whatever stdout does, the graceful drain
//! on SIGTERM, the stamped stats file, one clear line for every bad flag, and the warning for a
//! peer that leaves its checksums to an offload that never computes them.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping.

#![cfg(feature = "xdp")]

mod bed;
use bed::serve_bed::{Bed, BIN, SERIAL};
use bed::{counter, privileged};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Waits for `c` to exit, at most `limit` (a hang fails the test instead of stalling it).
fn wait_for_exit(c: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        std::thread::sleep(step);
        waited += step;
    }
    None
}

fn signal(c: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(c.id() as libc::pid_t, sig);
    }
}

/// A pipe whose buffer is already full and that nobody reads: a write to it blocks, as one to
/// a paused terminal or a stalled log shipper does. Returns (read end, write end).
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and owned here alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let junk = [b'x'; 4096];
    loop {
        // SAFETY: writes from a valid buffer to our pipe.
        let n = unsafe { libc::write(fds[1], junk.as_ptr().cast(), junk.len()) };
        if n <= 0 {
            break;
        }
    }
    // Blocking again, as stdout normally is.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        libc::fcntl(fds[1], libc::F_SETFL, 0);
    }
    (r, w)
}

fn stats_cmd(file: &str) -> Output {
    Command::new(BIN).args(["stats", "--file", file]).output().expect("run xdptcp stats")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// Issue item 1: with stdout a full pipe nobody reads, the stats file stays fresh, SIGINT
/// stops the process (it used to wait in write(2) until the pipe drained), the XDP program is
/// gone, and the stats file then says its counters are final. After a SIGKILL the file reads
/// as stale. `xdptcp stats` exits 0 only for a live writer.
#[test]
fn sigint_stops_with_stdout_blocked_and_stats_tell_live_from_stale() {
    if !privileged("sigint_stops_with_stdout_blocked_and_stats_tell_live_from_stale") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("s1", "shared");
    let stats = format!("/tmp/xdptcp-test-{}-s1.stats", std::process::id());
    // Even the first line ("serving ...") meets a full pipe.
    let (_reader, writer) = full_pipe();
    let mut c = bed.serve_command(&["--stats-file", &stats]);
    c.stdout(Stdio::from(writer)).stderr(Stdio::null());
    bed.serve_with(c);
    let out = bed.kclient(&["--conns", "50", "--concurrency", "5"]);
    assert!(out.contains("25 ok"), "{out}");
    // Several seconds of lines against a full pipe, and the stats file still moves.
    std::thread::sleep(Duration::from_millis(3500));
    let live = stats_cmd(&stats);
    assert!(live.status.success(), "stats of a live server: {}", text(&live));
    assert!(counter(&text(&live), "TcpPassiveOpens") >= 50, "{}", text(&live));
    let mut server = bed.server.take().expect("server");
    signal(&server, libc::SIGINT);
    let st = wait_for_exit(&mut server, Duration::from_secs(10));
    assert!(st.is_some(), "serve did not stop within 10 s of SIGINT with stdout blocked");
    assert!(st.is_some_and(|s| s.success()), "exit status {st:?}");
    assert!(!bed.xdp_attached(), "XDP program left attached");
    let fin = stats_cmd(&stats);
    assert!(!fin.status.success(), "final counters must not read as a live server: {}", text(&fin));
    assert!(text(&fin).contains("final counters of pid"), "{}", text(&fin));
    assert!(counter(&text(&fin), "TcpPassiveOpens") >= 50, "{}", text(&fin));

    // Killed: the stamp stays "running" but its writer is gone.
    bed.serve(&["--stats-file", &stats]);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(stats_cmd(&stats).status.success());
    let mut server = bed.server.take().expect("server");
    signal(&server, libc::SIGKILL);
    let _ = server.wait();
    let gone = stats_cmd(&stats);
    assert!(!gone.status.success() && text(&gone).contains("stale"), "{}", text(&gone));
    let _ = std::fs::remove_file(&stats);
}

/// Issue item 1, graceful drain, on one queue and on two: after SIGTERM the listeners close (a
/// new connection is refused with RST) while an open connection keeps being served; when it
/// closes, serve exits 0 at once ("drained"). With a connection that stays open, the drain
/// ends at --drain-timeout: the connection is reset and serve exits 0.
#[test]
fn sigterm_drains_open_connections_then_resets_at_the_deadline() {
    if !privileged("sigterm_drains_open_connections_then_resets_at_the_deadline") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in [("s2", 1u32), ("s3", 2)] {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let q = queues.to_string();

        // Drained: the open connection finishes on its own.
        bed.serve(&["--queues", &q, "--drain-timeout", "30", "--stats-file", "none"]);
        let mut held = bed.peer_connect("198.18.0.1:7").expect("connect");
        held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 5];
        held.write_all(b"hello").unwrap();
        held.read_exact(&mut buf).unwrap();
        let mut server = bed.server.take().expect("server");
        signal(&server, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..4 {
            let e = bed.peer_connect("198.18.0.1:7").expect_err("a draining server accepts nothing new");
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{queues} queue(s): {e}");
        }
        held.write_all(b"again").unwrap();
        held.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"again", "{queues} queue(s): the open connection is still served while draining");
        assert!(server.try_wait().unwrap().is_none(), "serve left before its connection closed");
        drop(held);
        let st = wait_for_exit(&mut server, Duration::from_secs(10));
        assert!(st.is_some_and(|s| s.success()), "{queues} queue(s): exit after the drain: {st:?}");
        let mut out = String::new();
        server.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(out.contains("stopped by SIGTERM, drained"), "{out}");
        assert!(!bed.xdp_attached());

        // Deadline: the connection that stays open is reset.
        bed.serve(&["--queues", &q, "--drain-timeout", "2", "--stats-file", "none"]);
        let mut held = bed.peer_connect("198.18.0.1:7").expect("connect");
        held.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        held.write_all(b"hello").unwrap();
        held.read_exact(&mut buf).unwrap();
        let mut server = bed.server.take().expect("server");
        signal(&server, libc::SIGTERM);
        let st = wait_for_exit(&mut server, Duration::from_secs(15));
        assert!(st.is_some_and(|s| s.success()), "{queues} queue(s): exit at the drain deadline: {st:?}");
        let mut out = String::new();
        server.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(out.contains("stopped by SIGTERM, drain timeout"), "{out}");
        assert!(counter(&out, "TcpEstabResets") >= 1 || counter(&out, "TcpOutRsts") >= 1, "{out}");
        let r = held.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "{queues} queue(s): the connection open at the deadline gets a RST: {r:?}"
        );
    }
}

/// Issue item 2: every bad start is one line on stderr naming the flag (or the privilege) and
/// the fix, a nonzero exit, no libbpf chatter, and nothing attached.
#[test]
fn bad_flags_are_refused_with_one_clear_line_and_nothing_attached() {
    if !privileged("bad_flags_are_refused_with_one_clear_line_and_nothing_attached") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::up("s4", "shared");
    let ns = bed.ns_srv();
    let dev = bed.dev_srv();
    let serve = |pre: &[&str], flags: &[&str]| -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns]).args(pre).args([BIN, "serve"]).args(flags).args(["--duration", "1"]);
        c.output().expect("run serve")
    };
    let base = ["--iface", dev.as_str(), "--addr", "198.18.0.1"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter().map(|s| s.to_string()).chain(extra.iter().map(|s| s.to_string())).collect()
    };
    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let caps_no_ipc_lock = [
        "prlimit",
        "--memlock=8388608:8388608",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+net_admin,+bpf,+net_raw,+perfmon",
        "--ambient-caps=+net_admin,+bpf,+net_raw,+perfmon",
    ];
    let cases: Vec<(&[&str], Vec<String>, &str)> = vec![
        (&[], with(&["--port", "0"]), "--port"),
        (&[], with(&["--also", "0:http"]), "--also"),
        (&[], with(&["--also", "7:http"]), "--also 7:http: port 7 is already served by --port 7"),
        (&[], with(&["--cores", "7"]), "--cores 7: CPU 7"),
        (&[], with(&["--cores", "0,1"]), "--cores names 2 CPU(s) for 1 queue(s)"),
        (&[], with(&["--backlog", "0"]), "--backlog"),
        (&[], with(&["--stats-file", "/nonexistent-dir/x.stats"]), "--stats-file /nonexistent-dir/x.stats"),
        (&[], with(&["--queues", "4"]), "--queues 4"),
        (&[], vec!["--iface".into(), dev.clone(), "--addr".into(), "198.18.0.9".into()], "--addr 198.18.0.9"),
        (&[], vec![], "--iface is required"),
        (&[], vec!["--iface".into(), "xtnope".into()], "--iface xtnope: no such interface"),
        (&nobody, with(&["--stats-file", "none"]), "missing capabilities: CAP_BPF"),
        (&caps_no_ipc_lock, with(&["--stats-file", "none", "--umem-frames", "8192"]), "memlock limit"),
    ];
    for (pre, flags, want) in &cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let o = serve(pre, &flags);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{flags:?} was accepted:\n{err}");
        let first = err.lines().find(|l| l.starts_with("xdptcp:") || l.starts_with("error:")).unwrap_or("");
        assert!(first.contains(want), "{flags:?}: wanted {want:?} in the error line, got:\n{err}");
        assert!(!err.contains("libbpf:"), "{flags:?}: libbpf chatter:\n{err}");
        assert!(!bed.xdp_attached(), "{flags:?}: left an XDP program attached");
    }

    // An MTU XDP cannot take (on veth the peer's counts too): one line, named, with the fix.
    let cli = |args: &[&str]| bed.cli(args);
    let srv = |args: &[&str]| Command::new("ip").args(["netns", "exec", &ns]).args(args).output().unwrap();
    cli(&["ip", "link", "set", "dev", &format!("xt{}-p", bed.tag), "mtu", "9000"]);
    srv(&["ip", "link", "set", "dev", &dev, "mtu", "9000"]);
    let o = serve(&[], &base);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    srv(&["ip", "link", "set", "dev", &dev, "mtu", "1500"]);
    cli(&["ip", "link", "set", "dev", &format!("xt{}-p", bed.tag), "mtu", "1500"]);
    assert!(!o.status.success());
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("MTU")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("mtu 1500") && lines[0].matches("Numerical result out of range").count() <= 1, "{err}");
    assert!(!bed.xdp_attached());
}

/// Issue item 4: a peer whose veth offloads transmit checksums (never computed) gets every
/// segment dropped as a bad checksum; serve says so once on stderr, with the fix.
#[test]
fn checksum_offload_on_the_peer_is_reported_once() {
    if !privileged("checksum_offload_on_the_peer_is_reported_once") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("s5", "shared");
    let peer = format!("xt{}-p", bed.tag);
    let o = bed.cli(&["ethtool", "-K", &peer, "tx", "on"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut c = bed.serve_command(&["--stats-file", "none"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    bed.serve_with(c);
    // Twenty connection attempts at once: their SYNs all carry a checksum left unfilled.
    let o = bed.cli(&[
        "bash",
        "-c",
        "for i in $(seq 20); do timeout 3 bash -c 'echo > /dev/tcp/198.18.0.1/7' 2>/dev/null & done; wait; true",
    ]);
    assert!(o.status.success());
    std::thread::sleep(Duration::from_millis(1200));
    let server = bed.server.take().expect("server");
    signal(&server, libc::SIGINT);
    let o = server.wait_with_output().expect("wait serve");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    // With XDPTCP_TEST_SERVE_ARGS="--syn-shield on" the XDP program drops the SYNs.
    assert!(counter(&out, "drop_bad_checksum") + counter(&out, "xdp_shield_drop_checksum") >= 8, "{out}");
    assert_eq!(err.matches("fail their checksum").count(), 1, "{err}");
    assert!(err.contains(&"ethtool -K <peer-interface> tx off".to_string()), "{err}");
}

/// Two findings of a review. A second SIGTERM during a drain turns it into the immediate stop
/// (it used to end the process on the spot: no summary, a stats file left "running", the peers
/// never reset). And with the side threads on (metrics, control socket), no start warns of
/// threads still holding capabilities: each drops them before the start returns.
#[test]
fn a_second_signal_stops_at_once_with_a_summary_and_no_false_capability_warning() {
    if !privileged("a_second_signal_stops_at_once_with_a_summary_and_no_false_capability_warning") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("s6", "shared");
    let dir = std::env::temp_dir().join(format!("xdptcp-test-{}-s6", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("s.stats").to_string_lossy().to_string();
    let sock = dir.join("c.sock").to_string_lossy().to_string();
    let mut c = bed.serve_command(&[
        "--drain-timeout",
        "60",
        "--stats-file",
        &stats,
        "--metrics",
        "127.0.0.1:9466",
        "--control-socket",
        &sock,
    ]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    bed.serve_with(c);
    let mut held = bed.peer_connect("198.18.0.1:7").expect("connect");
    held.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 5];
    held.write_all(b"hello").unwrap();
    held.read_exact(&mut buf).unwrap();
    let mut server = bed.server.take().expect("server");
    signal(&server, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.try_wait().unwrap().is_none(), "draining for up to 60 s");
    signal(&server, libc::SIGTERM);
    let st = wait_for_exit(&mut server, Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "a second SIGTERM stops with exit 0: {st:?}");
    let o = server.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(out.contains("stopped by SIGINT or a second signal"), "{out}");
    assert!(!err.contains("still holding capabilities"), "{err}");
    let r = held.read(&mut buf);
    assert!(matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset), "the open connection is reset: {r:?}");
    let fin = stats_cmd(&stats);
    assert!(text(&fin).contains("final counters of pid"), "{}", text(&fin));
    assert!(!std::path::Path::new(&sock).exists(), "the control socket is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A review finding: `serve` without `--addr` took every SYN to the port away from the kernel
/// (the XDP program steers the port on any address) and then dropped it, since the network
/// layer knew no address of its own. It now serves every address the interface has, on one
/// queue and on two.
#[test]
fn without_addr_every_address_of_the_interface_is_served() {
    if !privileged("without_addr_every_address_of_the_interface_is_served") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in [("s7", 1u32), ("s8", 2)] {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &bed.ns_srv(), BIN, "serve", "--iface", &bed.dev_srv(), "--port", "7"])
            .args(["--quiet", "--stats-file", "none", "--control-socket", "none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        bed.serve_with(c);
        let out = bed.kclient(&["--conns", "40", "--concurrency", "4"]);
        assert!(out.contains("20 ok"), "{queues} queue(s): {out}");
        let out6 = bed.kclient_to("[fd00:1813::1]:7", &["--conns", "20", "--concurrency", "4"]);
        assert!(out6.contains("10 ok"), "{queues} queue(s), IPv6: {out6}");
        let summary = bed.stop();
        assert_eq!(counter(&summary, "net_rx_not_ours"), 0, "{summary}");
    }
}
