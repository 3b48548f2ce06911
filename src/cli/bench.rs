//! `xdptcp bench`: load generators (`connect`, `flood`, `bulk`) and `compare`, which runs them
//! against the kernel backend and the AF_XDP backend alternately on the veth bed and writes a
//! JSON report and an SVG plot of the ratios.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use xdptcp::rig::bed::{interrupt, Bed, BedConfig, BedNames, End};
use xdptcp::rig::kernel::{syn_flood, FloodPlan};
use xdptcp::rig::loadgen::{run_bulk, run_connect, run_echo_check, ConnectPlan, Exchange};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Connections per second: N concurrent loops of connect, one request, response, close.
    Connect(ConnectArgs),
    /// SYN flood from spoofed 198.18.0.0/15 sources; counts the SYN-ACKs that come back.
    Flood(FloodBenchArgs),
    /// Long transfers to a discard server: Gbit/s.
    Bulk(BulkArgs),
    /// Builds the bed and runs every scenario against the kernel and the AF_XDP backend
    /// alternately; writes a JSON report and an SVG plot.
    Compare(CompareArgs),
    /// The relay in front of nginx: wrk → xdptcp `--app proxy` → nginx, against wrk → HAProxy
    /// (`mode tcp`, `send-proxy`) → nginx and wrk → nginx directly, on one bed in one run:
    /// connections/s, CPU per connection, p99 latency, legit success under a SYN flood.
    Proxy(super::bench_proxy::ProxyBenchArgs),
    /// Loss recovery: many connections echo a checked byte stream through random loss and
    /// reordering. With --target, the client alone; without, builds the bed, impairs the peer's
    /// side and runs the kernel backend, then the AF_XDP one: goodput of both and the ratio.
    Loss(LossArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BenchApp {
    Http,
    Echo,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BenchCloser {
    Server,
    Client,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long, value_enum, default_value_t = BenchApp::Http)]
    pub app: BenchApp,
    /// Who closes first.
    #[arg(long, value_enum, default_value_t = BenchCloser::Server)]
    pub closer: BenchCloser,
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Most new connections per second (0: as fast as the loops go).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Echo payload bytes.
    #[arg(long, default_value_t = 64)]
    pub bytes: usize,
    /// Per-connection timeout, seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    /// Run the client on the stack itself, on an AF_XDP socket of this interface, instead of on
    /// kernel sockets (the server must close first: `--closer server`).
    #[arg(long)]
    pub xdp_iface: Option<String>,
    /// With --xdp-iface: the client's address (the interface's own), and the server's MAC.
    #[arg(long, default_value = "198.18.0.2")]
    pub local: std::net::IpAddr,
    #[arg(long, default_value = "02:18:00:00:00:01")]
    pub dst_mac: String,
    /// Print key=value lines only (for `compare`).
    #[arg(long)]
    pub kv: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FloodBenchArgs {
    #[arg(long)]
    pub target: SocketAddrV4,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, default_value_t = 50_000_000)]
    pub count: u64,
    /// Interface whose received packets are the SYN-ACKs (the flood's only answer on the bed).
    #[arg(long, default_value = "veth-peer")]
    pub count_iface: String,
    /// Send through an AF_XDP socket on this interface (the stack's datapath as generator)
    /// instead of a raw socket.
    #[arg(long)]
    pub xdp_iface: Option<String>,
    /// Destination MAC for --xdp-iface frames (the server's interface).
    #[arg(long, default_value = "02:18:00:00:00:01")]
    pub dst_mac: String,
    #[arg(long)]
    pub kv: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BulkArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    #[arg(long)]
    pub kv: bool,
}

#[derive(Args, Debug, Clone)]
pub struct LossArgs {
    /// An echo server to run the client against (no bed, no impairment).
    #[arg(long)]
    pub target: Option<SocketAddr>,
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Bytes each connection sends (and reads back).
    #[arg(long, default_value_t = 8 << 20)]
    pub bytes: u64,
    /// A connection that makes no progress for this many seconds fails.
    #[arg(long, default_value_t = 60)]
    pub stall: u64,
    /// Bed mode: percent of TCP packets dropped in each direction.
    #[arg(long, default_value_t = 5)]
    pub loss: u32,
    /// Bed mode: percent of the peer's TCP packets sent through the slow (reordering) class.
    #[arg(long, default_value_t = 2)]
    pub reorder: u32,
    /// Bed mode: kernel, AF_XDP rounds.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    #[arg(long)]
    pub kv: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// A B A B ... rounds per scenario.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Output directory for report.json and report.svg.
    #[arg(long, default_value = "bench-report")]
    pub out: String,
    /// Core the server is pinned to (the load generator takes the other ones); with --queues N
    /// the server takes N cores from this one on.
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Receive queues of the bed's veth pair. The stack serves them on as many cores (one
    /// queue each); the kernel backend runs as many threads on the same cores, and each queue's
    /// receive poll runs on those cores for both. Above 1, the connection-rate
    /// scenario uses kernel-socket clients, whose flows veth spreads over the queues (the AF_XDP
    /// client sends on queue 0 only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: u32,
    /// SYNs per second of the paced flood, the same for every backend: alone, for the CPU per
    /// SYN-ACK; then with the legitimate clients' connections beside it (the SYN-ACK rate is
    /// measured with a flood flat out).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub flood_rate: u64,
}

fn kv_parse(s: &str) -> BTreeMap<String, f64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

pub fn connect(a: &ConnectArgs) -> Result<()> {
    let exchange = match (a.app, a.closer) {
        (BenchApp::Http, BenchCloser::Server) => Exchange::HttpServerCloses,
        (BenchApp::Http, BenchCloser::Client) => Exchange::HttpClientCloses,
        (BenchApp::Echo, BenchCloser::Server) => Exchange::EchoServerCloses { bytes: a.bytes },
        (BenchApp::Echo, BenchCloser::Client) => Exchange::EchoClientCloses { bytes: a.bytes },
    };
    let plan = ConnectPlan {
        target: a.target,
        exchange,
        concurrency: a.concurrency,
        duration: Duration::from_secs(a.seconds),
        rate: a.rate,
        timeout: Duration::from_secs(a.timeout),
        progress: !a.kv,
    };
    if !a.kv {
        eprintln!("bench connect: {} loops against {} for {}s ...", a.concurrency, a.target, a.seconds);
    }
    let r = match &a.xdp_iface {
        Some(iface) => xdp_client(a, iface, exchange)?,
        None => run_connect(&plan).context("run the connect load")?,
    };
    let kv = r.to_kv();
    if a.kv {
        print!("{kv}");
        return Ok(());
    }
    let m = kv_parse(&kv);
    let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
    println!("| connections | per second | connect p50 / p99 / p99.9 (µs) | request p50 / p99 / p99.9 (µs) | errors (refused/reset/timeout/short/other) |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {:.0} | {} / {} / {} | {} / {} / {} | {}/{}/{}/{}/{} |",
        g("completed"),
        g("conn_per_sec"),
        g("connect_p50_us"),
        g("connect_p99_us"),
        g("connect_p999_us"),
        g("request_p50_us"),
        g("request_p99_us"),
        g("request_p999_us"),
        g("err_refused"),
        g("err_reset"),
        g("err_timeout"),
        g("err_short"),
        g("err_other"),
    );
    Ok(())
}

