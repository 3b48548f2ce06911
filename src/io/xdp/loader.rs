//! Loading, configuring and attaching the steering program (`bpf/steer.bpf.c`).
//!
//! The program is attached through a BPF link (`BPF_LINK_CREATE`, the mechanism behind
//! libbpf's `bpf_program__attach_xdp`), never through a plain netlink attach: the link lives
//! as long as its file descriptor, so the program leaves the interface when the process exits
//! for any reason, `kill -9` included. A netlink attach would outlive a crash and keep
//! steering the stack's ports into a socket nobody reads.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, ProgramInput};

use super::abi::{self, AddrKey, ListenKey, ShieldConfigRaw, ShieldKeyRaw, SteerConfigRaw, XskStat};
use super::skel::{SteerSkel, SteerSkelBuilder};
use super::XdpError;

/// Whether the stack has addresses of its own or shares the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressMode {
    /// The stack shares the host's address: only its TCP ports are steered; ARP, ICMP and
    /// NDP stay with the kernel, which answers them for the shared address.
    #[default]
    Shared,
    /// The stack owns its addresses (the kernel has no copy): ARP, ICMP and NDP for them go
    /// to the stack too.
    Own,
}

/// How the program is attached to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Driver (native) mode; fails if the driver has no XDP support.
    #[default]
    Native,
    /// Generic (SKB) mode: works on any device, slower; only when the operator asks for it.
    Generic,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            AttachMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        })
    }
}

/// What the steering program treats as the stack's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteerConfig {
    /// Listening sockets. An unspecified address (`0.0.0.0`, `::`) listens on every address
    /// of that family.
    pub listen: Vec<SocketAddr>,
    /// Local ports of the connections the stack opens; segments to an owned address with a
    /// destination port in this range are steered. `None`: the stack opens no connections.
    pub client_ports: Option<RangeInclusive<u16>>,
    /// Addresses the stack answers for (client connections; ARP/ICMP in [`AddressMode::Own`]).
    pub owned: Vec<IpAddr>,
    pub address_mode: AddressMode,
}

impl SteerConfig {
    fn validate(&self) -> Result<(), XdpError> {
        if self.listen.len() > abi::MAX_LISTEN {
            return Err(XdpError::Config(format!(
                "{} listen entries, the program holds at most {}",
                self.listen.len(),
                abi::MAX_LISTEN
            )));
        }
        if self.owned.len() > abi::MAX_OWNED_ADDRS {
            return Err(XdpError::Config(format!(
                "{} owned addresses, the program holds at most {}",
                self.owned.len(),
                abi::MAX_OWNED_ADDRS
            )));
        }
        if let Some(r) = &self.client_ports {
            if r.is_empty() {
                return Err(XdpError::Config(format!("client port range {}-{} is empty", r.start(), r.end())));
            }
        }
        if self.address_mode == AddressMode::Own && self.owned.is_empty() {
            return Err(XdpError::Config("address mode \"own\" needs at least one owned address".into()));
        }
        Ok(())
    }

    fn raw(&self) -> SteerConfigRaw {
        let (min, max) = match &self.client_ports {
            Some(r) => (*r.start(), *r.end()),
            // min > max: matches no port.
            None => (1, 0),
        };
        SteerConfigRaw {
            client_port_min: min,
            client_port_max: max,
            flags: match self.address_mode {
                AddressMode::Own => abi::F_OWN_ADDRESS,
                AddressMode::Shared => 0,
            },
        }
    }
}

/// Counters of the steering program, summed over every CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteerStats {
    counts: [u64; XskStat::COUNT],
}

impl SteerStats {
    pub fn get(&self, stat: XskStat) -> u64 {
        self.counts.get(stat.index()).copied().unwrap_or(0)
    }

    /// `(name, value)` for every counter, in `enum xsk_stat` order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        XskStat::ALL.iter().map(|&s| (s.name(), self.get(s)))
    }
}

