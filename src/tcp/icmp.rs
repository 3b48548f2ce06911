//! ICMP errors about segments we sent, as TCP sees them: which ones end a connection attempt,
//! which ones are only reported.
//!
//! Read RFC 9293 §3.9.2.2, RFC 5461 (soft errors) and RFC 5927 (ICMP attacks) before editing.

use crate::wire::icmp::{v4_type, v6_type};

/// An ICMP error that quotes one of our TCP segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// IPv4 fragmentation needed (type 3 code 4) or ICMPv6 packet too big: the path MTU.
    PacketTooBig { mtu: u32 },
    /// Destination unreachable, time exceeded or parameter problem.
    Unreachable {
        /// A hard error (RFC 9293 §3.9.2.2: IPv4 destination unreachable codes 2-4). The codes
        /// RFC 9293 leaves open follow Linux's `icmp_err_convert` / `icmpv6_err_convert`
        /// "fatal" column: administratively prohibited, unknown network or host, isolated
        /// host, precedence problems, ICMPv6 port unreachable, policy failure, reject route.
        hard: bool,
        /// Port or protocol unreachable: the peer's answer to a SYN nobody listens for
        /// (ECONNREFUSED; RFC 9293 §3.8.3 lists it beside a RST as a failed open).
        refused: bool,
        /// Ends a passive SYN-RECEIVED (a SYN-queue entry) whose SYN-ACK it quotes. Linux's
        /// `tcp_req_err` rule: for IPv4 the errors saying the client's network or host is
        /// gone (net or host unreachable, time exceeded, parameter problem); for IPv6 the
        /// "fatal" ones of `icmpv6_err_convert`.
        ends_request: bool,
    },
}

impl IcmpError {
    const fn unreachable(hard: bool, refused: bool, ends_request: bool) -> IcmpError {
        IcmpError::Unreachable { hard, refused, ends_request }
    }

    /// Classifies an ICMPv4 error (fragmentation needed comes as [`IcmpError::PacketTooBig`]
    /// from the wire layer). `None` for messages TCP ignores: source quench (MUST-55) and
    /// anything that is not an error report.
    pub fn from_v4(icmp_type: u8, code: u8) -> Option<IcmpError> {
        match (icmp_type, code) {
            // Codes 0 net, 1 host unreachable: soft; they end a request.
            (v4_type::DST_UNREACHABLE, 0 | 1) => Some(Self::unreachable(false, false, true)),
            // Code 5 source route failed, 11/12 for type of service: soft.
            (v4_type::DST_UNREACHABLE, 5 | 11 | 12) => Some(Self::unreachable(false, false, false)),
            // Code 2 protocol, 3 port unreachable: hard, "connection refused".
            (v4_type::DST_UNREACHABLE, 2 | 3) => Some(Self::unreachable(true, true, false)),
            (v4_type::DST_UNREACHABLE, 6..=10 | 13..=15) => Some(Self::unreachable(true, false, false)),
            (v4_type::DST_UNREACHABLE, _) => None,
            (v4_type::TIME_EXCEEDED | v4_type::PARAMETER_PROBLEM, _) => Some(Self::unreachable(false, false, true)),
            _ => None,
        }
    }

