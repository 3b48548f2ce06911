//! Arbitrary bytes as an ICMPv4 or ICMPv6 message (first byte: even = v4, odd = v6), and as
//! the quote of a fragmentation-needed message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xdptcp_fuzz::check_icmp(data);
});