/// An XDP program found on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachedProgram {
    /// Kernel program id (`bpftool prog show id N`).
    pub prog_id: u32,
    /// "native", "generic", "offload" or "multi".
    pub mode: &'static str,
}

/// The attachment of the program to one interface. Dropping it closes the link, which
/// detaches the program.
#[derive(Debug)]
struct Attachment {
    link: OwnedFd,
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
}

/// The loaded steering program, its maps, and (once [`attach`](Steering::attach)ed) its
/// attachment to an interface. Detaches on drop.
pub struct Steering {
    // Declared first so it is dropped first: the link goes before the object that holds
    // the program (the link keeps its own reference to the program, so either order is
    // safe; this one reads better in `bpftool` traces).
    attachment: Option<Attachment>,
    skel: SteerSkel<'static>,
}

impl fmt::Debug for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steering").field("attachment", &self.attachment).finish_non_exhaustive()
    }
}

/// The last lines libbpf printed (its warnings and the verifier's log), kept instead of printed.
static LIBBPF_LOG: std::sync::Mutex<std::collections::VecDeque<String>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
const LIBBPF_LOG_LINES: usize = 40;

fn keep_libbpf_line(_level: libbpf_rs::PrintLevel, msg: String) {
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        if log.len() == LIBBPF_LOG_LINES {
            log.pop_front();
        }
        log.push_back(msg.trim_end().to_owned());
    }
}

/// Routes libbpf's own messages away from stderr: an operator gets one line that says what
/// failed and what to do, and a load the verifier refuses carries the verifier's last lines in
/// its error ([`Steering::load`]). Before this, a start without privileges printed four libbpf
/// lines ahead of the real error.
pub fn quiet_libbpf() {
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Warn, keep_libbpf_line)));
}

/// Takes what libbpf printed since the last call.
fn take_libbpf_log() -> Vec<String> {
    LIBBPF_LOG.lock().map(|mut l| l.drain(..).collect()).unwrap_or_default()
}

fn bpf_err(op: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> XdpError {
    let op = op.into();
    move |cause| XdpError::Bpf { op, cause }
}

/// The index of interface `ifname` in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> Result<u32, XdpError> {
    let c = CString::new(ifname).map_err(|_| XdpError::Config(format!("interface name {ifname:?} contains a NUL")))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XdpError::Os { op: format!("find interface {ifname}"), cause: io::Error::last_os_error() });
    }
    Ok(idx)
}

/// The XDP program attached to `ifname`, if any (netlink query, `bpf_xdp_query`).
pub fn attached_program(ifname: &str) -> Result<Option<AttachedProgram>, XdpError> {
    query_ifindex(ifname, ifindex(ifname)?)
}

fn query_ifindex(ifname: &str, ifindex: u32) -> Result<Option<AttachedProgram>, XdpError> {
    let mut opts = libbpf_sys::bpf_xdp_query_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    let idx = i32::try_from(ifindex).map_err(|_| XdpError::Config("ifindex overflow".into()))?;
    // SAFETY: `opts` is a valid, initialised struct whose `sz` matches its type, and it
    // outlives the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(idx, 0, &mut opts) };
    if rc < 0 {
        return Err(XdpError::Os {
            op: format!("query XDP programs on {ifname}"),
            cause: io::Error::from_raw_os_error(-rc),
        });
    }
    let (prog_id, mode) = match u32::from(opts.attach_mode) {
        libbpf_sys::XDP_ATTACHED_NONE => return Ok(None),
        libbpf_sys::XDP_ATTACHED_DRV => (opts.drv_prog_id, "native"),
        libbpf_sys::XDP_ATTACHED_SKB => (opts.skb_prog_id, "generic"),
        libbpf_sys::XDP_ATTACHED_HW => (opts.hw_prog_id, "offload"),
        _ => (opts.prog_id, "multi"),
    };
    Ok(Some(AttachedProgram { prog_id, mode }))
}

