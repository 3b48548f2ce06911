//! `xdptcp serve`: the AF_XDP engine with per-second counters and a summary on exit.

use super::console::Console;
use super::{BindArg, ProxyProtocolArg, ServeArgs, XdpModeArg};
use anyhow::{anyhow, bail, Result};
use std::fmt::Write as _;
use xdptcp::app::proxy_protocol::Version;
use xdptcp::app::App;
use xdptcp::engine::proxy::{raise_nofile_limit, ProxyConfig, Relay, Upstream};
use xdptcp::engine::secret_file::FleetSecrets;
use xdptcp::engine::shield::{ShieldMode, ShieldStatus};
use xdptcp::engine::signals;
use xdptcp::engine::stats_file::{self, WriterState};
use xdptcp::engine::xdp::{Engine, EngineConfig};
use xdptcp::engine::CoreStats;
use xdptcp::io::xdp::{AddressMode, AttachMode, BindMode, XskConfig};

pub fn serve(a: &ServeArgs) -> Result<()> {
    a.validate()?;
    signals::install();
    // Read (and refuse) the secret file before anything is attached to the NIC.
    let cookie_secrets = a.cookie_secret_file.as_deref().map(FleetSecrets::load).transpose()?;
    if let Some(p) = &a.cookie_secret_file {
        println!(
            "xdptcp: cookie, ISN and timestamp keys from {} (shared by the fleet); clock reads UNIX time",
            p.display()
        );
    }
    let cfg = EngineConfig {
        iface: a.iface.clone().unwrap_or_default(),
        addrs: a.addrs.clone(),
        apps: engine_apps(a)?,
        queues: a.queues.unwrap_or(0),
        cores: a.cores.clone(),
        backlog: a.backlog,
        tcp: a.tcp_config(),
        attach: match a.xdp_mode {
            XdpModeArg::Native => AttachMode::Native,
            XdpModeArg::Generic => AttachMode::Generic,
        },
        bind: match a.bind {
            BindArg::Auto => BindMode::Auto,
            BindArg::Copy => BindMode::Copy,
            BindArg::Zerocopy => BindMode::ZeroCopy,
        },
        address_mode: if a.own_address { AddressMode::Own } else { AddressMode::Shared },
        xsk: XskConfig {
            frame_count: a.umem_frames,
            frame_size: a.frame_size,
            rx_frames: a.umem_frames / 2,
            fill_size: a.ring_size.max(a.umem_frames / 2).next_power_of_two(),
            comp_size: a.ring_size,
            rx_size: a.ring_size,
            tx_size: a.ring_size,
            huge_pages: a.huge_pages,
            ..XskConfig::default()
        },
        directory_slots: a.directory_slots,
        cookie_secrets,
        shield: a.shield_config(),
        busy_poll: std::time::Duration::from_micros(a.busy_poll_us),
    };
    let cfg_iface = cfg.iface.clone();
    let ports: Vec<String> = a
        .app_args()
        .iter()
        .zip(&cfg.apps)
        .map(|((p, arg), (_, app))| match arg {
            super::AppArg::Proxy => {
                format!("{p}/proxy to {} (PROXY protocol {:?})", a.upstream.as_deref().unwrap_or(""), a.proxy_protocol)
            }
            _ => format!("{p}/{app:?}"),
        })
        .collect();
    let stats_path = (a.stats_file != "none").then(|| std::path::PathBuf::from(&a.stats_file));
    let engine = Engine::start_with(cfg, &a.ops()).map_err(xdptcp::engine::caps::explain_start_error)?;
    // Attached and bound: the main thread's capabilities go too (the core threads' already went).
    xdptcp::engine::caps::drop_capabilities()?;
    let held = xdptcp::engine::caps::threads_with_capabilities().map(|t| t.join(", ")).unwrap_or_default();
    // From here on nothing the main thread does waits for stdout or stderr (see `console`).
    let out = Console::stdout();
    let err = Console::with_writer(Box::new(std::io::stderr()));
    out.line(format!(
        "xdptcp: serving {} on {} ({} queue(s)); SIGINT stops, SIGTERM drains (up to {}s)",
        ports.join(", "),
        cfg_iface,
        engine.queues(),
        a.drain_timeout
    ));
    if let Some(st) = engine.shield_status() {
        let when = match st.mode {
            ShieldMode::Auto => format!(" while SYNs exceed {}/s or a SYN queue overflows", a.syn_shield_rate),
            _ => String::new(),
        };
        out.line(format!("xdptcp: SYN shield {}: the XDP program answers SYNs with cookies{when}", st.mode));
    }
    if !held.is_empty() {
        err.line(format!("xdptcp: warning: threads still holding capabilities: {held}"));
    }
    #[allow(clippy::disallowed_methods)] // wall clock for the report only
    let start = std::time::Instant::now();
    let mut last = CoreStats::default();
    let mut last_xdp: Vec<(&'static str, u64)> = Vec::new();
    let mut next_tick = start + TICK;
    let mut ticks = 0u64;
    let mut drain_deadline: Option<std::time::Instant> = None;
    let mut checksum_warned = false;
    let how = loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        if signals::immediate_stop_requested() {
            break "SIGINT or a second signal";
        }
        if signals::drain_requested() && drain_deadline.is_none() {
            engine.stop_listening();
            drain_deadline = Some(now + std::time::Duration::from_secs(a.drain_timeout));
            let open = CoreStats::total(&engine.snapshot()).conns;
            out.line(format!(
                "xdptcp: SIGTERM: listeners closed; draining {open} connection(s) for at most {}s",
                a.drain_timeout
            ));
        }
        if let Some(d) = drain_deadline {
            let open = CoreStats::total(&engine.snapshot()).conns;
            if open == 0 {
                break "SIGTERM, drained";
            }
            if now >= d {
                out.line(format!("xdptcp: drain timeout: resetting {open} connection(s)"));
                break "SIGTERM, drain timeout";
            }
        }
        if now < next_tick {
            continue;
        }
        next_tick += TICK;
        ticks += 1;
        let now_stats = CoreStats::total(&engine.snapshot());
        let shield = engine.shield_status();
        // The program's counters only when the shield's figures need them (a map read each).
        let now_xdp = if shield.is_some() { engine.steering_stats() } else { Vec::new() };
        if !a.quiet {
            let mut line = per_second(&now_stats, &last);
            if let Some(st) = shield {
                line += &shield_per_second(&st, &now_xdp, &last_xdp);
            }
            out.line(line);
        }
        // With the shield on, SYNs with a bad checksum are dropped by the XDP program, before
        // any core sees them: count them too.
        let xdp_bad = xdp_counter(&now_xdp, "shield_drop_checksum")
            .saturating_sub(xdp_counter(&last_xdp, "shield_drop_checksum"));
        let xdp_syn = xdp_counter(&now_xdp, "syn").saturating_sub(xdp_counter(&last_xdp, "syn"));
        if !checksum_warned && checksum_offload_suspected(&now_stats, &last, xdp_bad, xdp_syn) {
            checksum_warned = true;
            err.line(CHECKSUM_WARNING.replace("{iface}", &cfg_iface));
        }
        if let Some(p) = &stats_path {
            let body = report(&now_stats, start.elapsed().as_secs_f64(), out.dropped())
                + &shield.map(|st| shield_report(&st, &now_xdp)).unwrap_or_default();
            if let Err(e) = stats_file::write(p, WriterState::Running, &body) {
                err.line(format!("xdptcp: write --stats-file {}: {e}", p.display()));
            }
        }
        last = now_stats;
        last_xdp = now_xdp;
        if drain_deadline.is_none() && a.duration.is_some_and(|d| ticks >= d) {
            break "--duration";
        }
    };
    // What is still open is reset before the last count, so the summary shows those RSTs.
    engine.abort_all();
    let per_core = engine.snapshot();
    let total = CoreStats::total(&per_core);
    let steering = engine.steering_stats();
    let shield = engine.shield_status();
    engine.stop();
    let secs = start.elapsed().as_secs_f64();
    let mut summary = format!("--- summary after {secs:.1}s (stopped by {how}) ---\n");
    summary += &report(&total, secs, out.dropped());
    if let Some(st) = shield {
        summary += &shield_report(&st, &steering);
    }
    for (name, v) in steering {
        if v > 0 {
            let _ = writeln!(summary, "xdp_{name:<20} {v}");
        }
    }
    if let Some(p) = &stats_path {
        let _ = stats_file::write(p, WriterState::Final, &summary);
    }
    out.text(summary);
    // The summary goes where it can: a stdout nobody reads gets half a second.
    out.flush(std::time::Duration::from_millis(500));
    err.flush(std::time::Duration::from_millis(100));
    Ok(())
}

