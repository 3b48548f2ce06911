//! `serve --metrics ADDR:PORT`: the counters in the Prometheus text exposition format
//! (version 0.0.4), served on a kernel socket by one small thread.
//!
//! # Naming
//!
//! Protocol counters keep the names Linux's `nstat` gives them, behind an `xdptcp_` prefix
//! (`xdptcp_TcpPassiveOpens`, `xdptcp_TcpExtSyncookiesSent`), so a query or an alert written
//! against `nstat` output reads the same here; counters Linux has no name for start with
//! `Xdptcp` in their nstat-style name. Everything else is snake case: drop reasons
//! (`xdptcp_drops{reason="bad_checksum"}`), the gauges (`xdptcp_connections`,
//! `xdptcp_syn_queue`, `xdptcp_time_wait`), frame I/O (`xdptcp_io_*`), the network layer
//! (`xdptcp_net_*`), the engine (`xdptcp_forwarded_to_owner`, `xdptcp_pcap_dropped`, ...) and
//! the XDP steering program (`xdptcp_xdp_*`, its per-CPU map summed).
//!
//! # Per core and summed, without double counting
//!
//! Each quantity comes in two families with different names: `xdptcp_X` is the sum over all
//! cores (no `core` label), and `xdptcp_core_X{core="N"}` is core N's share. A PromQL `sum()`
//! over either family gives the total once; nothing ever needs both, and since the names
//! differ no selector matches both by accident (a `{core=...}` label on the summed series
//! would make `sum(xdptcp_X)` count everything twice). The XDP program's counters exist only
//! summed: its map is per CPU, not per queue.
//!
//! A core that does not answer within the scrape's deadline is left out of both families, and
//! `xdptcp_scrape_cores_missing` says how many were; the endpoint never blocks on a stuck core
//! for longer than that deadline.
//!
//! # The server
//!
//! One thread, one connection at a time, with short read and write timeouts: a slow or idle
//! client delays the next scrape, never the cores, and no connection gets a thread of its
//! own. `GET /metrics` answers 200; any other path 404; any other method 405.

use super::pcap::PcapStats;
use super::shield::ShieldStatus;
use super::CoreStats;
use crate::tcp::DropReason;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a client may take to send its request, or to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read.
const MAX_REQUEST: usize = 8192;

/// One scrape's worth of data.
#[derive(Debug, Default)]
pub struct Sample<'a> {
    /// The cores that answered, each with its index in `CoreStats::core`.
    pub cores: &'a [CoreStats],
    /// Cores the engine runs.
    pub cores_expected: usize,
    /// The steering program's counters, summed over CPUs.
    pub steering: &'a [(&'static str, u64)],
    /// The SYN shield, when `--syn-shield` is not off.
    pub shield: Option<ShieldStatus>,
    /// The pcap writer, when `--pcap` is on.
    pub pcap: Option<&'a PcapStats>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Escapes a HELP text (backslash, newline) or, with `quote`, a label value (also `"`), as
/// the exposition format requires.
fn escape(s: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\n', '"']) {
        return s.into();
    }
    let mut o = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '"' if quote => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o.into()
}

/// Writes the family header and the summed sample of one quantity, then its per-core family.
/// `get` reads the quantity from one core's statistics.
fn pair(o: &mut String, s: &Sample<'_>, name: &str, help: &str, kind: Kind, get: &dyn Fn(&CoreStats) -> u64) {
    let total = s.cores.iter().map(get).fold(0u64, u64::wrapping_add);
    let help = escape(help, false);
    let _ = writeln!(o, "# HELP xdptcp_{name} {help}, all cores summed.");
    let _ = writeln!(o, "# TYPE xdptcp_{name} {}", kind.name());
    let _ = writeln!(o, "xdptcp_{name} {total}");
    let _ = writeln!(o, "# HELP xdptcp_core_{name} {help}, per core.");
    let _ = writeln!(o, "# TYPE xdptcp_core_{name} {}", kind.name());
    for c in s.cores {
        let _ = writeln!(o, "xdptcp_core_{name}{{core=\"{}\"}} {}", c.core, get(c));
    }
}

/// A per-core quantity: metric name (after `xdptcp_`), HELP text, reader.
type Quantity = (&'static str, &'static str, fn(&CoreStats) -> u64);

