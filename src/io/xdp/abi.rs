//! Mirrors of `bpf/shared.h`: the keys and values user space writes into the steering maps,
//! and the counter indices. Change both files together; the size assertions below (against
//! the C layout and against the types the skeleton generated from the object's BTF) catch a
//! drift at compile time.

use core::mem::size_of;
use std::net::IpAddr;

use super::skel::types as btf;

/// `STEER_FAMILY_IPV4` / `STEER_FAMILY_IPV6`.
pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

/// `STEER_F_OWN_ADDRESS`: the stack owns its addresses; ARP/ICMP/NDP for them are steered.
pub const F_OWN_ADDRESS: u32 = 1 << 0;

/// `maps.h` capacities, enforced by the loader before the kernel would refuse.
pub const MAX_QUEUES: u32 = 256;
pub const MAX_LISTEN: usize = 4096;
pub const MAX_OWNED_ADDRS: usize = 256;

/// `struct steer_config`: the single entry of the `config` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SteerConfigRaw {
    /// Inclusive; `min > max` means no client range.
    pub client_port_min: u16,
    pub client_port_max: u16,
    pub flags: u32,
}

/// `struct listen_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenKey {
    pub family: u8,
    pub pad: u8,
    /// Host byte order.
    pub port: u16,
    /// IPv4 in the first four bytes; all zero is the family's wildcard.
    pub addr: [u8; 16],
}

/// `struct addr_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrKey {
    pub family: u8,
    pub pad: [u8; 3],
    pub addr: [u8; 16],
}

/// `SHIELD_F_*`: bits of [`ShieldConfigRaw::flags`].
pub const SHIELD_F_ON: u32 = 1 << 0;
pub const SHIELD_F_TIMESTAMPS: u32 = 1 << 1;
pub const SHIELD_F_WINDOW_SCALING: u32 = 1 << 2;
pub const SHIELD_F_SACK: u32 = 1 << 3;

/// `SHIELD_KEY_PERIOD_NS`: the cookie-key epoch of the program; the engine's
/// `COOKIE_KEY_PERIOD` must be the same (it asserts so).
pub const SHIELD_KEY_PERIOD_NS: u64 = 600 * 1_000_000_000;
/// `SHIELD_KEY_GRACE_NS`: how long after the cores the program moves to an epoch's key.
pub const SHIELD_KEY_GRACE_NS: u64 = 1_000_000_000;

/// `struct shield_config`: the single entry of the `shield_cfg` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldConfigRaw {
    /// Engine clock = `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) + this.
    pub clock_offset_ns: i64,
    /// SipHash key of the timestamp offsets (`Secrets::ts_key`).
    pub ts_key: [u8; 16],
    /// `SHIELD_F_*`.
    pub flags: u32,
    pub mss_v4: u16,
    pub mss_v6: u16,
    /// Window field of the SYN-ACK.
    pub window: u16,
    /// Window scale offered when the SYN offered one.
    pub rcv_wscale: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    pub pad: u32,
}

/// `struct shield_key`: one slot of `shield_keys`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldKeyRaw {
    /// Engine clock / [`SHIELD_KEY_PERIOD_NS`].
    pub epoch: u64,
    pub key: [u8; 16],
}

const _: () = assert!(size_of::<ShieldConfigRaw>() == 40);
const _: () = assert!(size_of::<ShieldKeyRaw>() == 24);
const _: () = assert!(size_of::<ShieldConfigRaw>() == size_of::<btf::shield_config>());
const _: () = assert!(size_of::<ShieldKeyRaw>() == size_of::<btf::shield_key>());

impl ShieldConfigRaw {
    /// The bytes the map stores (native endianness, as the program reads them).
    pub fn to_bytes(self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&self.clock_offset_ns.to_ne_bytes());
        b[8..24].copy_from_slice(&self.ts_key);
        b[24..28].copy_from_slice(&self.flags.to_ne_bytes());
        b[28..30].copy_from_slice(&self.mss_v4.to_ne_bytes());
        b[30..32].copy_from_slice(&self.mss_v6.to_ne_bytes());
        b[32..34].copy_from_slice(&self.window.to_ne_bytes());
        b[34] = self.rcv_wscale;
        b[35] = self.ttl;
        b[36..40].copy_from_slice(&self.pad.to_ne_bytes());
        b
    }
}

impl ShieldKeyRaw {
    pub fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&self.epoch.to_ne_bytes());
        b[8..24].copy_from_slice(&self.key);
        b
    }
}

const _: () = assert!(size_of::<SteerConfigRaw>() == 8);
const _: () = assert!(size_of::<ListenKey>() == 20);
const _: () = assert!(size_of::<AddrKey>() == 20);
const _: () = assert!(size_of::<SteerConfigRaw>() == size_of::<btf::steer_config>());
const _: () = assert!(size_of::<ListenKey>() == size_of::<btf::listen_key>());
const _: () = assert!(size_of::<AddrKey>() == size_of::<btf::addr_key>());

fn family_and_bytes(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut addr = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            addr[..4].copy_from_slice(&a.octets());
            (FAMILY_IPV4, addr)
        }
        IpAddr::V6(a) => (FAMILY_IPV6, a.octets()),
    }
}

impl SteerConfigRaw {
    /// The bytes the map stores (native endianness: the program reads them as integers).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.client_port_min.to_ne_bytes());
        b[2..4].copy_from_slice(&self.client_port_max.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b
    }
}

