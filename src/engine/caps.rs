//! Dropping the capabilities `serve` needs only to start.
//!
//! Loading the steering program, attaching it and binding the AF_XDP sockets need, on Linux
//! 6.18 (found by starting `serve` as an unprivileged uid with one capability removed at a
//! time; README "Deployment"):
//!
//! - `CAP_BPF`: create the maps and load the program (`bpf(BPF_MAP_CREATE / BPF_PROG_LOAD)`);
//! - `CAP_PERFMON`: the verifier refuses the parser's variable-offset packet-pointer arithmetic
//!   without it ("pointer arithmetic with it prohibited for !root");
//! - `CAP_NET_ADMIN`: create the XSKMAP and attach the program to the interface;
//! - `CAP_NET_RAW`: create the AF_XDP sockets and register their UMEM;
//! - `CAP_IPC_LOCK`: only when the UMEM (frames x frame size per queue) exceeds
//!   `RLIMIT_MEMLOCK`; the systemd unit sets `LimitMEMLOCK=infinity` instead.
//!
//! Once the program is attached (a BPF link, detached by closing its descriptor) and every
//! socket is bound and in the XSKMAP, none of them is used again: the datapath reads and writes
//! rings through memory mappings, wakes the kernel with `sendto`/`poll`, and reads map counters
//! through descriptors it already holds. So the engine throws them all away.
//!
//! Linux keeps credentials per thread: capset(2) and `PR_SET_NO_NEW_PRIVS` change the calling
//! thread only, and a new thread copies its creator's credentials at clone(2). Hence the
//! engine calls [`drop_capabilities`] in every core thread right after its socket is bound (its
//! last privileged step; the main thread still holds the rights to insert the socket into the
//! XSKMAP), and `serve` calls it in the main thread once `Engine::start` has returned; a thread
//! spawned after that inherits empty sets. [`threads_with_capabilities`] checks the whole
//! process, so a thread spawned before the drop and never dropped does not go unnoticed.
//!
//! Plain libc rather than the `caps` crate: libc is already a dependency, the work is two
//! syscalls and two prctls, and writing them out keeps the per-thread semantics in plain sight.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h): 64-bit sets as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `CAP_SETPCAP` (linux/capability.h): needed to shrink the bounding set.
const CAP_SETPCAP: u32 = 8;

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h); version 3 takes two of them, the
/// low and the high 32 capabilities.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Why the capabilities could not be dropped. Each names the step; the cause is the errno.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("read the thread's capabilities (capget): {0}")]
    Get(#[source] io::Error),
    #[error("clear the ambient capabilities (PR_CAP_AMBIENT_CLEAR_ALL): {0}")]
    Ambient(#[source] io::Error),
    #[error("drop capability {cap} from the bounding set (PR_CAPBSET_DROP): {source}")]
    Bounding {
        cap: u32,
        #[source]
        source: io::Error,
    },
    #[error("clear the effective, permitted and inheritable capabilities (capset): {0}")]
    Set(#[source] io::Error),
    #[error("set no_new_privs (PR_SET_NO_NEW_PRIVS): {0}")]
    NoNewPrivs(#[source] io::Error),
}

/// The calling thread's capability sets, one bit per capability (bit n = capability n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadCaps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// Capabilities by number (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// What starting the engine needs (module docs), as `(number, name, what for)`; checked before
/// anything is loaded by `engine::preflight::check_capabilities`.
pub const REQUIRED: [(u32, &str, &str); 4] = [
    (CAP_BPF, "CAP_BPF", "create the maps and load the program"),
    (CAP_PERFMON, "CAP_PERFMON", "pass the verifier's pointer-arithmetic checks"),
    (CAP_NET_ADMIN, "CAP_NET_ADMIN", "create the XSKMAP and attach to the interface"),
    (CAP_NET_RAW, "CAP_NET_RAW", "create the AF_XDP sockets"),
];

/// Adds to a failed engine start what an operator can do about it when the kernel refused for
/// want of locked memory (ENOBUFS creating the UMEM: RLIMIT_MEMLOCK, which other locked memory
/// of the user can exhaust after the start checks passed). Missing capabilities never get this
/// far: the start checks name them first. Other errors pass unchanged.
pub fn explain_start_error(err: anyhow::Error) -> anyhow::Error {
    let errno = |want: i32| {
        err.chain().any(|c| c.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) == Some(want))
            || err.chain().any(|c| c.to_string().contains(&format!("(os error {want})")))
    };
    if errno(libc::ENOBUFS) && err.chain().any(|c| c.to_string().contains("UMEM")) {
        return err.context(
            "the UMEM exceeds RLIMIT_MEMLOCK: raise it (LimitMEMLOCK=infinity, ulimit -l), grant CAP_IPC_LOCK, or lower --umem-frames",
        );
    }
    err
}

/// The calling thread's effective, permitted and inheritable sets (capget(2) on itself).
pub fn thread_caps() -> Result<ThreadCaps, CapsError> {
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: `header` and `data` are valid for the call; version 3 writes exactly two
    // `CapData` entries.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) };
    if r != 0 {
        return Err(CapsError::Get(io::Error::last_os_error()));
    }
    let [lo, hi] = data;
    let join = |l: u32, h: u32| u64::from(l) | (u64::from(h) << 32);
    Ok(ThreadCaps {
        effective: join(lo.effective, hi.effective),
        permitted: join(lo.permitted, hi.permitted),
        inheritable: join(lo.inheritable, hi.inheritable),
    })
}

/// Drops every capability of the calling thread for good, and only of the calling thread:
/// clears the ambient set, empties the bounding set when the thread may (it holds
/// `CAP_SETPCAP`, as root does; an unprivileged uid with ambient capabilities cannot and need
/// not: with an empty permitted set and no_new_privs nothing can come back), clears the
/// effective, permitted and inheritable sets, and sets no_new_privs so that no execve(2) of
/// a set-uid or file-capability binary hands any back.
///
/// Does not touch the uid: a root-run `serve` stays uid 0 (file ownership) with no
/// capabilities. Call it in every thread that holds capabilities (see the module docs).
pub fn drop_capabilities() -> Result<(), CapsError> {
    let prctl = |op: libc::c_int, arg: libc::c_ulong| {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        let r = unsafe { libc::prctl(op, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // Linux clears the ambient set by itself when a capability leaves permitted, but clearing
    // it first makes the order obvious and survives a partial failure below.
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong).map_err(CapsError::Ambient)?;
    if thread_caps()?.effective & (1 << CAP_SETPCAP) != 0 {
        for cap in 0..=last_cap() {
            match prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)) {
                Ok(()) => {}
                // A capability newer than this kernel: nothing to drop.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(source) => return Err(CapsError::Bounding { cap, source }),
            }
        }
    }
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData::default(); 2];
    // SAFETY: `header` and `data` are valid for the call; version 3 reads exactly two
    // `CapData` entries.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(CapsError::Set(io::Error::last_os_error()));
    }
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(CapsError::NoNewPrivs)
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`; 40,
/// `CAP_CHECKPOINT_RESTORE`, on 6.x when unreadable).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Threads of this process that still hold an effective or permitted capability, as
/// `"TID (NAME)"`, from `/proc/self/task/*/status`. Empty once every thread has dropped.
pub fn threads_with_capabilities() -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        // A thread may exit between the listing and the read: skip it.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        if status_holds_capabilities(&status) {
            let name = status.lines().find_map(|l| l.strip_prefix("Name:")).unwrap_or("").trim();
            out.push(format!("{} ({name})", task.file_name().to_string_lossy()));
        }
    }
    Ok(out)
}

/// True when a `/proc/.../status` text shows a non-zero `CapEff` or `CapPrm` (hexadecimal).
pub fn status_holds_capabilities(status: &str) -> bool {
    status.lines().any(|l| {
        let v = l.strip_prefix("CapEff:").or_else(|| l.strip_prefix("CapPrm:"));
        v.is_some_and(|v| u64::from_str_radix(v.trim(), 16).ok().is_none_or(|n| n != 0))
    })
}

/// Spawns a thread that drops every capability before it runs `f`, and returns only once it
/// has: a check of the process's threads made after this (serve's warning) never sees it
/// still privileged. For the side threads (metrics, control, capture), whose sockets and files
/// are open before they start.
pub fn spawn_unprivileged<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<std::thread::JoinHandle<T>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let h = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        // Nothing privileged is left for this thread to do (capabilities are per thread).
        let _ = drop_capabilities();
        let _ = ready_tx.send(());
        f()
    })?;
    let _ = ready_rx.recv();
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_new_privs() -> bool {
        // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer arguments.
        unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
    }

    /// Capabilities are per thread: the drop runs in a thread of its own, so the test
    /// harness's threads (and the other tests) keep theirs, and the test checks that they do.
    #[test]
    fn drop_clears_only_the_calling_thread() {
        let before = thread_caps().expect("capget");
        let dropped = std::thread::spawn(|| {
            drop_capabilities().expect("drop");
            (thread_caps().expect("capget"), no_new_privs())
        })
        .join()
        .expect("thread");
        assert_eq!(dropped.0, ThreadCaps::default(), "every set is empty after the drop");
        assert!(dropped.1, "no_new_privs is set");
        assert_eq!(thread_caps().expect("capget"), before, "the other threads keep their sets");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_ne!(before.effective, 0, "root starts with capabilities, so the drop was real");
        } else {
            eprintln!("caps: not root; the drop ran on an already empty set (run as root for the real check)");
        }
    }

    /// A thread spawned after the drop inherits the empty sets (clone copies credentials).
    #[test]
    fn threads_spawned_after_the_drop_inherit_nothing() {
        let child = std::thread::spawn(|| {
            drop_capabilities().expect("drop");
            std::thread::spawn(|| thread_caps().expect("capget")).join().expect("grandchild")
        })
        .join()
        .expect("thread");
        assert_eq!(child, ThreadCaps::default());
    }

    #[test]
    fn dropping_twice_is_harmless() {
        std::thread::spawn(|| {
            drop_capabilities().expect("first");
            drop_capabilities().expect("second");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn status_parsing() {
        let zero = "Name:\txdptcp\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n";
        assert!(!status_holds_capabilities(zero), "a full bounding set alone is no capability");
        let eff = zero.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000003000");
        assert!(status_holds_capabilities(&eff));
        let prm = zero.replace("CapPrm:\t0000000000000000", "CapPrm:\t0000008000000000");
        assert!(status_holds_capabilities(&prm));
        assert!(status_holds_capabilities("CapEff:\tzz\n"), "unreadable counts as held");
    }
}
