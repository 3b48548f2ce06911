//! `xdptcp serve`: the AF_XDP engine with per-second counters and a summary on exit.

use super::{BindArg, ServeArgs, XdpModeArg};
use anyhow::Result;
use std::fmt::Write as _;
use xdptcp::engine::secret_file::FleetSecrets;
use xdptcp::engine::signals;
use xdptcp::engine::xdp::{Engine, EngineConfig};
use xdptcp::engine::CoreStats;
use xdptcp::io::xdp::{AddressMode, AttachMode, BindMode, XskConfig};

pub fn serve(a: &ServeArgs) -> Result<()> {
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
        apps: a.apps(),
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
    };
    let cfg_iface = cfg.iface.clone();
    let ports: Vec<String> = cfg.apps.iter().map(|(p, k)| format!("{p}/{k:?}")).collect();
    let engine = Engine::start(cfg).map_err(xdptcp::engine::caps::explain_start_error)?;
    // Attached and bound: the main thread's capabilities go too (the core threads' already went).
    xdptcp::engine::caps::drop_capabilities()?;
    if let Ok(held) = xdptcp::engine::caps::threads_with_capabilities().map(|t| t.join(", ")) {
        if !held.is_empty() {
            eprintln!("xdptcp: warning: threads still holding capabilities: {held}");
        }
    }
    println!("xdptcp: serving {} on {} ({} queue(s)); Ctrl-C to stop", ports.join(", "), cfg_iface, engine.queues());
    #[allow(clippy::disallowed_methods)] // wall clock for the report only
    let start = std::time::Instant::now();
    let mut last = CoreStats::default();
    let mut tick = 0u64;
    loop {
        for _ in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if signals::stop_requested() {
                break;
            }
        }
        tick += 1;
        let now = CoreStats::total(&engine.snapshot());
        if !a.quiet {
            println!("{}", per_second(&now, &last));
        }
        if a.stats_file != "none" {
            let _ = std::fs::write(&a.stats_file, report(&now, start.elapsed().as_secs_f64()));
        }
        last = now;
        if signals::stop_requested() || a.duration.is_some_and(|d| tick >= d) {
            break;
        }
    }
    let per_core = engine.snapshot();
    let total = CoreStats::total(&per_core);
    println!("--- summary after {:.1}s ---", start.elapsed().as_secs_f64());
    print!("{}", report(&total, start.elapsed().as_secs_f64()));
    for (name, v) in engine.steering_stats() {
        if v > 0 {
            println!("xdp_{name:<24} {v}");
        }
    }
    engine.stop();
    Ok(())
}

fn per_second(now: &CoreStats, last: &CoreStats) -> String {
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

/// Every non-zero counter, `nstat` style, plus drop reasons and gauges.
pub fn report(s: &CoreStats, secs: f64) -> String {
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
    o
}
