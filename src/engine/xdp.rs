//! The AF_XDP engine: loads and attaches the steering program, binds one socket per queue, and
//! runs one pinned thread per queue.

use super::ops::{Ops, OpsConfig};
use super::pcap::{Tap, Tapped};
use super::secret_file::{cookie_epoch, cookie_key, FleetClock, FleetSecrets};
use super::shield::{self, ShieldConfig, ShieldMode, ShieldShared, ShieldStatus};
use super::{connect_cores, random_secrets, snapshot_of, Control, Core, CoreStats, HandoverConfig, MonoClock};
use crate::app::{App, CoreInfo};
use crate::io::xdp::{AddressMode, AttachMode, BindMode, SteerConfig, Steering, XdpLink, XskConfig};
use crate::net::{Net, NetConfig};
use crate::tcp::{self, Shard};
use crate::time::{Clock, Duration};
use crate::wire::EthernetAddress;
use anyhow::{anyhow, bail, Context, Result};
use core::net::{IpAddr, SocketAddr};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How often every core derives a fresh SYN-cookie key from the shared master secret (cookies
/// made under the previous key stay valid for one more period).
const COOKIE_KEY_PERIOD: Duration = super::secret_file::COOKIE_KEY_PERIOD;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub iface: String,
    /// Addresses the stack serves (listens on and answers for).
    pub addrs: Vec<IpAddr>,
    /// Listening ports and the application on each (a bundled one or the user's handler,
    /// built once per core).
    pub apps: Vec<(u16, App)>,
    pub queues: u32,
    /// Cores to pin the queue threads to, in queue order (defaults to the CPUs the process may
    /// run on, in order: 0, 1, ... unless a cpuset narrows them).
    pub cores: Vec<usize>,
    pub backlog: usize,
    pub tcp: tcp::Config,
    pub attach: AttachMode,
    pub bind: BindMode,
    pub address_mode: AddressMode,
    pub xsk: XskConfig,
    /// Slots of the flow directory shared by the cores (8 bytes each; see `engine::owners`).
    pub directory_slots: usize,
    /// Secrets shared by a fleet (`--cookie-secret-file`, see `engine::secret_file`): the
    /// cookie master, ISN and timestamp keys come from it instead of getrandom, and the clock
    /// reads UNIX time so that cookie epochs agree between hosts. `None`: drawn at start.
    pub cookie_secrets: Option<FleetSecrets>,
    /// The SYN shield of the XDP program (`serve --syn-shield`, see `engine::shield`).
    pub shield: ShieldConfig,
    /// How long a core keeps polling its rings after its last work before it sleeps in
    /// ppoll(2) (`serve --busy-poll-us`). Zero, the default as Linux's `net.core.busy_poll`:
    /// it sleeps as soon as a turn finds nothing to do.
    pub busy_poll: std::time::Duration,
}

/// How long stopping waits for the core threads.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// A running engine. Dropping it stops the threads and detaches the program.
pub struct Engine {
    threads: Vec<JoinHandle<()>>,
    ctl: Vec<Sender<Control>>,
    queues: u32,
    /// Metrics endpoint, control socket, capture (`serve --metrics/--control-socket/--pcap`).
    ops: Option<Ops>,
    /// The SYN shield's controller and what it shares with the cores; None when off.
    /// Declared before `steering`: its thread writes the program's maps until dropped.
    shield: Option<(ShieldMode, Arc<ShieldShared>, shield::Controller)>,
    // Declared last: detach only after the sockets are gone (the metrics thread holds a
    // reference until it is joined, which happens before the fields drop).
    steering: Arc<Steering>,
}

/// How many queues to serve on `iface`: all of its receive queues when `asked` is 0, else
/// `asked`, which must be that number. Fewer would leave the flows the NIC hashes onto the
/// other queues with no socket (DESIGN.md: every packet is handled where it lands); more do
/// not exist.
fn served_queues(iface: &str, asked: u32) -> Result<u32> {
    let nic = super::nic::queue_count(iface).with_context(|| format!("read the queue count of {iface}"))?;
    let have = nic.rx_queues();
    if have == 0 {
        bail!("{iface} reports no receive queue");
    }
    if asked != 0 && asked < have {
        bail!(
            "--queues {asked}: {iface} has {have} receive queues, and flows the NIC puts on the unserved ones \
             would be lost; omit --queues to serve all {have}, or give the NIC fewer (ethtool -L {iface} combined {asked})"
        );
    }
    if asked > have {
        bail!("--queues {asked}: {iface} has only {have} receive queue(s); omit --queues to serve all of them");
    }
    Ok(have)
}

