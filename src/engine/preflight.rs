//! Checks `serve` runs before it loads or attaches anything: each refusal is one line that
//! names the flag or the privilege and says what to do, and nothing is left attached.

use anyhow::{bail, Result};
use std::net::IpAddr;

pub use super::caps::{CAP_BPF, CAP_IPC_LOCK, CAP_NET_ADMIN, CAP_NET_RAW, CAP_PERFMON, CAP_SYS_ADMIN};

/// The effective capability set of the calling (main) thread, the one that loads and attaches.
pub fn effective_caps() -> Option<u64> {
    super::caps::thread_caps().ok().map(|c| c.effective)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Refuses to start without the capabilities the datapath needs, naming the missing ones.
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (kernels before 5.8 know only it).
pub fn check_capabilities(caps: u64) -> Result<()> {
    let missing: Vec<String> = super::caps::REQUIRED
        .iter()
        .filter(|(c, _, _)| !has(caps, *c) && !((*c == CAP_BPF || *c == CAP_PERFMON) && has(caps, CAP_SYS_ADMIN)))
        .map(|(_, name, why)| format!("{name} ({why})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "missing capabilities: {}; run it as root, or grant CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_NET_RAW \
         (systemd: AmbientCapabilities=, see deploy/xdptcp.service; or `setcap` on the binary), \
         and CAP_IPC_LOCK or a memlock limit above the UMEM size",
        missing.join(", ")
    )
}

/// RLIMIT_MEMLOCK (soft), in bytes; None when unlimited.
pub fn memlock_limit() -> Option<u64> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the valid struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(r.rlim_cur)
}

/// The UMEMs are locked memory charged against RLIMIT_MEMLOCK unless the process holds
/// CAP_IPC_LOCK (the kernel's `xdp_umem_account_pages`); refuse before binding rather than
/// fail with ENOBUFS.
pub fn check_memlock(caps: u64, umem_bytes: u64, limit: Option<u64>) -> Result<()> {
    let Some(limit) = limit else { return Ok(()) };
    if has(caps, CAP_IPC_LOCK) || umem_bytes <= limit {
        return Ok(());
    }
    bail!(
        "the UMEM needs {} KiB of locked memory (--umem-frames x --frame-size x queues) and the memlock limit \
         is {} KiB; raise it (`ulimit -l unlimited`, LimitMEMLOCK=infinity in the systemd unit) or grant \
         CAP_IPC_LOCK, or lower --umem-frames",
        umem_bytes / 1024,
        limit / 1024
    )
}

/// `--cores`: one per served queue, each a CPU this process may run on.
pub fn check_cores(cores: &[usize], queues: u32, allowed: &[usize]) -> Result<()> {
    if cores.is_empty() {
        // By default queue q goes to the q-th CPU this process may use (a cpuset or systemd's
        // CPUAffinity= may leave fewer than there are queues).
        if allowed.len() < queues as usize {
            bail!(
                "{queues} queues and only {} CPU(s) this process may use ({}); give the NIC fewer queues \
                 (ethtool -L IFACE combined {}) or the process more CPUs",
                allowed.len(),
                list(allowed),
                allowed.len().max(1)
            );
        }
        return Ok(());
    }
    if cores.len() != queues as usize {
        bail!(
            "--cores names {} CPU(s) for {queues} queue(s); give one CPU per queue, e.g. --cores {}",
            cores.len(),
            list(&allowed.iter().copied().take(queues as usize).collect::<Vec<_>>())
        );
    }
    if let Some(c) = cores.iter().find(|c| !allowed.contains(c)) {
        bail!("--cores {}: CPU {c} is not one this process may run on (allowed: {})", list(cores), list(allowed));
    }
    Ok(())
}

fn list(v: &[usize]) -> String {
    v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

/// CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids().map(|v| v.into_iter().map(|c| c.id).collect()).unwrap_or_default()
}

/// The addresses configured on `iface` (getifaddrs(3)).
pub fn iface_addrs(iface: &str) -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list and stores its head in `head`; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != iface.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose family says its type.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET {
            // SAFETY: the family is AF_INET, so the sockaddr is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
        } else if family == libc::AF_INET6 {
            // SAFETY: the family is AF_INET6, so the sockaddr is a sockaddr_in6.
            let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
            out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The addresses shared-address mode serves: those asked for, which must be on `iface`
/// ([`check_shared_addrs`]), or, when none is asked for, every address `iface` has.
pub fn served_addrs(iface: &str, wanted: &[IpAddr], have: &[IpAddr]) -> Result<Vec<IpAddr>> {
    if wanted.is_empty() {
        if have.is_empty() {
            bail!("{iface} has no address to serve: add one (`ip addr add ... dev {iface}`) or name it with --addr");
        }
        return Ok(have.to_vec());
    }
    check_shared_addrs(iface, wanted, have)?;
    Ok(wanted.to_vec())
}

/// Shared-address mode serves addresses the host already has on `iface` (the kernel answers
/// ARP and ICMP for them); one that is not there would never see a packet.
pub fn check_shared_addrs(iface: &str, wanted: &[IpAddr], have: &[IpAddr]) -> Result<()> {
    if let Some(a) = wanted.iter().find(|a| !have.contains(a)) {
        bail!(
            "--addr {a}: not an address of {iface} (it has: {}); in shared-address mode the stack serves the host's own \
             addresses: add it (`ip addr add {a}/24 dev {iface}`), or pass --own-address for the stack to answer ARP \
             for it itself",
            if have.is_empty() { "none".to_string() } else { have.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ") }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_BPF) | (1 << CAP_PERFMON);

    #[test]
    fn capabilities_name_what_is_missing() {
        assert!(check_capabilities(ALL).is_ok());
        assert!(check_capabilities((1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYS_ADMIN)).is_ok());
        let e = check_capabilities(ALL & !(1 << CAP_PERFMON)).unwrap_err().to_string();
        assert!(e.contains("capabilities: CAP_PERFMON (") && !e.contains("CAP_BPF ("), "{e}");
        let e = check_capabilities(0).unwrap_err().to_string();
        for n in ["CAP_NET_ADMIN (", "CAP_BPF (", "CAP_PERFMON (", "CAP_NET_RAW ("] {
            assert!(e.contains(n), "{e}");
        }
    }

    #[test]
    fn memlock_is_checked_only_without_ipc_lock_and_a_finite_limit() {
        assert!(check_memlock(ALL, 16 << 20, None).is_ok());
        assert!(check_memlock(ALL | (1 << CAP_IPC_LOCK), 16 << 20, Some(8 << 20)).is_ok());
        assert!(check_memlock(ALL, 8 << 20, Some(8 << 20)).is_ok());
        let e = check_memlock(ALL, 16 << 20, Some(8 << 20)).unwrap_err().to_string();
        assert!(e.contains("16384 KiB") && e.contains("8192 KiB") && e.contains("ulimit -l"), "{e}");
    }

    #[test]
    fn cores_one_per_queue_each_allowed() {
        assert!(check_cores(&[], 2, &[0, 1]).is_ok());
        assert!(check_cores(&[1, 0], 2, &[0, 1]).is_ok());
        assert!(check_cores(&[], 1, &[1]).is_ok(), "queue 0 on the one CPU allowed");
        assert!(check_cores(&[], 2, &[1]).unwrap_err().to_string().contains("2 queues and only 1 CPU(s)"));
        let e = check_cores(&[7, 9], 2, &[0, 1]).unwrap_err().to_string();
        assert!(e.contains("--cores 7,9: CPU 7") && e.contains("allowed: 0,1"), "{e}");
        let e = check_cores(&[0], 2, &[0, 1]).unwrap_err().to_string();
        assert!(e.contains("1 CPU(s) for 2 queue(s)"), "{e}");
    }

    #[test]
    fn shared_addresses_must_be_on_the_interface() {
        let have: Vec<IpAddr> = vec!["198.18.0.1".parse().unwrap()];
        assert!(check_shared_addrs("x", &have, &have).is_ok());
        let e = check_shared_addrs("x", &["198.18.0.9".parse().unwrap()], &have).unwrap_err().to_string();
        assert!(e.contains("--addr 198.18.0.9: not an address of x (it has: 198.18.0.1)"), "{e}");
    }

    #[test]
    fn no_addr_serves_every_address_of_the_interface() {
        let have: Vec<IpAddr> = vec!["198.18.0.1".parse().unwrap(), "fd00:1813::1".parse().unwrap()];
        assert_eq!(served_addrs("x", &[], &have).unwrap(), have);
        assert_eq!(served_addrs("x", &have[..1], &have).unwrap(), have[..1].to_vec());
        assert!(served_addrs("x", &[], &[]).unwrap_err().to_string().contains("x has no address"));
    }

    #[test]
    fn loopback_has_its_address() {
        assert!(iface_addrs("lo").unwrap().contains(&IpAddr::from([127, 0, 0, 1])));
    }
}
