//! `xdptcp bench proxy`: what an operator would put in front of nginx, measured on one bed in
//! one run. Four fronts, each on a fresh bed, round after round:
//!
//! - `direct`: wrk → nginx (kernel TCP), the reference;
//! - `haproxy`: wrk → HAProxy (`mode tcp`, `send-proxy`) → nginx;
//! - `xdptcp`: wrk → `xdptcp serve --app proxy --proxy-protocol v1` → nginx;
//! - `shield`: the same relay with `--syn-shield on`, `xdp_pass` on the peer's end.
//!
//! nginx listens on 127.0.0.1 with `proxy_protocol` for the two relays and on the bed's address
//! without it for the direct runs; its worker is pinned to `--upstream-core`, the front to
//! `--server-core`, wrk, the legitimate clients and the SYN flood (the same rate for every
//! front) to the remaining cores (or all of them; see `measure`). Per front:
//! connections/s (wrk, one connection per request: `Connection: close`), machine CPU per
//! 1000 connections (/proc/stat over the wrk run), wrk's p99 latency, and the success rate
//! of slow legitimate clients (`bench connect`) under a SYN flood (`bench flood`).

use super::bench::{
    core_busy_share, core_ticks, cpu_busy_ticks, cpu_list, cpu_model, cpu_s_per_k, flood_from, flood_reached,
    kernel_release, legit_under_flood, median, PeerPass, SRV_IP,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use xdptcp::rig::bed::{Bed, BedConfig, BedNames, End};

#[derive(Args, Debug, Clone)]
pub struct ProxyBenchArgs {
    /// Rounds of direct, haproxy, xdptcp (the medians are reported).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// wrk connections in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Core of the front (the relay, HAProxy; nothing for direct).
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Core of nginx's worker.
    #[arg(long, default_value_t = 1)]
    pub upstream_core: usize,
    /// SYNs per second the flood offers every front (the same load for all: a generator left
    /// to run flat out on the front's core would slow down by as much as the front's poll
    /// takes from it, and the fronts would face different floods).
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub flood_rate: u64,
    /// Where report.json goes.
    #[arg(long, default_value = "bench-report")]
    pub out: String,
    /// The fronts to run, comma-separated (direct, haproxy, xdptcp, shield).
    #[arg(long, value_delimiter = ',', default_value = "direct,haproxy,xdptcp,shield")]
    pub fronts: Vec<String>,
    /// How both relays (HAProxy and xdptcp) reach nginx: TCP on 127.0.0.1, or a Unix stream
    /// socket (nginx's `listen unix:PATH proxy_protocol`).
    #[arg(long, value_enum, default_value_t = UpstreamTransport::Tcp)]
    pub upstream_transport: UpstreamTransport,
}

/// `--upstream-transport`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTransport {
    Tcp,
    Unix,
}

