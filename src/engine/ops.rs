//! The operator's side channels of a running engine: the metrics endpoint ([`metrics`]), the
//! control socket that `xdptcp ss` reads ([`control`]), and frame capture ([`pcap`]).
//!
//! Everything is bound or opened first ([`OpsConfig::bind`]), before the engine touches the
//! NIC, so a bad address or path is refused at start with the flag's name; the threads start
//! once the cores run ([`Bound::start`]).
//!
//! [`metrics`]: super::metrics
//! [`control`]: super::control
//! [`pcap`]: super::pcap

use super::control::{self, ControlServer};
use super::metrics::{self, MetricsServer, Sample};
use super::pcap::{Capture, PcapConfig, Tap};
use super::shield::ShieldStatus;
use super::{snapshot_of, Control};
use anyhow::{Context, Result};
use crossbeam_channel::Sender;
use std::net::SocketAddr;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the control socket goes when no path is given.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xdptcp.sock";
/// How long a scrape waits for each core.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// Which side channels to run (all off by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsConfig {
    /// `--metrics ADDR:PORT`.
    pub metrics: Option<SocketAddr>,
    /// `--control-socket PATH`.
    pub control_socket: Option<PathBuf>,
    /// The path was not given: a busy default is a warning (the other instance keeps it),
    /// not an error.
    pub control_socket_is_default: bool,
    /// `--pcap FILE`.
    pub pcap: Option<PcapConfig>,
}

/// Bound sockets and an open capture, waiting for the cores.
pub struct Bound {
    metrics: Option<MetricsServer>,
    control: Option<(UnixListener, PathBuf)>,
    capture: Option<Capture>,
}

impl OpsConfig {
    pub fn bind(&self) -> Result<Bound> {
        let metrics =
            self.metrics.map(|a| MetricsServer::bind(a).with_context(|| format!("--metrics {a}: bind"))).transpose()?;
        let control = match &self.control_socket {
            None => None,
            Some(p) => match control::bind(p) {
                Ok(l) => Some((l, p.clone())),
                Err(e) if self.control_socket_is_default => {
                    eprintln!(
                        "xdptcp: control socket {}: {e}; `xdptcp ss` is off for this instance (choose a path with \
                         --control-socket)",
                        p.display()
                    );
                    None
                }
                Err(e) => return Err(e).with_context(|| format!("--control-socket {}", p.display())),
            },
        };
        let capture = self
            .pcap
            .as_ref()
            .map(|c| {
                Capture::start(c.clone()).with_context(|| {
                    format!(
                        "--pcap {}: cannot create it; create its directory or choose a writable path",
                        c.path.display()
                    )
                })
            })
            .transpose()?;
        Ok(Bound { metrics, control, capture })
    }
}

impl Bound {
    /// A capture tap for a core, when `--pcap` is on.
    pub fn tap(&self) -> Option<Tap> {
        self.capture.as_ref().map(Capture::tap)
    }

    /// Starts the threads: `ctl` reaches the cores, `steering` reads the XDP program's
    /// counters and the SYN shield's state.
    pub fn start(
        mut self,
        ctl: Vec<Sender<Control>>,
        steering: impl Fn() -> (Vec<(&'static str, u64)>, Option<ShieldStatus>) + Send + 'static,
    ) -> Result<Ops> {
        let stop = Arc::new(AtomicBool::new(false));
        let pcap = self.capture.as_ref().map(|c| Arc::clone(&c.stats));
        let mut ops = Ops { stop: Arc::clone(&stop), metrics: None, control: None, capture: self.capture.take() };
        if let Some(m) = self.metrics.take() {
            let addr = m.local_addr()?;
            let ctl = ctl.clone();
            let body = move || {
                let cores = snapshot_of(&ctl, SCRAPE_TIMEOUT);
                let (st, shield) = steering();
                metrics::render(&Sample {
                    cores: &cores,
                    cores_expected: ctl.len(),
                    steering: &st,
                    shield,
                    pcap: pcap.as_deref(),
                })
            };
            ops.metrics = Some(m.spawn(body, Arc::clone(&stop)).context("spawn the metrics thread")?);
            eprintln!("xdptcp: metrics at http://{addr}/metrics");
        }
        if let Some((l, path)) = self.control.take() {
            eprintln!("xdptcp: control socket {} (xdptcp ss)", path.display());
            ops.control = Some(ControlServer::spawn(l, path, ctl, stop).context("spawn the control thread")?);
        }
        Ok(ops)
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        // Never started: the socket file goes with it.
        if let Some((_, p)) = self.control.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The running side channels.
pub struct Ops {
    stop: Arc<AtomicBool>,
    metrics: Option<JoinHandle<()>>,
    control: Option<ControlServer>,
    capture: Option<Capture>,
}

impl Ops {
    /// Stops the metrics and control threads (the control socket file goes). Call before the
    /// cores stop, so no listing waits on a core that is gone.
    pub fn stop_servers(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.metrics.take() {
            let _ = t.join();
        }
        self.control.take();
    }

    /// Lets the capture writer drain and close its file. Call after the cores stopped (their
    /// taps are gone).
    pub fn finish_capture(&mut self) {
        if let Some(c) = self.capture.take() {
            c.finish();
        }
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        self.stop_servers();
        self.finish_capture();
    }
}
