//! The veth test bed: two network namespaces joined by a veth pair, the stack's end in one and
//! the Linux kernel's TCP on the other, built by the scripts of `deploy/` (embedded here, so the
//! binary needs no checkout). One type for `demo`, `bench` and the tests: each names its bed
//! ([`BedNames`]) so that beds can live side by side, and a bed is torn down when dropped.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

const BED_ENV: &str = include_str!("../../deploy/bed-env.sh");
const BED_UP: &str = include_str!("../../deploy/bed-up.sh");
const BED_DOWN: &str = include_str!("../../deploy/bed-down.sh");

/// The stack's address on the bed (`deploy/bed-env.sh`).
pub const STACK_IP4: &str = "198.18.0.1";
/// The kernel peer's address.
pub const PEER_IP4: &str = "198.18.0.2";
/// The peer end's MAC (the bed sets it).
pub const PEER_MAC: &str = "02:18:00:00:00:02";
/// The stack end's MAC.
pub const STACK_MAC: &str = "02:18:00:00:00:01";

/// Namespace and interface names of one bed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedNames {
    pub ns_srv: String,
    pub ns_cli: String,
    pub dev_srv: String,
    pub dev_cli: String,
}

impl BedNames {
    /// The names `deploy/bed-up.sh` uses by default (`demo`'s bed, and the runbook's).
    pub fn default_bed() -> BedNames {
        BedNames::new("xdptcp-srv", "xdptcp-cli", "veth-stack", "veth-peer")
    }
    /// `bench`'s bed.
    pub fn bench() -> BedNames {
        BedNames::new("xdptcp-bench-srv", "xdptcp-bench-cli", "vbench-stack", "vbench-peer")
    }
    /// A test's bed, from a short unique tag: namespaces `xdptest-TAG-srv`/`-cli`, interfaces
    /// `xtTAG-s`/`xtTAG-p`.
    pub fn test(tag: &str) -> BedNames {
        BedNames::new(
            &format!("xdptest-{tag}-srv"),
            &format!("xdptest-{tag}-cli"),
            &format!("xt{tag}-s"),
            &format!("xt{tag}-p"),
        )
    }
    pub fn new(ns_srv: &str, ns_cli: &str, dev_srv: &str, dev_cli: &str) -> BedNames {
        BedNames { ns_srv: ns_srv.into(), ns_cli: ns_cli.into(), dev_srv: dev_srv.into(), dev_cli: dev_cli.into() }
    }
}

/// How a bed is built.
#[derive(Debug, Clone)]
pub struct BedConfig {
    pub names: BedNames,
    /// Receive (and transmit) queues on each end.
    pub queues: u32,
    /// The stack shares the kernel's address on its end (`true`, the default), or owns it (the
    /// end carries no address and the stack answers ARP and ICMP itself).
    pub shared_address: bool,
    /// Other `deploy/bed-env.sh` settings (`XDPTCP_MAC_SRV`, `XDPTCP_IP4_CLI`, `XDPTCP_MTU`, ...).
    pub settings: Vec<(String, String)>,
}

impl BedConfig {
    pub fn new(names: BedNames) -> BedConfig {
        BedConfig { names, queues: 1, shared_address: true, settings: Vec::new() }
    }
    /// Sets another `deploy/bed-env.sh` variable, e.g. `set("XDPTCP_MTU", "3000")`.
    pub fn set(mut self, var: &str, value: impl Into<String>) -> Self {
        self.settings.push((var.to_string(), value.into()));
        self
    }
    pub fn queues(mut self, n: u32) -> Self {
        self.queues = n;
        self
    }
    pub fn shared_address(mut self, shared: bool) -> Self {
        self.shared_address = shared;
        self
    }
}

/// A bed that is up. Dropping it removes it (unless [`Bed::keep`] was called).
#[derive(Debug)]
pub struct Bed {
    pub cfg: BedConfig,
    /// Where the embedded scripts were written.
    dir: PathBuf,
    keep: bool,
}

impl Bed {
    /// Builds the bed (idempotent: a leftover bed of the same names is reused and re-set).
    /// Needs root, bash, iproute2 and ethtool.
    pub fn up(cfg: BedConfig) -> Result<Bed> {
        let dir = std::env::temp_dir().join(format!("xdptcp-bed-{}-{}", std::process::id(), cfg.names.ns_srv));
        std::fs::create_dir_all(&dir).context("create a temporary directory")?;
        for (name, body) in [("bed-env.sh", BED_ENV), ("bed-up.sh", BED_UP), ("bed-down.sh", BED_DOWN)] {
            std::fs::write(dir.join(name), body).with_context(|| format!("write {name}"))?;
        }
        let bed = Bed { cfg, dir, keep: false };
        let st = bed.script("bed-up.sh").status().context("run bed-up.sh (needs bash, iproute2, ethtool)")?;
        if !st.success() {
            bail!("bed-up.sh failed ({st})");
        }
        Ok(bed)
    }