#[cfg(feature = "xdp")]
fn xdp_client(a: &ConnectArgs, iface: &str, x: Exchange) -> Result<xdptcp::rig::loadgen::ConnectReport> {
    use xdptcp::rig::xdp_load::{xdp_connect_bench, XdpClientConfig};
    let request = match x {
        Exchange::HttpServerCloses => b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".to_vec(),
        Exchange::EchoServerCloses { bytes } => {
            let mut v: Vec<u8> = (0..bytes).map(|i| b'a' + (i % 26) as u8).collect();
            v.extend_from_slice(b"\nCLOSE\n");
            v
        }
        _ => bail!("--xdp-iface needs --closer server"),
    };
    let remote_mac = a.dst_mac.parse().map_err(|e| anyhow::anyhow!("--dst-mac {}: {e}", a.dst_mac))?;
    let (s, elapsed) = xdp_connect_bench(&XdpClientConfig {
        iface: iface.to_string(),
        local: a.local,
        ports: 20_000..=60_999,
        remote: a.target,
        remote_mac,
        concurrency: a.concurrency,
        seconds: a.seconds,
        request,
        drain_seconds: a.timeout,
    })?;
    Ok(xdptcp::rig::loadgen::ConnectReport {
        completed: s.completed,
        errors: xdptcp::rig::loadgen::Errors {
            refused: s.refused,
            reset: s.reset,
            timeout: s.timeout,
            short: s.short,
            other: s.other,
        },
        elapsed,
        // The AF_XDP client (app::client) keeps its samples in Vecs; they go into the same
        // histograms so both clients report alike.
        connect_us: s.connect_us.as_slice().into(),
        request_us: s.request_us.as_slice().into(),
    })
}

#[cfg(not(feature = "xdp"))]
fn xdp_client(_: &ConnectArgs, _: &str, _: Exchange) -> Result<xdptcp::rig::loadgen::ConnectReport> {
    bail!("--xdp-iface needs the `xdp` feature")
}

fn read_counter(path: &str) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

pub fn flood(a: &FloodBenchArgs) -> Result<()> {
    let rx = format!("/sys/class/net/{}/statistics/rx_packets", a.count_iface);
    // veth counts the frames its peer's full ring refused as the sender's tx_dropped: SYNs
    // sent that never reached the server.
    let drops = format!("/sys/class/net/{}/statistics/tx_dropped", a.count_iface);
    let (before, dropped_before) = (read_counter(&rx), read_counter(&drops));
    let r = match &a.xdp_iface {
        #[cfg(feature = "xdp")]
        Some(iface) => {
            let mac: xdptcp::wire::EthernetAddress =
                a.dst_mac.parse().map_err(|e| anyhow::anyhow!("--dst-mac {}: {e}", a.dst_mac))?;
            xdptcp::rig::xdp_load::xdp_syn_flood(iface, mac, a.target, a.count, a.seconds, std::process::id() as u64)?
        }
        #[cfg(not(feature = "xdp"))]
        Some(_) => bail!("--xdp-iface needs the `xdp` feature"),
        None => syn_flood(&FloodPlan {
            kind: xdptcp::rig::kernel::FloodKind::Syn,
            target: a.target,
            count: a.count,
            duration: Duration::from_secs(a.seconds),
            rate: a.rate,
            seed: std::process::id() as u64,
        })
        .context("raw socket (needs root or CAP_NET_RAW)")?,
    };
    // Answers still in flight arrive within a moment.
    std::thread::sleep(Duration::from_millis(200));
    let answers = read_counter(&rx).saturating_sub(before);
    let dropped = read_counter(&drops).saturating_sub(dropped_before);
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let kv = format!(
        "syns_sent={}\nsyns_per_sec={:.0}\nsynacks={}\nsynacks_per_sec={:.0}\nsend_errors={}\ndropped_on_the_way={dropped}\n\
         elapsed_s={secs:.3}\n",
        r.sent,
        r.sent as f64 / secs,
        answers,
        answers as f64 / secs,
        r.send_errors
    );
    if a.kv {
        print!("{kv}");
    } else {
        println!(
            "flood: {} SYNs in {secs:.2}s ({:.0}/s); {} answers on {} ({:.0}/s); {dropped} dropped on the way",
            r.sent,
            r.sent as f64 / secs,
            answers,
            a.count_iface,
            answers as f64 / secs
        );
    }
    Ok(())
}

pub fn bulk(a: &BulkArgs) -> Result<()> {
    let (bytes, el) = run_bulk(a.target, Duration::from_secs(a.seconds), a.streams).context("bulk transfer")?;
    let gbps = bytes as f64 * 8.0 / el.as_secs_f64().max(1e-9) / 1e9;
    if a.kv {
        println!("bytes={bytes}\ngbit_per_sec={gbps:.3}\nelapsed_s={:.3}", el.as_secs_f64());
    } else {
        println!("bulk: {bytes} bytes in {:.2}s: {gbps:.2} Gbit/s", el.as_secs_f64());
    }
    Ok(())
}

pub fn loss(a: &LossArgs) -> Result<()> {
    let Some(target) = a.target else { return loss_on_bed(a) };
    let r = run_echo_check(target, a.connections, a.bytes, Duration::from_secs(a.stall));
    if a.kv {
        print!("{}", r.to_kv());
    } else {
        println!(
            "loss: {}/{} connections verified, {} bytes in {:.2}s: {:.1} Mbit/s",
            r.verified,
            r.connections,
            r.bytes,
            r.elapsed.as_secs_f64(),
            r.goodput_mbit()
        );
    }
    for e in r.errors.iter().take(10) {
        eprintln!("loss: {e}");
    }
    Ok(())
}

/// The impairments of the loss run, all on the kernel peer's side (AF_XDP transmit bypasses the
/// qdisc and netfilter on the stack's side; this kernel has no netem, DESIGN.md):
/// - `loss` % of TCP packets dropped by nftables `numgen random` on the peer interface's ingress
///   (a real loss for what the server sent) and egress hooks. An egress drop is reported to the
///   peer's own TCP as a local drop, which backs off and sends the segment again: on that side it
///   costs the sender rate more than it makes holes;
/// - `reorder` % of the peer's TCP packets get skb priority 1:20 (0x10020), which sends them through a slow
///   HTB class on the peer's egress, so they arrive after packets sent later.
pub fn impairment_script(dev: &str, loss: u32, reorder: u32) -> String {
    format!(
        "set -e\n\
         nft -f - <<'EOF'\n\
         table netdev xdptcp_loss {{\n\
           chain rx {{ type filter hook ingress device \"{dev}\" priority 0; ip protocol tcp numgen random mod 100 < {loss} drop; }}\n\
           chain tx {{ type filter hook egress device \"{dev}\" priority 0; ip protocol tcp numgen random mod 100 < {loss} drop; }}\n\
         }}\n\
         table ip xdptcp_reorder {{\n\
           chain out {{ type filter hook output priority 0; ip protocol tcp numgen random mod 100 < {reorder} meta priority set 0x10020; }}\n\
         }}\n\
         EOF\n\
         tc qdisc replace dev {dev} root handle 1: htb default 10\n\
         tc class add dev {dev} parent 1: classid 1:10 htb rate 20gbit quantum 60000\n\
         tc class add dev {dev} parent 1: classid 1:20 htb rate 200mbit quantum 60000\n"
    )
}

