//! `serve --app proxy` on the veth bed, in front of real servers in the stack's namespace:
//! nginx on 127.0.0.1 with `listen ... proxy_protocol`, xdptcp's kernel-socket echo backend,
//! and small upstreams of the test's own that reset mid-transfer. The clients are curl, wrk and
//! kernel sockets in the peer namespace. Every test runs on a 1-queue and a 2-queue bed.
//!
//! Needs nginx, wrk and curl (scripts/deps.sh installs them). Privileged: as root these run;
//! without root they print a loud skip message; with CI=true a missing tool or root fails.

#![cfg(feature = "xdp")]

mod bed;
use bed::serve_bed::{Bed, BIN, SERIAL};
use bed::{counter, privileged};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1 << 20;
/// The beds: (tag, receive queues).
const BEDS: [(&str, u32); 2] = [("p1", 1), ("p2", 2)];

/// True when root and every tool is there. A missing tool fails under CI=true.
fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    for tool in ["nginx", "wrk", "curl"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(tool).exists());
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: `{tool}` is missing (scripts/deps.sh installs it), and CI=true forbids skipping"
            );
            eprintln!("\n!!! SKIPPED {test}: `{tool}` is not installed (run scripts/deps.sh)\n");
            return false;
        }
    }
    true
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("xdptcp-proxy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx in the stack's namespace on 127.0.0.1:8080 with `proxy_protocol`: `/` answers
/// "hello", `/big.bin` is a 16 MiB file, `PUT /up/NAME` stores a body (WebDAV), and the
/// access log starts with `$proxy_protocol_addr`.
struct Nginx {
    dir: TempDir,
    child: Option<Child>,
    ns: String,
}

const NGINX_CONF: &str = r#"
daemon off;
master_process off;
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    log_format relay '$proxy_protocol_addr $proxy_protocol_port $remote_addr "$request" $status';
    client_body_temp_path DIR/body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    server {
        listen 127.0.0.1:8080 proxy_protocol;
        listen unix:DIR/nginx.sock proxy_protocol;
        access_log DIR/access.log relay;
        root DIR/html;
        location = / { return 200 "hello\n"; }
        location /up/ {
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 64m;
        }
    }
}
"#;

