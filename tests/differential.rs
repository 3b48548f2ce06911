//! Differential tests: each scenario in `differential/scenarios/` is played against the Linux
//! kernel's TCP (in a network namespace, driven through AF_PACKET from another namespace) and
//! against the stack's `Shard` (in memory, clock advanced by hand). The two transcripts are
//! compared field by field: flags (PSH ignored), SEQ and ACK relative to the ISNs, window
//! zero or open, which options are present, payload length, and the outcome of application
//! calls. A line the stack answers differently on purpose carries `deviation: <reason>`.
//!
//! The scenario language is described in `differential/script.rs`. Needs root for the Linux
//! side; without it every scenario is skipped with a loud message (see `bed::privileged`).

#[path = "bed/mod.rs"]
mod bed;

#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/driver.rs"]
mod driver;
#[path = "differential/linux.rs"]
mod linux;
#[path = "differential/script.rs"]
mod script;
#[path = "differential/stack.rs"]
mod stack;

fn run(name: &str, text: &str) {
    if !bed::privileged(name) {
        return;
    }
    let sc = script::parse(name, text);
    let linux_t = {
        let mut dut = linux::LinuxDut::new(&sc.sysctls);
        driver::play(&sc, &mut dut)
        // The namespaces go away here (and on a panic above).
    };
    let mut dut = stack::StackDut::new(&sc.sysctls);
    let stack_t = driver::play(&sc, &mut dut);
    let v = compare::compare(&sc, &linux_t, &stack_t);
    for d in &v.deviations {
        println!("  declared: {d}");
    }
    assert!(v.linux_misses.is_empty(), "Linux did not follow the script:\n  {}", v.linux_misses.join("\n  "));
    assert!(v.differences.is_empty(), "the stack differs from Linux:\n  {}", v.differences.join("\n  "));
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name), include_str!(concat!("differential/scenarios/", stringify!($name), ".tcp")));
            }
        )*
    };
}

scenarios! {
    tw_syn_no_listener,
    syn_queue_rst_ratelimit,
    sws_reopen_one_byte,
    zero_window_reopen_after_rto,
    tlp_tail_probe,
    syn_queue_retx_syn_ratelimit,
    syn_queue_oow_ratelimit,
    syn_queue_inwindow_syn,
    fig06_active_open,
    fig06_passive_open,
    fig07_simultaneous_open,
    fig08_old_duplicate_syn_active,
    fig08_old_duplicate_syn_passive,
    fig09_half_open_discovery,
    fig09_half_open_syn_sent,
    fig10_active_side_half_open,
    fig11_old_duplicate_syn_two_listeners,
    fig12_normal_close_active,
    fig12_normal_close_passive,
    fig13_simultaneous_close,
    icmp_port_unreachable_syn_sent,
    rfc5961_ack_with_data,
    rfc5961_established,
    rfc5961_old_ack_after_data,
    rack_lost_retransmission,
    sack_blocks_order,
    sack_recovery_sender,
    sack_recovery_three_holes,
    sack_timestamps,
    syn_queue_bad_ack,
    syn_retransmit_syn_queue,
    syncookie_always,
    syncookie_forged_ack,
    tw_reuse_equal_tsval_higher_seq,
    tw_reuse_higher_seq,
    tw_reuse_higher_tsval,
    tw_reuse_lower_seq,
    tw_reuse_lower_tsval,
    tw_rst_rfc1337_off,
    tw_rst_rfc1337_on,
    wraparound_data,
    wraparound_sack,
    zero_window,
}
