//! The `xdptcp` command line: `serve`, `demo`, `kclient`, `stats`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use xdptcp::app::AppKind;
use xdptcp::rig::kernel::{run_echo_clients, ClientPlan, Closer};
use xdptcp::tcp::SynCookies;

pub mod bench;
pub mod bench_proxy;
pub mod config;
pub mod console;
pub mod demo;
#[cfg(feature = "xdp")]
pub mod serve;
pub mod ss;

#[derive(Parser, Debug)]
#[command(name = "xdptcp", version, about = "A kernel-bypass TCP stack on AF_XDP")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing buys nothing
pub enum Cmd {
    /// Serve a bundled application on AF_XDP sockets.
    Serve(ServeArgs),
    /// Build a veth test bed, serve on one end, drive it from the Linux kernel on the other,
    /// report, and tear everything down.
    Demo(DemoArgs),
    /// Kernel-socket echo client: many connections with content checks (runs against any echo
    /// server; `demo` runs it inside the peer namespace).
    Kclient(KclientArgs),
    /// Print the counters a running `serve` writes to its stats file.
    Stats(StatsArgs),
    /// List the connections of a running `serve`, as `ss -tan` does (read from its control
    /// socket).
    Ss(ss::SsArgs),
    /// A bounded SYN flood from spoofed 198.18.0.0/15 sources (raw socket; needs root).
    Flood(FloodArgs),
    /// Load generators and the side-by-side comparison with the Linux kernel.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Attach a helper XDP program until SIGINT (used by `bench compare`): `synack-tx` answers
    /// every SYN with a SYN-ACK by XDP_TX (the bed's ceiling); `pass` lets XDP_TX frames in on the
    /// peer end of a veth pair.
    #[command(hide = true)]
    XdpAttach(XdpAttachArgs),
}

#[derive(Args, Debug, Clone)]
pub struct FloodArgs {
    /// Target IPv4 address and port.
    #[arg(long)]
    pub target: std::net::SocketAddrV4,
    /// Most SYNs to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Most seconds to run.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// SYNs per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// What to send: SYNs, or ACKs / RSTs from tuples that match nothing.
    #[arg(long, value_enum, default_value_t = FloodKindArg::Syn)]
    pub kind: FloodKindArg,
}

