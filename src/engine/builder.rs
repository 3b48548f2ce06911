//! The engine as a library: [`Engine::builder`] names an interface, the addresses and the
//! listening ports with a handler factory each, and starts one pinned core per receive queue.
//!
//! Only the interface and at least one port are required; everything else defaults to what
//! `xdptcp serve` uses without flags (every receive queue, the CPUs the process may run on,
//! backlog 4096, 4096 UMEM frames of 2 KiB per queue, Linux's TCP defaults in [`tcp::Config`]).

use super::ops::OpsConfig;
use super::shield::ShieldConfig;
use super::xdp::{Engine, EngineConfig};
use super::{signals, CoreStats};
use crate::app::{App, CoreInfo, Handler};
use crate::io::xdp::{AddressMode, AttachMode, BindMode, XskConfig};
use crate::tcp;
use anyhow::{bail, Result};
use std::net::IpAddr;

/// Listen backlog (accept queue and SYN-queue bound) when none is set, as `serve`'s default.
pub const DEFAULT_BACKLOG: usize = 4096;
/// Flow-directory slots when none is set, as `serve`'s default (8 bytes each).
pub const DEFAULT_DIRECTORY_SLOTS: usize = 1 << 20;

impl EngineConfig {
    /// The defaults `xdptcp serve` uses, on `iface`, with no port yet.
    pub fn new(iface: impl Into<String>) -> EngineConfig {
        EngineConfig {
            iface: iface.into(),
            addrs: Vec::new(),
            apps: Vec::new(),
            queues: 0,
            cores: Vec::new(),
            backlog: DEFAULT_BACKLOG,
            tcp: tcp::Config::default(),
            attach: AttachMode::Native,
            bind: BindMode::Auto,
            address_mode: AddressMode::Shared,
            xsk: XskConfig::default(),
            directory_slots: DEFAULT_DIRECTORY_SLOTS,
            cookie_secrets: None,
            shield: ShieldConfig::default(),
            busy_poll: std::time::Duration::ZERO,
        }
    }
}

/// Builds an [`Engine`]; see the crate documentation for an example.
#[derive(Debug)]
pub struct EngineBuilder {
    cfg: EngineConfig,
    ops: OpsConfig,
}

impl Engine {
    /// A builder for an engine on `iface`.
    pub fn builder(iface: impl Into<String>) -> EngineBuilder {
        EngineBuilder { cfg: EngineConfig::new(iface), ops: OpsConfig::default() }
    }
}

impl EngineBuilder {
    /// An address the stack serves (repeat for several). None: every address of the interface.
    pub fn addr(mut self, addr: IpAddr) -> Self {
        self.cfg.addrs.push(addr);
        self
    }

    /// Listens on `port` with the handler `make` builds for each core. The factory runs once per
    /// core at start; the handler it returns lives on that core and sees only that core's
    /// connections (per-core state, no locks).
    pub fn listen<H, F>(self, port: u16, make: F) -> Self
    where
        H: Handler + Send + 'static,
        F: Fn(CoreInfo) -> H + Send + Sync + 'static,
    {
        self.listen_app(port, App::custom(make))
    }

    /// Listens on `port` with a bundled application (`AppKind::Echo`, ...) or an [`App`].
    pub fn listen_app(mut self, port: u16, app: impl Into<App>) -> Self {
        self.cfg.apps.push((port, app.into()));
        self
    }

    /// Receive queues to serve (one core each). Default: all of the interface's; a number
    /// below that is refused at start, since flows the NIC puts on an unserved queue would be
    /// lost.
    pub fn queues(mut self, n: u32) -> Self {
        self.cfg.queues = n;
        self
    }

    /// CPUs to pin the queue threads to, in queue order.
    pub fn cores(mut self, cores: impl IntoIterator<Item = usize>) -> Self {
        self.cfg.cores = cores.into_iter().collect();
        self
    }

    /// How long a core keeps polling its rings after its last work before it sleeps (default
    /// zero: it sleeps as soon as a turn finds nothing). A spell of polling saves the wake-up
    /// of a frame that comes within it, and spends the core meanwhile.
    pub fn busy_poll(mut self, spell: std::time::Duration) -> Self {
        self.cfg.busy_poll = spell;
        self
    }

    /// Listen backlog (at least 1).
    pub fn backlog(mut self, n: usize) -> Self {
        self.cfg.backlog = n;
        self
    }

    /// The TCP settings (Linux's defaults otherwise).
    pub fn tcp(mut self, tcp: tcp::Config) -> Self {
        self.cfg.tcp = tcp;
        self
    }

    /// XDP attach mode: native (the default) or generic (any interface, slower).
    pub fn attach(mut self, mode: AttachMode) -> Self {
        self.cfg.attach = mode;
        self
    }