impl Nginx {
    fn start(bed: &Bed, big: &[u8]) -> Nginx {
        let dir = TempDir::new(&format!("nginx-{}", bed.tag));
        std::fs::create_dir_all(dir.path("html/up")).unwrap();
        std::fs::write(dir.path("html/big.bin"), big).unwrap();
        let conf = NGINX_CONF.replace("DIR", &dir.0.to_string_lossy());
        std::fs::write(dir.path("nginx.conf"), conf).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &bed.ns_srv(), "nginx", "-c"])
            .arg(dir.path("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { dir, child: Some(child), ns: bed.ns_srv() };
        n.wait_listening();
        n
    }

    fn wait_listening(&mut self) {
        for _ in 0..50 {
            let o = Command::new("ip").args(["netns", "exec", &self.ns, "ss", "-Hltn", "sport = :8080"]).output();
            if o.is_ok_and(|o| !o.stdout.is_empty()) {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "nginx exited: {st}; {}",
                    std::fs::read_to_string(self.dir.path("error.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nginx does not listen on 127.0.0.1:8080");
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path("access.log")).unwrap_or_default()
    }

    /// SIGKILL: the server dies as a crashed one does.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `serve --app proxy` on the bed's port 80, relaying to `upstream`, with a stats file.
fn serve_proxy(bed: &mut Bed, queues: u32, upstream: &str, pp: &str, stats: &Path, extra: &[&str]) {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &bed.ns_srv(), BIN, "serve", "--iface", &bed.dev_srv(), "--addr", "198.18.0.1"])
        .args(["--port", "80", "--app", "proxy", "--upstream", upstream, "--proxy-protocol", pp, "--quiet"])
        .args(["--queues", &queues.to_string(), "--control-socket", "none", "--stats-file"])
        .arg(stats)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    bed.serve_with(c);
}

/// Descriptors `serve` holds open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Runs `f` on a thread that joined network namespace `ns` (a socket stays in the namespace it
/// was made in).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns(2) on a namespace file we opened; it changes this thread only.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// `n` bytes of a position-dependent pattern (a lost, duplicated or reordered block shows).
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut x = seed | 1;
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn curl(bed: &Bed, args: &[&str]) -> std::process::Output {
    let mut a = vec!["curl", "-sS", "-m", "20"];
    a.extend_from_slice(args);
    bed.cli(&a)
}

/// Closes `s` with a RST (SO_LINGER 0), as a crashed or killed server's kernel does when data
/// is pending.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid linger value of the size passed.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// Counters `serve` wrote to its stats file in its last second.
fn live(bed: &Bed, stats: &Path) -> String {
    bed.stats(&stats.to_string_lossy())
}

#[test]
fn proxy_relays_curl_and_wrk_to_nginx_with_the_clients_address() {
    if !ready("proxy_relays_curl_and_wrk_to_nginx_with_the_clients_address") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let big = pattern(16 * MIB, 7);
    for (tag, queues) in BEDS {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let nginx = Nginx::start(&bed, &big);
        let tmp = TempDir::new(&format!("relay-{tag}"));
        let mut seen_lines = 0;
        // TCP on loopback with either header, and a Unix socket (`--upstream unix:PATH`).
        let unix = format!("unix:{}", nginx.dir.path("nginx.sock").display());
        for (pp, upstream, name) in
            [("v1", "127.0.0.1:8080", "v1"), ("v2", "127.0.0.1:8080", "v2"), ("v1", &unix, "unix")]
        {
            let stats = tmp.path(&format!("stats-{name}"));
            serve_proxy(&mut bed, queues, upstream, pp, &stats, &[]);
            let ctx = format!("{queues} queue(s), PROXY {pp} over {upstream}");

            let o = curl(&bed, &["http://198.18.0.1/"]);
            assert!(o.status.success(), "{ctx}: curl: {}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\n", "{ctx}");

            // 16 MiB down: nginx's file, byte for byte.
            let o = curl(&bed, &["http://198.18.0.1/big.bin"]);
            assert!(o.status.success(), "{ctx}: curl big.bin: {}", String::from_utf8_lossy(&o.stderr));
            assert!(o.stdout == big, "{ctx}: 16 MiB download differs ({} bytes arrived)", o.stdout.len());

            // 16 MiB up: nginx stores the body, byte for byte.
            let body = tmp.path("body.bin");
            std::fs::write(&body, &big[..]).unwrap();
            let up = format!("http://198.18.0.1/up/{name}.bin");
            let o = curl(&bed, &["-f", "-T", &body.to_string_lossy(), &up]);
            assert!(o.status.success(), "{ctx}: curl PUT: {}", String::from_utf8_lossy(&o.stderr));
            let stored = std::fs::read(nginx.dir.path(&format!("html/up/{name}.bin"))).unwrap_or_default();
            assert!(stored == big, "{ctx}: 16 MiB upload differs ({} bytes stored)", stored.len());

            // wrk, one connection per request (Connection: close), 16 at a time.
            let o = bed.cli(&["wrk", "-t1", "-c16", "-d2s", "-H", "Connection: close", "http://198.18.0.1/"]);
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            assert!(o.status.success(), "{ctx}: wrk: {out}{}", String::from_utf8_lossy(&o.stderr));
            let requests: u64 = out
                .lines()
                .find_map(|l| l.trim().split(" requests in").next().filter(|_| l.contains(" requests in")))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            assert!(requests > 100, "{ctx}: wrk made {requests} requests:\n{out}");
            assert!(!out.contains("Socket errors") && !out.contains("Non-2xx"), "{ctx}: wrk saw errors:\n{out}");

            // nginx saw every client as 198.18.0.2, through the relay at 127.0.0.1 (or on its
            // Unix socket, which nginx logs as "unix:").
            let via = if name == "unix" { "unix:" } else { "127.0.0.1" };
            let log = nginx.access_log();
            let lines: Vec<&str> = log.lines().skip(seen_lines).collect();
            seen_lines += lines.len();
            assert!(lines.len() as u64 >= requests + 3, "{ctx}: {} log lines for {requests} requests", lines.len());
            for l in &lines {
                let f: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(f.first(), Some(&"198.18.0.2"), "{ctx}: log line {l:?}");
                assert_eq!(f.get(2), Some(&via), "{ctx}: log line {l:?}");
                assert!(f.get(1).and_then(|p| p.parse::<u16>().ok()).is_some_and(|p| p > 1023), "{ctx}: {l:?}");
            }

            let s = bed.stop();
            let accepted = counter(&s, "proxy_accepted");
            assert!(accepted >= requests + 3, "{ctx}: {accepted} accepted\n{s}");
            assert_eq!(counter(&s, "proxy_upstream_connected"), accepted, "{ctx}\n{s}");
            // wrk stops with connections in flight: those are reset at its exit or at serve's.
            let ended = counter(&s, "proxy_closed") + counter(&s, "proxy_client_reset") + counter(&s, "proxy_aborted");
            assert_eq!(ended, accepted, "{ctx}: every connection ended\n{s}");
            assert!(counter(&s, "proxy_client_reset") + counter(&s, "proxy_aborted") <= 16, "{ctx}\n{s}");
            for zero in ["proxy_connect_failed", "proxy_upstream_reset", "proxy_socket_failed", "proxy_idle_timeout"] {
                assert_eq!(counter(&s, zero), 0, "{ctx}: {zero}\n{s}");
            }
            assert!(counter(&s, "proxy_bytes_down") > 16 * MIB as u64, "{ctx}\n{s}");
            assert!(counter(&s, "proxy_bytes_up") > 16 * MIB as u64, "{ctx}\n{s}");
        }
    }
}

#[test]
fn proxy_upstream_failures_reset_the_client_and_leak_nothing() {
    if !ready("proxy_upstream_failures_reset_the_client_and_leak_nothing") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in BEDS {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let ctx = format!("{queues} queue(s)");
        let tmp = TempDir::new(&format!("fail-{tag}"));
        let stats = tmp.path("stats");
        // An upstream of the test's own: it sends 4 MiB of a 16 MiB answer, or reads 1 MiB of
        // a 16 MiB upload, then stops with a RST (as a crashed server's kernel does).
        let listener = in_ns(&bed.ns_srv(), || TcpListener::bind("127.0.0.1:9100").expect("bind 9100"));
        let upstream = std::thread::spawn(move || {
            for i in 0..2 {
                let (mut s, _) = listener.accept().expect("accept");
                if i == 0 {
                    let _ = s.write_all(&pattern(4 * MIB, 3));
                } else {
                    let mut got = 0;
                    let mut buf = vec![0u8; 64 * 1024];
                    while got < MIB {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                }
                reset(s);
            }
        });
        serve_proxy(&mut bed, queues, "127.0.0.1:9100", "off", &stats, &[]);
        let pid = bed.server_pid();
        let fds_before = open_fds(pid);

        // Download cut short: the client reads at most what was sent, then a reset.
        let mut c = bed.peer_connect("198.18.0.1:80").expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let r = c.read_to_end(&mut got);
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "{ctx}: download: {r:?} after {} bytes",
            got.len()
        );
        assert!(got.len() <= 4 * MIB, "{ctx}");

        // Upload cut short: writing or reading then meets the reset.
        let mut c = bed.peer_connect("198.18.0.1:80").expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let w = c.write_all(&pattern(16 * MIB, 5));
        let mut rest = Vec::new();
        let r = c.read_to_end(&mut rest);
        let reset_seen = |e: &std::io::Error| matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe);
        assert!(
            w.as_ref().err().is_some_and(reset_seen) || r.as_ref().err().is_some_and(reset_seen),
            "{ctx}: upload: write {w:?}, read {r:?}"
        );
        upstream.join().unwrap();

        // The upstream is gone: a new client is reset at once (connect refused), so quickly
        // that the RST may beat the client's own connect() to its result.
        let r = bed.peer_connect("198.18.0.1:80").and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(10)))?;
            c.read(&mut [0u8; 16])
        });
        assert!(matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset), "{ctx}: refused upstream: {r:?}");

        let s = live(&bed, &stats);
        assert_eq!(counter(&s, "proxy_upstream_reset"), 2, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_connect_failed"), 1, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_open"), 0, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_upstream_fds"), 0, "{ctx}\n{s}");
        assert_eq!(counter(&s, "connections"), 0, "{ctx}\n{s}");
        assert_eq!(open_fds(pid), fds_before, "{ctx}: serve's descriptors");
        bed.stop();
    }
}

