//! Arbitrary bytes as an Ethernet frame: Ethernet → ARP / IPv4 / IPv6 → TCP / ICMP. Never
//! panics; whatever parses re-emits and parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xdptcp_fuzz::check_frame(data);
    // The same bytes straight into the layers below Ethernet.
    xdptcp_fuzz::check_ipv4(data);
    xdptcp_fuzz::check_ipv6(data);
    xdptcp_fuzz::check_tcp(data, 0);
});