/// Every listening port with its app: the bundled ones, and the relay (built per core) on the
/// proxy ports.
fn engine_apps(a: &ServeArgs) -> Result<Vec<(u16, App)>> {
    let mut proxy: Option<ProxyConfig> = None;
    if let Some(u) = &a.upstream {
        let to = Upstream::parse(u).map_err(|e| anyhow!("--upstream {e}"))?;
        if let Upstream::Unix(path) = &to {
            // The server may come up later, so this is no error; but every client is reset
            // until it does.
            use std::os::unix::fs::FileTypeExt;
            match std::fs::metadata(path) {
                Ok(m) if m.file_type().is_socket() => {}
                Ok(_) => eprintln!("xdptcp: --upstream {u}: not a socket; clients are reset until it is one"),
                Err(e) => eprintln!("xdptcp: --upstream {u}: {e}; clients are reset until the server listens there"),
            }
        }
        let mut cfg = ProxyConfig::new(to);
        cfg.proxy_protocol = match a.proxy_protocol {
            ProxyProtocolArg::Off => Version::Off,
            ProxyProtocolArg::V1 => Version::V1,
            ProxyProtocolArg::V2 => Version::V2,
        };
        cfg.connect_timeout = xdptcp::time::Duration::from_secs(a.proxy_connect_timeout);
        cfg.idle_timeout = xdptcp::time::Duration::from_secs(a.proxy_idle_timeout);
        cfg.header_wait = xdptcp::time::Duration::from_micros(a.proxy_header_wait_us);
        // One upstream socket per relayed connection.
        if let Err(e) = raise_nofile_limit() {
            eprintln!("xdptcp: proxy: could not raise the open-files limit: {e}");
        }
        proxy = Some(cfg);
    }
    let mut v = Vec::new();
    for (port, arg) in a.app_args() {
        let app = match (a.bundled(arg), &proxy) {
            (Some(k), _) => App::from(k),
            (None, Some(cfg)) => {
                let cfg = cfg.clone();
                App::custom(move |_core| Relay::new(cfg.clone()))
            }
            (None, None) => bail!("--app proxy needs --upstream HOST:PORT or unix:PATH"),
        };
        v.push((port, app));
    }
    Ok(v)
}