fn loss_on_bed(a: &LossArgs) -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench loss needs root (namespaces, XDP)");
    }
    xdptcp::engine::signals::install();
    let exe = std::env::current_exe()?.to_string_lossy().to_string();
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let peer_cores: Vec<usize> = (1..ncpu.max(2)).collect();
    let client_cores = cpu_list(&peer_cores);
    let conns = a.connections.to_string();
    let bytes = a.bytes.to_string();
    let stall = a.stall.to_string();
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    // The fewest connections verified in any round, per backend, and every round that lost one:
    // the goodput of a run with stalled connections is reported but the run fails.
    let mut verified: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for round in 0..a.rounds {
        for b in [Backend::Kernel, Backend::Xdp] {
            if xdptcp::engine::signals::stop_requested() {
                bail!("interrupted");
            }
            eprintln!("bench loss: round {}/{}: {} ...", round + 1, a.rounds, b.name());
            let mut bed = BenchBed::up(1, &[0], &peer_cores)?;
            let st = Command::new("ip")
                .args(["netns", "exec", NS_CLI, "bash", "-c", &impairment_script(DEV_CLI, a.loss, a.reorder)])
                .status()
                .context("impair the peer")?;
            if !st.success() {
                bail!("impairing the peer's side failed (nft and tc needed)");
            }
            bed.start(&exe, b, &[0])?;
            let r = run_kv(
                &exe,
                &client_cores,
                &["bench", "loss", "--target", &format!("{SRV_IP}:7"), "--connections", &conns, "--bytes", &bytes]
                    .into_iter()
                    .chain(["--stall", &stall, "--kv"])
                    .collect::<Vec<_>>(),
            );
            bed.stop();
            drop(bed);
            let r = r?;
            eprintln!("  {r:?}");
            let v = r.get("verified").copied().unwrap_or(0.0) as usize;
            if v < a.connections {
                failed.push(format!(
                    "{} round {}: {v} of {} connections echoed every byte intact",
                    b.name(),
                    round + 1,
                    a.connections
                ));
            }
            let least = verified.entry(b.name()).or_insert(a.connections);
            *least = (*least).min(v);
            results.entry(b.name()).or_default().push(r.get("goodput_mbit_per_sec").copied().unwrap_or(0.0));
        }
    }
    let k = median(results.get_mut("kernel").map(|v| v.as_mut_slice()).unwrap_or(&mut []));
    let x = median(results.get_mut("xdptcp").map(|v| v.as_mut_slice()).unwrap_or(&mut []));
    let ratio = if k > 0.0 { x / k } else { 0.0 };
    let (k_ok, x_ok) = (verified.get("kernel").copied().unwrap_or(0), verified.get("xdptcp").copied().unwrap_or(0));
    if a.kv {
        println!(
            "kernel_goodput_mbit_per_sec={k:.1}\nxdptcp_goodput_mbit_per_sec={x:.1}\nratio={ratio:.3}\n\
             kernel_verified_min={k_ok}\nxdptcp_verified_min={x_ok}"
        );
    } else {
        println!(
            "bench loss: {} x {} bytes, {} % loss, {} % reordered, {} round(s): kernel {k:.1} Mbit/s, xdptcp {x:.1} Mbit/s, ratio {ratio:.3}",
            a.connections, a.bytes, a.loss, a.reorder, a.rounds
        );
    }
    if !failed.is_empty() {
        bail!("not every byte came back: {}", failed.join("; "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// compare
// ---------------------------------------------------------------------------------------------

const NS_SRV: &str = "xdptcp-bench-srv";
const NS_CLI: &str = "xdptcp-bench-cli";
const DEV_SRV: &str = "vbench-stack";
const DEV_CLI: &str = "vbench-peer";
pub(super) const SRV_IP: &str = "198.18.0.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Kernel,
    Xdp,
    /// The stack with `--syn-shield on`: SYNs answered by the XDP program.
    Shield,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Kernel => "kernel",
            Backend::Xdp => "xdptcp",
            Backend::Shield => "shield",
        }
    }
}

/// `xdp_pass` on the peer's end of a veth bed, for as long as it lives: a veth end receives
/// frames another end sent by `XDP_TX` (the shield's SYN-ACKs) only while it has an XDP
/// program of its own (DESIGN.md).
pub(super) struct PeerPass {
    /// Held for its Drop: the program goes when the process does.
    _attach: Attached,
}

impl PeerPass {
    pub(super) fn attach(exe: &str) -> Result<PeerPass> {
        PeerPass::attach_in(exe, NS_CLI, DEV_CLI)
    }
    pub(super) fn attach_in(exe: &str, ns: &str, dev: &str) -> Result<PeerPass> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, exe, "xdp-attach", "--prog", "pass", "--iface", dev]);
        Ok(PeerPass { _attach: attached(c, "xdp_pass on the peer's end")? })
    }
}

/// A running `xdptcp xdp-attach` and the thread that passes on what it prints; dropping it
/// stops the process (see [`Interrupted`]) and then waits for its last words.
struct Attached {
    child: Option<Interrupted>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        drop(self.child.take());
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Starts `xdptcp xdp-attach` (`c`) and returns once it says its program is attached (its
/// first line), or fails if it ends first or takes more than 10 s. What it prints later goes
/// on to this process's stdout.
fn attached(mut c: Command, what: &str) -> Result<Attached> {
    use std::io::{BufRead, BufReader};
    let mut child = c.stdout(Stdio::piped()).spawn().with_context(|| format!("start {what}"))?;
    let out = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let Some(out) = out else { return };
        let mut r = BufReader::new(out);
        let mut first = String::new();
        let _ = r.read_line(&mut first);
        let _ = tx.send(first);
        let _ = std::io::copy(&mut r, &mut std::io::stdout());
    });
    let mut a = Attached { child: Some(Interrupted(child)), reader: Some(reader) };
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(l) if l.trim_end() == super::ATTACHED => Ok(a),
        Ok(l) => {
            let status = a.child.as_mut().and_then(|c| c.0.try_wait().ok().flatten());
            let how = status.map_or("is still running".to_string(), |s| format!("ended ({s})"));
            bail!("{what}: not attached (its first line was {:?}; it {how})", l.trim_end())
        }
        Err(_) => bail!("{what}: not attached after 10 s"),
    }
}

/// A child process that gets SIGINT and is waited for when this is dropped, whichever way
/// the caller leaves; one that has not ended 3 s after the SIGINT (stuck before its handler
/// looks, e.g. loading a program) is killed.
struct Interrupted(Child);