/// `--directory-slots`: 8 (one bucket) to 2^31 slots (16 GiB).
fn parse_directory_slots(v: &str) -> Result<usize, String> {
    let n: usize = v.parse().map_err(|e| format!("{e}"))?;
    if !(8..=1 << 31).contains(&n) {
        return Err("must be between 8 and 2147483648 (8 bytes each)".into());
    }
    Ok(n)
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum FloodKindArg {
    Syn,
    Ack,
    Rst,
}

pub fn flood(a: &FloodArgs) -> Result<()> {
    use xdptcp::rig::kernel::FloodKind;
    let kind = match a.kind {
        FloodKindArg::Syn => FloodKind::Syn,
        FloodKindArg::Ack => FloodKind::Ack,
        FloodKindArg::Rst => FloodKind::Rst,
    };
    let r = xdptcp::rig::kernel::syn_flood(&xdptcp::rig::kernel::FloodPlan {
        target: a.target,
        kind,
        count: a.count,
        duration: std::time::Duration::from_secs(a.seconds),
        rate: a.rate,
        seed: std::process::id() as u64,
    })
    .context("raw socket (needs root or CAP_NET_RAW)")?;
    println!(
        "flood: {} {:?}s to {} in {:.2}s ({:.0}/s), {} send errors",
        r.sent,
        kind,
        a.target,
        r.elapsed.as_secs_f64(),
        r.sent as f64 / r.elapsed.as_secs_f64().max(1e-9),
        r.send_errors
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AppArg {
    Echo,
    Http,
    Discard,
    /// Relays each connection to --upstream over a kernel socket (xdp backend only).
    Proxy,
}

/// `--proxy-protocol`: the header the proxy app sends upstream first (HAProxy's spec).
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProxyProtocolArg {
    Off,
    /// The text line, `PROXY TCP4 <client> <server> <cport> <sport>`.
    V1,
    /// The binary header.
    V2,
}

/// `--congestion-control`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcArg {
    Cubic,
    Reno,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum XdpModeArg {
    Native,
    Generic,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BindArg {
    Auto,
    Copy,
    Zerocopy,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BackendArg {
    /// The AF_XDP stack.
    Xdp,
    /// Ordinary kernel sockets (epoll, one thread per core, SO_REUSEPORT): the baseline for
    /// comparisons, and the fallback on hosts without XDP.
    Kernel,
}

/// `serve --syn-shield`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ShieldArg {
    /// Every SYN reaches a core (which makes cookies itself when its SYN queue overflows).
    Off,
    /// On while SYNs to listening ports exceed --syn-shield-rate per second or a SYN queue
    /// overflows, off 10 s after they fall below half that rate (like tcp_syncookies=1).
    Auto,
    /// Always on.
    On,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Which TCP serves the apps.
    #[arg(long, value_enum, default_value_t = BackendArg::Xdp)]
    pub backend: BackendArg,
    /// Network interface to attach to (the xdp backend).
    #[arg(long)]
    pub iface: Option<String>,
    /// Address to serve (repeatable). Omit to serve every address the interface has at start
    /// (shared-address mode; --own-address needs it).
    #[arg(long = "addr")]
    pub addrs: Vec<IpAddr>,
    /// Port to listen on (1-65535).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Application on --port.
    #[arg(long, value_enum, default_value_t = AppArg::Echo)]
    pub app: AppArg,
    /// More listeners, as PORT:APP (e.g. 80:http); repeatable.
    #[arg(long = "also", value_parser = parse_port_app)]
    pub also: Vec<(u16, AppArg)>,
    /// Response body size of the http app, in bytes.
    #[arg(long, default_value_t = 64)]
    pub http_body: usize,
    /// The proxy app's server: HOST:PORT (resolved once at start), e.g. 127.0.0.1:8080, or
    /// unix:PATH for a Unix stream socket on this host (nginx's `listen unix:PATH`). Every
    /// port served by `proxy` (--app proxy, --also PORT:proxy) relays to it.
    #[arg(long, value_name = "HOST:PORT|unix:PATH")]
    pub upstream: Option<String>,
    /// The proxy app sends the client's address first, as HAProxy's PROXY protocol header
    /// (nginx: `listen ... proxy_protocol`; HAProxy: `accept-proxy`).
    #[arg(long, value_enum, default_value_t = ProxyProtocolArg::Off)]
    pub proxy_protocol: ProxyProtocolArg,
    /// Seconds the proxy app waits for the upstream connect before resetting the client.
    #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub proxy_connect_timeout: u64,
    /// Seconds a relayed connection may move no byte either way before both sides are reset.
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub proxy_idle_timeout: u64,
    /// Microseconds the PROXY header waits for the client's first bytes, to reach the upstream
    /// in one segment with them (0: sent as soon as the upstream connection is up; a
    /// server-speaks-first protocol gets its header this much later). At most 100 ms: Linux
    /// holds the handshake's last ACK for a write only up to 200 ms.
    #[arg(long, default_value_t = 1000, value_name = "MICROSECONDS", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub proxy_header_wait_us: u64,
    /// NIC queues to serve (one pinned thread each). Default: every receive queue the NIC has;
    /// fewer is refused, since flows the NIC puts on an unserved queue would be lost.
    #[arg(long)]
    pub queues: Option<u32>,
    /// Cores to pin the queue threads to, comma-separated (default: the CPUs serve may run on,
    /// in order; 0,1,... unless a cpuset narrows them).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Listen backlog (accept queue and SYN queue bound), capped by --somaxconn; at least 1.
    #[arg(long, default_value_t = 4096, value_parser = parse_at_least_one)]
    pub backlog: usize,
    /// net.ipv4.tcp_syncookies: 0 off, 1 on SYN-queue overflow, 2 always.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub syncookies: u8,
    /// net.ipv4.tcp_max_syn_backlog (per core).
    #[arg(long, default_value_t = 4096)]
    pub max_syn_backlog: usize,
    /// net.core.somaxconn.
    #[arg(long, default_value_t = 4096)]
    pub somaxconn: usize,
    /// net.ipv4.tcp_synack_retries.
    #[arg(long, default_value_t = 5)]
    pub synack_retries: u8,
    /// net.ipv4.tcp_fin_timeout, seconds.
    #[arg(long, default_value_t = 60)]
    pub fin_timeout: u64,
    /// net.ipv4.tcp_abort_on_overflow.
    #[arg(long)]
    pub abort_on_overflow: bool,
    /// net.ipv4.tcp_max_tw_buckets (per core): at this many TIME-WAIT entries a closing
    /// connection closes without one, counted in TcpExtTCPTimeWaitOverflow (about 50 bytes each).
    #[arg(long, default_value_t = 1 << 18)]
    pub max_tw_buckets: usize,
    /// net.ipv4.tcp_congestion_control: cubic (Linux's default, RFC 9438) or reno (RFC 5681).
    /// With --backend kernel the listening sockets are set to it (TCP_CONGESTION).
    #[arg(long, value_enum, default_value_t = CcArg::Cubic)]
    pub congestion_control: CcArg,
    /// XDP attach mode: native (driver) or generic (SKB, any interface).
    #[arg(long, value_enum, default_value_t = XdpModeArg::Native)]
    pub xdp_mode: XdpModeArg,
    /// AF_XDP bind mode: zero-copy when the driver has it (auto), or forced.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    pub bind: BindArg,
    /// UMEM frames per queue (half kept for receiving, half for transmitting).
    #[arg(long, default_value_t = 4096)]
    pub umem_frames: u32,
    /// UMEM frame size: 2048 or 4096 bytes (256 of them are XDP headroom).
    #[arg(long, default_value_t = 2048)]
    pub frame_size: u32,
    /// Size of each of the fill, completion, rx and tx rings (a power of two).
    #[arg(long, default_value_t = 2048)]
    pub ring_size: u32,
    /// Back the UMEM with huge pages (needs vm.nr_hugepages).
    #[arg(long)]
    pub huge_pages: bool,
    /// The stack owns --addr (answers ARP and ICMP echo); otherwise it shares the host's
    /// address and takes over only its ports.
    #[arg(long)]
    pub own_address: bool,
    /// Slots of the flow directory the cores share to find a flow whose packets moved queue
    /// (8 bytes each; a flow held by any core takes one).
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_directory_slots)]
    pub directory_slots: usize,
    /// Microseconds each core keeps polling its rings after its last work before it sleeps
    /// until a frame, a timer or its application's sockets wake it (at most 2 ms). 0 (as Linux's
    /// net.core.busy_poll): sleep as soon as a turn finds nothing. More saves the wake-up of a
    /// frame that comes within the spell, and spends the core's CPU meanwhile.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub busy_poll_us: u64,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Where to write the counters once a second (read by `xdptcp stats`; `none` to skip).
    #[arg(long, default_value = "/run/xdptcp.stats")]
    pub stats_file: String,
    /// Do not print the per-second line.
    #[arg(long)]
    pub quiet: bool,
    /// On SIGTERM: seconds the open connections get to finish after the listeners close
    /// (new SYNs are refused meanwhile); what is still open then is reset. SIGINT stops at once.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub drain_timeout: u64,
    /// Secrets shared by every host behind one ECMP/anycast address (48 random bytes, mode 0600,
    /// owned by the serving user; make with `(umask 077; head -c 48 /dev/urandom > PATH)`): any
    /// host then validates the SYN cookies of any other, with the same ISN and timestamp keys,
    /// and cookie epochs follow UNIX time. Default: keys drawn at start (this host only).
    #[arg(long, value_name = "PATH")]
    pub cookie_secret_file: Option<std::path::PathBuf>,
    /// RSTs per second each core sends to segments that match nothing (a stray-ACK flood),
    /// with a burst of one second's worth; 0: no limit. Suppressed ones count in
    /// XdptcpRstRateLimited. Default 200, as FreeBSD's net.inet.icmp.icmplim.
    #[arg(long, default_value_t = 200)]
    pub rst_limit: u32,
    /// Serve the counters in the Prometheus text format at http://ADDR:PORT/metrics (a kernel
    /// socket on the management network, e.g. 127.0.0.1:9100). Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Unix socket that `xdptcp ss` reads the connection table from (mode 0600; `none` to
    /// disable) [default: /run/xdptcp.sock, skipped with a warning when another instance has it]
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<std::path::PathBuf>,
    /// Capture every frame the stack receives and sends to FILE (pcap, nanosecond timestamps;
    /// frames the writer cannot keep up with are counted in pcap_dropped, never waited for).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// Rotate the capture when FILE reaches N MB (10^6 bytes, as tcpdump -C): FILE becomes
    /// FILE.1, FILE.1 becomes FILE.2, ...
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub pcap_max_mb: u64,
    /// Capture files kept, FILE included (as tcpdump -W).
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pcap_files: u32,
    /// The SYN shield: the XDP program answers each pure SYN to a listening port with the
    /// stack's SYN cookie itself (XDP_TX), so a SYN flood never reaches the cores; the final
    /// ACK reaches a core, which checks the cookie. On a veth pair the peer end needs an XDP
    /// program of its own (any, e.g. `xdptcp xdp-attach --prog pass`) for XDP_TX frames to
    /// arrive there. Needs SYN cookies on (--syncookies 1 or 2).
    #[arg(long, value_enum, default_value_t = ShieldArg::Off)]
    pub syn_shield: ShieldArg,
    /// --syn-shield auto: SYNs per second (to listening ports, all queues) that switch the
    /// shield on.
    #[arg(long, value_name = "N", default_value_t = xdptcp::engine::shield::DEFAULT_ON_RATE,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub syn_shield_rate: u64,
    /// Settings from a TOML file: keys are these flags' long names and the sysctl names they
    /// mirror (`"net.ipv4.tcp_syncookies" = 2`, or `[net.ipv4]` tables); flags given on the
    /// command line win. See cli/config.rs.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Print the effective settings (as a config file, with where each came from) and exit.
    #[arg(long)]
    pub print_config: bool,
}

fn parse_port_app(s: &str) -> Result<(u16, AppArg), String> {
    let (p, a) = s.split_once(':').ok_or("expected PORT:APP, e.g. 80:http")?;
    let port: u16 = p.parse().map_err(|e| format!("port {p:?}: {e} (1-65535)"))?;
    if port == 0 {
        return Err("port 0: a listener needs a port between 1 and 65535".into());
    }
    let app = AppArg::from_str(a, true)?;
    Ok((port, app))
}

fn parse_at_least_one(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

impl ServeArgs {
    /// What clap cannot check alone: one line naming the flag and the fix. Runs before anything
    /// touches the NIC, so a refused start leaves nothing attached.
    pub fn validate(&self) -> Result<()> {
        if self.backend == BackendArg::Xdp {
            match self.iface.as_deref() {
                None | Some("") => bail!(
                    "--iface is required with the xdp backend: name the interface to attach to (see `ip -br link`), \
                     e.g. --iface eth1"
                ),
                Some(i) if !std::path::Path::new("/sys/class/net").join(i).exists() => {
                    bail!("--iface {i}: no such interface in this network namespace (see `ip -br link`)")
                }
                Some(_) => {}
            }
        }
        let name = |a: &AppArg| a.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        let mut seen: Vec<(u16, String)> =
            vec![(self.port, format!("--port {} (--app {})", self.port, name(&self.app)))];
        for (p, app) in &self.also {
            let app = name(app);
            if let Some((_, first)) = seen.iter().find(|(q, _)| q == p) {
                bail!("--also {p}:{app}: port {p} is already served by {first}; pick another port for it");
            }
            seen.push((*p, format!("--also {p}:{app}")));
        }
        if self.syn_shield != ShieldArg::Off {
            let mode = self.shield_config().mode;
            if self.backend == BackendArg::Kernel {
                bail!(
                    "--syn-shield {mode}: the shield is part of the XDP program; the kernel backend has \
                     the kernel's own SYN cookies (net.ipv4.tcp_syncookies)"
                );
            }
            if self.syncookies == 0 {
                bail!(
                    "--syn-shield {mode} with --syncookies 0: the shield answers SYNs with cookies, which \
                     the cores must check; use --syncookies 1 or 2, or --syn-shield off"
                );
            }
        }
        let proxies = self.app_args().iter().filter(|(_, a)| *a == AppArg::Proxy).count();
        if proxies > 0 && self.backend == BackendArg::Kernel {
            bail!("--app proxy needs the xdp backend (the kernel backend serves the bundled apps only)");
        }
        match (&self.upstream, proxies) {
            (None, n) if n > 0 => bail!("--app proxy needs --upstream HOST:PORT or unix:PATH: the server to relay to"),
            (Some(u), 0) => bail!("--upstream {u}: no port serves the proxy app (--app proxy or --also PORT:proxy)"),
            // A Unix path is checked here (a HOST:PORT is resolved when serve starts).
            (Some(u), _) if u.starts_with("unix:") => {
                if let Err(e) = xdptcp::engine::proxy::Upstream::parse(u) {
                    bail!("--upstream {e}");
                }
            }
            _ => {}
        }
        let mut cores = self.cores.clone();
        cores.sort_unstable();
        if let Some(w) = cores.windows(2).find(|w| w[0] == w[1]) {
            bail!("--cores: core {} is listed twice; each queue needs a core of its own", w[0]);
        }
        // The kernel backend writes no stats file.
        if let Some(p) = (self.backend == BackendArg::Xdp && self.stats_file != "none").then_some(&self.stats_file) {
            let path = std::path::Path::new(p);
            if let Err(e) = xdptcp::engine::stats_file::check_writable(path) {
                let fix = match e.kind() {
                    std::io::ErrorKind::NotFound => "create its directory",
                    std::io::ErrorKind::PermissionDenied => "make it (and its directory) writable by this user",
                    _ => "choose a writable path",
                };
                bail!("--stats-file {p}: cannot write it ({e}); {fix}, or pass --stats-file none");
            }
        }
        Ok(())
    }

    /// The SYN shield's settings.
    pub fn shield_config(&self) -> xdptcp::engine::shield::ShieldConfig {
        use xdptcp::engine::shield::{ShieldConfig, ShieldMode};
        let mode = match self.syn_shield {
            ShieldArg::Off => ShieldMode::Off,
            ShieldArg::Auto => ShieldMode::Auto,
            ShieldArg::On => ShieldMode::On,
        };
        ShieldConfig { mode, on_rate: self.syn_shield_rate }
    }

    /// The side channels of `serve` (metrics, control socket, capture).
    #[cfg(feature = "xdp")]
    pub fn ops(&self) -> xdptcp::engine::ops::OpsConfig {
        use xdptcp::engine::ops::DEFAULT_CONTROL_SOCKET;
        let control_socket = match &self.control_socket {
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) => Some(p.clone()),
            None => Some(DEFAULT_CONTROL_SOCKET.into()),
        };
        xdptcp::engine::ops::OpsConfig {
            metrics: self.metrics,
            control_socket,
            control_socket_is_default: self.control_socket.is_none(),
            pcap: self.pcap.as_ref().map(|p| xdptcp::engine::pcap::PcapConfig {
                path: p.clone(),
                max_bytes: self.pcap_max_mb * 1_000_000,
                files: self.pcap_files,
            }),
        }
    }

    /// Every listening port and its app, --port first.
    pub fn app_args(&self) -> Vec<(u16, AppArg)> {
        let mut v = vec![(self.port, self.app)];
        v.extend(self.also.iter().copied());
        v
    }

    /// The bundled app of `a` (none for the proxy, which the xdp backend builds itself).
    pub fn bundled(&self, a: AppArg) -> Option<AppKind> {
        match a {
            AppArg::Echo => Some(AppKind::Echo),
            AppArg::Http => Some(AppKind::Http { body: self.http_body }),
            AppArg::Discard => Some(AppKind::Discard),
            AppArg::Proxy => None,
        }
    }

    /// The ports served by bundled apps (validate() refuses the proxy on the kernel backend).
    pub fn apps(&self) -> Vec<(u16, AppKind)> {
        self.app_args().into_iter().filter_map(|(p, a)| self.bundled(a).map(|k| (p, k))).collect()
    }

    #[cfg_attr(not(feature = "xdp"), allow(dead_code))] // the xdp backend's TCP settings
    pub fn tcp_config(&self) -> xdptcp::tcp::Config {
        xdptcp::tcp::Config {
            syncookies: SynCookies::from_sysctl(self.syncookies).unwrap_or(SynCookies::OnOverflow),
            max_syn_backlog: self.max_syn_backlog,
            somaxconn: self.somaxconn,
            synack_retries: self.synack_retries,
            fin_timeout: xdptcp::time::Duration::from_secs(self.fin_timeout),
            abort_on_overflow: self.abort_on_overflow,
            max_tw_buckets: self.max_tw_buckets,
            congestion_control: match self.congestion_control {
                CcArg::Cubic => xdptcp::tcp::CongestionControl::Cubic,
                CcArg::Reno => xdptcp::tcp::CongestionControl::Reno,
            },
            rst_rate_limit: self.rst_limit,
            rst_rate_burst: self.rst_limit,
            ..xdptcp::tcp::Config::default()
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Echo connections the kernel client makes.
    #[arg(long, default_value_t = 2000)]
    pub conns: usize,
    /// Concurrent kernel client connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Bytes each connection sends and gets back.
    #[arg(long, default_value_t = 4096)]
    pub bytes: usize,
    /// Keep the bed after the run (remove it with deploy/bed-down.sh).
    #[arg(long)]
    pub keep_bed: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CloserArg {
    Client,
    Server,
    /// Half the connections each way.
    Mixed,
}

#[derive(Args, Debug, Clone)]
pub struct KclientArgs {
    /// Echo server address.
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 1024)]
    pub bytes: usize,
    /// Who closes first: the client (FIN after reading the echo) or the server (a CLOSE line).
    #[arg(long, value_enum, default_value_t = CloserArg::Mixed)]
    pub closer: CloserArg,
    /// Per-operation timeout, seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// The stats file `serve --stats-file` writes.
    #[arg(long, default_value = "/run/xdptcp.stats")]
    pub file: String,
}

pub fn kclient(a: &KclientArgs) -> Result<()> {
    let run = |closer: Closer, conns: usize| {
        run_echo_clients(&ClientPlan {
            target: a.target,
            connections: conns,
            concurrency: a.concurrency,
            bytes: a.bytes,
            closer,
            timeout: std::time::Duration::from_secs(a.timeout),
        })
    };
    let parts: Vec<(Closer, usize)> = match a.closer {
        CloserArg::Client => vec![(Closer::Client, a.conns)],
        CloserArg::Server => vec![(Closer::Server, a.conns)],
        CloserArg::Mixed => vec![(Closer::Client, a.conns / 2), (Closer::Server, a.conns - a.conns / 2)],
    };
    let mut failed = 0;
    for (closer, n) in parts {
        let r = run(closer, n);
        let who = if closer == Closer::Client { "client closes first" } else { "server closes first" };
        println!(
            "kclient: {n} connections to {} ({who}): {} ok, {} connect errors, {} io errors, {} content mismatches; {} bytes each way in {:.2}s ({:.0} conn/s)",
            a.target,
            r.ok,
            r.connect_errors,
            r.io_errors,
            r.mismatches,
            r.bytes_each_way,
            r.elapsed.as_secs_f64(),
            r.ok as f64 / r.elapsed.as_secs_f64().max(1e-9)
        );
        if let Some(e) = &r.first_io_error {
            println!("kclient: first io error: {e}");
        }
        failed += r.connect_errors + r.io_errors + r.mismatches;
    }
    if failed > 0 {
        bail!("{failed} connections failed");
    }
    Ok(())
}

/// `serve --backend kernel`: the same apps on kernel sockets.
pub fn serve_kernel(a: &ServeArgs) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use xdptcp::rig::kernel_server::{run, KernelServeConfig};
    if a.metrics.is_some() || a.pcap.is_some() {
        bail!(
            "--metrics and --pcap need the xdp backend (the kernel's own counters are in nstat, its frames in tcpdump)"
        );
    }
    if let Some(p) = &a.cookie_secret_file {
        bail!("--cookie-secret-file {}: the kernel backend uses the kernel's own SYN-cookie keys, which cannot be set; use --backend xdp or drop the flag", p.display());
    }
    a.validate()?;
    xdptcp::engine::signals::install();
    let addr = a.addrs.first().copied().unwrap_or(IpAddr::from([0u8, 0, 0, 0]));
    let threads = if a.cores.is_empty() { a.queues.unwrap_or(1).max(1) as usize } else { a.cores.len() };
    let cfg = KernelServeConfig {
        addr,
        apps: a.apps(),
        threads,
        cores: a.cores.clone(),
        backlog: a.backlog.min(i32::MAX as usize) as i32,
        // The flag means the same on both backends: the kernel's listening sockets take it
        // (`TCP_CONGESTION`), whatever the namespace's default (some distributions ship bbr).
        congestion: Some(match a.congestion_control {
            CcArg::Cubic => "cubic",
            CcArg::Reno => "reno",
        }),
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let limit = a.duration;
        std::thread::spawn(move || {
            let mut ticks = 0u64;
            while !xdptcp::engine::signals::stop_requested() && limit.is_none_or(|d| ticks < d * 10) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                ticks += 1;
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    // As the xdp backend: stdout never holds up a stop (see `console`).
    let out = console::Console::stdout();
    out.line(format!(
        "xdptcp: serving {:?} on kernel sockets at {addr} ({threads} thread(s)); Ctrl-C to stop",
        cfg.apps
    ));
    let r = run(&cfg, &stop).context("kernel-socket server");
    stop.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    let s = r?;
    out.line(format!("--- summary ---\n{s:#?}"));
    out.flush(std::time::Duration::from_millis(500));
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum HelperProg {
    SynackTx,
    Pass,
}

#[derive(Args, Debug, Clone)]
pub struct XdpAttachArgs {
    #[arg(long, value_enum)]
    pub prog: HelperProg,
    #[arg(long)]
    pub iface: String,
    /// Port the SYN-ACK program answers (0: any).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// What `xdp-attach` prints once its program is attached.
pub const ATTACHED: &str = "attached";

#[cfg(feature = "xdp")]
pub fn xdp_attach(a: &XdpAttachArgs) -> Result<()> {
    use xdptcp::io::xdp::{AttachMode, Ceiling, PassProgram};
    xdptcp::engine::signals::install();
    // The first line out: what `bench` waits for before it measures.
    let say_attached = || {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{ATTACHED}").and_then(|()| out.flush());
    };
    let wait = || {
        while !xdptcp::engine::signals::stop_requested() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    match a.prog {
        HelperProg::SynackTx => {
            let mut c = Ceiling::load(a.port).context("load synack_tx")?;
            c.attach(&a.iface, AttachMode::Native).with_context(|| format!("attach synack_tx to {}", a.iface))?;
            say_attached();
            wait();
            println!("synack_tx answered={} passed={}", c.answered(), c.passed());
        }
        HelperProg::Pass => {
            let _p = PassProgram::attach(&a.iface, AttachMode::Native)
                .with_context(|| format!("attach xdp_pass to {}", a.iface))?;
            say_attached();
            wait();
        }
    }
    Ok(())
}

/// Prints the counters; says so on stderr and fails (exit 1) when they are not those of a
/// running instance: the writer exited or was killed, or the file has not been rewritten for 3 s.
pub fn stats(a: &StatsArgs) -> Result<()> {
    use xdptcp::engine::stats_file::{freshness, unix_ms, Freshness};
    let s = std::fs::read_to_string(&a.file)
        .with_context(|| format!("read {} (is `serve --stats-file` running?)", a.file))?;
    print!("{s}");
    let secs = |ms: u64| ms as f64 / 1000.0;
    match freshness(&s, unix_ms()) {
        Freshness::Fresh => Ok(()),
        Freshness::Final { pid, age_ms } => {
            bail!("{}: final counters of pid {pid}, which exited {:.1}s ago; nothing is running", a.file, secs(age_ms))
        }
        Freshness::WriterGone { pid, age_ms } => bail!(
            "{}: stale: its writer (pid {pid}) is gone without a clean exit (killed or crashed); last written {:.1}s ago",
            a.file,
            secs(age_ms)
        ),
        Freshness::Old { pid, age_ms } => bail!(
            "{}: stale: not rewritten for {:.1}s (the writer, pid {pid}, updates it every second: stuck, or a pid of \
             another namespace)",
            a.file,
            secs(age_ms)
        ),
        Freshness::Unstamped => bail!("{}: no writer stamp (not written by this version of `serve`)", a.file),
    }
}