    /// Classifies an ICMPv6 error (RFC 4443 §3; packet too big comes as
    /// [`IcmpError::PacketTooBig`]).
    pub fn from_v6(icmp_type: u8, code: u8) -> Option<IcmpError> {
        match (icmp_type, code) {
            // Code 0 no route, 2 beyond scope, 3 address unreachable: soft (RFC 9293 §3.9.2.2).
            (v6_type::DST_UNREACHABLE, 0 | 2 | 3) => Some(Self::unreachable(false, false, false)),
            // Code 4 port unreachable.
            (v6_type::DST_UNREACHABLE, 4) => Some(Self::unreachable(true, true, true)),
            // Code 1 administratively prohibited, 5 policy failure, 6 reject route.
            (v6_type::DST_UNREACHABLE, 1 | 5 | 6) => Some(Self::unreachable(true, false, true)),
            (v6_type::DST_UNREACHABLE, _) => None,
            (v6_type::TIME_EXCEEDED, _) => Some(Self::unreachable(false, false, false)),
            // Soft for a connection (RFC 9293 §3.9.2.2), "fatal" for Linux's request rule.
            (v6_type::PARAMETER_PROBLEM, _) => Some(Self::unreachable(false, false, true)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(e: Option<IcmpError>) -> Option<(bool, bool, bool)> {
        match e? {
            IcmpError::Unreachable { hard, refused, ends_request } => Some((hard, refused, ends_request)),
            IcmpError::PacketTooBig { .. } => None,
        }
    }

    #[test]
    fn rfc9293_soft_and_hard_classes() {
        // RFC 9293 §3.9.2.2 soft errors (IPv4): destination unreachable 0, 1, 5; time
        // exceeded 0, 1; parameter problem.
        for code in [0, 1, 5] {
            assert_eq!(class(IcmpError::from_v4(3, code)).map(|c| c.0), Some(false), "v4 unreachable code {code}");
        }
        for code in [0, 1] {
            assert_eq!(class(IcmpError::from_v4(11, code)).map(|c| c.0), Some(false));
        }
        assert_eq!(class(IcmpError::from_v4(12, 0)).map(|c| c.0), Some(false));
        // Hard: destination unreachable 2 and 3 (4 is packet too big, handled apart).
        assert_eq!(class(IcmpError::from_v4(3, 2)), Some((true, true, false)));
        assert_eq!(class(IcmpError::from_v4(3, 3)), Some((true, true, false)));
        assert_eq!(class(IcmpError::from_v4(3, 13)), Some((true, false, false)));
        // Source quench is discarded (MUST-55); echo is no error.
        assert_eq!(IcmpError::from_v4(4, 0), None);
        assert_eq!(IcmpError::from_v4(0, 0), None);
        // ICMPv6: unreachable 0 and 3 soft, port unreachable refused, time exceeded and
        // parameter problem soft.
        assert_eq!(class(IcmpError::from_v6(1, 0)).map(|c| c.0), Some(false));
        assert_eq!(class(IcmpError::from_v6(1, 3)).map(|c| c.0), Some(false));
        assert_eq!(class(IcmpError::from_v6(1, 4)).map(|c| (c.0, c.1)), Some((true, true)));
        assert_eq!(class(IcmpError::from_v6(1, 1)).map(|c| c.0), Some(true));
        assert_eq!(class(IcmpError::from_v6(3, 0)).map(|c| c.0), Some(false));
        assert_eq!(class(IcmpError::from_v6(4, 2)).map(|c| c.0), Some(false));
        assert_eq!(IcmpError::from_v6(128, 0), None);
    }

    /// Linux `tcp_v4_err` / `tcp_v6_err` call `tcp_req_err(.., abort)` with different rules:
    /// IPv4 drops a request on net/host unreachable, time exceeded and parameter problem; IPv6
    /// on the fatal errors of `icmpv6_err_convert`.
    #[test]
    fn which_errors_end_a_syn_queue_entry() {
        let v4 = |t, c| class(IcmpError::from_v4(t, c)).map(|x| x.2);
        for (t, c, ends) in
            [(3, 0, true), (3, 1, true), (11, 0, true), (12, 0, true), (3, 3, false), (3, 5, false), (3, 13, false)]
        {
            assert_eq!(v4(t, c), Some(ends), "v4 type {t} code {c}");
        }
        let v6 = |t, c| class(IcmpError::from_v6(t, c)).map(|x| x.2);
        for (t, c, ends) in [(1, 0, false), (1, 3, false), (3, 0, false), (1, 1, true), (1, 4, true), (4, 0, true)] {
            assert_eq!(v6(t, c), Some(ends), "v6 type {t} code {c}");
        }
    }
}
