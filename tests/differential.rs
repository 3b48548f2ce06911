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
    fig06_passive_open,
    fig06_active_open,
}