impl ListenKey {
    /// The key for `ip:port`; an unspecified `ip` (0.0.0.0, ::) gives the family's wildcard.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        let (family, addr) = family_and_bytes(ip);
        ListenKey { family, pad: 0, port, addr }
    }

    pub fn to_bytes(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0] = self.family;
        b[1] = self.pad;
        b[2..4].copy_from_slice(&self.port.to_ne_bytes());
        b[4..20].copy_from_slice(&self.addr);
        b
    }
}

impl AddrKey {
    pub fn new(ip: IpAddr) -> Self {
        let (family, addr) = family_and_bytes(ip);
        AddrKey { family, pad: [0; 3], addr }
    }

    pub fn to_bytes(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0] = self.family;
        b[1..4].copy_from_slice(&self.pad);
        b[4..20].copy_from_slice(&self.addr);
        b
    }
}

/// `enum xsk_stat`: the per-CPU counters of the steering program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XskStat {
    /// Every frame the program ran on.
    Seen = 0,
    /// Handed to an AF_XDP socket (`bpf_redirect_map` answered `XDP_REDIRECT`).
    Redirected,
    /// Ours, but no AF_XDP socket on the rx queue: passed to the kernel.
    NoSocket,
    /// Every `XDP_PASS` verdict, whatever the reason.
    Passed,
    /// A header ran past the end of the frame: passed.
    Truncated,
    /// IPv4 version or IHL impossible: passed.
    BadHeader,
    /// IPv4 fragment: passed.
    Fragment,
    /// IPv6 with an extension header (not walked): passed.
    Ipv6Ext,
    /// TCP to a listening (address, port).
    MatchListen,
    /// TCP to an owned address with the port in the client range.
    MatchClient,
    /// ARP for an owned address (own-address mode).
    MatchArp,
    /// Other ICMP/ICMPv6/NDP for an owned address (own-address mode).
    MatchIcmp,
    /// An ICMP/ICMPv6 error (unreachable, packet too big, time exceeded, parameter problem)
    /// quoting a TCP segment whose source steering would take in reverse (either mode).
    MatchIcmpError,
    /// A pure SYN (SYN set; ACK, RST, FIN clear) to a listening (address, port), with the SYN
    /// shield on or off: the rate `serve --syn-shield auto` watches.
    Syn,
    /// SYN shield: a cookie SYN-ACK sent back by the program (`XDP_TX`).
    ShieldSynack,
    /// SYN shield: a SYN with a bad IPv4 or TCP checksum, dropped.
    ShieldDropChecksum,
    /// SYN shield: a SYN the stack would refuse (malformed options, lengths, source), dropped.
    ShieldDropMalformed,
    /// SYN shield on, but the SYN was left to the stack (data on the SYN, no key for the
    /// epoch, no room to grow the frame).
    ShieldToStack,
}

impl XskStat {
    /// `XSK_STAT__MAX`.
    pub const COUNT: usize = 18;

    pub const ALL: [XskStat; Self::COUNT] = [
        XskStat::Seen,
        XskStat::Redirected,
        XskStat::NoSocket,
        XskStat::Passed,
        XskStat::Truncated,
        XskStat::BadHeader,
        XskStat::Fragment,
        XskStat::Ipv6Ext,
        XskStat::MatchListen,
        XskStat::MatchClient,
        XskStat::MatchArp,
        XskStat::MatchIcmp,
        XskStat::MatchIcmpError,
        XskStat::Syn,
        XskStat::ShieldSynack,
        XskStat::ShieldDropChecksum,
        XskStat::ShieldDropMalformed,
        XskStat::ShieldToStack,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            XskStat::Seen => "seen",
            XskStat::Redirected => "redirected",
            XskStat::NoSocket => "no_socket",
            XskStat::Passed => "passed",
            XskStat::Truncated => "truncated",
            XskStat::BadHeader => "bad_header",
            XskStat::Fragment => "fragment",
            XskStat::Ipv6Ext => "ipv6_ext",
            XskStat::MatchListen => "match_listen",
            XskStat::MatchClient => "match_client",
            XskStat::MatchArp => "match_arp",
            XskStat::MatchIcmp => "match_icmp",
            XskStat::MatchIcmpError => "match_icmp_error",
            XskStat::Syn => "syn",
            XskStat::ShieldSynack => "shield_synack",
            XskStat::ShieldDropChecksum => "shield_drop_checksum",
            XskStat::ShieldDropMalformed => "shield_drop_malformed",
            XskStat::ShieldToStack => "shield_to_stack",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_indices_are_dense() {
        for (i, s) in XskStat::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }

    #[test]
    fn listen_key_layout() {
        let k = ListenKey::new("198.18.0.1".parse().unwrap(), 80).to_bytes();
        assert_eq!(k[0], FAMILY_IPV4);
        assert_eq!(u16::from_ne_bytes([k[2], k[3]]), 80);
        assert_eq!(&k[4..8], &[198, 18, 0, 1]);
        assert!(k[8..].iter().all(|&b| b == 0));
        let w = ListenKey::new("::".parse().unwrap(), 80).to_bytes();
        assert_eq!(w[0], FAMILY_IPV6);
        assert!(w[4..].iter().all(|&b| b == 0));
    }
}