/// What steers flows to queues: the RSS key and table, when readable.
fn rss_note(iface: &str) -> String {
    match super::nic::rss_config(iface) {
        Ok(rss) => format!(
            "xdptcp: {iface}: RSS Toeplitz key {} bytes, indirection table {} entries",
            rss.key.len(),
            rss.indir.len()
        ),
        Err(e) => format!(
            "xdptcp: {iface}: no RSS key to read ({e}); flows land where the device puts them, and a \
             segment that reaches a core not holding its flow is handed over"
        ),
    }
}

/// The MAC address of an interface, from sysfs.
pub fn iface_mac(iface: &str) -> Result<EthernetAddress> {
    let path = format!("/sys/class/net/{iface}/address");
    let s = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    s.trim().parse::<EthernetAddress>().map_err(|e| anyhow!("parse MAC of {iface}: {e}"))
}

impl Engine {
    pub fn start(cfg: EngineConfig) -> Result<Engine> {
        Engine::start_with(cfg, &OpsConfig::default())
    }

    /// [`Engine::start`] with the operator's side channels. Everything that can be refused
    /// (privileges, flags, a bad `--metrics` address or `--pcap` path) is refused before the
    /// program is loaded, so a refused start leaves nothing attached.
    pub fn start_with(cfg: EngineConfig, ops: &OpsConfig) -> Result<Engine> {
        use super::preflight;
        let caps = preflight::effective_caps().unwrap_or(u64::MAX);
        preflight::check_capabilities(caps)?;
        let queues = served_queues(&cfg.iface, cfg.queues)?;
        let cfg = EngineConfig { queues, ..cfg };
        preflight::check_cores(&cfg.cores, queues, &preflight::allowed_cpus())?;
        let cfg = if cfg.address_mode == AddressMode::Shared {
            let have =
                preflight::iface_addrs(&cfg.iface).with_context(|| format!("read the addresses of {}", cfg.iface))?;
            // No --addr: every address the interface has (as a listener bound to 0.0.0.0 and
            // [::] serves them), so the XDP program never takes a segment nobody here answers.
            let addrs = preflight::served_addrs(&cfg.iface, &cfg.addrs, &have)?;
            EngineConfig { addrs, ..cfg }
        } else if cfg.addrs.is_empty() {
            bail!("--own-address needs --addr: the addresses the stack answers ARP and ICMP for itself");
        } else {
            cfg
        };
        if cfg.shield.mode != ShieldMode::Off && cfg.tcp.syncookies == tcp::SynCookies::Off {
            bail!(
                "--syn-shield {}: the shield answers SYNs with cookies, which the cores must check; \
                 it needs SYN cookies on (--syncookies 1 or 2)",
                cfg.shield.mode
            );
        }
        let umem = u64::from(cfg.xsk.frame_count) * u64::from(cfg.xsk.frame_size) * u64::from(queues);
        preflight::check_memlock(caps, umem, preflight::memlock_limit())?;
        let bound = ops.bind()?;
        crate::io::xdp::quiet_libbpf();
        eprintln!("{}", rss_note(&cfg.iface));
        let mac = iface_mac(&cfg.iface)?;
        let ports: Vec<u16> = cfg.apps.iter().map(|a| a.0).collect();
        let listen: Vec<SocketAddr> = if cfg.addrs.is_empty() {
            ports.iter().map(|p| SocketAddr::new(IpAddr::from([0u8, 0, 0, 0]), *p)).collect()
        } else {
            cfg.addrs.iter().flat_map(|a| ports.iter().map(move |p| SocketAddr::new(*a, *p))).collect()
        };
        let steer =
            SteerConfig { listen, client_ports: None, owned: cfg.addrs.clone(), address_mode: cfg.address_mode };
        let mut steering = Steering::load(&steer).context("load the XDP steering program")?;
        steering.attach(&cfg.iface, cfg.attach)?;
        let steering = Arc::new(steering);

        // A fleet shares the keys, and its clock reads UNIX time (FleetClock says why).
        let (secrets, master, clock) = match &cfg.cookie_secrets {
            Some(f) => {
                let clock = FleetClock::unix_aligned();
                (f.shard_secrets(cookie_epoch(clock.now())), *f.cookie_master(), clock)
            }
            None => {
                let mut master = [0u8; 16];
                super::os_random(&mut master).context("read random keys")?;
                (random_secrets().context("read random keys")?, master, FleetClock::monotonic())
            }
        };
        let tcp_cfg = cfg.tcp.clone();
        let mut cores: Vec<Core> = (0..cfg.queues as usize)
            .map(|i| {
                let mut shard = Shard::new(tcp_cfg.clone(), secrets.clone());
                for p in &ports {
                    let addr = if cfg.addrs.len() == 1 { cfg.addrs.first().copied() } else { None };
                    let _ = shard.listen(*p, addr, cfg.backlog);
                }
                let net = Net::new(NetConfig {
                    mac,
                    addrs: cfg.addrs.clone(),
                    own_address: cfg.address_mode == AddressMode::Own,
                    vlan: None,
                    neighbour_ttl: Duration::from_secs(60),
                });
                Core::new(
                    i,
                    shard,
                    net,
                    Box::new(crate::app::Mux::new(&cfg.apps, CoreInfo { index: i, cores: cfg.queues as usize }))
                        as Box<dyn crate::app::Handler + Send>,
                )
            })
            .collect();
        let handover = HandoverConfig {
            directory_slots: cfg.directory_slots,
            frame_size: cfg.xsk.frame_size as usize,
            ..HandoverConfig::default()
        };
        connect_cores(&mut cores, &handover);
        let shield_shared = (cfg.shield.mode != ShieldMode::Off).then(|| Arc::new(ShieldShared::default()));

        // Unlisted queues go to the CPUs this process may run on, in order: 0, 1, ... on a
        // free host, the exclusive CPUs of a cpuset otherwise (Kubernetes' static CPU manager,
        // systemd's CPUAffinity=), where pinning to CPU q would fail.
        let allowed = preflight::allowed_cpus();
        let mut threads = Vec::new();
        let mut ctl = Vec::new();
        for (q, core) in cores.into_iter().enumerate() {
            let (ctl_tx, ctl_rx) = bounded::<Control>(16);
            let (fd_tx, fd_rx) = bounded::<Result<i32, String>>(1);
            let (go_tx, go_rx) = bounded::<bool>(1);
            let pin = cfg.cores.get(q).or_else(|| allowed.get(q)).copied().unwrap_or(q);
            let iface = cfg.iface.clone();
            let mut xsk = cfg.xsk;
            xsk.bind = cfg.bind;
            let tap = bound.tap();
            let shield = shield_shared.clone();
            let busy_poll = Duration::from_nanos(u64::try_from(cfg.busy_poll.as_nanos()).unwrap_or(u64::MAX));
            let h = std::thread::Builder::new()
                .name(format!("xdptcp-q{q}"))
                .spawn(move || {
                    let ids = CoreIds { queue: q as u32, pin, busy_poll };
                    core_thread(core, ids, iface, xsk, clock, master, ctl_rx, fd_tx, go_rx, tap, shield)
                })
                .context("spawn core thread")?;
            let fd = fd_rx.recv().map_err(|_| anyhow!("core thread {q} exited"))?.map_err(|e| anyhow!("{e}"))?;
            // SAFETY: the socket stays open until the thread is told to go or to quit, which
            // happens after this call returns.
            let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
            let reg = steering.register_xsk(q as u32, bfd);
            let _ = go_tx.send(reg.is_ok());
            reg.with_context(|| format!("insert the AF_XDP socket of queue {q} into xsks_map"))?;
            threads.push(h);
            ctl.push(ctl_tx);
        }
        // The shield last: every core is up and checks the cookies it makes.
        let shield = match shield_shared {
            Some(shared) => {
                let raw = shield::shield_config_raw(&cfg.tcp, &secrets.ts_key, shield::clock_offset_ns(&clock), false);
                let ctl = shield::Controller::start(shield::ControllerParts {
                    steering: Arc::clone(&steering),
                    cfg: cfg.shield,
                    raw,
                    master,
                    clock,
                    shared: Arc::clone(&shared),
                })?;
                Some((cfg.shield.mode, shared, ctl))
            }
            None => None,
        };
        let st = Arc::clone(&steering);
        let sh = shield.as_ref().map(|(m, s, _)| (*m, Arc::clone(s)));
        let ops = bound.start(ctl.clone(), move || {
            let counters = st.stats().map(|s| s.iter().collect()).unwrap_or_default();
            (counters, sh.as_ref().map(|(m, s)| s.status(*m)))
        })?;
        Ok(Engine { threads, ctl, steering, queues, ops: Some(ops), shield })
    }