#[test]
fn proxy_half_close_and_backpressure_through_an_echo_upstream() {
    if !ready("proxy_half_close_and_backpressure_through_an_echo_upstream") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const TOTAL: usize = 64 * MIB;
    for (tag, queues) in BEDS {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let ctx = format!("{queues} queue(s)");
        let tmp = TempDir::new(&format!("echo-{tag}"));
        let stats = tmp.path("stats");
        // Echo, then a half-close once the client's FIN arrives.
        let listener = in_ns(&bed.ns_srv(), || TcpListener::bind("127.0.0.1:9101").expect("bind 9101"));
        let upstream = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut w = s.try_clone().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => w.write_all(&buf[..n]).expect("echo"),
                }
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        serve_proxy(&mut bed, queues, "127.0.0.1:9101", "off", &stats, &[]);
        let rss_before = bed.server_rss_kb();

        let c = bed.peer_connect("198.18.0.1:80").expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let data = Arc::new(pattern(TOTAL, 9));
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let (mut w, data, written) = (c.try_clone().unwrap(), Arc::clone(&data), Arc::clone(&written));
            std::thread::spawn(move || {
                for chunk in data.chunks(64 * 1024) {
                    w.write_all(chunk).expect("write");
                    written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
                // Half-close: the echo of everything still comes back after it.
                w.shutdown(Shutdown::Write).unwrap();
            })
        };
        // Not reading: every buffer on the way fills and the writer stops, held by the windows.
        std::thread::sleep(Duration::from_millis(2500));
        let stalled_at = written.load(Ordering::SeqCst) as usize;
        let rss_stalled = bed.server_rss_kb();
        assert!(stalled_at < TOTAL, "{ctx}: the client wrote all {TOTAL} bytes without reading: no backpressure");
        assert!(
            rss_stalled.saturating_sub(rss_before) < (TOTAL / 2 / 1024) as u64,
            "{ctx}: serve grew from {rss_before} to {rss_stalled} kB while the client did not read"
        );
        let mut back = Vec::with_capacity(TOTAL);
        let mut r = c;
        r.read_to_end(&mut back).expect("read the echo to EOF");
        writer.join().unwrap();
        upstream.join().unwrap();
        assert_eq!(back.len(), TOTAL, "{ctx}: echo length (the writer had stalled at {stalled_at})");
        assert!(back == *data, "{ctx}: echo content");
        eprintln!("{ctx}: writer stalled at {stalled_at} bytes, serve RSS {rss_before} -> {rss_stalled} kB");

        let s = live(&bed, &stats);
        assert_eq!(counter(&s, "proxy_client_half_close"), 1, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_upstream_half_close"), 1, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_closed"), 1, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_bytes_up"), TOTAL as u64, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_bytes_down"), TOTAL as u64, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_open"), 0, "{ctx}\n{s}");
        bed.stop();
    }
}