/// The per-second line and the stats file.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

const CHECKSUM_WARNING: &str = "xdptcp: warning: most TCP segments received on {iface} fail their checksum \
(counter drop_bad_checksum, or xdp_shield_drop_checksum with the SYN shield on). The sender is likely a veth or container interface with transmit checksum \
offload on, which leaves checksums to hardware that never computes them; turn it off on the sending side \
(`ethtool -K <peer-interface> tx off`, inside the peer's namespace). See README, Running in production.";

/// Bad checksums dominate what arrived in the last second: at least 8 of them, and more than
/// half of the TCP segments received. `xdp_bad` of the `xdp_syn` SYNs the XDP program's shield
/// judged had a bad checksum (0 and 0 with the shield off).
fn checksum_offload_suspected(now: &CoreStats, last: &CoreStats, xdp_bad: u64, xdp_syn: u64) -> bool {
    use xdptcp::tcp::DropReason;
    let bad =
        now.tcp.drops_of(DropReason::BadChecksum).saturating_sub(last.tcp.drops_of(DropReason::BadChecksum)) + xdp_bad;
    let tcp = now.net.rx_tcp.saturating_sub(last.net.rx_tcp) + xdp_syn;
    bad >= 8 && bad * 2 > tcp
}

fn per_second(now: &CoreStats, last: &CoreStats) -> String {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let mut line = per_second_tcp(now, last);
    // The applications' counters that moved (and their non-zero gauges), after the stack's.
    for c in &now.app {
        if c.gauge && c.value > 0 {
            let _ = write!(line, "  {} {}", c.name, c.value);
        } else if !c.gauge && c.value > last.app_counter(c.name) {
            let _ = write!(line, "  {} {}/s", c.name, d(c.value, last.app_counter(c.name)));
        }
    }
    line
}

fn per_second_tcp(now: &CoreStats, last: &CoreStats) -> String {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let drops_now: u64 = now.tcp.drops.iter().sum();
    let drops_last: u64 = last.tcp.drops.iter().sum();
    format!(
        "opened {:>7}/s  closed {:>7}/s  estab {:>7}  syn-q {:>5}  tw {:>7}  cookies sent {:>7}/s ok {:>6}/s  drops {:>6}/s  rx {:>8}/s tx {:>8}/s",
        d(now.tcp.tcp_passive_opens + now.tcp.tcp_active_opens, last.tcp.tcp_passive_opens + last.tcp.tcp_active_opens),
        d(now.tcp.tcp_ext_closed, last.tcp.tcp_ext_closed),
        now.tcp.tcp_curr_estab,
        now.syn_queue,
        now.time_wait,
        d(now.tcp.tcp_ext_syncookies_sent, last.tcp.tcp_ext_syncookies_sent),
        d(now.tcp.tcp_ext_syncookies_recv, last.tcp.tcp_ext_syncookies_recv),
        d(drops_now, drops_last),
        d(now.io.rx_frames, last.io.rx_frames),
        d(now.io.tx_frames, last.io.tx_frames),
    )
}