    /// The queues served (one core each).
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// Statistics of every core (a core that does not answer within 250 ms is left out: the
    /// caller's loop must not stall on one).
    #[allow(clippy::disallowed_methods)] // a wall-clock bound on waiting for the cores
    pub fn snapshot(&self) -> Vec<CoreStats> {
        snapshot_of(&self.ctl, std::time::Duration::from_millis(250))
    }

    /// Graceful stop, first step: every core closes its listeners (new SYNs meet a closed
    /// port; connections not yet accepted are reset) and goes on serving open connections.
    pub fn stop_listening(&self) {
        if let Some((_, _, c)) = &self.shield {
            c.stop_answering();
        }
        self.tell_every_core(|| Control::StopListening);
    }

    /// The SYN shield's state; None when `--syn-shield off`.
    pub fn shield_status(&self) -> Option<ShieldStatus> {
        self.shield.as_ref().map(|(m, s, _)| s.status(*m))
    }

    /// The steering program's per-CPU counters, summed.
    pub fn steering_stats(&self) -> Vec<(&'static str, u64)> {
        self.steering.stats().map(|s| s.iter().collect()).unwrap_or_default()
    }

    /// Sends each core a control message (`make` builds one per core: a message is not Clone).
    fn tell_every_core(&self, make: impl Fn() -> Control) {
        for c in &self.ctl {
            let _ = c.send(make());
        }
    }