#[test]
fn proxy_syn_flood_while_curl_keeps_working() {
    if !ready("proxy_syn_flood_while_curl_keeps_working") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in BEDS {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let ctx = format!("{queues} queue(s)");
        let nginx = Nginx::start(&bed, b"x");
        let tmp = TempDir::new(&format!("flood-{tag}"));
        serve_proxy(&mut bed, queues, "127.0.0.1:8080", "v2", &tmp.path("stats"), &[]);
        let flood = {
            let ns = bed.ns_cli();
            std::thread::spawn(move || {
                Command::new("ip")
                    .args(["netns", "exec", &ns, BIN, "flood", "--target", "198.18.0.1:80"])
                    .args(["--seconds", "4", "--count", "400000"])
                    .output()
                    .expect("flood")
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let mut ok = 0;
        for i in 0..20 {
            let o = curl(&bed, &["-m", "5", "http://198.18.0.1/"]);
            assert!(o.status.success(), "{ctx}: curl {i} under flood: {}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\n");
            ok += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        let f = flood.join().unwrap();
        let fout = String::from_utf8_lossy(&f.stdout).to_string();
        assert!(f.status.success(), "{ctx}: flood: {fout}{}", String::from_utf8_lossy(&f.stderr));
        let s = bed.stop();
        assert!(counter(&s, "TcpExtSyncookiesSent") > 0, "{ctx}: the flood overflowed no SYN queue?\n{fout}\n{s}");
        assert_eq!(counter(&s, "proxy_closed"), ok, "{ctx}: only the curls reach the upstream\n{s}");
        assert_eq!(nginx.access_log().lines().count() as u64, ok, "{ctx}");
        eprintln!("{ctx}: {ok}/20 curls under {}", fout.trim());
    }
}

#[test]
fn proxy_ten_thousand_connections_leave_nothing_behind() {
    if !ready("proxy_ten_thousand_connections_leave_nothing_behind") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in BEDS {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let ctx = format!("{queues} queue(s)");
        let tmp = TempDir::new(&format!("10k-{tag}"));
        let stats = tmp.path("stats");
        // The upstream: xdptcp's own echo on kernel sockets, in the stack's namespace.
        let mut echo = Command::new("ip")
            .args(["netns", "exec", &bed.ns_srv(), BIN, "serve", "--backend", "kernel", "--addr", "127.0.0.1"])
            .args(["--port", "9107", "--app", "echo", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the echo upstream");
        serve_proxy(&mut bed, queues, "127.0.0.1:9107", "off", &stats, &[]);
        let pid = bed.server_pid();
        let fds_before = open_fds(pid);
        // Half the clients close first, half send CLOSE and let the server close first.
        let out = bed.kclient_to("198.18.0.1:80", &["--conns", "10000", "--concurrency", "32", "--bytes", "512"]);
        let s = live(&bed, &stats);
        let fds_after = open_fds(pid);
        let _ = echo.kill();
        let _ = echo.wait();
        assert_eq!(counter(&s, "proxy_accepted"), 10_000, "{ctx}\n{out}\n{s}");
        assert_eq!(counter(&s, "proxy_closed"), 10_000, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_open"), 0, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_upstream_fds"), 0, "{ctx}\n{s}");
        assert_eq!(counter(&s, "connections"), 0, "{ctx}: the stack holds no connection\n{s}");
        assert_eq!(fds_after, fds_before, "{ctx}: serve's descriptors before and after");
        eprintln!("{ctx}: {}; serve fds {fds_before} -> {fds_after}", out.trim());
        bed.stop();
    }
}

#[test]
fn proxy_connect_and_idle_timeouts_reset_both_sides() {
    if !ready("proxy_connect_and_idle_timeouts_reset_both_sides") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in BEDS {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        let ctx = format!("{queues} queue(s)");
        let tmp = TempDir::new(&format!("timeouts-{tag}"));

        // An upstream address nobody answers ARP for: the connect hangs (the kernel gives up
        // after its ARP probes, later than the relay's 1 s).
        let stats = tmp.path("stats-connect");
        serve_proxy(&mut bed, queues, "198.18.0.77:80", "off", &stats, &["--proxy-connect-timeout", "1"]);
        let mut c = bed.peer_connect("198.18.0.1:80").expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let r = c.read(&mut [0u8; 16]);
        assert!(matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset), "{ctx}: connect timeout: {r:?}");
        let s = bed.stop();
        assert_eq!(counter(&s, "proxy_connect_timeout"), 1, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_connect_failed"), 0, "{ctx}\n{s}");

        // An upstream that accepts and then says nothing, and a client that says one byte.
        let listener = in_ns(&bed.ns_srv(), || TcpListener::bind("127.0.0.1:9102").expect("bind 9102"));
        let upstream = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got);
            (got, r.map_err(|e| e.kind()))
        });
        let stats = tmp.path("stats-idle");
        serve_proxy(&mut bed, queues, "127.0.0.1:9102", "off", &stats, &["--proxy-idle-timeout", "1"]);
        let mut c = bed.peer_connect("198.18.0.1:80").expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(b"x").unwrap();
        let r = c.read(&mut [0u8; 16]);
        assert!(matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset), "{ctx}: idle client: {r:?}");
        let (got, r) = upstream.join().unwrap();
        assert_eq!(got, b"x", "{ctx}");
        assert_eq!(r, Err(ErrorKind::ConnectionReset), "{ctx}: the idle upstream is reset too");
        let s = bed.stop();
        assert_eq!(counter(&s, "proxy_idle_timeout"), 1, "{ctx}\n{s}");
        assert_eq!(counter(&s, "proxy_open"), 0, "{ctx}\n{s}");
    }
}