/// A steering program counter by name (0 when absent).
fn xdp_counter(xdp: &[(&'static str, u64)], name: &str) -> u64 {
    xdp.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

/// The SYN shield's part of the per-second line: whether it is on, the SYN rate it watches,
/// and what the XDP program answered and dropped in the last second.
fn shield_per_second(st: &ShieldStatus, now: &[(&'static str, u64)], last: &[(&'static str, u64)]) -> String {
    let d = |name: &str| xdp_counter(now, name).saturating_sub(xdp_counter(last, name));
    let state = if st.active { "on" } else { "off" };
    let mode = if st.mode == ShieldMode::Auto { " (auto)" } else { "" };
    format!(
        "  shield {state}{mode}  syn {:>8}/s  xdp syn-acks {:>8}/s drops {:>6}/s",
        d("syn"),
        d("shield_synack"),
        d("shield_drop_checksum") + d("shield_drop_malformed"),
    )
}

/// The SYN shield's lines of the summary and the stats file.
fn shield_report(st: &ShieldStatus, xdp: &[(&'static str, u64)]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "syn_shield_mode          {}", st.mode);
    let _ = writeln!(o, "syn_shield_active        {}", u8::from(st.active));
    let _ = writeln!(o, "syn_shield_switches      {}", st.switches);
    let _ = writeln!(o, "syn_shield_synacks       {}", xdp_counter(xdp, "shield_synack"));
    let drops = xdp_counter(xdp, "shield_drop_checksum") + xdp_counter(xdp, "shield_drop_malformed");
    let _ = writeln!(o, "syn_shield_drops         {drops}");
    o
}

/// Every non-zero counter, `nstat` style, plus drop reasons and gauges.
pub fn report(s: &CoreStats, secs: f64, stdout_dropped: u64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "uptime_seconds           {secs:.1}");
    let _ = writeln!(o, "connections              {}", s.conns);
    let _ = writeln!(o, "syn_queue                {}", s.syn_queue);
    let _ = writeln!(o, "time_wait                {}", s.time_wait);
    for (name, v) in s.tcp.iter() {
        if v > 0 {
            let _ = writeln!(o, "{name:<24} {v}");
        }
    }
    for r in xdptcp::tcp::DropReason::ALL {
        let v = s.tcp.drops_of(r);
        if v > 0 {
            let _ = writeln!(o, "drop_{:<19} {v}", r.name());
        }
    }
    let _ = writeln!(o, "rx_frames                {}", s.io.rx_frames);
    let _ = writeln!(o, "tx_frames                {}", s.io.tx_frames);
    if s.forwarded > 0 {
        let _ = writeln!(o, "forwarded_to_owner       {}", s.forwarded);
    }
    if s.handover_dropped > 0 {
        let _ = writeln!(o, "handover_dropped         {}", s.handover_dropped);
    }
    if s.directory_full > 0 {
        let _ = writeln!(o, "directory_full           {}", s.directory_full);
    }
    // What the stack spent on a received frame (a timed sample): its own cost, whatever the
    // loops spent spinning idle.
    if let Some(ns) = s.frame_ns() {
        let _ = writeln!(o, "rx_frame_ns              {ns:.0}");
    }
    // Frames the network layer turned away: for another address (e.g. an --addr the
    // interface does not have) or unparsable.
    if s.net.rx_not_ours > 0 {
        let _ = writeln!(o, "net_rx_not_ours          {}", s.net.rx_not_ours);
    }
    if s.net.rx_malformed > 0 {
        let _ = writeln!(o, "net_rx_malformed         {}", s.net.rx_malformed);
    }
    // The applications' own counters (the relay's), zero or not: an operator looks for them.
    for c in &s.app {
        let _ = writeln!(o, "{:<24} {}", c.name, c.value);
    }
    if stdout_dropped > 0 {
        let _ = writeln!(o, "stdout_lines_dropped     {stdout_dropped}");
    }
    o
}