impl Steering {
    /// Opens and loads the program (the verifier runs here) and fills its maps from `cfg`.
    /// Nothing is attached yet: see [`attach`](Self::attach).
    pub fn load(cfg: &SteerConfig) -> Result<Self, XdpError> {
        cfg.validate()?;
        // The skeleton borrows the storage of its object for as long as it lives. Giving it
        // a leaked box (a few words per load; the bpf_object itself is freed by the
        // skeleton's Drop) keeps `Steering` free of a self-referential struct and of unsafe.
        let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
        let open = SteerSkelBuilder::default().open(storage).map_err(bpf_err("open the XDP object"))?;
        let _ = take_libbpf_log();
        let skel = open.load().map_err(|cause| {
            let denied = matches!(cause.kind(), libbpf_rs::ErrorKind::PermissionDenied);
            let log = take_libbpf_log();
            let op = if denied || log.is_empty() {
                "load the XDP program".to_owned()
            } else {
                format!("load the XDP program (libbpf and verifier said:\n  {})\n", log.join("\n  "))
            };
            XdpError::Bpf { op, cause }
        })?;
        let s = Steering { attachment: None, skel };
        s.write_config(cfg.raw())?;
        for l in &cfg.listen {
            s.add_listen(*l)?;
        }
        for a in &cfg.owned {
            s.add_owned(*a)?;
        }
        Ok(s)
    }

    /// Attaches the program to `ifname` (in the calling thread's network namespace) through a
    /// BPF link. Refuses, naming the program, when an XDP program is already attached there.
    pub fn attach(&mut self, ifname: &str, mode: AttachMode) -> Result<(), XdpError> {
        if let Some(a) = &self.attachment {
            return Err(XdpError::Config(format!("the program is already attached to {}", a.ifname)));
        }
        let (link, ifindex) = attach_xdp_link(self.skel.progs.xsk_steer.as_fd(), ifname, mode)?;
        self.attachment = Some(Attachment { link, ifname: ifname.to_owned(), ifindex, mode });
        Ok(())
    }

    /// Detaches the program (closes the link). Does nothing when not attached.
    pub fn detach(&mut self) {
        self.attachment = None;
    }

    /// `(interface, ifindex, mode)` of the current attachment.
    pub fn attached(&self) -> Option<(&str, u32, AttachMode)> {
        self.attachment.as_ref().map(|a| (a.ifname.as_str(), a.ifindex, a.mode))
    }

