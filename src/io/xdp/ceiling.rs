//! The SYN-ACK ceiling of the test bed (`bpf/synack_tx.bpf.c`): an XDP program that turns
//! each pure SYN to one port into a SYN-ACK in place and sends it straight back (`XDP_TX`),
//! keeping no state. Nothing answers a SYN flood with less work on this machine, so a
//! benchmark reports the stack's SYN-ACK rate as a fraction of this one.
//!
//! [`PassProgram`] is the other half of the bed: on veth an `XDP_TX` frame reaches the peer
//! end only if that end runs an XDP program of its own, and `xdp_pass` (same object) is the
//! one that changes nothing.
//!
//! Both attach through a BPF link, like [`Steering`](super::Steering): the program leaves the
//! interface when its owner is dropped or its process dies, and neither replaces a program
//! that is already there.

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, ProgramInput};

use super::loader::AttachMode;
use super::skel::{SynackTxSkel, SynackTxSkelBuilder};
use super::XdpError;

/// `enum synack_stat` in `bpf/synack_tx.bpf.c`.
const STAT_ANSWERED: u32 = 0;
const STAT_PASSED: u32 = 1;

fn bpf_err(op: &'static str) -> impl FnOnce(libbpf_rs::Error) -> XdpError {
    move |cause| XdpError::Bpf { op: op.to_owned(), cause }
}

/// Opens `bpf/synack_tx.bpf.c` and loads only the program `want` (the verifier runs here).
fn load_object(want: Prog) -> Result<SynackTxSkel<'static>, XdpError> {
    // The skeleton borrows the storage of its object for as long as it lives: a leaked box
    // (a few words per load; the bpf_object itself is freed by the skeleton's Drop), as
    // `Steering::load` does, keeps the owners free of a self-referential struct.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = SynackTxSkelBuilder::default().open(storage).map_err(bpf_err("open the SYN-ACK XDP object"))?;
    open.progs.synack_tx.set_autoload(want == Prog::SynackTx);
    open.progs.xdp_pass.set_autoload(want == Prog::Pass);
    open.load().map_err(bpf_err("load the SYN-ACK XDP object (see the verifier log above)"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prog {
    SynackTx,
    Pass,
}

/// A program attached to one interface through a BPF link; dropping it detaches.
#[derive(Debug)]
struct Attachment {
    link: OwnedFd,
    ifname: String,
}

/// Attaches `prog` to `ifname` through a BPF link (see `loader::attach_xdp_link`).
fn attach_link(prog: BorrowedFd<'_>, ifname: &str, mode: AttachMode) -> Result<Attachment, XdpError> {
    let (link, _) = super::loader::attach_xdp_link(prog, ifname, mode)?;
    Ok(Attachment { link, ifname: ifname.to_owned() })
}

/// The loaded `synack_tx` program, its port, its counters and (once
/// [`attach`](Ceiling::attach)ed) its attachment. Detaches on drop.
///
/// What it answers: Ethernet (at most one VLAN tag), IPv4 without options, not a fragment,
/// TCP with SYN set and ACK, RST and FIN clear, to the configured port (0: any), lengths
/// consistent. The reply keeps the VLAN tag and carries only an MSS option (1460), window
/// 65535, TTL 64, DF, ack = seq + 1 and an ISN that is a cheap hash of the addresses, ports
/// and the client's ISN. Everything else passes to the kernel.
pub struct Ceiling {
    // Declared first so it is dropped first: the link goes before the object.
    attachment: Option<Attachment>,
    skel: SynackTxSkel<'static>,
}

impl fmt::Debug for Ceiling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ceiling").field("attachment", &self.attachment).finish_non_exhaustive()
    }
}

impl Ceiling {
    /// Loads the program (the verifier runs here) answering SYNs to `port` (0: every port).
    /// Nothing is attached yet: see [`attach`](Self::attach).
    pub fn load(port: u16) -> Result<Self, XdpError> {
        let c = Ceiling { attachment: None, skel: load_object(Prog::SynackTx)? };
        c.set_port(port)?;
        Ok(c)
    }