impl Drop for Interrupted {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        for _ in 0..300 {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bench`'s bed (`rig::bed` with `bench`'s names) and the server running on it.
struct BenchBed {
    server: Option<Child>,
    /// The load generators' cores (the peer end's receive work runs there too).
    peer_cores: Vec<usize>,
    // Declared last: the server stops before the bed goes.
    bed: Bed,
}

impl BenchBed {
    /// A bed of `queues` queues for a server on `server_cores` and a peer on `peer_cores`.
    fn up(queues: u32, server_cores: &[usize], peer_cores: &[usize]) -> Result<BenchBed> {
        let names = BedNames::bench();
        debug_assert_eq!((names.ns_srv.as_str(), names.dev_srv.as_str()), (NS_SRV, DEV_SRV));
        let bed = BenchBed {
            server: None,
            peer_cores: peer_cores.to_vec(),
            bed: Bed::up(BedConfig::new(names).queues(queues))?,
        };
        // veth runs a receiver's path in the sender's context; each end receives through a
        // pinned poll on its own cores, as a NIC on each of two machines would, for every
        // backend alike.
        bed.bed.receive_like_a_nic(server_cores, peer_cores)?;
        // The load generator opens many short connections: give it the whole port range and
        // let it reuse its TIME-WAIT ports, for both backends alike.
        // Kernel-socket clients (the legitimate ones under flood, bulk) take ports above the
        // range the AF_XDP client uses (20000-60999), so neither meets the other's TIME-WAIT.
        for s in ["net.ipv4.ip_local_port_range=61000 65535", "net.ipv4.tcp_tw_reuse=1"] {
            let _ = bed.bed.in_cli("sysctl").args(["-qw", s]).status();
        }
        // The flood's spoofed sources (198.18.0.0/15 outside the bed's /24) are reached through
        // the peer, so the kernel backend can answer them as the stack does (the stack answers
        // the MAC a frame came from).
        let _ = bed.bed.in_srv("ip").args(["route", "replace", "198.18.0.0/15", "via", "198.18.0.2"]).status();
        // The kernel backend's SYN handling under flood: cookies as the stack uses them.
        let _ = bed.bed.in_srv("sysctl").args(["-qw", "net.ipv4.tcp_syncookies=1"]).status();
        Ok(bed)
    }
    /// Starts `serve` on `cores`: the stack on one queue per core, the kernel backend with one
    /// thread per core.
    fn start(&mut self, exe: &str, b: Backend, cores: &[usize]) -> Result<()> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", NS_SRV, exe, "serve"]);
        match b {
            Backend::Kernel => c.args(["--backend", "kernel"]),
            Backend::Xdp => c.args(["--iface", DEV_SRV]),
            Backend::Shield => c.args(["--iface", DEV_SRV, "--syn-shield", "on"]),
        };
        if b != Backend::Kernel && self.bed.cfg.queues > 1 {
            c.args(["--queues", &self.bed.cfg.queues.to_string()]);
        }
        c.args([
            "--addr",
            SRV_IP,
            "--port",
            "80",
            "--app",
            "http",
            "--also",
            "9:discard",
            "--also",
            "7:echo",
            "--quiet",
        ])
        .args(["--cores", &cpu_list(cores)])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        self.server = Some(c.spawn().context("start serve")?);
        std::thread::sleep(Duration::from_millis(1200));
        if let Some(Ok(Some(st))) = self.server.as_mut().map(|s| s.try_wait()) {
            bail!("serve ({}) exited early: {st}", b.name());
        }
        // The poll the bed made stays once a program is attached; pinned again all the same.
        if self.bed.pin_stack_napi(cores)? == 0 {
            bail!("no NAPI thread of {DEV_SRV} to pin once serve ({}) started", b.name());
        }
        Ok(())
    }
    fn peer_cores_list(&self) -> String {
        cpu_list(&self.peer_cores)
    }
    /// `xdp_pass` on the peer's end, its poll pinned again to the peer's cores.
    fn peer_pass(&self, exe: &str) -> Result<PeerPass> {
        let p = PeerPass::attach(exe)?;
        self.bed.pin_napi(End::Peer, &self.peer_cores)?;
        Ok(p)
    }
    fn stop(&mut self) {
        if let Some(c) = self.server.take() {
            interrupt(c);
        }
    }
}

impl Drop for BenchBed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Busy clock ticks of all CPUs since boot, from the `cpu` line of /proc/stat: user, nice,
/// system, irq, softirq and steal (what is neither idle nor iowait; guest time is already inside
/// user). 0 when /proc/stat cannot be read.
pub(super) fn cpu_busy_ticks() -> u64 {
    use procfs::CurrentSI;
    let Ok(stat) = procfs::KernelStats::current() else { return 0 };
    let t = stat.total;
    t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0)
}

/// Busy and total clock ticks per CPU since boot, keyed by CPU number (the `cpuN` lines of
/// /proc/stat, which lists online CPUs only, so a position is not a number), busy counted as
/// [`cpu_busy_ticks`] counts it and total adding idle and iowait; empty when /proc/stat
/// cannot be read.
pub(super) fn core_ticks() -> BTreeMap<usize, (u64, u64)> {
    std::fs::read_to_string("/proc/stat").map(|s| parse_core_ticks(&s)).unwrap_or_default()
}

fn parse_core_ticks(stat: &str) -> BTreeMap<usize, (u64, u64)> {
    stat.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let cpu: usize = f.next()?.strip_prefix("cpu")?.parse().ok()?;
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            let v: Vec<u64> = f.take(8).map(|x| x.parse().unwrap_or(0)).collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
            Some((cpu, (busy, busy + at(3) + at(4))))
        })
        .collect()
}

/// CPU seconds per 1,000 answers (connections, SYN-ACKs), from busy clock ticks.
pub(super) fn cpu_s_per_k(busy_ticks: u64, answers: f64) -> f64 {
    busy_ticks as f64 / clk_tck() / (answers / 1000.0).max(1e-9)
}

/// Busy clock ticks of `cores` together between two [`core_ticks`] readings.
pub(super) fn busy_ticks_on(
    before: &BTreeMap<usize, (u64, u64)>,
    after: &BTreeMap<usize, (u64, u64)>,
    cores: &[usize],
) -> u64 {
    let busy = |t: &BTreeMap<usize, (u64, u64)>, c: &usize| t.get(c).map_or(0, |v| v.0);
    cores.iter().map(|c| busy(after, c).saturating_sub(busy(before, c))).sum()
}

/// How busy CPU `cpu` was between two [`core_ticks`] readings (0 to 1), so a report can tell
/// which core held the rate down; `None` when either reading lacks it.
pub(super) fn core_busy_share(
    before: &BTreeMap<usize, (u64, u64)>,
    after: &BTreeMap<usize, (u64, u64)>,
    cpu: usize,
) -> Option<f64> {
    let (b, a) = (before.get(&cpu)?, after.get(&cpu)?);
    Some(a.0.saturating_sub(b.0) as f64 / (a.1.saturating_sub(b.1) as f64).max(1.0))
}

/// Clock ticks per second (sysconf(_SC_CLK_TCK), the unit of /proc/stat).
pub(super) fn clk_tck() -> f64 {
    procfs::ticks_per_second().max(1) as f64
}

/// The CPU model of the first processor in /proc/cpuinfo ("" when there is none, as on some
/// ARM kernels).
pub(super) fn cpu_model() -> String {
    use procfs::Current;
    procfs::CpuInfo::current().ok().and_then(|c| c.model_name(0).map(str::to_string)).unwrap_or_default()
}

/// The running kernel's release string, e.g. "6.1.0-31-amd64". Read by hand on purpose: it is a
/// one-line sysctl file, and procfs's `sys::kernel::Version` parses it into numbers, dropping
/// the distribution suffix that identifies the build.
pub(super) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

/// "0,1,...": a `--cores` / `taskset -c` list.
pub(super) fn cpu_list(cores: &[usize]) -> String {
    cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

fn run_kv(exe: &str, client_cores: &str, args: &[&str]) -> Result<BTreeMap<String, f64>> {
    run_kv_in(NS_CLI, exe, client_cores, args)
}

/// Runs `xdptcp ARGS` (a `--kv` load generator) in namespace `ns` on `cores` and reads its
/// `key=value` lines.
pub(super) fn run_kv_in(ns: &str, exe: &str, cores: &str, args: &[&str]) -> Result<BTreeMap<String, f64>> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "taskset", "-c", cores, exe])
        .args(args)
        .output()
        .with_context(|| format!("run {args:?}"))?;
    if !o.status.success() {
        bail!("{args:?} failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr));
    }
    Ok(kv_parse(&String::from_utf8_lossy(&o.stdout)))
}

/// One measurement of every scenario against one backend (`b`: the shield needs an XDP
/// program on the peer's end once kernel sockets are the clients).
fn measure(
    exe: &str,
    a: &CompareArgs,
    bed: &BenchBed,
    server_cores: &[usize],
    b: Backend,
) -> Result<BTreeMap<String, f64>> {
    let client_cores = &bed.peer_cores_list();
    let secs = a.seconds.to_string();
    let conc = a.concurrency.to_string();
    let target = format!("{SRV_IP}:80");
    let mut m = BTreeMap::new();
    // Connection rate, with machine-wide CPU per connection.
    let b0 = cpu_busy_ticks();
    // With one queue the generator is the stack itself on AF_XDP (the kernel's TCP as client
    // would be the bottleneck); the server closes first, the short-connection HTTP pattern.
    // With several, kernel-socket clients: veth puts a flow on the receive queue of the
    // sender's transmit queue, and the AF_XDP client sends on queue 0 only (every flow would
    // reach queue 0 of the server, and replies a kernel server sent on another queue would
    // reach no AF_XDP socket on the client's side).
    let mut connect = vec!["bench", "connect", "--target", &target, "--concurrency", &conc, "--seconds", &secs];
    // With one queue the AF_XDP client's own XDP program is on the peer's end during the
    // connect scenario; for the kernel-socket clients (everything else) the shield needs one.
    let mut peer_pass = if b == Backend::Shield && a.queues > 1 { Some(bed.peer_pass(exe)?) } else { None };
    if a.queues == 1 {
        connect.extend_from_slice(&["--xdp-iface", DEV_CLI, "--local", "198.18.0.2", "--dst-mac", "02:18:00:00:00:01"]);
    }
    connect.push("--kv");
    let c = run_kv(exe, client_cores, &connect)?;
    let b1 = cpu_busy_ticks();
    let conns = c.get("completed").copied().unwrap_or(0.0);
    m.insert("conn_per_sec".into(), c.get("conn_per_sec").copied().unwrap_or(0.0));
    m.insert("connect_errors".into(), c.get("errors").copied().unwrap_or(0.0));
    m.insert("connect_p99_us".into(), c.get("connect_p99_us").copied().unwrap_or(0.0));
    m.insert("cpu_s_per_kconn".into(), cpu_s_per_k(b1.saturating_sub(b0), conns));
    if b == Backend::Shield && peer_pass.is_none() {
        peer_pass = Some(bed.peer_pass(exe)?);
    }
    // SYN flood, flat out: SYN-ACKs per second and machine-wide CPU per SYN-ACK over the
    // flood's window (the generator included, the same for every backend: the bed's generator
    // caps the rate, so the cost per answer is what tells the backends apart).
    let f0 = cpu_busy_ticks();
    let f = flood_on_bed(exe, client_cores, &secs, 0)?;
    let f1 = cpu_busy_ticks();
    let synacks = f.get("synacks").copied().unwrap_or(0.0);
    m.insert("cpu_s_per_ksynack".into(), cpu_s_per_k(f1.saturating_sub(f0), synacks));
    m.insert("flood_syns_per_sec".into(), f.get("syns_per_sec").copied().unwrap_or(0.0));
    m.insert("flood_synacks_per_sec".into(), f.get("synacks_per_sec").copied().unwrap_or(0.0));
    // The same flood at --flood-rate, alone: flat out every core is busy, so the figure above
    // is only the cores over the rate; paced, the machine has time to spare and the busy time
    // per answer is what answering costs, machine-wide and on the server's cores alone.
    let (t0, f, t1) = (core_ticks(), flood_on_bed(exe, client_cores, &secs, a.flood_rate)?, core_ticks());
    let synacks = f.get("synacks").copied().unwrap_or(0.0);
    let all_cores: Vec<usize> = t1.keys().copied().collect();
    m.insert("paced_cpu_s_per_ksynack".into(), cpu_s_per_k(busy_ticks_on(&t0, &t1, &all_cores), synacks));
    m.insert("paced_server_cpu_s_per_ksynack".into(), cpu_s_per_k(busy_ticks_on(&t0, &t1, server_cores), synacks));
    m.insert("paced_synacks_per_sec".into(), f.get("synacks_per_sec").copied().unwrap_or(0.0));
    // Legitimate clients at a modest rate beside a flood of the same offered rate for every
    // backend: flat out, the generator sends as fast as the server leaves it room to, so a
    // cheaper server would face a heavier flood and the latencies would not compare.
    let ns_flood = std::thread::spawn({
        let (exe, client_cores, secs, rate) = (exe.to_string(), client_cores.to_string(), secs.clone(), a.flood_rate);
        move || flood_on_bed(&exe, &client_cores, &secs, rate)
    });
    std::thread::sleep(Duration::from_millis(200));
    let legit = legit_under_flood(NS_CLI, exe, client_cores, &target, a.seconds);
    let f = ns_flood.join().map_err(|_| anyhow::anyhow!("flood thread"))??;
    let legit = legit?;
    m.insert("legit_flood_syns_per_sec".into(), flood_reached(&f));
    let done = legit.get("completed").copied().unwrap_or(0.0);
    let errs = legit.get("errors").copied().unwrap_or(0.0);
    m.insert("flood_legit_success".into(), if done + errs > 0.0 { done / (done + errs) } else { 0.0 });
    m.insert("flood_legit_connect_p99_us".into(), legit.get("connect_p99_us").copied().unwrap_or(0.0));
    // Bulk.
    let bulk =
        run_kv(exe, client_cores, &["bench", "bulk", "--target", &format!("{SRV_IP}:9"), "--seconds", &secs, "--kv"])?;
    m.insert("bulk_gbit_per_sec".into(), bulk.get("gbit_per_sec").copied().unwrap_or(0.0));
    drop(peer_pass);
    Ok(m)
}

/// SYNs per second of a `bench flood --kv` report that reached the server: those sent less
/// those veth's full ring refused.
pub(super) fn flood_reached(f: &BTreeMap<String, f64>) -> f64 {
    let got = |k: &str| f.get(k).copied().unwrap_or(0.0);
    (got("syns_sent") - got("dropped_on_the_way")).max(0.0) / got("elapsed_s").max(1e-9)
}

/// `bench flood` at `target` for `secs`, from namespace `ns` on `cores`, at `rate` SYNs per
/// second (0: flat out), counting the SYN-ACKs (and the SYNs veth refused) on `dev`, the
/// peer's end. `bench compare` and `bench proxy` flood their beds with it.
pub(super) fn flood_from(
    (ns, dev): (&str, &str),
    exe: &str,
    cores: &str,
    target: &str,
    secs: &str,
    rate: u64,
) -> Result<BTreeMap<String, f64>> {
    let rate = rate.to_string();
    run_kv_in(
        ns,
        exe,
        cores,
        &["bench", "flood", "--target", target, "--seconds", secs, "--rate", &rate, "--count-iface", dev, "--kv"],
    )
}

/// [`flood_from`] this bed's peer at the server's port 80.
fn flood_on_bed(exe: &str, client_cores: &str, secs: &str, rate: u64) -> Result<BTreeMap<String, f64>> {
    flood_from((NS_CLI, DEV_CLI), exe, client_cores, &format!("{SRV_IP}:80"), secs, rate)
}

/// The legitimate clients run beside a flood, from namespace `ns`: 4 connections at a time, 200 per second, for the
/// flood's window less a second, each given 5 s to connect. `bench compare` and `bench proxy`
/// measure the same load.
pub(super) fn legit_under_flood(
    ns: &str,
    exe: &str,
    client_cores: &str,
    target: &str,
    seconds: u64,
) -> Result<BTreeMap<String, f64>> {
    let secs = seconds.saturating_sub(1).max(1).to_string();
    run_kv_in(
        ns,
        exe,
        client_cores,
        &[
            "bench",
            "connect",
            "--target",
            target,
            "--concurrency",
            "4",
            "--rate",
            "200",
            "--seconds",
            &secs,
            "--timeout",
            "5",
            "--kv",
        ],
    )
}

/// The median of a few rounds' figures (the upper middle for an even count). A sort of a
/// handful of values, not a latency distribution: no histogram needed here.
pub(super) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// No target for this metric: it is shown for what it explains.
const NO_TARGET: f64 = 0.0;

/// The metrics, with whether larger is better and the target ratio (against the kernel).
const METRICS: [(&str, &str, bool, f64); 9] = [
    ("conn_per_sec", "connections/s", true, 3.0),
    ("cpu_s_per_kconn", "CPU s / 1000 conns", false, 1.0 / 3.0),
    ("flood_synacks_per_sec", "SYN-ACKs/s under flood", true, 2.0),
    // Issue 10: the SYN shield answers a SYN for at most a third of the kernel's CPU.
    // Measured where the machine has time to spare (the flood paced at --flood-rate): flat out
    // every core is busy and the figure is only the cores over the rate.
    ("cpu_s_per_ksynack", "CPU s / 1000 SYN-ACKs under flood", false, NO_TARGET),
    ("paced_cpu_s_per_ksynack", "CPU s / 1000 SYN-ACKs, flood at --flood-rate", false, 1.0 / 3.0),
    ("paced_server_cpu_s_per_ksynack", "server cores' CPU s / 1000 SYN-ACKs, same flood", false, NO_TARGET),
    ("flood_legit_success", "legit success under flood", true, 1.0),
    ("flood_legit_connect_p99_us", "legit p99 connect under flood", false, 1.0),
    // Issue 11: one stream into `discard` at 0.9 of the kernel's Gbit/s or better.
    ("bulk_gbit_per_sec", "bulk Gbit/s", true, 0.9),
];

pub fn compare(a: &CompareArgs) -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench compare needs root (namespaces, XDP)");
    }
    xdptcp::engine::signals::install();
    let exe = std::env::current_exe()?.to_string_lossy().to_string();
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let queues = a.queues as usize;
    if a.server_core >= ncpu || queues > ncpu {
        bail!("--server-core {} --queues {queues}: this machine has {ncpu} CPUs", a.server_core);
    }
    // The server's cores: N from --server-core on (wrapping); the generator takes the others,
    // or shares all of them when the server takes every core.
    let server_cores: Vec<usize> = (0..queues).map(|i| (a.server_core + i) % ncpu).collect();
    let peer_cores: Vec<usize> = (0..ncpu).filter(|c| !server_cores.contains(c)).collect();
    let peer_cores = if peer_cores.is_empty() { (0..ncpu).collect() } else { peer_cores };
    let client_cores = cpu_list(&peer_cores);
    eprintln!(
        "bench compare: {queues} queue(s), server on core(s) {}, load generator on {client_cores}",
        cpu_list(&server_cores)
    );
    // A fresh bed for every run: the kernel keeps TIME-WAIT state per namespace, and a run must
    // not meet the previous run's (a new client's timestamps fail PAWS against it).
    let fresh_bed = || -> Result<BenchBed> {
        // Each end receives through a pinned poll on its own cores (`Bed::receive_like_a_nic`),
        // pinned again once a program is attached (`BenchBed::start`).
        BenchBed::up(a.queues, &server_cores, &peer_cores)
    };
    let mut results: BTreeMap<&str, Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for round in 0..a.rounds {
        for b in [Backend::Kernel, Backend::Xdp, Backend::Shield] {
            if xdptcp::engine::signals::stop_requested() {
                bail!("interrupted");
            }
            eprintln!("bench compare: round {}/{}: {} ...", round + 1, a.rounds, b.name());
            let mut bed = fresh_bed()?;
            bed.start(&exe, b, &server_cores)?;
            let r = measure(&exe, a, &bed, &server_cores, b);
            bed.stop();
            drop(bed);
            let r = r?;
            eprintln!("  {r:?}");
            results.entry(b.name()).or_default().push(r);
        }
    }
    // The bed's ceiling: an XDP program answering each SYN with a SYN-ACK by XDP_TX.
    let bed = fresh_bed()?;
    let ceiling = measure_ceiling(&exe, a, &bed, &server_cores, &client_cores).unwrap_or_else(|e| {
        eprintln!("bench compare: ceiling not measured: {e:#}");
        CeilingFigures::default()
    });
    drop(bed);
    write_report(a, &server_cores, &results, ceiling)
}

/// The XDP_TX ceiling program's figures under the same flood.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct CeilingFigures {
    synacks_per_sec: f64,
    cpu_s_per_ksynack: f64,
    /// At `--flood-rate`: machine-wide, and on the server's cores alone.
    paced_cpu_s_per_ksynack: f64,
    paced_server_cpu_s_per_ksynack: f64,
}

fn measure_ceiling(
    exe: &str,
    a: &CompareArgs,
    bed: &BenchBed,
    server_cores: &[usize],
    client_cores: &str,
) -> Result<CeilingFigures> {
    let mut ceiling = Command::new("ip");
    ceiling.args(["netns", "exec", NS_SRV, exe, "xdp-attach", "--prog", "synack-tx", "--iface", DEV_SRV]);
    ceiling.args(["--port", "80"]);
    let programs = [attached(ceiling, "the XDP_TX ceiling program")?, PeerPass::attach(exe)?._attach];
    // The program's receive poll on the server's cores, as the stack's (`BenchBed::start`).
    if bed.bed.pin_stack_napi(server_cores)? == 0 {
        bail!("no NAPI thread of {DEV_SRV} to pin for the ceiling program");
    }
    bed.bed.pin_napi(End::Peer, &bed.peer_cores)?;
    let secs = a.seconds.to_string();
    let (c0, r, c1) = (cpu_busy_ticks(), flood_on_bed(exe, client_cores, &secs, 0), cpu_busy_ticks());
    // Paced, as `measure` paces it.
    let (t0, p, t1) = (core_ticks(), flood_on_bed(exe, client_cores, &secs, a.flood_rate), core_ticks());
    drop(programs);
    let (r, p) = (r?, p?);
    let synacks = r.get("synacks").copied().unwrap_or(0.0);
    let paced = p.get("synacks").copied().unwrap_or(0.0);
    let all_cores: Vec<usize> = t1.keys().copied().collect();
    Ok(CeilingFigures {
        synacks_per_sec: r.get("synacks_per_sec").copied().unwrap_or(0.0),
        cpu_s_per_ksynack: cpu_s_per_k(c1.saturating_sub(c0), synacks),
        paced_cpu_s_per_ksynack: cpu_s_per_k(busy_ticks_on(&t0, &t1, &all_cores), paced),
        paced_server_cpu_s_per_ksynack: cpu_s_per_k(busy_ticks_on(&t0, &t1, server_cores), paced),
    })
}

/// The machine a report was measured on.
#[derive(Debug, Clone, serde::Serialize)]
struct Machine {
    cpu: String,
    cpus: usize,
    kernel: String,
}

/// One metric of `report.json`: every round's value per backend, the medians and their
/// ratios to the kernel's (`ratio` is xdptcp's, `shield_ratio` the stack's with
/// `--syn-shield on`).
#[derive(Debug, Clone, serde::Serialize)]
struct MetricReport {
    label: &'static str,
    higher_is_better: bool,
    kernel: Vec<f64>,
    xdptcp: Vec<f64>,
    shield: Vec<f64>,
    kernel_median: f64,
    xdptcp_median: f64,
    shield_median: f64,
    ratio: f64,
    shield_ratio: f64,
    target_ratio: f64,
}

/// The metrics as a JSON object in `METRICS` order (a map would sort them by name).
#[derive(Debug, Clone)]
struct Metrics(Vec<(&'static str, MetricReport)>);

impl serde::Serialize for Metrics {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Medians {
    kernel_median: f64,
    xdptcp_median: f64,
    shield_median: f64,
}

/// `report.json` of `bench compare`.
#[derive(Debug, Clone, serde::Serialize)]
struct Report {
    machine: Machine,
    rounds: usize,
    seconds: u64,
    concurrency: usize,
    queues: u32,
    server_cores: Vec<usize>,
    connect_client: &'static str,
    metrics: Metrics,
    flood_syns_offered_per_sec: Medians,
    /// `--flood-rate`, and what of it reached the server beside the legitimate clients (less if
    /// the generator fell behind or veth's ring refused some).
    flood_rate: u64,
    legit_flood_syns_offered_per_sec: Medians,
    xdp_tx_ceiling_synacks_per_sec: f64,
    xdp_tx_ceiling_cpu_s_per_ksynack: f64,
    xdp_tx_ceiling_paced_cpu_s_per_ksynack: f64,
    xdp_tx_ceiling_paced_server_cpu_s_per_ksynack: f64,
    xdptcp_vs_ceiling: f64,
    shield_vs_ceiling: f64,
}

/// Three decimals are all a noisy bed's figures carry, and the JSON stays readable; below 1,
/// four significant digits, so that a CPU cost of a few thousandths of a second per 1,000
/// answers keeps its precision.
fn round3(x: f64) -> f64 {
    if x == 0.0 || x.abs() >= 1.0 || !x.is_finite() {
        return (x * 1000.0).round() / 1000.0;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The report's figures from every round's measurements (no I/O, so it can be tested).
fn build_report(
    a: &CompareArgs,
    machine: Machine,
    server_cores: &[usize],
    results: &BTreeMap<&str, Vec<BTreeMap<String, f64>>>,
    ceiling: CeilingFigures,
) -> Report {
    let med = |b: &str, k: &str| {
        let mut v: Vec<f64> =
            results.get(b).map(|rs| rs.iter().filter_map(|r| r.get(k).copied()).collect()).unwrap_or_default();
        median(&mut v)
    };
    let all = |b: &str, k: &str| -> Vec<f64> {
        results
            .get(b)
            .map(|rs| rs.iter().map(|r| round3(r.get(k).copied().unwrap_or(0.0))).collect())
            .unwrap_or_default()
    };
    let metrics = METRICS
        .iter()
        .map(|&(k, label, higher_is_better, target_ratio)| {
            let (kv, xv, sv) = (med("kernel", k), med("xdptcp", k), med("shield", k));
            let to_kernel = |v: f64| round3(if kv > 0.0 { v / kv } else { 0.0 });
            let m = MetricReport {
                label,
                higher_is_better,
                kernel: all("kernel", k),
                xdptcp: all("xdptcp", k),
                shield: all("shield", k),
                kernel_median: round3(kv),
                xdptcp_median: round3(xv),
                shield_median: round3(sv),
                ratio: to_kernel(xv),
                shield_ratio: to_kernel(sv),
                target_ratio: round3(target_ratio),
            };
            (k, m)
        })
        .collect();
    let vs_ceiling = |b: &str| {
        round3(if ceiling.synacks_per_sec > 0.0 {
            med(b, "flood_synacks_per_sec") / ceiling.synacks_per_sec
        } else {
            0.0
        })
    };
    Report {
        machine,
        rounds: a.rounds,
        seconds: a.seconds,
        concurrency: a.concurrency,
        queues: a.queues,
        server_cores: server_cores.to_vec(),
        connect_client: if a.queues == 1 { "xdptcp on AF_XDP (queue 0)" } else { "kernel sockets" },
        metrics: Metrics(metrics),
        flood_syns_offered_per_sec: Medians {
            kernel_median: round3(med("kernel", "flood_syns_per_sec")),
            xdptcp_median: round3(med("xdptcp", "flood_syns_per_sec")),
            shield_median: round3(med("shield", "flood_syns_per_sec")),
        },
        flood_rate: a.flood_rate,
        legit_flood_syns_offered_per_sec: Medians {
            kernel_median: round3(med("kernel", "legit_flood_syns_per_sec")),
            xdptcp_median: round3(med("xdptcp", "legit_flood_syns_per_sec")),
            shield_median: round3(med("shield", "legit_flood_syns_per_sec")),
        },
        xdp_tx_ceiling_synacks_per_sec: round3(ceiling.synacks_per_sec),
        xdp_tx_ceiling_cpu_s_per_ksynack: round3(ceiling.cpu_s_per_ksynack),
        xdp_tx_ceiling_paced_cpu_s_per_ksynack: round3(ceiling.paced_cpu_s_per_ksynack),
        xdp_tx_ceiling_paced_server_cpu_s_per_ksynack: round3(ceiling.paced_server_cpu_s_per_ksynack),
        xdptcp_vs_ceiling: vs_ceiling("xdptcp"),
        shield_vs_ceiling: vs_ceiling("shield"),
    }
}

/// A figure for the table: two decimals, or three significant digits below 1 (a CPU cost per
/// 1,000 answers is a few thousandths of a second, and the bed's rounds differ in the second
/// digit already).
fn figure(v: f64) -> String {
    if v == 0.0 || v.abs() >= 1.0 || !v.is_finite() {
        return format!("{v:.2}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// The report as a Markdown table, and the rows of the plot.
fn report_table(r: &Report) -> (String, Vec<(String, f64, f64, bool)>) {
    let cores = cpu_list(&r.server_cores);
    let mut table = format!(
        "{} queue(s): xdptcp serves one per core, the kernel runs one thread per core, on the same cores \
         ({cores}), each end receiving through pinned polls; connection-rate client: {}. shield: xdptcp with --syn-shield on (SYNs answered by \
         the XDP program).\n\n",
        r.queues, r.connect_client
    );
    table.push_str(
        "| metric | kernel | xdptcp | shield | xdptcp / kernel | shield / kernel | target |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for (_, m) in &r.metrics.0 {
        let cmp = if m.higher_is_better { ">=" } else { "<=" };
        let target = if m.target_ratio > 0.0 { format!("{cmp} {:.2}", m.target_ratio) } else { String::new() };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {target} |",
            m.label,
            figure(m.kernel_median),
            figure(m.xdptcp_median),
            figure(m.shield_median),
            m.ratio,
            m.shield_ratio,
        );
        // The plot shows the metrics that have a target.
        if m.target_ratio > 0.0 {
            rows.push((m.label.to_string(), m.ratio, m.target_ratio, m.higher_is_better));
            rows.push((format!("{} (shield)", m.label), m.shield_ratio, m.target_ratio, m.higher_is_better));
        }
    }
    // The offered load: when every backend answers about what was sent, the generator (not the
    // server) set the figure.
    let o = &r.flood_syns_offered_per_sec;
    let _ = writeln!(
        table,
        "| SYNs/s offered by the flood generator | {:.0} | {:.0} | {:.0} | | | |",
        o.kernel_median, o.xdptcp_median, o.shield_median
    );
    let o = &r.legit_flood_syns_offered_per_sec;
    let short = |v: f64| if v < 0.95 * r.flood_rate as f64 { " (short)" } else { "" };
    let _ = writeln!(
        table,
        "| SYNs/s that reached the server beside the legitimate clients (--flood-rate {}) | {:.0}{} | {:.0}{} | {:.0}{} | | | |",
        r.flood_rate,
        o.kernel_median,
        short(o.kernel_median),
        o.xdptcp_median,
        short(o.xdptcp_median),
        o.shield_median,
        short(o.shield_median)
    );
    let synacks = |b: fn(&MetricReport) -> f64| {
        r.metrics.0.iter().find(|(k, _)| *k == "flood_synacks_per_sec").map_or(0.0, |(_, m)| b(m))
    };
    let _ = writeln!(
        table,
        "| SYN-ACKs/s vs the XDP_TX ceiling ({:.0}/s, {} CPU s / 1000) | | {:.0} | {:.0} | {:.2} (>= 0.80) | {:.2} (>= 1.00) | |",
        r.xdp_tx_ceiling_synacks_per_sec,
        figure(r.xdp_tx_ceiling_cpu_s_per_ksynack),
        synacks(|m| m.xdptcp_median),
        synacks(|m| m.shield_median),
        r.xdptcp_vs_ceiling,
        r.shield_vs_ceiling
    );
    let _ = writeln!(
        table,
        "| the XDP_TX ceiling's CPU s / 1000 SYN-ACKs at --flood-rate (one run): machine, server cores | {}, {} | | | | | |",
        figure(r.xdp_tx_ceiling_paced_cpu_s_per_ksynack),
        figure(r.xdp_tx_ceiling_paced_server_cpu_s_per_ksynack)
    );
    rows.push(("SYN-ACKs vs XDP_TX ceiling".to_string(), r.xdptcp_vs_ceiling, 0.8, true));
    rows.push(("SYN-ACKs vs XDP_TX ceiling (shield)".to_string(), r.shield_vs_ceiling, 1.0, true));
    (table, rows)
}

fn write_report(
    a: &CompareArgs,
    server_cores: &[usize],
    results: &BTreeMap<&str, Vec<BTreeMap<String, f64>>>,
    ceiling: CeilingFigures,
) -> Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let (cpu, kernel) = (cpu_model(), kernel_release());
    let machine = Machine { cpu, cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), kernel };
    let report = build_report(a, machine, server_cores, results, ceiling);
    let json = serde_json::to_string_pretty(&report).context("serialize the report")?;
    let (table, rows) = report_table(&report);
    std::fs::write(format!("{}/report.json", a.out), json + "\n")?;
    std::fs::write(format!("{}/report.md", a.out), &table)?;
    plot(&format!("{}/report.svg", a.out), a.queues, &rows)?;
    println!("{table}");
    println!("machine: {}, {} CPUs, Linux {}", report.machine.cpu, report.machine.cpus, report.machine.kernel);
    println!("wrote {0}/report.json, {0}/report.md, {0}/report.svg", a.out);
    Ok(())
}

/// A bar per metric and backend: the ratio to the kernel, with the target marked.
fn plot(path: &str, queues: u32, rows: &[(String, f64, f64, bool)]) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 80 + 50 * rows.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let max = rows.iter().map(|r| r.1.max(r.2)).fold(1.0f64, f64::max) * 1.15;
    let n = rows.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "xdptcp (and shield) / Linux kernel, {queues} queue(s), same bed, same run; red: target; green: met"
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(260)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let i = i as i32;
            let met = if r.3 { r.1 >= r.2 } else { r.1 <= r.2 };
            let color = if met { GREEN.mix(0.7) } else { BLUE.mix(0.6) };
            Rectangle::new([(0.0, SegmentValue::Exact(i)), (r.1, SegmentValue::Exact(i + 1))], color.filled())
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let i = i as i32;
            PathElement::new(
                vec![(r.2, SegmentValue::Exact(i)), (r.2, SegmentValue::Exact(i + 1))],
                RED.stroke_width(3),
            )
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    fn gone(pid: u32) -> bool {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn attached_returns_once_the_child_says_so_and_stops_it_when_dropped() {
        let a = attached(sh(&format!("echo {}; exec sleep 30", crate::cli::ATTACHED)), "child").expect("attached");
        let pid = a.child.as_ref().map(|c| c.0.id()).expect("a child");
        assert!(!gone(pid), "running while held");
        drop(a);
        assert!(gone(pid), "SIGINT ended it and it was waited for");
    }

    #[test]
    fn attached_fails_with_the_first_line_of_a_child_that_did_not_attach() {
        let e = attached(sh("echo 'xdp-attach: no such device'; exit 1"), "child").err().expect("an error");
        let msg = format!("{e:#}");
        assert!(msg.contains("no such device"), "{msg}");
        let e = attached(sh("exit 3"), "child").err().expect("an error");
        assert!(format!("{e:#}").contains("not attached"), "{e:#}");
    }

    #[test]
    fn a_child_that_ignores_sigint_is_killed() {
        let script = format!("trap '' INT; echo {}; exec sleep 30", crate::cli::ATTACHED);
        let a = attached(sh(&script), "child").expect("attached");
        let pid = a.child.as_ref().map(|c| c.0.id()).expect("a child");
        drop(a);
        assert!(gone(pid), "killed after its SIGINT went unanswered");
    }

    fn args() -> CompareArgs {
        CompareArgs {
            rounds: 2,
            seconds: 4,
            concurrency: 32,
            out: String::new(),
            server_core: 0,
            queues: 1,
            flood_rate: 50_000,
        }
    }

    fn results() -> BTreeMap<&'static str, Vec<BTreeMap<String, f64>>> {
        let round = |cps: f64| BTreeMap::from([("conn_per_sec".to_string(), cps)]);
        BTreeMap::from([
            ("kernel", vec![round(100.0), round(300.0)]),
            ("xdptcp", vec![round(900.0), round(600.0)]),
            ("shield", vec![round(1200.0), round(600.0)]),
        ])
    }

    /// What a flood delivered: the SYNs sent less those veth refused, per second.
    #[test]
    fn flood_reached_counts_what_veth_did_not_refuse() {
        let f = kv_parse("syns_sent=100000\ndropped_on_the_way=10000\nelapsed_s=2.000\nsyns_per_sec=50000\n");
        assert_eq!(flood_reached(&f), 45_000.0);
        // An empty or odd report reads as nothing reached, not as a division by zero.
        assert_eq!(flood_reached(&kv_parse("")), 0.0);
        assert_eq!(flood_reached(&kv_parse("syns_sent=5\ndropped_on_the_way=9\nelapsed_s=1\n")), 0.0);
    }

    /// The machine line's sources on this (Linux) machine: procfs reads them.
    #[test]
    fn machine_facts_come_from_proc() {
        assert!(!kernel_release().is_empty());
        assert!(clk_tck() >= 1.0);
        // A booted machine has spent some ticks busy, and the count only grows.
        let a = cpu_busy_ticks();
        assert!(a > 0);
        assert!(cpu_busy_ticks() >= a);
        let now = core_ticks();
        assert!(now.contains_key(&0));
        assert!(now.values().all(|&(busy, total)| busy <= total));
        // CPU 1 offline: the line after cpu0 is cpu2, and it is read as CPU 2.
        let before = parse_core_ticks(
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\ncpu2 5 0 5 50 0 0 0 0 0 0\nintr 1\n",
        );
        let after =
            parse_core_ticks("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 60 0 60 400 0 0 0 0 0 0\ncpu2 5 0 5 50 0 0 0 0 0 0\n");
        assert_eq!(before.keys().copied().collect::<Vec<_>>(), [0, 2]);
        // 100 busy ticks out of 400 elapsed.
        assert_eq!(core_busy_share(&before, &after, 0), Some(0.25));
        assert_eq!(core_busy_share(&before, &after, 2), Some(0.0));
        assert_eq!(core_busy_share(&before, &after, 1), None);
        // A reading that went backwards counts as idle.
        assert_eq!(core_busy_share(&after, &before, 0), Some(0.0));
        // x86 kernels always have "model name"; others may not.
        if cfg!(target_arch = "x86_64") {
            assert!(!cpu_model().is_empty());
        }
    }

    /// A CPU model string with a quote and a backslash (hypervisors put odd things there) comes
    /// back from the JSON unchanged, and the metrics keep their table order.
    #[test]
    fn report_json_escapes_the_cpu_model_and_parses_back() {
        let cpu = r#"Fancy "Turbo" CPU \ 3.0GHz\"#.to_string();
        let machine = Machine { cpu: cpu.clone(), cpus: 2, kernel: "6.1.0-\"x\"".to_string() };
        let r = build_report(&args(), machine, &[0], &results(), CeilingFigures::default());
        let json = serde_json::to_string_pretty(&r).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["machine"]["cpu"].as_str(), Some(cpu.as_str()));
        assert_eq!(v["machine"]["kernel"].as_str(), Some("6.1.0-\"x\""));
        let keys: Vec<&str> = v["metrics"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), METRICS.len());
        let at = |k: &str| json.find(&format!("\"{k}\"")).unwrap();
        assert!(at("conn_per_sec") < at("bulk_gbit_per_sec"), "METRICS order, not sorted: {json}");
        let cps = &v["metrics"]["conn_per_sec"];
        assert_eq!(cps["kernel"], serde_json::json!([100.0, 300.0]));
        // median() takes the upper middle of an even count.
        assert_eq!(cps["kernel_median"].as_f64(), Some(300.0));
        assert_eq!(cps["xdptcp_median"].as_f64(), Some(900.0));
        assert_eq!(cps["ratio"].as_f64(), Some(3.0));
        assert_eq!(cps["shield"], serde_json::json!([1200.0, 600.0]));
        assert_eq!(cps["shield_ratio"].as_f64(), Some(4.0));
        assert_eq!(v["server_cores"], serde_json::json!([0]));
    }

    /// A CPU cost per 1,000 SYN-ACKs (a few thousandths of a second) keeps four significant
    /// digits in the JSON and three in the table; large figures keep three and two decimals.
    #[test]
    fn small_figures_keep_their_digits() {
        assert_eq!(round3(0.0056148), 0.005615);
        assert_eq!(round3(0.01715), 0.01715);
        assert_eq!(round3(43717.8123), 43717.812);
        assert_eq!(round3(0.0), 0.0);
        assert_eq!(figure(0.0056148), "0.00561");
        assert_eq!(figure(0.1446), "0.145");
        assert_eq!(figure(43717.8), "43717.80");
        assert_eq!(figure(0.0), "0.00");
    }
}