    /// The link's file descriptor (for `bpftool link show`), when attached.
    pub fn link_fd(&self) -> Option<BorrowedFd<'_>> {
        self.attachment.as_ref().map(|a| a.link.as_fd())
    }

    /// Steers rx queue `queue` to the AF_XDP socket `xsk`. The kernel removes the entry by
    /// itself when the socket is closed.
    pub fn register_xsk(&self, queue: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        if queue >= abi::MAX_QUEUES {
            return Err(XdpError::Config(format!("queue {queue}: the program serves queues 0..{}", abi::MAX_QUEUES)));
        }
        let fd = u32::try_from(xsk.as_raw_fd()).map_err(|_| XdpError::Config("negative socket fd".into()))?;
        self.skel
            .maps
            .xsks_map
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("insert the AF_XDP socket of queue {queue}")))
    }

    /// Stops steering rx queue `queue` (its frames pass to the kernel).
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), XdpError> {
        match self.skel.maps.xsks_map.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(bpf_err(format!("remove the AF_XDP socket of queue {queue}"))(e)),
        }
    }

    /// Starts steering segments for `addr` (an unspecified IP is the family's wildcard).
    pub fn add_listen(&self, addr: SocketAddr) -> Result<(), XdpError> {
        let key = ListenKey::new(addr.ip(), addr.port()).to_bytes();
        self.skel
            .maps
            .listen
            .update(&key, &0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("add listen entry {addr}")))
    }

    pub fn remove_listen(&self, addr: SocketAddr) -> Result<(), XdpError> {
        let key = ListenKey::new(addr.ip(), addr.port()).to_bytes();
        match self.skel.maps.listen.delete(&key) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(bpf_err(format!("remove listen entry {addr}"))(e)),
        }
    }

    pub fn add_owned(&self, ip: IpAddr) -> Result<(), XdpError> {
        let key = AddrKey::new(ip).to_bytes();
        self.skel
            .maps
            .owned_addrs
            .update(&key, &0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("add owned address {ip}")))
    }

    pub fn remove_owned(&self, ip: IpAddr) -> Result<(), XdpError> {
        let key = AddrKey::new(ip).to_bytes();
        match self.skel.maps.owned_addrs.delete(&key) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(bpf_err(format!("remove owned address {ip}"))(e)),
        }
    }

    /// Replaces the client port range and the address mode (the `config` map entry).
    pub fn set_config(
        &self,
        client_ports: Option<RangeInclusive<u16>>,
        address_mode: AddressMode,
    ) -> Result<(), XdpError> {
        let cfg = SteerConfig { client_ports, address_mode, ..SteerConfig::default() };
        if let Some(r) = &cfg.client_ports {
            if r.is_empty() {
                return Err(XdpError::Config("empty client port range".into()));
            }
        }
        self.write_config(cfg.raw())
    }

    fn write_config(&self, raw: SteerConfigRaw) -> Result<(), XdpError> {
        self.skel
            .maps
            .config
            .update(&0u32.to_ne_bytes(), &raw.to_bytes(), MapFlags::ANY)
            .map_err(bpf_err("write the steering config"))
    }

    /// Writes the SYN shield's settings (`shield_cfg`, see `bpf/shield.h`); with
    /// [`abi::SHIELD_F_ON`] set the program answers SYNs to listening ports from the next
    /// frame on. Only `flags` may change while the program runs: a reader may see a
    /// half-written entry (see `struct shield_config`).
    pub fn set_shield(&self, cfg: &ShieldConfigRaw) -> Result<(), XdpError> {
        self.skel
            .maps
            .shield_cfg
            .update(&0u32.to_ne_bytes(), &cfg.to_bytes(), MapFlags::ANY)
            .map_err(bpf_err("write the SYN shield settings"))
    }

    /// Writes the cookie key of `key.epoch` into its slot (`epoch & 1` of `shield_keys`).
    /// The caller never writes the slot of the epoch the program is in (`bpf/shield.h`).
    pub fn set_shield_key(&self, key: &ShieldKeyRaw) -> Result<(), XdpError> {
        let slot = (key.epoch & 1) as u32;
        self.skel
            .maps
            .shield_keys
            .update(&slot.to_ne_bytes(), &key.to_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("write the SYN shield key of epoch {}", key.epoch)))
    }

    /// One counter of the program, summed over every CPU (one map lookup, where
    /// [`stats`](Self::stats) makes one per counter).
    pub fn stat(&self, stat: XskStat) -> Result<u64, XdpError> {
        let key = (stat as u32).to_ne_bytes();
        let per_cpu = self
            .skel
            .maps
            .stats
            .lookup_percpu(&key, MapFlags::ANY)
            .map_err(bpf_err("read a steering counter"))?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .filter_map(|v| v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
            .map(u64::from_ne_bytes)
            .fold(0u64, u64::wrapping_add))
    }

    /// The program's counters, summed over every CPU.
    pub fn stats(&self) -> Result<SteerStats, XdpError> {
        let mut out = SteerStats::default();
        for stat in XskStat::ALL {
            let sum = self.stat(stat)?;
            if let Some(slot) = out.counts.get_mut(stat.index()) {
                *slot = sum;
            }
        }
        Ok(out)
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (rx queue 0, no device) and
    /// returns its verdict (`XDP_PASS` = 2, `XDP_REDIRECT` = 4, ...). For tests and for
    /// checking a configuration without traffic; counters move as for a real frame.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        let input = ProgramInput { data_in: Some(frame), ..ProgramInput::default() };
        let out = self.skel.progs.xsk_steer.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN xsk_steer"))?;
        Ok(out.return_value)
    }

    /// As [`test_run`](Self::test_run), also returning the frame as the program left it (the
    /// SYN-ACK after `XDP_TX`).
    pub fn test_run_frame(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        // The reply can be longer than the SYN; the kernel fails the run (ENOSPC) rather
        // than cut the output short.
        let mut out = vec![0u8; frame.len() + 256];
        let input = ProgramInput { data_in: Some(frame), data_out: Some(&mut out), ..ProgramInput::default() };
        let res = self.skel.progs.xsk_steer.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN xsk_steer"))?;
        let verdict = res.return_value;
        let len = res.data.map_or(0, |d| d.len());
        out.truncate(len);
        Ok((verdict, out))
    }
}