    /// Changes the port answered (0: every port); takes effect for the next frame.
    pub fn set_port(&self, port: u16) -> Result<(), XdpError> {
        self.skel
            .maps
            .synack_cfg
            .update(&0u32.to_ne_bytes(), &u32::from(port).to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err("write the SYN-ACK port"))
    }

    /// Attaches the program to `ifname` (in the calling thread's network namespace) through a
    /// BPF link. Refuses, naming the program, when an XDP program is already attached there.
    pub fn attach(&mut self, ifname: &str, mode: AttachMode) -> Result<(), XdpError> {
        if let Some(a) = &self.attachment {
            return Err(XdpError::Config(format!("the program is already attached to {}", a.ifname)));
        }
        self.attachment = Some(attach_link(self.skel.progs.synack_tx.as_fd(), ifname, mode)?);
        Ok(())
    }

    /// Detaches the program (closes the link). Does nothing when not attached.
    pub fn detach(&mut self) {
        self.attachment = None;
    }

    /// The interface the program is attached to, if any.
    pub fn attached(&self) -> Option<&str> {
        self.attachment.as_ref().map(|a| a.ifname.as_str())
    }

    /// SYNs answered with a SYN-ACK (`XDP_TX`), summed over every CPU.
    pub fn answered(&self) -> u64 {
        self.counter(STAT_ANSWERED)
    }

    /// Frames passed to the kernel, summed over every CPU.
    pub fn passed(&self) -> u64 {
        self.counter(STAT_PASSED)
    }

    /// One counter summed over every CPU; 0 if the map cannot be read (a lookup of an
    /// in-range key of a loaded per-CPU array does not fail).
    fn counter(&self, stat: u32) -> u64 {
        let per_cpu = self
            .skel
            .maps
            .synack_stats
            .lookup_percpu(&stat.to_ne_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
            .unwrap_or_default();
        per_cpu
            .iter()
            .filter_map(|v| v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
            .map(u64::from_ne_bytes)
            .fold(0u64, u64::wrapping_add)
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (no device, nothing sent)
    /// and returns its verdict (`XDP_PASS` = 2, `XDP_TX` = 3) and the frame as the program
    /// left it: the SYN-ACK after `XDP_TX`. Counters move as for a real frame. The kernel
    /// refuses frames shorter than an Ethernet header.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        // The reply can be a few bytes longer than a SYN without options; the kernel fails
        // the run (ENOSPC) rather than cut the output short.
        let mut out = vec![0u8; frame.len() + 256];
        let input = ProgramInput { data_in: Some(frame), data_out: Some(&mut out), ..ProgramInput::default() };
        let res = self.skel.progs.synack_tx.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN synack_tx"))?;
        let verdict = res.return_value;
        let len = res.data.map_or(0, |d| d.len());
        out.truncate(len);
        Ok((verdict, out))
    }
}

/// `xdp_pass` attached to one interface: it passes every frame, and makes a veth end accept
/// the `XDP_TX` frames of its peer. Detaches on drop.
pub struct PassProgram {
    // Declared first so it is dropped first: the link goes before the object.
    attachment: Attachment,
    _skel: SynackTxSkel<'static>,
}

impl fmt::Debug for PassProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassProgram").field("attachment", &self.attachment).finish_non_exhaustive()
    }
}

impl PassProgram {
    /// Loads `xdp_pass` and attaches it to `ifname` (in the calling thread's network
    /// namespace) through a BPF link. Refuses, naming the program, when an XDP program is
    /// already attached there.
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<Self, XdpError> {
        let skel = load_object(Prog::Pass)?;
        let attachment = attach_link(skel.progs.xdp_pass.as_fd(), ifname, mode)?;
        Ok(PassProgram { attachment, _skel: skel })
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.attachment.ifname
    }

    /// The link's file descriptor (for `bpftool link show`).
    pub fn link_fd(&self) -> BorrowedFd<'_> {
        self.attachment.link.as_fd()
    }
}