    /// AF_XDP bind mode (zero-copy when the driver has it, by default).
    pub fn bind(mut self, mode: BindMode) -> Self {
        self.cfg.bind = mode;
        self
    }

    /// The stack owns its addresses (answers ARP and ICMP echo for them) instead of sharing the
    /// host's and taking over only its ports.
    pub fn own_address(mut self, own: bool) -> Self {
        self.cfg.address_mode = if own { AddressMode::Own } else { AddressMode::Shared };
        self
    }

    /// UMEM and ring sizes per queue.
    pub fn xsk(mut self, xsk: XskConfig) -> Self {
        self.cfg.xsk = xsk;
        self
    }

    /// The SYN-cookie shield of the XDP program (off by default; `ShieldMode::Auto` answers
    /// SYNs in XDP while a flood lasts, see `engine::shield`).
    pub fn syn_shield(mut self, shield: ShieldConfig) -> Self {
        self.cfg.shield = shield;
        self
    }

    /// The operator's side channels: `/metrics`, the control socket, a capture.
    pub fn ops(mut self, ops: OpsConfig) -> Self {
        self.ops = ops;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Checks what can be checked without the system: at least one port, no port twice, no
    /// port 0, a backlog of at least 1.
    pub fn validate(&self) -> Result<()> {
        let ports: Vec<u16> = self.cfg.apps.iter().map(|a| a.0).collect();
        if ports.is_empty() {
            bail!("no listening port: call listen() or listen_app() at least once");
        }
        for (i, p) in ports.iter().enumerate() {
            if *p == 0 {
                bail!("port 0 cannot be listened on: pick a port");
            }
            if ports.iter().skip(i + 1).any(|q| q == p) {
                bail!("port {p} is given twice");
            }
        }
        if self.cfg.backlog == 0 {
            bail!("backlog 0: at least 1");
        }
        Ok(())
    }

    /// Loads and attaches the XDP program, binds one AF_XDP socket per queue and starts the
    /// cores. Needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_NET_RAW (or root); dropping the
    /// [`Engine`] stops it and detaches the program.
    pub fn start(self) -> Result<Engine> {
        self.validate()?;
        Engine::start_with(self.cfg, &self.ops)
    }
}

impl Engine {
    /// Serves until a signal, the way `xdptcp serve` does: SIGINT stops at once (every
    /// connection reset); SIGTERM closes the listeners and gives open connections up to `drain`
    /// to finish, then resets what is left; a second signal turns a drain into the immediate
    /// stop. Installs the signal handlers if they are not yet. Returns the last statistics.
    #[allow(clippy::disallowed_methods)] // wall-clock deadline of the drain
    pub fn serve_until_signal(self, drain: std::time::Duration) -> CoreStats {
        signals::install();
        let mut deadline: Option<std::time::Instant> = None;
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if signals::immediate_stop_requested() {
                break;
            }
            if signals::drain_requested() {
                let now = std::time::Instant::now();
                let d = *deadline.get_or_insert_with(|| {
                    self.stop_listening();
                    now + drain
                });
                if now >= d || CoreStats::total(&self.snapshot()).conns == 0 {
                    break;
                }
            }
        }
        self.abort_all();
        let last = CoreStats::total(&self.snapshot());
        self.stop();
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{AppKind, Conn};

    struct Nothing;
    impl Handler for Nothing {
        fn on_data(&mut self, c: &mut Conn<'_>) {
            let _ = c.recv_with(&mut |a, b| a.len() + b.len());
        }
    }

    #[test]
    fn a_builder_needs_a_port_and_refuses_duplicates() {
        assert!(Engine::builder("eth0").validate().is_err());
        let b = Engine::builder("eth0").listen(7000, |_| Nothing).listen_app(7000, AppKind::Echo);
        assert!(b.validate().unwrap_err().to_string().contains("twice"));
        assert!(Engine::builder("eth0").listen(0, |_| Nothing).validate().is_err());
        assert!(Engine::builder("eth0").listen(1, |_| Nothing).backlog(0).validate().is_err());
        let ok = Engine::builder("eth0").addr("198.18.0.1".parse().unwrap()).listen(7000, |_| Nothing).queues(2);
        ok.validate().unwrap();
        assert_eq!(ok.config().queues, 2);
        assert_eq!(ok.config().backlog, DEFAULT_BACKLOG);
    }

    #[test]
    fn the_factory_runs_once_per_core_with_its_index() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&seen);
        let app = App::custom(move |core| {
            s2.lock().unwrap().push(core);
            Nothing
        });
        for i in 0..3 {
            let _ = app.build(CoreInfo { index: i, cores: 3 });
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().map(|c| c.index).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(seen.iter().all(|c| c.cores == 3));
    }
}
