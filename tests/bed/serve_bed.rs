//! The serve bed: a veth pair between two namespaces built by `deploy/bed-up.sh`, `xdptcp
//! serve` on one end and the Linux kernel's TCP on the other. Shared by the privileged tests
//! that drive the binary; each test picks a unique tag (interface and namespace names).
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");
/// One bed at a time: the tests share addresses and the 2 cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub struct Bed {
    pub tag: &'static str,
    pub server: Option<Child>,
    /// `xdptcp xdp-attach --prog pass` on the peer's end while the server runs with the SYN
    /// shield: on veth an XDP_TX frame reaches the other end only if that end runs an XDP
    /// program of its own (DESIGN.md, bed facts).
    pub peer_xdp: Option<Child>,
    /// The namespaces and the veth pair (the library's bed type, with a test's names); removed
    /// when dropped, after the processes above are gone.
    pub rig: xdptcp::rig::bed::Bed,
}

/// Extra `serve` flags for every test that starts `serve` through a [`Bed`], from the
/// environment: `XDPTCP_TEST_SERVE_ARGS="--syn-shield on" cargo test --test interop` runs the
/// same tests against the stack with the SYN shield on (the bed then also puts an XDP program
/// on the peer's end, see [`Bed::peer_xdp`]).
pub fn env_serve_args() -> Vec<String> {
    std::env::var("XDPTCP_TEST_SERVE_ARGS").unwrap_or_default().split_whitespace().map(str::to_owned).collect()
}

/// True when `args` turn the SYN shield on (`--syn-shield on|auto`, or `=on|=auto`).
pub fn shield_in(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let v = match a.strip_prefix("--syn-shield") {
            Some("") => args.get(i + 1).map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        matches!(v, Some("on" | "auto"))
    })
}

/// True when the tests run with the SYN shield (from [`env_serve_args`]): a test that counts
/// cookies must then count the program's too (`syn_shield_synacks` in the summary).
pub fn shield_from_env() -> bool {
    shield_in(&env_serve_args())
}

impl Bed {
    pub fn ns_srv(&self) -> String {
        self.rig.names().ns_srv.clone()
    }
    pub fn ns_cli(&self) -> String {
        self.rig.names().ns_cli.clone()
    }
    pub fn dev_srv(&self) -> String {
        self.rig.names().dev_srv.clone()
    }

    pub fn up(tag: &'static str, addr_mode: &str) -> Bed {
        Bed::up_queues(tag, addr_mode, 1)
    }

    pub fn up_queues(tag: &'static str, addr_mode: &str, queues: u32) -> Bed {
        use xdptcp::rig::bed::{BedConfig, BedNames};
        let cfg = BedConfig::new(BedNames::test(tag)).queues(queues).shared_address(addr_mode == "shared");
        let rig = xdptcp::rig::bed::Bed::up(cfg).expect("bed up");
        Bed { tag, server: None, peer_xdp: None, rig }
    }

    /// The `serve` command line of [`Bed::serve`], for a test that wants its own stdio.
    pub fn serve_command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns_srv(), BIN, "serve", "--iface", &self.dev_srv(), "--addr", "198.18.0.1"])
            .args(["--port", "7", "--app", "echo", "--also", "80:http", "--quiet"])
            .args(env_serve_args())
            .args(extra);
        c
    }

    pub fn serve(&mut self, extra: &[&str]) {
        let mut c = self.serve_command(extra);
        c.stdout(Stdio::piped()).stderr(Stdio::inherit());
        self.serve_with(c);
    }

    /// Starts `c` (a [`Bed::serve_command`]) as the server and waits until it is up.
    pub fn serve_with(&mut self, mut c: Command) {
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        if shield_in(&args) && self.peer_xdp.is_none() {
            self.attach_peer_pass();
        }
        self.server = Some(c.spawn().expect("start serve"));
        std::thread::sleep(Duration::from_millis(1500));
        if let Some(Ok(Some(st))) = self.server.as_mut().map(|s| s.try_wait()) {
            panic!("serve exited early: {st}");
        }
    }

    /// Puts `xdp_pass` on the peer's end (see [`Bed::peer_xdp`]) and waits until it is there.
    pub fn attach_peer_pass(&mut self) {
        let dev = format!("xt{}-p", self.tag);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns_cli(), BIN, "xdp-attach", "--prog", "pass", "--iface", &dev])
            .stdout(Stdio::null())
            .spawn()
            .expect("start xdp-attach on the peer");
        self.peer_xdp = Some(child);
        for _ in 0..100 {
            let o = self.cli(&["ip", "link", "show", "dev", &dev]);
            if String::from_utf8_lossy(&o.stdout).contains("prog/xdp") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("xdp_pass did not attach to {dev}");
    }

    /// A kernel TCP connection from the peer's namespace (the socket is made by a thread that
    /// joined that namespace; a socket stays in the namespace it was made in).
    pub fn peer_connect(&self, to: &str) -> std::io::Result<std::net::TcpStream> {
        self.rig.peer_connect(to.parse().expect("socket address"), Duration::from_secs(5))
    }

    /// Runs a command in the kernel peer's namespace.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.ns_cli()]).args(args).output().expect("run in peer ns")
    }

    pub fn kclient(&self, args: &[&str]) -> String {
        self.kclient_to("198.18.0.1:7", args)
    }

    pub fn kclient_to(&self, target: &str, args: &[&str]) -> String {
        let mut a = vec![BIN, "kclient", "--target", target];
        a.extend_from_slice(args);
        let o = self.cli(&a);
        let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "kclient {args:?} failed:\n{out}");
        out
    }

    /// Stops `serve` with SIGINT and returns its summary.
    pub fn stop(&mut self) -> String {
        let Some(c) = self.server.take() else { return String::new() };
        // SAFETY: kill(2) on our child.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGINT);
        }
        let o = c.wait_with_output().expect("wait serve");
        assert!(o.status.success(), "serve exit: {}", o.status);
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    pub fn xdp_attached(&self) -> bool {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns_srv(), "ip", "link", "show", "dev", &self.dev_srv()])
            .output()
            .expect("ip link");
        // `prog/xdp id N` (native) or `prog/xdpgeneric`; the flags line says "xdp" too.
        String::from_utf8_lossy(&o.stdout).contains("prog/xdp")
    }

    /// Kernel socket states in the peer namespace.
    pub fn ss_states(&self) -> std::collections::BTreeMap<String, usize> {
        let o = self.cli(&["ss", "-Htan"]);
        let mut m = std::collections::BTreeMap::new();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if let Some(s) = l.split_whitespace().next() {
                *m.entry(s.to_string()).or_default() += 1;
            }
        }
        m
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for mut c in [self.server.take(), self.peer_xdp.take()].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `rig` goes next and removes the bed.
    }
}

impl Bed {
    /// `serve`'s pid (`ip netns exec` execs into it).
    pub fn server_pid(&self) -> u32 {
        self.server.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Resident memory of `serve`, in kB.
    pub fn server_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.server_pid()))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    /// Runs `xdptcp flood` from the peer's namespace and returns its output.
    pub fn flood(&self, args: &[&str]) -> String {
        let mut a = vec![BIN, "flood", "--target", "198.18.0.1:7"];
        a.extend_from_slice(args);
        let o = self.cli(&a);
        let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "flood {args:?}: {out}");
        out
    }

    /// The counters `serve` writes each second to `file` (waits for a fresh write).
    pub fn stats(&self, file: &str) -> String {
        std::thread::sleep(Duration::from_millis(1300));
        std::fs::read_to_string(file).unwrap_or_default()
    }
}