    /// Resets every open connection on every core (the cores keep running: a snapshot taken
    /// after this counts the RSTs).
    pub fn abort_all(&self) {
        self.tell_every_core(|| Control::AbortAll);
    }

    pub fn stop(mut self) {
        self.stop_threads();
    }

    /// Tells every core to reset its connections and leave its loop, and waits for them at
    /// most [`STOP_GRACE`]: a core that has not left by then (it cannot be, short of a kernel
    /// stall) is left behind, and the process exit ends it; stopping never hangs.
    #[allow(clippy::disallowed_methods)] // a wall-clock bound on joining threads
    fn stop_threads(&mut self) {
        if let Some(o) = self.ops.as_mut() {
            o.stop_servers();
        }
        // The shield's thread first (it writes the program's maps); the program answers with
        // the keys it has until the link goes with `steering`.
        self.shield.take();
        self.tell_every_core(|| Control::Stop);
        let deadline = std::time::Instant::now() + STOP_GRACE;
        for t in self.threads.drain(..) {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                eprintln!("xdptcp: a core thread did not stop within {STOP_GRACE:?}; leaving it to the process exit");
            }
        }
        // The taps went with the core threads: the writer drains and closes the file.
        if let Some(mut o) = self.ops.take() {
            o.finish_capture();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// Which queue a core thread serves, which CPU it runs on, and how long it polls before it
/// sleeps ([`EngineConfig::busy_poll`]).
struct CoreIds {
    queue: u32,
    pin: usize,
    busy_poll: Duration,
}

#[allow(clippy::too_many_arguments)]
fn core_thread(
    mut core: Core,
    ids: CoreIds,
    iface: String,
    xsk: XskConfig,
    clock: FleetClock,
    master: [u8; 16],
    ctl: Receiver<Control>,
    fd_tx: Sender<Result<i32, String>>,
    go: Receiver<bool>,
    mut tap: Option<Tap>,
    shield: Option<Arc<ShieldShared>>,
) {
    let CoreIds { queue, pin, busy_poll } = ids;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: pin }) {
        eprintln!("xdptcp: queue {queue}: could not pin to core {pin}; running unpinned");
    }
    let mut link = match XdpLink::bind(&iface, queue, &xsk) {
        Ok(l) => l,
        Err(e) => {
            let _ = fd_tx.send(Err(format!("bind AF_XDP socket to {iface} queue {queue}: {e}")));
            return;
        }
    };
    // The bound socket was this thread's last privileged step (engine::caps says why per thread).
    if let Err(e) = super::caps::drop_capabilities() {
        let _ = fd_tx.send(Err(format!("queue {queue}: {e}")));
        return;
    }
    let _ = fd_tx.send(Ok(link.as_fd().as_raw_fd()));
    if go.recv() != Ok(true) {
        return;
    }
    core.work_clock = Some(MonoClock::new());
    let mut epoch = u64::MAX;
    let mut last_work = clock.now();
    // Set by a listing request: `xdptcp ss` asks page after page, and each should find the
    // core awake rather than wait out a sleep (the once-a-second snapshot needs no spell).
    let mut awake_until = clock.now();
    let mut wait_fds: Vec<RawFd> = Vec::with_capacity(4);
    let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(4);
    let mut shield_seen = ShieldSeen::default();
    loop {
        let now = clock.now();
        let e = now.as_nanos() / COOKIE_KEY_PERIOD.as_nanos();
        if e != epoch {
            if epoch == u64::MAX {
                core.shard.rotate_cookie_key(cookie_key(&master, e.wrapping_sub(1)));
            }
            core.shard.rotate_cookie_key(cookie_key(&master, e));
            epoch = e;
        }
        if let Some(s) = &shield {
            shield_seen.turn(s, &mut core.shard, now);
        }
        // Capture off: one branch per turn, nothing per frame.
        let n = match tap.as_mut() {
            None => core.poll(now, &mut link),
            Some(t) => core.poll(now, &mut Tapped::new(&mut link, t)),
        };
        let asked = ctl.try_recv();
        if matches!(asked, Ok(Control::List(_))) {
            awake_until = now + CONTROL_SPELL;
        }
        match asked {
            Ok(Control::Snapshot(reply)) => {
                let mut s = core.stats(&link);
                s.pcap_dropped = tap.as_ref().map_or(0, |t| t.dropped);
                let _ = reply.send(s);
            }
            // One page (at most `control::LIST_PAGE` entries) per turn.
            Ok(Control::List(page)) => page.answer(&core.shard),
            Ok(Control::StopListening) => {
                core.stop_listening(now, &mut link);
            }
            Ok(Control::AbortAll) => {
                core.abort_all(now, &mut link);
            }
            Ok(Control::Stop) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                core.abort_all(clock.now(), &mut link);
                return;
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if n == 0 {
            // Idle for the busy-poll spell: sleep until a frame arrives or the next timer is due.
            if now.saturating_since(last_work) >= busy_poll
                && now >= awake_until
                && !link.tx_waiting()
                && core.going_to_sleep()
            {
                let next = match (core.shard.poll_timeout(), core.app.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let nap = sleep_for(next, clock.now());
                // A frame handed over by another core wakes the sleep too (its eventfd, second),
                // and so does anything the application waits on (its own sockets).
                wait_fds.clear();
                wait_fds.push(link.as_fd().as_raw_fd());
                let handed = core.wake_fd().map(|w| w.as_raw_fd());
                wait_fds.extend(handed);
                core.app.wait_fds(&mut wait_fds);
                wait_any(&mut pollfds, &wait_fds, link.tx_blocked(), nap);
                core.woke(handed.is_some() && pollfds.get(1).is_some_and(|p| p.revents != 0));
            }
        } else {
            last_work = now;
        }
    }
}

/// The longest sleep of an idle core, so that a control request (which writes no descriptor
/// the core waits on) is answered promptly, and so are an application's own deadlines.
const MAX_SLEEP: Duration = Duration::from_millis(2);

/// How long a core stays awake after a listing request, for the next page.
const CONTROL_SPELL: Duration = Duration::from_millis(1);

/// How long an idle core sleeps at `now` when its next timer is `next_timer`: until that timer
/// (a nanosecond timeout, where poll(2)'s milliseconds would round a timer due in 0.4 ms down
/// to a zero timeout and the core would spin through system calls until it came due; the
/// kernel adds the thread's timer slack, 50 µs by default), at most [`MAX_SLEEP`].
fn sleep_for(next_timer: Option<crate::time::Instant>, now: crate::time::Instant) -> Duration {
    next_timer.map_or(MAX_SLEEP, |t| t.saturating_since(now)).min(MAX_SLEEP)
}

/// Sleeps in ppoll(2) until one of `fds` is readable (the AF_XDP socket has frames, a hand-over
/// eventfd was written, an application socket is ready), the first (the AF_XDP socket) is
/// writable when `first_writable` is asked for, or `timeout` passes; `p` is the loop's own
/// buffer (no allocation per sleep) and holds each descriptor's `revents` after.
fn wait_any(p: &mut Vec<libc::pollfd>, fds: &[RawFd], first_writable: bool, timeout: Duration) {
    p.clear();
    p.extend(fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }));
    if let Some(first) = p.first_mut().filter(|_| first_writable) {
        first.events |= libc::POLLOUT;
    }
    let ns = timeout.as_nanos();
    let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as _ };
    // SAFETY: `p` is a valid array of pollfd and `ts` a valid timespec for the duration of the
    // call; a null signal mask leaves the thread's mask as it is.
    let _ = unsafe { libc::ppoll(p.as_mut_ptr(), p.len() as libc::nfds_t, &ts, std::ptr::null()) };
}

