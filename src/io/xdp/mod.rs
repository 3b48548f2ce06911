//! The AF_XDP datapath: the only code that imports `xsk_rs` and `libbpf_rs`.
//!
//! - [`Steering`] (loader.rs) loads `bpf/steer.bpf.c`, fills its maps from a [`SteerConfig`],
//!   attaches it to an interface through a BPF link (gone when the process dies) and reads
//!   its per-CPU counters.
//! - [`XdpLink`] (xsk.rs, umem.rs) is one AF_XDP socket on one queue, implementing
//!   [`FrameIo`](crate::io::FrameIo): frames are lent in place from the UMEM on receive, and
//!   free UMEM frames are lent for transmit.
//!
//! Typical use, per interface then per queue (each queue's link on its own core):
//!
//! ```no_run
//! # fn main() -> Result<(), xdptcp::io::xdp::XdpError> {
//! use xdptcp::io::xdp::{AttachMode, SteerConfig, Steering, XdpLink, XskConfig};
//! use std::os::fd::AsFd;
//! let cfg = SteerConfig { listen: vec!["0.0.0.0:80".parse().unwrap()], ..Default::default() };
//! let mut steering = Steering::load(&cfg)?;
//! steering.attach("eth0", AttachMode::Native)?;
//! let link = XdpLink::bind("eth0", 0, &XskConfig::default())?;
//! steering.register_xsk(0, link.as_fd())?;
//! # Ok(()) }
//! ```

pub mod abi;
pub mod ceiling;
mod loader;
mod skel;
mod umem;
mod xsk;

pub use abi::XskStat;
pub use ceiling::{Ceiling, PassProgram};
pub use loader::{
    attached_program, ifindex, quiet_libbpf, AddressMode, AttachMode, AttachedProgram, SteerConfig, SteerStats,
    Steering,
};
pub use umem::FrameCounts;
pub use xsk::{BindMode, XdpLink, XskConfig, XskKernelStats};

/// A failure of the AF_XDP control plane. Displays as "operation: cause", like the kernel's
/// tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// A configuration the datapath cannot honour.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another XDP program is on the interface; we never replace it.
    #[error(
        "attach XDP to {ifname}: program id {prog_id} is already attached in {mode} mode \
         (`ip link show dev {ifname}`; a program attached through a BPF link leaves when the \
         process holding it exits, see `bpftool link show`; one attached through netlink is \
         removed with `ip link set dev {ifname} xdp off`)"
    )]
    AlreadyAttached { ifname: String, prog_id: u32, mode: &'static str },
    /// A libbpf operation failed. The cause is part of the message and not a `source()`, so
    /// that an error chain (`{:#}`) names it once.
    #[error("{op}: {cause}")]
    Bpf { op: String, cause: libbpf_rs::Error },
    /// A system call failed (the cause as for `Bpf`).
    #[error("{op}: {cause}")]
    Os { op: String, cause: std::io::Error },
    /// An xsk-rs (libxdp) operation failed; `cause` is the error chain, flattened.
    #[error("{op}: {cause}")]
    Xsk { op: String, cause: String },
}

impl XdpError {
    fn xsk(op: &str, e: &dyn std::error::Error) -> Self {
        let mut cause = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            cause.push_str(": ");
            cause.push_str(&s.to_string());
            src = s.source();
        }
        XdpError::Xsk { op: op.to_owned(), cause }
    }
}