/// The whole exposition for one scrape.
pub fn render(s: &Sample<'_>) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let _ = writeln!(o, "# HELP xdptcp_cores Cores (NIC queues) the engine runs.");
    let _ = writeln!(o, "# TYPE xdptcp_cores gauge");
    let _ = writeln!(o, "xdptcp_cores {}", s.cores_expected);
    let _ = writeln!(o, "# HELP xdptcp_scrape_cores_missing Cores that did not answer this scrape in time.");
    let _ = writeln!(o, "# TYPE xdptcp_scrape_cores_missing gauge");
    let _ = writeln!(o, "xdptcp_scrape_cores_missing {}", s.cores_expected.saturating_sub(s.cores.len()));

    let gauges: [Quantity; 3] = [
        ("connections", "Connections with a TCB (every state but LISTEN, SYN-RECV and TIME-WAIT entries)", |c| {
            c.conns as u64
        }),
        ("syn_queue", "SYN-RECV entries in the SYN queues", |c| c.syn_queue as u64),
        ("time_wait", "TIME-WAIT entries", |c| c.time_wait as u64),
    ];
    for (name, help, get) in gauges {
        pair(&mut o, s, name, help, Kind::Gauge, &get);
    }

    // The protocol counters under their nstat names; the one gauge among them typed so.
    let names: Vec<&'static str> = crate::tcp::Counters::default().iter().map(|(n, _)| n).collect();
    for (i, name) in names.iter().enumerate() {
        let kind = if *name == "TcpCurrEstab" { Kind::Gauge } else { Kind::Counter };
        let help = format!("nstat {name}");
        pair(&mut o, s, name, &help, kind, &|c: &CoreStats| c.tcp.iter().nth(i).map_or(0, |(_, v)| v));
    }

    // Drop reasons: one family, a `reason` label.
    let _ = writeln!(o, "# HELP xdptcp_drops Segments dropped, by reason, all cores summed.");
    let _ = writeln!(o, "# TYPE xdptcp_drops counter");
    for r in DropReason::ALL {
        let v = s.cores.iter().map(|c| c.tcp.drops_of(r)).fold(0u64, u64::wrapping_add);
        let _ = writeln!(o, "xdptcp_drops{{reason=\"{}\"}} {v}", r.name());
    }
    let _ = writeln!(o, "# HELP xdptcp_core_drops Segments dropped, by reason, per core.");
    let _ = writeln!(o, "# TYPE xdptcp_core_drops counter");
    for c in s.cores {
        for r in DropReason::ALL {
            let _ =
                writeln!(o, "xdptcp_core_drops{{core=\"{}\",reason=\"{}\"}} {}", c.core, r.name(), c.tcp.drops_of(r));
        }
    }

    let counters: [Quantity; 20] = [
        ("io_rx_frames", "Frames received from the AF_XDP socket", |c| c.io.rx_frames),
        ("io_tx_frames", "Frames sent on the AF_XDP socket", |c| c.io.tx_frames),
        ("io_tx_no_frame", "Transmits refused for lack of a free UMEM frame", |c| c.io.tx_no_frame),
        ("io_wakeups", "Wakeup syscalls (sendto, poll) issued", |c| c.io.wakeups),
        ("net_rx_frames", "Frames the network layer looked at", |c| c.net.rx_frames),
        ("net_rx_tcp", "TCP segments passed to the TCP layer", |c| c.net.rx_tcp),
        ("net_rx_arp", "ARP frames received", |c| c.net.rx_arp),
        ("net_rx_icmp", "ICMP and ICMPv6 messages received", |c| c.net.rx_icmp),
        ("net_tx_arp", "ARP frames sent", |c| c.net.tx_arp),
        ("net_tx_icmp", "ICMP and ICMPv6 messages sent", |c| c.net.tx_icmp),
        ("net_rx_not_ours", "Frames for another MAC, address or protocol", |c| c.net.rx_not_ours),
        ("net_rx_malformed", "Frames that did not parse", |c| c.net.rx_malformed),
        ("net_rx_fragments", "IP fragments received (not reassembled)", |c| c.net.rx_fragments),
        ("net_tx_no_neighbour", "Packets dropped for an unknown next-hop MAC", |c| c.net.tx_no_neighbour),
        ("net_tx_no_frame", "Network-layer transmits refused for lack of a frame", |c| c.net.tx_no_frame),
        ("forwarded_to_owner", "Frames handed to the core that holds their flow", |c| c.forwarded),
        ("handover_dropped", "Frames that could not be handed over (inbox full or no buffer)", |c| c.handover_dropped),
        ("directory_full", "Flows the flow directory could not record (bucket full)", |c| c.directory_full),
        ("pcap_dropped", "Frames --pcap could not capture (its writer was behind)", |c| c.pcap_dropped),
        ("rx_frame_samples", "Received frames timed for the per-frame cost", |c| c.work_samples),
    ];
    for (name, help, get) in counters {
        pair(&mut o, s, name, help, Kind::Counter, &get);
    }

    // The applications' own counters (a relay's outcomes, ...), by the names they report.
    let mut app: Vec<crate::app::AppCounter> = Vec::new();
    for c in s.cores.iter().flat_map(|c| c.app.iter()) {
        if !app.iter().any(|a| a.name == c.name) {
            app.push(*c);
        }
    }
    for a in app {
        let kind = if a.gauge { Kind::Gauge } else { Kind::Counter };
        pair(&mut o, s, a.name, a.help, kind, &|c: &CoreStats| c.app_counter(a.name));
    }

    for (name, v) in s.steering {
        let _ = writeln!(o, "# HELP xdptcp_xdp_{name} XDP steering program counter {name}, summed over CPUs.");
        let _ = writeln!(o, "# TYPE xdptcp_xdp_{name} counter");
        let _ = writeln!(o, "xdptcp_xdp_{name} {v}");
    }

    if let Some(sh) = s.shield {
        let mode = sh.mode;
        let rows: [(&str, &str, Kind, u64); 3] = [
            (
                "syn_shield_active",
                "1 while the XDP program answers SYNs to listening ports with cookies",
                Kind::Gauge,
                u64::from(sh.active),
            ),
            ("syn_shield_switches", "Times the SYN shield went on or off", Kind::Counter, sh.switches),
            ("syn_shield_syn_rate", "Pure SYNs per second to listening ports, last sample", Kind::Gauge, sh.syn_rate),
        ];
        for (name, help, kind, v) in rows {
            let _ = writeln!(o, "# HELP xdptcp_{name} {help}.");
            let _ = writeln!(o, "# TYPE xdptcp_{name} {}", kind.name());
            let _ = writeln!(o, "xdptcp_{name}{{mode=\"{mode}\"}} {v}");
        }
    }

    if let Some(p) = s.pcap {
        let w: [(&str, &str, u64); 4] = [
            ("pcap_written_frames", "Frames written to the --pcap files", p.frames.load(Ordering::Relaxed)),
            ("pcap_written_bytes", "Bytes written to the --pcap files", p.bytes.load(Ordering::Relaxed)),
            ("pcap_rotations", "Times the --pcap file was rotated", p.rotations.load(Ordering::Relaxed)),
            (
                "pcap_write_errors",
                "Write errors of the --pcap writer (capture stops)",
                p.write_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in w {
            let _ = writeln!(o, "# HELP xdptcp_{name} {help}.");
            let _ = writeln!(o, "# TYPE xdptcp_{name} counter");
            let _ = writeln!(o, "xdptcp_{name} {v}");
        }
    }
    o
}

/// The bound listener, before its thread starts (binding first lets `serve` refuse a bad or
/// busy address before it touches the NIC).
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        // Accept polls, so the thread notices a stop within one poll interval.
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` is set; `body` renders one scrape.
    pub fn spawn(
        self,
        mut body: impl FnMut() -> String + Send + 'static,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        super::caps::spawn_unprivileged("xdptcp-metrics", move || {
            while !stop.load(Ordering::Relaxed) {
                match self.listener.accept() {
                    Ok((conn, _)) => {
                        let _ = answer(conn, &mut body);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    // EMFILE and the like: back off rather than spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        })
    }
}

/// What a request head asks for: (status line, body wanted).
fn route(head: &str) -> (&'static str, bool) {
    let mut w = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", method == "GET"),
        ("GET" | "HEAD", _) => ("404 Not Found", false),
        _ => ("405 Method Not Allowed", false),
    }
}

/// Reads one request head and answers it; the connection then closes.
fn answer(mut conn: TcpStream, body: &mut dyn FnMut() -> String) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    // One deadline for the whole request head, so a client trickling bytes cannot hold the
    // endpoint for longer than a single slow read could.
    #[allow(clippy::disallowed_methods)] // a management-socket deadline, not the datapath's clock
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        #[allow(clippy::disallowed_methods)]
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    }
    let (status, want_body) = route(&String::from_utf8_lossy(&head));
    let text = if status.starts_with("200") {
        body()
    } else if status.starts_with("404") {
        "not found: the metrics are at /metrics\n".to_string()
    } else {
        "method not allowed\n".to_string()
    };
    let ctype = if status.starts_with("200") { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let mut reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    if want_body || !status.starts_with("200") {
        reply.push_str(&text);
    }
    conn.write_all(reply.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_cores() -> Vec<CoreStats> {
        let mut a = CoreStats { core: 0, conns: 3, syn_queue: 1, ..CoreStats::default() };
        a.tcp.tcp_passive_opens = 5;
        a.tcp.tcp_curr_estab = 2;
        a.tcp.drop(DropReason::BadChecksum);
        a.io.rx_frames = 100;
        let mut b = CoreStats { core: 1, conns: 4, time_wait: 7, ..CoreStats::default() };
        b.tcp.tcp_passive_opens = 6;
        b.tcp.drop(DropReason::BadChecksum);
        b.tcp.drop(DropReason::NoListener);
        b.io.rx_frames = 50;
        vec![a, b]
    }

    /// `name{labels} value` lines, as (name, labels, value).
    fn samples(text: &str) -> Vec<(String, String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, v) = l.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n.to_string(), rest.trim_end_matches('}').to_string()),
                    None => (series.to_string(), String::new()),
                };
                (name, labels, v.parse().unwrap())
            })
            .collect()
    }

    fn value(text: &str, name: &str, labels: &str) -> f64 {
        samples(text).into_iter().find(|(n, l, _)| n == name && l == labels).map(|s| s.2).unwrap()
    }

    #[test]
    fn sums_and_per_core_families() {
        let cores = two_cores();
        let t = render(&Sample { cores: &cores, cores_expected: 2, ..Sample::default() });
        assert_eq!(value(&t, "xdptcp_TcpPassiveOpens", ""), 11.0);
        assert_eq!(value(&t, "xdptcp_core_TcpPassiveOpens", "core=\"0\""), 5.0);
        assert_eq!(value(&t, "xdptcp_core_TcpPassiveOpens", "core=\"1\""), 6.0);
        assert_eq!(value(&t, "xdptcp_connections", ""), 7.0);
        assert_eq!(value(&t, "xdptcp_time_wait", ""), 7.0);
        assert_eq!(value(&t, "xdptcp_drops", "reason=\"bad_checksum\""), 2.0);
        assert_eq!(value(&t, "xdptcp_core_drops", "core=\"1\",reason=\"no_listener\""), 1.0);
        assert_eq!(value(&t, "xdptcp_io_rx_frames", ""), 150.0);
        assert_eq!(value(&t, "xdptcp_scrape_cores_missing", ""), 0.0);
        assert!(t.contains("# TYPE xdptcp_TcpCurrEstab gauge\n"));
        assert!(t.contains("# TYPE xdptcp_TcpPassiveOpens counter\n"));
        assert!(t.contains("# TYPE xdptcp_connections gauge\n"));
    }

    /// A handler's own counters (the relay's) come out summed and per core, typed as they
    /// said, and `CoreStats::total` adds them up by name.
    #[test]
    fn application_counters_are_exposed_per_core_and_summed() {
        use crate::app::AppCounter;
        let mut cores = two_cores();
        let c = |name, value, gauge| AppCounter { name, help: "h", value, gauge };
        cores[0].app = vec![c("proxy_open", 2, true), c("proxy_accepted", 10, false)];
        cores[1].app = vec![c("proxy_open", 1, true), c("proxy_accepted", 5, false)];
        let t = render(&Sample { cores: &cores, cores_expected: 2, ..Sample::default() });
        assert_eq!(value(&t, "xdptcp_proxy_accepted", ""), 15.0);
        assert_eq!(value(&t, "xdptcp_core_proxy_accepted", "core=\"1\""), 5.0);
        assert_eq!(value(&t, "xdptcp_proxy_open", ""), 3.0);
        assert!(t.contains("# TYPE xdptcp_proxy_open gauge\n"));
        assert!(t.contains("# TYPE xdptcp_proxy_accepted counter\n"));
        let total = CoreStats::total(&cores);
        assert_eq!((total.app_counter("proxy_accepted"), total.app_counter("proxy_open")), (15, 3));
        assert_eq!(total.app_counter("absent"), 0);
    }

    /// Every summed family equals the sum of its per-core family, for every quantity.
    #[test]
    fn every_per_core_family_sums_to_its_total() {
        let cores = two_cores();
        let t = render(&Sample { cores: &cores, cores_expected: 2, ..Sample::default() });
        let all = samples(&t);
        let mut checked = 0;
        for (name, labels, v) in &all {
            let Some(rest) = name.strip_prefix("xdptcp_core_") else { continue };
            if labels != "core=\"0\"" {
                continue;
            }
            let other = all.iter().find(|(n, l, _)| n == name && l == "core=\"1\"").unwrap().2;
            assert_eq!(value(&t, &format!("xdptcp_{rest}"), ""), v + other, "{rest}");
            checked += 1;
        }
        assert!(checked > 60, "{checked}");
    }

    /// The text format's grammar: a HELP and a TYPE line per family, before its samples,
    /// each family once; metric names in [a-zA-Z_:][a-zA-Z0-9_:]*; values parse as floats.
    #[test]
    fn follows_the_text_format() {
        let cores = two_cores();
        let stats = PcapStats::default();
        let steer = [("seen", 9u64), ("redirected", 8)];
        let shield = Some(ShieldStatus {
            mode: super::super::shield::ShieldMode::Auto,
            active: true,
            switches: 3,
            syn_rate: 52_000,
        });
        let t = render(&Sample { cores: &cores, cores_expected: 3, steering: &steer, shield, pcap: Some(&stats) });
        assert!(t.ends_with('\n'));
        assert!(t.contains("\nxdptcp_syn_shield_active{mode=\"auto\"} 1\n"), "{t}");
        assert!(t.contains("\nxdptcp_syn_shield_syn_rate{mode=\"auto\"} 52000\n"), "{t}");
        let mut typed = std::collections::HashSet::new();
        let mut current = String::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(matches!(kind, "counter" | "gauge"), "{l}");
                assert!(typed.insert(name.to_string()), "family {name} twice");
                current = name.to_string();
            } else if let Some(rest) = l.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!typed.contains(name), "HELP after TYPE for {name}");
            } else {
                let name = l.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample outside its family: {l}");
                let ok = name
                    .chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
                assert!(ok, "bad name {name}");
                l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap();
            }
        }
        assert_eq!(value(&t, "xdptcp_xdp_seen", ""), 9.0);
        assert_eq!(value(&t, "xdptcp_scrape_cores_missing", ""), 1.0);
        assert!(t.contains("xdptcp_pcap_written_frames 0\n"));
    }

    #[test]
    fn escapes_help_and_labels() {
        assert_eq!(escape("a\\b\nc\"d", false), "a\\\\b\\nc\"d");
        assert_eq!(escape("a\"b", true), "a\\\"b");
        assert_eq!(escape("plain", true), "plain");
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), ("200 OK", true));
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), ("200 OK", true));
        assert_eq!(route("HEAD /metrics HTTP/1.1\r\n\r\n"), ("200 OK", false));
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n").0, "404 Not Found");
        assert_eq!(route("POST /metrics HTTP/1.1\r\n\r\n").0, "405 Method Not Allowed");
        assert_eq!(route("").0, "405 Method Not Allowed");
    }

    #[test]
    fn serves_over_http_and_refuses_a_busy_port() {
        let srv = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = srv.local_addr().unwrap();
        assert!(MetricsServer::bind(addr).is_err(), "a used address is refused");
        let stop = Arc::new(AtomicBool::new(false));
        let h = srv.spawn(|| "xdptcp_up 1\n".to_string(), stop.clone()).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("version=0.0.4"));
        assert!(ok.ends_with("\r\n\r\nxdptcp_up 1\n"));
        assert!(get("/").starts_with("HTTP/1.1 404"));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}