    fn script(&self, name: &str) -> Command {
        let n = &self.cfg.names;
        let mut c = Command::new("bash");
        c.arg(self.dir.join(name))
            .env("XDPTCP_NS_SRV", &n.ns_srv)
            .env("XDPTCP_NS_CLI", &n.ns_cli)
            .env("XDPTCP_DEV_SRV", &n.dev_srv)
            .env("XDPTCP_DEV_CLI", &n.dev_cli)
            .env("XDPTCP_QUEUES", self.cfg.queues.to_string())
            .env("XDPTCP_ADDR_MODE", if self.cfg.shared_address { "shared" } else { "own" })
            .envs(self.cfg.settings.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn names(&self) -> &BedNames {
        &self.cfg.names
    }

    /// `prog` in the stack's namespace.
    pub fn in_srv(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        in_ns(&self.cfg.names.ns_srv, prog)
    }

    /// `prog` in the kernel peer's namespace.
    pub fn in_cli(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        in_ns(&self.cfg.names.ns_cli, prog)
    }

    /// A kernel TCP connection from the peer's namespace, made by a thread that joined that
    /// namespace (a socket stays in the namespace it was made in).
    pub fn peer_connect(&self, to: std::net::SocketAddr, timeout: Duration) -> std::io::Result<std::net::TcpStream> {
        let ns = format!("/var/run/netns/{}", self.cfg.names.ns_cli);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(&ns)?;
            // SAFETY: setns(2) on a namespace file we opened; it changes this thread only.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::net::TcpStream::connect_timeout(&to, timeout)
        })
        .join()
        .map_err(|_| std::io::Error::other("connect thread panicked"))?
    }

    /// Puts each end's kernel receive work on that end's cores, as on two machines. A veth
    /// transmit runs the receiver's whole path in the sender's context: without this, every
    /// frame the server sends is received (and ACKed) by the peer's TCP on the server's core,
    /// and what the peer sends is received on the peer's core. RPS on each end's receive
    /// queues sends the work where a NIC's interrupt affinity would: the server's receive to
    /// `server_cores`, the peer's to `peer_cores`. Both backends get the same placement.
    pub fn place_receive_work(&self, server_cores: &[usize], peer_cores: &[usize]) -> Result<()> {
        let n = &self.cfg.names;
        for (ns, dev, cores) in [(&n.ns_srv, &n.dev_srv, server_cores), (&n.ns_cli, &n.dev_cli, peer_cores)] {
            let mask = format!("{:x}", cores.iter().fold(0u64, |m, c| m | 1u64 << (c % 64)));
            for q in 0..self.cfg.queues {
                let st = in_ns(ns, "sh")
                    .arg("-c")
                    .arg(format!("echo {mask} > /sys/class/net/{dev}/queues/rx-{q}/rps_cpus"))
                    .status()
                    .context("set rps_cpus")?;
                if !st.success() {
                    // A kernel without RPS: the figures then show veth's own placement.
                    eprintln!(
                        "bed: rps_cpus of {dev} rx-{q} in {ns} not set ({st}); receive work runs where veth puts it"
                    );
                }
            }
        }
        Ok(())
    }

    /// Once the stack's XDP program is attached, veth receives the stack end's frames in a NAPI
    /// poll scheduled on the core that sent them (the peer's): the XDP program and the copy
    /// into the AF_XDP ring would run on the load generator's core, for free. This makes that
    /// poll a kernel thread (`/sys/class/net/DEV/threaded`) and pins it to `server_cores`,
    /// where a NIC's receive interrupt and poll would run. Returns how many threads it pinned
    /// (0 when the end has no NAPI within 5 s: call it only with a program attached).
    pub fn pin_stack_napi(&self, server_cores: &[usize]) -> Result<usize> {
        let n = &self.cfg.names;
        let cores = server_cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
        // The end has NAPI instances only once a program is attached, which a loaded machine
        // may take a while to do: the write fails until then. Every thread of the end is
        // pinned (pinning is idempotent), so threads left from an earlier run are too.
        for _ in 0..100 {
            let st = self
                .in_srv("sh")
                .arg("-c")
                .arg(format!("echo 1 > /sys/class/net/{}/threaded", n.dev_srv))
                .stderr(std::process::Stdio::null())
                .status()
                .context("set threaded NAPI")?;
            let threads = if st.success() { napi_threads(&n.dev_srv) } else { Vec::new() };
            if !threads.is_empty() {
                let mut pinned = 0;
                for pid in threads {
                    let o = Command::new("taskset").args(["-pc", &cores, &pid.to_string()]).output();
                    pinned += usize::from(o.map(|o| o.status.success()).unwrap_or(false));
                    // A NIC's poll runs in softirq, ahead of every thread on its core; a
                    // threaded poll at normal priority would queue behind the server and the
                    // flood generator, and veth's 256-frame ring would overflow meanwhile.
                    let _ = Command::new("chrt").args(["-f", "-p", "1", &pid.to_string()]).output();
                }
                return Ok(pinned);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(0)
    }

    /// Leaves the bed in place when dropped (remove it with `deploy/bed-down.sh`).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.script("bed-down.sh").status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kernel threads polling `dev`'s NAPI instances: their name is `napi/DEV-ID`, cut to the
/// 15 characters a thread name keeps.
fn napi_threads(dev: &str) -> Vec<u32> {
    let prefix: String = format!("napi/{dev}-").chars().take(15).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().starts_with(&prefix))
                .unwrap_or(false)
        })
        .collect()
}

/// `prog` in namespace `ns`.
pub fn in_ns(ns: &str, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(prog);
    c
}

/// Stops a `serve` (or any) child with SIGINT, which asks it for its summary, and waits up to
/// 5 s before killing it. Returns its exit status.
pub fn interrupt(mut c: Child) -> Option<std::process::ExitStatus> {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(c.id() as libc::pid_t, libc::SIGINT);
    }
    for _ in 0..100 {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    c.wait().ok()
}
