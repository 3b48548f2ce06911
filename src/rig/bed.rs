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

    /// The namespace and interface of one end.
    fn end(&self, end: End) -> (&str, &str) {
        let n = &self.cfg.names;
        match end {
            End::Server => (&n.ns_srv, &n.dev_srv),
            End::Peer => (&n.ns_cli, &n.dev_cli),
        }
    }

    /// Makes both ends receive as a NIC would, on two machines, for every backend alike. A veth
    /// transmit runs the receiver's path in the sender's context; without this, the frames the
    /// server sends would be received (and ACKed) by the peer's TCP on the server's core, and
    /// the server's XDP program and AF_XDP copy would run on the load generator's. Per end:
    ///
    /// - GRO on, so that veth receives through a NAPI poll with or without an XDP program (a
    ///   NIC always does; veth otherwise hands frames to the backlog, and only an XDP program
    ///   gives it a poll, which would treat the stack and the kernel differently);
    /// - TSO off: veth takes a frame through the receiver's poll only when the sender cannot
    ///   make 64 KiB frames (`veth_skb_is_eligible_for_gro`), and a wire carries 1,500-byte
    ///   frames anyway (the sender's TCP still segments in software); once the stack's program
    ///   is attached veth turns the other end's offloads off itself;
    /// - that poll made a kernel thread, pinned to the end's cores at SCHED_FIFO 1: a NIC's poll
    ///   runs in softirq, ahead of every thread on its core ([`Bed::pin_napi`]);
    /// - no RPS: what the poll passes on is handled in the poll's own thread, as behind a NIC
    ///   with one queue per core (RPS to the same core would queue it to the backlog, which
    ///   under load drains in ksoftirqd at normal priority).
    ///
    /// The server end's work goes to `server_cores`, the peer's to `peer_cores`.
    pub fn receive_like_a_nic(&self, server_cores: &[usize], peer_cores: &[usize]) -> Result<()> {
        for (end, cores) in [(End::Server, server_cores), (End::Peer, peer_cores)] {
            let (ns, dev) = self.end(end);
            for (feature, on) in [("gro", "on"), ("tso", "off")] {
                let st = in_ns(ns, "ethtool").args(["-K", dev, feature, on]).status().context("run ethtool")?;
                if !st.success() {
                    bail!("ethtool -K {dev} {feature} {on} in {ns} failed ({st})");
                }
            }
            self.clear_rps(end)?;
            if self.pin_napi(end, cores)? == 0 {
                bail!("{dev} in {ns} has no NAPI poll thread to pin with GRO on (a kernel without veth NAPI?)");
            }
        }
        Ok(())
    }

    /// No RPS on one end's receive queues (a reused bed may have some).
    fn clear_rps(&self, end: End) -> Result<()> {
        let (ns, dev) = self.end(end);
        for q in 0..self.cfg.queues {
            let f = format!("/sys/class/net/{dev}/queues/rx-{q}/rps_cpus");
            // No such file: a kernel without RPS, nothing to clear.
            let st = in_ns(ns, "sh")
                .arg("-c")
                .arg(format!("[ -e {f} ] || exit 0; echo 0 > {f}"))
                .status()
                .context("clear rps_cpus")?;
            if !st.success() {
                bail!("clearing {f} in {ns} failed ({st})");
            }
        }
        Ok(())
    }

    /// Once the stack's program is attached, its end's poll threads are pinned again (see
    /// [`Bed::pin_napi`]); the poll [`Bed::receive_like_a_nic`] made stays, so this finds the
    /// same threads.
    pub fn pin_stack_napi(&self, server_cores: &[usize]) -> Result<usize> {
        self.pin_napi(End::Server, server_cores)
    }

    /// Makes one end's NAPI polls kernel threads (`/sys/class/net/DEV/threaded`) and pins them
    /// to `cores` at SCHED_FIFO 1, where a NIC's receive interrupt and softirq would run: at
    /// normal priority the poll would queue behind the server and the load generators while
    /// veth's 256-frame ring overflowed. Returns how many threads it pinned; 0 when the end has
    /// no NAPI within 5 s. A thread found but not pinned, or not raised, is an error: the
    /// figures would not mean what the report says.
    pub fn pin_napi(&self, end: End, cores: &[usize]) -> Result<usize> {
        let (ns, dev) = self.end(end);
        let (_, other) = self.end(match end {
            End::Server => End::Peer,
            End::Peer => End::Server,
        });
        let (mine, theirs) = (napi_prefix(dev), napi_prefix(other));
        if mine.starts_with(&theirs) || theirs.starts_with(&mine) {
            bail!("{dev} and {other}: their NAPI threads' names (cut to 15 characters) cannot be told apart");
        }
        let list = cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
        // The end has NAPI instances only once GRO or a program is on, which a loaded machine
        // may take a while to do: the write fails until then. Pinning is idempotent, so the
        // threads of an earlier call are pinned again.
        for _ in 0..100 {
            let st = in_ns(ns, "sh")
                .arg("-c")
                .arg(format!("echo 1 > /sys/class/net/{dev}/threaded"))
                .stderr(std::process::Stdio::null())
                .status()
                .context("set threaded NAPI")?;
            let threads = if st.success() { napi_threads(dev) } else { Vec::new() };
            if threads.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let mut pinned = 0;
            for pid in &threads {
                let pid = pid.to_string();
                let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
                let done = ok(Command::new("taskset").args(["-pc", &list, &pid]))
                    && ok(Command::new("chrt").args(["-f", "-p", "1", &pid]));
                if done {
                    pinned += 1;
                } else if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    bail!("pinning NAPI thread {pid} of {dev} to {list} at SCHED_FIFO 1 failed");
                }
                // Gone meanwhile: a device of an earlier bed of the same name, being removed.
            }
            if pinned > 0 {
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

/// One end of a bed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The stack's (or the kernel server's) end.
    Server,
    /// The kernel peer's end, where the load generators run.
    Peer,
}

/// What the name of a NAPI thread of `dev` starts with: `napi/DEV-ID`, cut to the 15
/// characters a thread name keeps.
fn napi_prefix(dev: &str) -> String {
    format!("napi/{dev}-").chars().take(15).collect()
}

/// Kernel threads (children of kthreadd, pid 2) polling `dev`'s NAPI instances.
fn napi_threads(dev: &str) -> Vec<u32> {
    let prefix = napi_prefix(dev);
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let named = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().starts_with(&prefix))
                .unwrap_or(false);
            // /proc/PID/stat: "pid (comm) state ppid ...", comm may hold spaces.
            let kthread = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned))
                })
                .is_some_and(|ppid| ppid == "2");
            named && kthread
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn napi_thread_names_are_cut_to_15_characters() {
        assert_eq!(napi_prefix("vbench-stack"), "napi/vbench-sta");
        assert_ne!(napi_prefix("vbench-stack"), napi_prefix("vbench-peer"));
        assert_eq!(napi_prefix("xtab-s"), "napi/xtab-s-");
        // A name that is another's prefix plus more: "napi/a-" would match "napi/a-b-0" too.
        assert!(napi_prefix("a-b").starts_with(&napi_prefix("a")));
    }
}