/// What a core last told, and last heard from, the SYN shield.
#[derive(Default)]
struct ShieldSeen {
    /// When the shard was last told that cookies are out (None while the shield is off).
    noted: Option<crate::time::Instant>,
    /// SYNs that found the SYN queue full, as last reported.
    overflows: u64,
}

impl ShieldSeen {
    /// Once per loop turn: while the XDP program sends cookies, the shard must check cookie
    /// ACKs (told at least every `shield::NOTE_INTERVAL`); and a SYN-queue overflow is what
    /// `--syn-shield auto` switches on for. Two loads and a compare when nothing changed.
    fn turn(&mut self, s: &ShieldShared, shard: &mut Shard, now: crate::time::Instant) {
        if s.is_active() {
            if self.noted.is_none_or(|t| now.saturating_since(t) >= shield::NOTE_INTERVAL) {
                shard.note_cookies_out(now);
                self.noted = Some(now);
            }
        } else {
            self.noted = None;
        }
        let c = shard.counters();
        let q = c.tcp_ext_tcp_req_q_full_do_cookies.wrapping_add(c.tcp_ext_tcp_req_q_full_drop);
        if q != self.overflows {
            s.note_overflows(q.wrapping_sub(self.overflows));
            self.overflows = q;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{sleep_for, MAX_SLEEP};
    use crate::time::{Duration, Instant};

    #[test]
    fn an_idle_core_sleeps_until_its_next_timer_not_a_rounded_millisecond() {
        let now = Instant::from_millis(10_000);
        // A timer 400 µs away: a 400 µs sleep, not poll(2)'s 0 ms (which spun the core in
        // system calls until the timer came due).
        assert_eq!(sleep_for(Some(Instant::from_nanos(now.as_nanos() + 400_000)), now), Duration::from_micros(400));
        // Overdue: no sleep, the next turn runs it.
        assert_eq!(sleep_for(Some(Instant::from_millis(9_000)), now), Duration::ZERO);
        // Far off, or no timer at all: at most MAX_SLEEP, so control stays prompt.
        assert_eq!(sleep_for(Some(Instant::from_secs(60)), now), MAX_SLEEP);
        assert_eq!(sleep_for(None, now), MAX_SLEEP);
    }

    /// A core whose written frames wait for ring room sleeps until the socket is writable too;
    /// otherwise writability does not wake it (a socket is writable nearly always).
    #[test]
    fn the_sleep_waits_for_room_only_when_frames_wait_for_it() {
        use std::os::fd::AsRawFd;
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let fds = [a.as_raw_fd()];
        let mut p = Vec::new();
        super::wait_any(&mut p, &fds, true, Duration::from_secs(10));
        assert_ne!(p[0].revents & libc::POLLOUT, 0, "writable: the sleep ends");
        super::wait_any(&mut p, &fds, false, Duration::from_millis(1));
        assert_eq!(p[0].revents, 0, "not asked for: only the timeout ends the sleep");
    }
}