/// Attaches `prog` to `ifname` (in the calling thread's network namespace) through a BPF link,
/// so it detaches when the link fd closes (also when the process dies). Refuses, naming the
/// program, when an XDP program is already attached there. Returns the link and the ifindex.
pub(crate) fn attach_xdp_link(
    prog: BorrowedFd<'_>,
    ifname: &str,
    mode: AttachMode,
) -> Result<(OwnedFd, u32), XdpError> {
    let ifindex = ifindex(ifname)?;
    if let Some(p) = query_ifindex(ifname, ifindex)? {
        return Err(XdpError::AlreadyAttached { ifname: ifname.to_owned(), prog_id: p.prog_id, mode: p.mode });
    }
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: size_of::<libbpf_sys::bpf_link_create_opts>() as libbpf_sys::size_t,
        flags: mode.flags(),
        ..Default::default()
    };
    let prog_fd = prog.as_raw_fd();
    let target = i32::try_from(ifindex).map_err(|_| XdpError::Config("ifindex".into()))?;
    // SAFETY: `prog_fd` is the fd of a loaded program, borrowed (so open) for the whole
    // call; `opts` is initialised, its `sz` matches, and it outlives the call.
    let fd = unsafe { libbpf_sys::bpf_link_create(prog_fd, target, libbpf_sys::BPF_XDP, &opts) };
    if fd < 0 {
        let errno = -fd;
        // Lost a race with another attacher: report who won.
        if errno == libc::EBUSY || errno == libc::EEXIST {
            if let Ok(Some(p)) = query_ifindex(ifname, ifindex) {
                return Err(XdpError::AlreadyAttached { ifname: ifname.to_owned(), prog_id: p.prog_id, mode: p.mode });
            }
        }
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu")).unwrap_or_default();
        let hint = if mode == AttachMode::Native && errno == libc::EOPNOTSUPP {
            " (the driver has no native XDP; `--xdp-mode generic` works on any interface)".to_owned()
        } else if errno == libc::ERANGE {
            // The driver refuses a program that cannot take the largest frame its MTU allows
            // in one buffer (veth: a page minus headroom and skb_shared_info).
            format!(
                " (the MTU of {ifname}, {}, or on a veth pair its peer's, is above what XDP allows on \
                 this driver: about 3,500 bytes; lower it on both ends, e.g. `ip link set dev {ifname} mtu 1500`)",
                mtu.trim()
            )
        } else {
            String::new()
        };
        return Err(XdpError::Os {
            op: format!("attach XDP to {ifname} in {mode} mode{hint}"),
            cause: io::Error::from_raw_os_error(errno),
        });
    }
    // SAFETY: `fd` was just returned by BPF_LINK_CREATE and is owned by nothing else.
    let link = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((link, ifindex))
}
