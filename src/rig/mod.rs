//! The measuring rig: what the stack is measured and tested against, not part of the stack.
//!
//! - [`bed`]: the veth test bed of `deploy/` (namespaces, veth pair), one type for `demo`,
//!   `bench` and the tests;
//! - [`kernel_server`]: the bundled apps on Linux kernel sockets (`serve --backend kernel`), the
//!   baseline of every comparison and the fallback on hosts without XDP;
//! - [`kernel`]: the kernel-socket echo client with content checks (`kclient`, `demo`) and the
//!   bounded floods from spoofed sources (`flood`, `bench flood`);
//! - [`loadgen`]: the `bench connect` / `bench bulk` / `bench loss` load generators on kernel
//!   sockets;
//! - `xdp_load`: a SYN flood and a connect client on the stack's own AF_XDP datapath.
//!
//! It sits above the engine and below the CLI, and unlike the stack's layers it is a tool that
//! works the operating system directly (kernel sockets, raw sockets), as a load generator must.

pub mod bed;
pub mod kernel;
pub mod kernel_server;
pub mod loadgen;
#[cfg(feature = "xdp")]
pub mod xdp_load;