impl UpstreamTransport {
    /// nginx's PROXY-protocol listener as HAProxy's `server` line and as the relay's
    /// `--upstream` name it.
    fn upstreams(self, dir: &Path) -> (String, String) {
        match self {
            UpstreamTransport::Tcp => (UPSTREAM.to_string(), UPSTREAM.to_string()),
            UpstreamTransport::Unix => {
                let p = dir.join(UNIX_SOCKET);
                (format!("unix@{}", p.display()), format!("unix:{}", p.display()))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Direct,
    Haproxy,
    Xdptcp,
    /// The relay with `--syn-shield on` (and `xdp_pass` on the peer's end, which veth needs to
    /// deliver the shield's `XDP_TX` replies).
    Shield,
}

impl Front {
    const ALL: [Front; 4] = [Front::Direct, Front::Haproxy, Front::Xdptcp, Front::Shield];
    fn name(self) -> &'static str {
        match self {
            Front::Direct => "direct",
            Front::Haproxy => "haproxy",
            Front::Xdptcp => "xdptcp",
            Front::Shield => "shield",
        }
    }
    /// The port wrk and the flood aim at.
    fn port(self) -> u16 {
        match self {
            Front::Direct => 8080,
            Front::Haproxy | Front::Xdptcp | Front::Shield => 80,
        }
    }
}

/// The bed's names: its own, so that it never meets `bench compare`'s bed.
const NS_SRV: &str = "xdptcp-bproxy-srv";
const NS_CLI: &str = "xdptcp-bproxy-cli";
const DEV_SRV: &str = "vbproxy-s";
const DEV_CLI: &str = "vbproxy-p";

/// The bed (`rig::bed`, one queue, with the names above), set for short connections; removed
/// on drop.
fn bed_up() -> Result<Bed> {
    let bed = Bed::up(BedConfig::new(BedNames::new(NS_SRV, NS_CLI, DEV_SRV, DEV_CLI)))?;
    // The generators open many short connections: every port, TIME-WAIT reuse (as `bench
    // compare` sets its bed).
    for s in ["net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"] {
        let _ = bed.in_cli("sysctl").args(["-qw", s]).status();
    }
    // The flood's spoofed sources are reached through the peer (the kernel fronts answer them
    // as the stack does).
    let _ = in_srv(&["ip", "route", "replace", "198.18.0.0/15", "via", "198.18.0.2"]).status();
    Ok(bed)
}

/// nginx's port for the relays (PROXY protocol) on 127.0.0.1.
const UPSTREAM: &str = "127.0.0.1:8081";
/// nginx's Unix socket for the relays (PROXY protocol), in the run's directory.
const UNIX_SOCKET: &str = "nginx.sock";

const NGINX_CONF: &str = r#"
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid DIR/nginx.pid;
error_log DIR/error.log error;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path DIR/body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    server {
        listen 127.0.0.1:8081 proxy_protocol backlog=4096;
        listen unix:DIR/nginx.sock proxy_protocol backlog=4096;
        listen SRV:8080 backlog=4096;
        location = / { return 200 "hello\n"; }
    }
}
"#;

/// HAProxy as its documentation sets up a TCP relay with the PROXY protocol (v1, as `send-proxy`
/// sends), one thread on the front's core, with the two options its manual gives for protocols
/// where the client speaks first, such as HTTP (both off by default): `tcp-smart-accept`
/// (`TCP_DEFER_ACCEPT`: the connection is handed over with its request) and
/// `tcp-smart-connect` (the upstream handshake's last ACK goes with the request). The relay
/// does the same by default, so neither front is measured without them.
const HAPROXY_CONF: &str = r#"
global
    nbthread 1
    cpu-map 1/1 CORE
    maxconn 9000
defaults
    mode tcp
    option tcp-smart-accept
    option tcp-smart-connect
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend fe
    bind SRV:80 backlog 4096
    default_backend be
backend be
    server nginx UPSTREAM send-proxy
"#;

struct Started {
    children: Vec<Child>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGINT);
            }
        }
        for c in &mut self.children {
            for _ in 0..60 {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn in_srv(args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", NS_SRV]).args(args);
    c
}

fn spawn(mut c: Command, what: &str) -> Result<Child> {
    c.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().with_context(|| format!("start {what}"))
}

/// Waits until something listens on `port` in the server namespace.
fn wait_listen(port: u16, what: &str, child: &mut Child) -> Result<()> {
    for _ in 0..60 {
        let o = in_srv(&["ss", "-Hltn", &format!("sport = :{port}")]).output()?;
        if !o.stdout.is_empty() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("{what} exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} does not listen on port {port}")
}

/// Starts nginx and the front on the bed.
fn start(exe: &str, dir: &Path, front: Front, a: &ProxyBenchArgs) -> Result<Started> {
    let d = dir.to_string_lossy();
    std::fs::write(dir.join("nginx.conf"), NGINX_CONF.replace("DIR", &d).replace("SRV", SRV_IP))?;
    let mut nginx = spawn(
        {
            let mut c = in_srv(&["taskset", "-c", &a.upstream_core.to_string(), "nginx", "-c"]);
            c.arg(dir.join("nginx.conf"));
            c
        },
        "nginx",
    )?;
    wait_listen(8081, "nginx", &mut nginx)?;
    let mut s = Started { children: vec![nginx] };
    let core = a.server_core.to_string();
    let (haproxy_upstream, relay_upstream) = a.upstream_transport.upstreams(dir);
    match front {
        Front::Direct => {}
        Front::Haproxy => {
            std::fs::write(
                dir.join("haproxy.cfg"),
                HAPROXY_CONF.replace("CORE", &core).replace("SRV", SRV_IP).replace("UPSTREAM", &haproxy_upstream),
            )?;
            let mut c = in_srv(&["haproxy", "-db", "-f"]);
            c.arg(dir.join("haproxy.cfg"));
            let mut h = spawn(c, "haproxy")?;
            wait_listen(80, "haproxy", &mut h)?;
            s.children.push(h);
        }
        Front::Xdptcp | Front::Shield => {
            let mut c = in_srv(&[
                exe,
                "serve",
                "--iface",
                DEV_SRV,
                "--addr",
                SRV_IP,
                "--port",
                "80",
                "--app",
                "proxy",
                "--upstream",
                &relay_upstream,
                "--proxy-protocol",
                "v1",
                "--cores",
                &core,
                "--quiet",
                "--stats-file",
                "none",
                "--control-socket",
                "none",
            ]);
            if front == Front::Shield {
                c.args(["--syn-shield", "on"]);
            }
            let mut x = spawn(c, "xdptcp serve")?;
            std::thread::sleep(Duration::from_millis(1200));
            if let Ok(Some(st)) = x.try_wait() {
                bail!("xdptcp serve exited early: {st}");
            }
            s.children.push(x);
        }
    }
    Ok(s)
}

/// wrk's latency figure (`1.23ms`, `850.00us`, `1.02s`) in microseconds.
fn wrk_us(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * scale)
}

/// What one wrk run printed: requests, requests/s, p99 (µs), errors.
#[derive(Debug, Default, PartialEq)]
struct Wrk {
    requests: f64,
    per_sec: f64,
    p99_us: f64,
    errors: f64,
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for l in out.lines().map(str::trim) {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [n, "requests", "in", ..] => w.requests = n.parse().unwrap_or(0.0),
            ["Requests/sec:", v] => w.per_sec = v.parse().unwrap_or(0.0),
            ["99%", v] => w.p99_us = wrk_us(v).unwrap_or(0.0),
            ["Socket", "errors:", rest @ ..] => {
                w.errors += rest.iter().filter_map(|x| x.trim_end_matches(',').parse::<f64>().ok()).sum::<f64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    w
}

/// One front, one round: every figure.
fn measure(exe: &str, front: Front, a: &ProxyBenchArgs, client_cores: &str) -> Result<BTreeMap<String, f64>> {
    let url = format!("http://{SRV_IP}:{}/", front.port());
    let secs = a.seconds.to_string();
    let mut m = BTreeMap::new();
    let b0 = cpu_busy_ticks();
    let c0 = core_ticks();
    let o = Command::new("ip")
        .args(["netns", "exec", NS_CLI, "taskset", "-c", client_cores, "wrk", "-t1"])
        .args(["-c", &a.concurrency.to_string(), "-d", &format!("{secs}s"), "--latency"])
        .args(["-H", "Connection: close", &url])
        .output()
        .context("run wrk")?;
    let b1 = cpu_busy_ticks();
    let c1 = core_ticks();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    if !o.status.success() {
        bail!("wrk: {text}{}", String::from_utf8_lossy(&o.stderr));
    }
    let w = parse_wrk(&text);
    m.insert("conn_per_sec".into(), w.per_sec);
    m.insert("p99_us".into(), w.p99_us);
    m.insert("wrk_errors".into(), w.errors);
    m.insert("cpu_s_per_kconn".into(), cpu_s_per_k(b1.saturating_sub(b0), w.requests));
    // Which core held the rate down: the front's, or nginx's (which wrk, the clients' receive
    // work and the legitimate clients share on 2 CPUs).
    for (key, cpu) in [("front_core_busy", a.server_core), ("upstream_core_busy", a.upstream_core)] {
        if let Some(f) = core_busy_share(&c0, &c1, cpu) {
            m.insert(key.into(), f);
        }
    }

    // Slow legitimate clients beside a SYN flood on the same port, at the same offered rate for
    // every front. The generator runs with the clients, off the front's core: a flood comes from
    // elsewhere, and an operator keeps the server's cores for the server. On the front's core
    // it took time slices from the relay's thread (which answers the SYNs without the shield)
    // but not from the kernel's softirq (which answers them for HAProxy), and the legitimate
    // clients' latency measured the sharing of that core.
    let target = format!("{SRV_IP}:{}", front.port());
    let flood = std::thread::spawn({
        let (exe, cores, target, secs, rate) =
            (exe.to_string(), client_cores.to_string(), target.clone(), secs.clone(), a.flood_rate);
        move || flood_from((NS_CLI, DEV_CLI), &exe, &cores, &target, &secs, rate)
    });
    std::thread::sleep(Duration::from_millis(200));
    let legit = legit_under_flood(NS_CLI, exe, client_cores, &target, a.seconds)?;
    let f = flood.join().map_err(|_| anyhow::anyhow!("flood thread"))??;
    let reached = flood_reached(&f);
    if reached < 0.95 * a.flood_rate as f64 {
        eprintln!(
            "bench proxy: {}: the flood reached {reached:.0} SYN/s of --flood-rate {}",
            front.name(),
            a.flood_rate
        );
    }
    m.insert("flood_syns_per_sec".into(), reached);
    let done = legit.get("completed").copied().unwrap_or(0.0);
    let errs = legit.get("errors").copied().unwrap_or(0.0);
    m.insert("flood_legit_success".into(), if done + errs > 0.0 { done / (done + errs) } else { 0.0 });
    m.insert("flood_legit_p99_us".into(), legit.get("connect_p99_us").copied().unwrap_or(0.0));
    Ok(m)
}

/// The figures reported, in order: key, label.
const FIGURES: [(&str, &str); 9] = [
    ("conn_per_sec", "connections/s"),
    ("cpu_s_per_kconn", "CPU s / 1000 conns"),
    ("front_core_busy", "front's core busy (0-1)"),
    ("upstream_core_busy", "nginx+wrk core busy (0-1)"),
    ("p99_us", "p99 latency (us)"),
    ("wrk_errors", "wrk errors"),
    ("flood_syns_per_sec", "flood SYNs/s that reached the front"),
    ("flood_legit_success", "legit success under flood"),
    ("flood_legit_p99_us", "legit p99 connect under flood (us)"),
];

#[derive(serde::Serialize)]
struct Report {
    cpu: String,
    cpus: usize,
    kernel: String,
    rounds: usize,
    seconds: u64,
    concurrency: usize,
    upstream_transport: UpstreamTransport,
    server_core: usize,
    upstream_core: usize,
    client_cores: String,
    /// Front → figure → median over the rounds.
    medians: BTreeMap<String, BTreeMap<String, f64>>,
    /// Front → every round's figures.
    runs: BTreeMap<String, Vec<BTreeMap<String, f64>>>,
}

pub fn run(a: &ProxyBenchArgs) -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench proxy needs root (namespaces, XDP)");
    }
    for tool in ["nginx", "haproxy", "wrk"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| o.stdout.is_empty())? {
            bail!("bench proxy needs {tool} (scripts/deps.sh installs it)");
        }
    }
    xdptcp::engine::signals::install();
    let exe = std::env::current_exe()?.to_string_lossy().to_string();
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    if a.server_core >= ncpu || a.upstream_core >= ncpu {
        bail!("--server-core {} --upstream-core {}: this machine has {ncpu} CPUs", a.server_core, a.upstream_core);
    }
    let others: Vec<usize> = (0..ncpu).filter(|c| *c != a.server_core).collect();
    let peers = if others.is_empty() { vec![0] } else { others };
    let client_cores = cpu_list(&peers);
    eprintln!(
        "bench proxy: front on core {}, nginx on core {}, load generators on {client_cores}",
        a.server_core, a.upstream_core
    );
    for f in &a.fronts {
        if !Front::ALL.iter().any(|x| x.name() == f) {
            bail!("--fronts: no front {f:?} (direct, haproxy, xdptcp, shield)");
        }
    }
    let fronts: Vec<Front> = Front::ALL.into_iter().filter(|f| a.fronts.iter().any(|n| n == f.name())).collect();
    let mut runs: BTreeMap<String, Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for round in 0..a.rounds {
        for &front in &fronts {
            if xdptcp::engine::signals::stop_requested() {
                bail!("interrupted");
            }
            eprintln!("bench proxy: round {}/{}: {} ...", round + 1, a.rounds, front.name());
            let r = one_run(&exe, front, a, &peers)?;
            eprintln!("  {r:?}");
            runs.entry(front.name().into()).or_default().push(r);
        }
    }
    let mut medians = BTreeMap::new();
    for (front, rs) in &runs {
        let mut m = BTreeMap::new();
        for (k, _) in FIGURES {
            let mut v: Vec<f64> = rs.iter().filter_map(|r| r.get(k).copied()).collect();
            m.insert(k.to_string(), median(&mut v));
        }
        medians.insert(front.clone(), m);
    }
    let report = Report {
        cpu: cpu_model(),
        cpus: ncpu,
        kernel: kernel_release(),
        rounds: a.rounds,
        seconds: a.seconds,
        concurrency: a.concurrency,
        upstream_transport: a.upstream_transport,
        server_core: a.server_core,
        upstream_core: a.upstream_core,
        client_cores,
        medians,
        runs,
    };
    std::fs::create_dir_all(&a.out)?;
    let path = PathBuf::from(&a.out).join("proxy.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    print!("{}", table(&report));
    println!("report: {}", path.display());
    Ok(())
}

/// A fresh bed for every run (the kernel keeps TIME-WAIT state per namespace), each end
/// receiving through a pinned poll on its own cores as a NIC would, for every front alike
/// (`Bed::receive_like_a_nic`: the front's on the front's core, the clients' on theirs).
/// The load generators run on `peers`.
fn one_run(exe: &str, front: Front, a: &ProxyBenchArgs, peers: &[usize]) -> Result<BTreeMap<String, f64>> {
    let client_cores = &cpu_list(peers);
    let bed = bed_up()?;
    bed.receive_like_a_nic(&[a.server_core], peers)?;
    let setup = "sysctl -qw net.ipv4.ip_local_port_range='1024 65535' net.ipv4.tcp_tw_reuse=1 \
                 net.core.somaxconn=4096 net.ipv4.tcp_syncookies=1";
    let _ = in_srv(&["sh", "-c", setup]).status();
    let dir = std::env::temp_dir().join(format!("xdptcp-bench-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let started = start(exe, &dir, front, a)?;
    // The poll the bed made stays once a program is attached; pinned again all the same.
    if bed.pin_stack_napi(&[a.server_core])? == 0 {
        bail!("no NAPI thread of {DEV_SRV} to pin once the {} front started", front.name());
    }
    let pass = if front == Front::Shield {
        let p = PeerPass::attach_in(exe, NS_CLI, DEV_CLI)?;
        bed.pin_napi(End::Peer, peers)?;
        Some(p)
    } else {
        None
    };
    let r = measure(exe, front, a, client_cores);
    drop(pass);
    drop(started);
    drop(bed);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn table(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "bench proxy: {} ({} CPUs), kernel {}; {} round(s) x {}s, wrk -c{} Connection: close; upstream over {:?}; medians",
        r.cpu, r.cpus, r.kernel, r.rounds, r.seconds, r.concurrency, r.upstream_transport
    );
    let _ = writeln!(
        o,
        "{:<36} {:>12} {:>12} {:>12} {:>12} {:>14} {:>14}",
        "", "direct", "haproxy", "xdptcp", "shield", "xdptcp/haproxy", "shield/haproxy"
    );
    for (k, label) in FIGURES {
        let get = |f: &str| r.medians.get(f).and_then(|m| m.get(k)).copied().unwrap_or(0.0);
        let (d, h, x, s) = (get("direct"), get("haproxy"), get("xdptcp"), get("shield"));
        let ratio = |v: f64| if h > 0.0 { format!("{:.2}", v / h) } else { "-".into() };
        let _ = writeln!(o, "{label:<36} {d:>12.3} {h:>12.3} {x:>12.3} {s:>12.3} {:>14} {:>14}", ratio(x), ratio(s));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk 4.1's output with --latency (from a run on the bed).
    const WRK: &str = "Running 5s test @ http://198.18.0.1:80/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.36ms    3.49ms  39.32ms   72.90%
    Req/Sec     1.87k   282.27     2.61k    73.33%
  Latency Distribution
     50%    4.80ms
     75%    6.90ms
     90%    9.10ms
     99%   18.50ms
  5729 requests in 3.09s, 828.02KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1854.69
Transfer/sec:    268.06KB
";

    #[test]
    fn wrk_output_is_read() {
        let w = parse_wrk(WRK);
        assert_eq!(w, Wrk { requests: 5729.0, per_sec: 1854.69, p99_us: 18500.0, errors: 7.0 });
        assert_eq!(wrk_us("850.00us"), Some(850.0));
        assert_eq!(wrk_us("1.50s"), Some(1.5e6));
        assert_eq!(wrk_us("x"), None);
    }
}
