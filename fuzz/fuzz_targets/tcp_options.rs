//! Arbitrary bytes as a TCP options area, alone and inside a header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xdptcp_fuzz::check_options(data);
});
