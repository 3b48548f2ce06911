//! `xdptcp demo`: the embedded default. Builds the veth bed of `deploy/` in fresh network
//! namespaces, runs `serve` on the stack's end, drives it from the Linux kernel's TCP on the other
//! end (thousands of echo connections with data both ways and closes from both sides, `curl`
//! against the http app), shows what happened, and tears everything down, also on Ctrl-C.

use super::DemoArgs;
use anyhow::{bail, Context, Result};
use std::process::{Child, Stdio};
use xdptcp::engine::signals;
use xdptcp::rig::bed::{in_ns, interrupt, Bed, BedConfig, BedNames};

const NS_SRV: &str = "xdptcp-srv";
const NS_CLI: &str = "xdptcp-cli";
const DEV_SRV: &str = "veth-stack";
const SRV_IP: &str = xdptcp::rig::bed::STACK_IP4;

/// The bed (`rig::bed`, with `deploy/`'s default names) and the server on it, stopped before
/// the bed goes however the demo ends.
struct Demo {
    server: Option<Child>,
    bed: Bed,
}

impl Demo {
    fn stop_server(&mut self) -> Option<std::process::ExitStatus> {
        // SIGINT asks `serve` for its summary; it detaches the program on the way out.
        self.server.take().and_then(interrupt)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_server();
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

pub fn demo(a: &DemoArgs) -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("demo needs root: it creates network namespaces and attaches an XDP program");
    }
    signals::install();
    let exe = std::env::current_exe().context("find the xdptcp binary")?;
    let exe = exe.to_string_lossy().to_string();

    step("1. test bed: two network namespaces joined by a veth pair (deploy/bed-up.sh)");
    let names = BedNames::default_bed();
    debug_assert_eq!((names.ns_srv.as_str(), names.ns_cli.as_str(), names.dev_srv.as_str()), (NS_SRV, NS_CLI, DEV_SRV));
    let mut bed = Demo { server: None, bed: Bed::up(BedConfig::new(names))? };
    if a.keep_bed {
        bed.bed.keep();
    }

    step(&format!("2. xdptcp serve on {NS_SRV}/{DEV_SRV}: echo on port 7, http on port 80"));
    let server = in_ns(NS_SRV, &exe)
        .args(["serve", "--iface", DEV_SRV, "--addr", SRV_IP, "--port", "7", "--app", "echo"])
        .args(["--also", "80:http", "--http-body", "1024", "--quiet"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start xdptcp serve")?;
    bed.server = Some(server);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if let Some(Ok(Some(st))) = bed.server.as_mut().map(|c| c.try_wait()) {
        bail!("xdptcp serve exited early ({st})");
    }

    let mut failures = 0;
    step(&format!(
        "3. Linux kernel TCP in {NS_CLI}: {} echo connections, {} at a time, {} bytes each way, half closed by each side",
        a.conns, a.concurrency, a.bytes
    ));
    let st = in_ns(NS_CLI, &exe)
        .args(["kclient", "--target", &format!("{SRV_IP}:7")])
        .args(["--conns", &a.conns.to_string(), "--concurrency", &a.concurrency.to_string()])
        .args(["--bytes", &a.bytes.to_string(), "--closer", "mixed"])
        .status()
        .context("run the kernel client")?;
    if !st.success() {
        failures += 1;
    }
    if signals::stop_requested() {
        bail!("interrupted");
    }

    step("4. curl (kernel TCP) against the http app");
    match in_ns(NS_CLI, "curl")
        .args(["-sS", "-o", "/dev/null", "-w", "HTTP %{http_code}, %{size_download} bytes in %{time_total}s\n"])
        .arg(format!("http://{SRV_IP}/"))
        .status()
    {
        Ok(st) if st.success() => {}
        Ok(st) => {
            println!("curl failed ({st})");
            failures += 1;
        }
        Err(_) => println!("curl not installed: skipped (apt-get install curl)"),
    }

    step("5. a SYN to a port nobody listens on is answered with a RST");
    let out = in_ns(NS_CLI, "bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/{SRV_IP}/9 2>&1 && echo connected || echo refused")])
        .output();
    if let Ok(o) = out {
        print!("port 9: {}", String::from_utf8_lossy(&o.stdout));
    }

    step(&format!("6. kernel's view in {NS_CLI} (ss): no connection stuck in FIN-WAIT-2, CLOSE-WAIT or LAST-ACK"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ss = in_ns(NS_CLI, "ss").args(["-Htan"]).output().context("run ss")?;
    let text = String::from_utf8_lossy(&ss.stdout);
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for l in text.lines() {
        if let Some(state) = l.split_whitespace().next() {
            *counts.entry(state.to_string()).or_default() += 1;
        }
    }
    println!("{counts:?}");
    let stuck: usize = ["FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK"].iter().filter_map(|s| counts.get(*s)).sum();
    if stuck > 0 {
        failures += 1;
    }

    step("7. the server's summary");
    bed.stop_server();
    drop(bed);
    println!("\ntest bed removed.");
    if failures > 0 {
        bail!("demo finished with {failures} failed step(s)");
    }
    println!("demo: all steps passed.");
    Ok(())
}
