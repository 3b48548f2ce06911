//! The AF_XDP engine: loads and attaches the steering program, binds one socket per queue, and
//! runs one pinned thread per queue.

use super::ops::{Ops, OpsConfig};
use super::pcap::{Tap, Tapped};
use super::secret_file::{cookie_epoch, cookie_key, FleetClock, FleetSecrets};
use super::shield::{self, ShieldConfig, ShieldMode, ShieldShared, ShieldStatus};
use super::{connect_cores, random_secrets, snapshot_of, Control, Core, CoreStats, HandoverConfig, MonoClock};
use crate::app::AppKind;
use crate::io::xdp::{AddressMode, AttachMode, BindMode, SteerConfig, Steering, XdpLink, XskConfig};
use crate::net::{Net, NetConfig};
use crate::tcp::{self, Shard};
use crate::time::{Clock, Duration};
use crate::wire::EthernetAddress;
use anyhow::{anyhow, bail, Context, Result};
use core::net::{IpAddr, SocketAddr};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
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
    /// Listening ports and the application on each.
    pub apps: Vec<(u16, AppKind)>,
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
                    Box::new(crate::app::Mux::new(cfg.apps.clone())) as Box<dyn crate::app::Handler + Send>,
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
            let h = std::thread::Builder::new()
                .name(format!("xdptcp-q{q}"))
                .spawn(move || {
                    let ids = CoreIds { queue: q as u32, pin };
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

/// Which queue a core thread serves and which CPU it runs on.
struct CoreIds {
    queue: u32,
    pin: usize,
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
    let CoreIds { queue, pin } = ids;
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
    let mut idle = 0u32;
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
        match ctl.try_recv() {
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
            idle = idle.saturating_add(1);
            // Busy-poll while traffic flows; after a short idle spell, sleep in poll(2) until a
            // frame arrives or the next timer is due (at most 2 ms, so control stays prompt).
            if idle > 256 && core.sleeping(true) {
                let until = core.shard.poll_timeout().map(|t| t.saturating_since(clock.now()).as_millis());
                let ms = until.unwrap_or(2).min(2) as i32;
                // A frame handed over by another core wakes the sleep too (its eventfd).
                match core.wake_fd() {
                    Some(wake) => wait_either(&link, wake, ms),
                    None => {
                        let _ = link.wait_rx(ms);
                    }
                }
                core.sleeping(false);
            }
        } else {
            idle = 0;
        }
    }
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

/// Sleeps in poll(2) until the AF_XDP socket has frames, `wake` is written, or `ms` pass.
fn wait_either(link: &XdpLink, wake: BorrowedFd<'_>, ms: i32) {
    let mut fds = [
        libc::pollfd { fd: link.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: wake.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
    let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

/// A SYN flood sent through an AF_XDP socket (the stack's own datapath as the generator, so the
/// generator is not the bottleneck a raw socket is): spoofed sources from 198.18.0.0/15 outside
/// the bed's /24, random ports and sequence numbers, Linux-like SYN options.
pub fn xdp_syn_flood(
    iface: &str,
    dst_mac: EthernetAddress,
    target: std::net::SocketAddrV4,
    count: u64,
    seconds: u64,
    seed: u64,
) -> Result<super::kernel::FloodReport> {
    use crate::io::FrameIo;
    use crate::net::FrameSink;
    use crate::tcp::emit::{emit, OutSegment};
    use crate::tcp::FourTuple;
    use crate::wire::{checksum, EtherType, EthernetRepr, SeqNum, TcpFlags, TcpOptions};
    let src_mac = iface_mac(iface)?;
    let xsk = XskConfig { rx_frames: 64, ..XskConfig::default() };
    let mut link = XdpLink::bind(iface, 0, &xsk).with_context(|| format!("bind AF_XDP socket to {iface}"))?;
    // One template frame; each SYN patches source, port, sequence number and both checksums.
    let t0 = FourTuple::new(SocketAddr::new(IpAddr::from([198, 19, 0, 1]), 1024), SocketAddr::V4(target));
    let opts = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..TcpOptions::default() };
    let mut ip_pkts: Vec<Vec<u8>> = Vec::new();
    emit(
        &mut ip_pkts,
        &t0,
        &OutSegment { options: opts, ..OutSegment::control(SeqNum(1), SeqNum(0), TcpFlags::SYN, 64240) },
        64,
    );
    let ip = ip_pkts.pop().ok_or_else(|| anyhow!("build the SYN template"))?;
    let eth = EthernetRepr { src: src_mac, dst: dst_mac, vlan: None, ethertype: EtherType::Ipv4 };
    let mut template = vec![0u8; 14 + ip.len()];
    eth.emit(&mut template);
    template[14..].copy_from_slice(&ip);
    let dst_ip = target.ip().octets();
    let mut rng = seed | 1;
    let clock = MonoClock::new();
    let start = clock.now();
    let limit = Duration::from_secs(seconds);
    let mut rep = super::kernel::FloodReport::default();
    while rep.sent < count && clock.now().saturating_since(start) < limit {
        for _ in 0..64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let r = rng;
            let host = 256 + (r as u32 % (131_072 - 256));
            let src = (0xc612_0000u32 + host).to_be_bytes();
            let sport = (1024 + ((r >> 20) as u16 % 64_000)).to_be_bytes();
            let seq = ((r >> 32) as u32).to_be_bytes();
            let ok = link.send_frame(template.len(), &mut |f: &mut [u8]| {
                f.copy_from_slice(&template);
                let (ip_h, tcp) = f[14..].split_at_mut(20);
                ip_h[12..16].copy_from_slice(&src);
                ip_h[10..12].fill(0);
                let c = checksum::checksum(ip_h);
                ip_h[10..12].copy_from_slice(&c.to_be_bytes());
                tcp[0..2].copy_from_slice(&sport);
                tcp[4..8].copy_from_slice(&seq);
                tcp[16..18].fill(0);
                let pseudo = checksum::pseudo_header_v4(src.into(), dst_ip.into(), 6, tcp.len() as u16);
                let c = checksum::finish(checksum::sum(tcp) + pseudo);
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
            });
            if ok {
                rep.sent += 1;
            } else {
                rep.send_errors += 1;
                break;
            }
        }
        link.flush();
        // Nothing comes back on this socket (no program steers to it), but reclaiming keeps
        // the completion ring moving.
        link.rx_burst(64, &mut |_, _| {});
    }
    link.flush();
    rep.elapsed = std::time::Duration::from_nanos(clock.now().saturating_since(start).as_nanos());
    Ok(rep)
}

/// The connect scenario with the stack itself as the client, on an AF_XDP socket of `iface`
/// (so the generator is not the kernel's TCP): `concurrency` connections in flight for
/// `seconds`, each sending `request` and waiting for the server to close.
#[derive(Debug, Clone)]
pub struct XdpClientConfig {
    pub iface: String,
    /// The client's address (shared with the kernel on `iface`; the XDP program steers the
    /// client port range to the stack).
    pub local: IpAddr,
    pub ports: std::ops::RangeInclusive<u16>,
    pub remote: SocketAddr,
    pub remote_mac: EthernetAddress,
    pub concurrency: usize,
    pub seconds: u64,
    pub request: Vec<u8>,
    /// How long to wait for stragglers after `seconds`.
    pub drain_seconds: u64,
}

/// Runs it on the calling thread. Returns the client's statistics and the measured window.
pub fn xdp_connect_bench(cfg: &XdpClientConfig) -> Result<(crate::app::client::ClientStats, std::time::Duration)> {
    use crate::app::client::{Client, ClientPlan};
    let mac = iface_mac(&cfg.iface)?;
    let steer = SteerConfig {
        listen: Vec::new(),
        client_ports: Some(cfg.ports.clone()),
        owned: vec![cfg.local],
        address_mode: AddressMode::Shared,
    };
    let mut steering = Steering::load(&steer).context("load the XDP steering program")?;
    steering.attach(&cfg.iface, AttachMode::Native).with_context(|| format!("attach XDP to {}", cfg.iface))?;
    let mut link = XdpLink::bind(&cfg.iface, 0, &XskConfig::default())
        .with_context(|| format!("bind AF_XDP socket to {}", cfg.iface))?;
    link.register(&steering).context("insert the AF_XDP socket into xsks_map")?;
    let tcp_cfg = tcp::Config { max_connections: cfg.concurrency * 4 + 1024, ..tcp::Config::default() };
    let shard = Shard::new(tcp_cfg, random_secrets().context("read random keys")?);
    let mut net = Net::new(NetConfig {
        mac,
        addrs: vec![cfg.local],
        own_address: false,
        vlan: None,
        neighbour_ttl: Duration::from_secs(3600),
    });
    let clock = MonoClock::new();
    let start = clock.now();
    net.neigh.learn(cfg.remote.ip(), cfg.remote_mac, start);
    let until = start + Duration::from_secs(cfg.seconds);
    // RSS-aware active opens (mTCP's per-core port pools): on a NIC whose RSS key and table can
    // be read, only the source ports whose replies the NIC puts on queue 0, the one this client
    // serves. Without a key (veth) every port of the range; replies then land where the device
    // puts them.
    let ports: Vec<u16> = match super::nic::rss_config(&cfg.iface) {
        Ok(rss) => super::nic::port_pool(&rss, cfg.local, cfg.remote, cfg.ports.clone(), 0),
        Err(e) => {
            let queues = super::nic::queue_count(&cfg.iface).map(|q| q.rx_queues()).unwrap_or(1);
            if queues > 1 {
                bail!(
                    "{}: {queues} receive queues and no RSS key to read ({e}): replies would land on \
                     queues this client does not serve; give the interface one queue (ethtool -L)",
                    cfg.iface
                );
            }
            eprintln!("xdptcp: {}: no RSS key to read ({e}); one queue, every port of the range", cfg.iface);
            cfg.ports.clone().collect()
        }
    };
    if ports.is_empty() {
        bail!("no port of {:?} has its replies on queue 0 of {}", cfg.ports, cfg.iface);
    }
    let plan = ClientPlan {
        local: cfg.local,
        ports,
        remote: cfg.remote,
        concurrency: cfg.concurrency,
        request: cfg.request.clone(),
        until,
    };
    let mut core: Core<Client> = Core::new(0, shard, net, Box::new(Client::new(plan)));
    let hard_stop = until + Duration::from_secs(cfg.drain_seconds);
    loop {
        let now = clock.now();
        core.poll(now, &mut link);
        // The dispatch of the next poll asks for new connections; keep the loop hot until the
        // window is over and the stragglers are done.
        if now >= until && (core.app.in_flight() == 0 || now >= hard_stop) {
            break;
        }
    }
    let elapsed = std::time::Duration::from_nanos(Duration::from_secs(cfg.seconds).as_nanos());
    let mut stats = core.app.stats.clone();
    stats.timeout += core.app.in_flight() as u64;
    Ok((stats, elapsed))
}
