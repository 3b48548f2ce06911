//! Deployment: the systemd unit, the NIC setup script, the Kubernetes DaemonSet, the config
//! file, and the capabilities `serve` needs and drops.
//!
//! The file checks (unit keys, `systemd-analyze verify`, `kubernetes-validate`, the script's
//! dry run, `--config`) need no privileges. A tool they need that is missing is a loud skip, and
//! a failure under CI=true (scripts/deps.sh installs them). The bed tests need root: they run
//! `serve` as an unprivileged uid with the unit's ambient capabilities, with each of those
//! capabilities removed in turn, and as root, and check /proc for what is left after start.

mod bed;
use bed::serve_bed::BIN;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What `serve` needs on Linux 6.18, found by removing one at a time (README "Deployment").
const REQUIRED_CAPS: [&str; 4] = ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_NET_RAW"];
/// `serve --drain-timeout`'s default, seconds; the unit stops after this plus 5.
const DRAIN_DEFAULT_SECS: u64 = 10;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// A tool from PATH or the project's venv. Missing: a loud skip, or a failure under CI=true.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let venv = Path::new("/opt/xdptcp-venv/bin").join(name);
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(p) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {name} is missing (scripts/deps.sh installs it), and CI=true forbids skipping");
    }
    let bar = "!".repeat(78);
    let _ = writeln!(std::io::stderr(), "\n{bar}\n!!! SKIPPED {test}: no {name}; run scripts/deps.sh\n{bar}\n");
    None
}

/// A temporary file that removes itself.
struct TempFile(PathBuf);
impl TempFile {
    fn new(name: &str, body: &str) -> TempFile {
        let p = std::env::temp_dir().join(format!("xdptcp-ops-{}-{name}", std::process::id()));
        std::fs::write(&p, body).expect("write temp file");
        TempFile(p)
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The systemd unit

/// `(section, key, value)` of a unit file, continuation lines joined, comments dropped.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let full = std::mem::take(&mut pending) + line;
        if full.starts_with('[') && full.ends_with(']') {
            section = full.trim_matches(['[', ']']).to_string();
        } else if let Some((k, v)) = full.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        } else {
            panic!("unit line is neither a section nor key=value: {full}");
        }
    }
    out
}

fn unit_value(entries: &[(String, String, String)], section: &str, key: &str) -> String {
    let v: Vec<&str> =
        entries.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(v.len(), 1, "[{section}] {key}= must appear exactly once, found {v:?}");
    v[0].to_string()
}

fn cap_set(v: &str) -> BTreeSet<String> {
    v.split_whitespace().map(str::to_string).collect()
}

fn required() -> BTreeSet<String> {
    REQUIRED_CAPS.iter().map(|s| s.to_string()).collect()
}

/// The unit's `sh -c '...'` command as the shell sees it (systemd turns `$$` into `$`).
fn shell_command(exec: &str) -> String {
    let inner =
        exec.strip_prefix("/bin/sh -c '").and_then(|s| s.strip_suffix('\'')).expect("ExecStart* is /bin/sh -c '...'");
    inner.replace("$$", "$")
}

#[test]
fn unit_runs_unprivileged_with_the_measured_capabilities() {
    let u = unit_entries(&read("deploy/xdptcp.service"));
    assert_eq!(unit_value(&u, "Service", "User"), "xdptcp");
    assert_eq!(cap_set(&unit_value(&u, "Service", "AmbientCapabilities")), required());
    assert_eq!(cap_set(&unit_value(&u, "Service", "CapabilityBoundingSet")), required());
    assert_eq!(unit_value(&u, "Service", "LimitMEMLOCK"), "infinity", "the UMEM is locked memory; no CAP_IPC_LOCK");
    assert_eq!(unit_value(&u, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(unit_value(&u, "Service", "RuntimeDirectory"), "xdptcp");
    // README's Deployment section lists the same capabilities.
    let readme = read("README.md");
    let deploy = readme.split("### Deployment").nth(1).expect("README has a Deployment subsection");
    let deploy = deploy.split("\n## ").next().unwrap_or(deploy);
    for c in REQUIRED_CAPS {
        assert!(deploy.contains(c), "README Deployment lists {c}");
    }
}

#[test]
fn unit_takes_its_settings_from_the_environment_file() {
    let u = unit_entries(&read("deploy/xdptcp.service"));
    assert_eq!(unit_value(&u, "Service", "EnvironmentFile"), "/etc/default/xdptcp");
    let exec = shell_command(&unit_value(&u, "Service", "ExecStart"));
    let env = read("deploy/xdptcp.env");
    let defined: BTreeSet<&str> = env
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    for var in ["IFACE", "ADDR", "APP", "PORT", "QUEUES", "CORES", "CONFIG", "DRAIN_TIMEOUT", "XDPTCP_OPTS"] {
        assert!(defined.contains(var), "deploy/xdptcp.env defines {var}");
        assert!(
            exec.contains(&format!("${var}")) || exec.contains(&format!("${{{var}")),
            "ExecStart uses {var}: {exec}"
        );
    }
    // No hard-coded cores or queues: both come from the file, and only when set.
    assert!(!exec.contains("--cores 0") && !exec.contains("--cores 1") && !exec.contains("--cores 2"), "{exec}");
    assert!(
        exec.contains("${CORES:+--cores \"$CORES\"}") && exec.contains("${QUEUES:+--queues \"$QUEUES\"}"),
        "{exec}"
    );
    assert!(exec.contains("--stats-file /run/xdptcp/"), "the stats file lives in the RuntimeDirectory: {exec}");
}

#[test]
fn unit_stops_after_the_drain_and_never_gives_up_restarting() {
    let u = unit_entries(&read("deploy/xdptcp.service"));
    let stop: u64 = unit_value(&u, "Service", "TimeoutStopSec").parse().expect("TimeoutStopSec in seconds");
    assert_eq!(stop, DRAIN_DEFAULT_SECS + 5, "TimeoutStopSec = drain timeout + 5 s");
    assert_eq!(unit_value(&u, "Service", "KillSignal"), "SIGTERM");
    assert_eq!(unit_value(&u, "Service", "Restart"), "on-failure");
    let restart_sec: u64 = unit_value(&u, "Service", "RestartSec").parse().expect("RestartSec in seconds");
    assert!(restart_sec >= 1, "a pause between restarts");
    // systemd's default gives up after 5 starts in 10 s; 0 turns the limit off.
    assert_eq!(unit_value(&u, "Unit", "StartLimitIntervalSec"), "0");
    let pre = shell_command(&unit_value(&u, "Service", "ExecStartPre"));
    assert!(pre.contains("ip -d link show dev \"$IFACE\"") && pre.contains("prog/xdp"), "{pre}");
    assert!(pre.contains("already has an XDP program attached"), "{pre}");
}

/// `systemd-analyze verify` on the unit, with the binary and the environment file pointed at
/// this build (verify checks that ExecStart exists). Its warnings count as failures.
#[test]
fn unit_passes_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze", "unit_passes_systemd_analyze_verify") else { return };
    let unit = read("deploy/xdptcp.service")
        .replace("/usr/local/bin/xdptcp", BIN)
        .replace("/etc/default/xdptcp", &repo("deploy/xdptcp.env").to_string_lossy());
    let dir = std::env::temp_dir().join(format!("xdptcp-ops-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("xdptcp.service");
    std::fs::write(&path, unit).expect("write unit");
    let o = Command::new(analyze).arg("verify").arg(&path).output().expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // In a container without systemd as PID 1 verify still parses the unit; it only cannot
    // talk to a manager, which is not about the unit.
    let about_unit: Vec<&str> = stderr.lines().filter(|l| l.contains("xdptcp.service")).collect();
    assert!(o.status.success() && about_unit.is_empty(), "systemd-analyze verify:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The DaemonSet

#[test]
fn daemonset_passes_kubernetes_validate() {
    let Some(validate) = tool("kubernetes-validate", "daemonset_passes_kubernetes_validate") else { return };
    let o = Command::new(&validate).arg("--strict").arg(repo("deploy/k8s/daemonset.yaml")).output().expect("run");
    assert!(o.status.success(), "kubernetes-validate --strict:\n{}", text(&o));
    // The validator does catch a misspelt field (so the pass above means something).
    let bad = read("deploy/k8s/daemonset.yaml").replace("hostNetwork: true", "hostNetwrk: true");
    let bad = TempFile::new("bad-daemonset.yaml", &bad);
    let o = Command::new(&validate).arg("--strict").arg(&bad.0).output().expect("run");
    assert!(!o.status.success(), "a misspelt field is refused:\n{}", text(&o));
}

/// The indented block under `key: |` in the manifest.
fn yaml_block<'a>(yaml: &'a str, key: &str) -> Vec<&'a str> {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next().expect("block key");
    let indent = head.len() - head.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect()
}

#[test]
fn daemonset_is_guaranteed_with_the_needed_capabilities() {
    let y = read("deploy/k8s/daemonset.yaml");
    assert!(y.contains("kind: DaemonSet") && y.contains("hostNetwork: true"));
    // Capabilities: all dropped, then the unit's set plus IPC_LOCK (a pod cannot raise
    // RLIMIT_MEMLOCK as the unit does).
    assert!(y.contains("drop: [\"ALL\"]"), "drops ALL");
    let add = y.lines().find_map(|l| l.trim().strip_prefix("add: ")).expect("capabilities add");
    let add: BTreeSet<String> =
        add.trim_matches(['[', ']']).split(',').map(|s| format!("CAP_{}", s.trim().trim_matches('"'))).collect();
    let mut want = required();
    want.insert("CAP_IPC_LOCK".into());
    assert_eq!(add, want);
    // Guaranteed QoS for the static CPU manager: integer CPUs, requests == limits.
    let value = |section: &str, key: &str| {
        let after = y.split(&format!("{section}:\n")).nth(1).expect(section);
        after.lines().find_map(|l| l.trim().strip_prefix(&format!("{key}: "))).expect(key).trim_matches('"').to_string()
    };
    let (req_cpu, lim_cpu) = (value("requests", "cpu"), value("limits", "cpu"));
    assert_eq!(req_cpu, lim_cpu);
    assert!(req_cpu.parse::<u32>().is_ok_and(|n| n >= 1), "an integer CPU count, not {req_cpu}");
    assert_eq!(value("requests", "memory"), value("limits", "memory"));
    assert!(y.contains("cpu-manager-policy=static"), "says how the kubelet must run");
    assert!(y.contains("mountPath: /run/xdptcp") && y.contains("path: /metrics") && y.contains("nodeSelector:"));
    assert!(y.contains("terminationGracePeriodSeconds: 15"), "drain + 5 s, as the unit");
}

#[test]
fn daemonset_config_map_is_a_valid_config_file() {
    let y = read("deploy/k8s/daemonset.yaml");
    let toml = yaml_block(&y, "xdptcp.toml").join("\n");
    let f = TempFile::new("cm.toml", &toml);
    let o = Command::new(BIN).args(["serve", "--config"]).arg(&f.0).arg("--print-config").output().expect("run");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("iface = \"eth1\"") && out.contains("# config file: iface"), "{out}");
    assert!(out.contains("syncookies = 1") && out.contains("# config file: net.ipv4.tcp_syncookies"), "{out}");
    assert!(out.contains("stats-file = \"/run/xdptcp/xdptcp.stats\""), "{out}");
}

// ---------------------------------------------------------------------------------------------
// serve --config from the command line

#[test]
fn config_file_bad_value_names_key_value_and_range() {
    let f = TempFile::new("bad.toml", "iface = \"eth1\"\n[net.ipv4]\ntcp_syncookies = 7\n");
    let o = Command::new(BIN).args(["serve", "--config"]).arg(&f.0).output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "a usage error: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("net.ipv4.tcp_syncookies = 7: 7 is not in 0..=2"), "{err}");
    let f = TempFile::new("unknown.toml", "iface = \"eth1\"\nsomaxcon = 10\n");
    let o = Command::new(BIN).args(["serve", "--config"]).arg(&f.0).output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown key `somaxcon` (did you mean `somaxconn`?)"), "{err}");
}

#[test]
fn config_file_good_and_overridden_on_the_command_line() {
    let f = TempFile::new(
        "good.toml",
        "iface = \"eth9\"\nqueues = 2\nalso = [\"80:http\"]\nquiet = true\n\"net.core.somaxconn\" = 128\n[net.ipv4]\ntcp_fin_timeout = 30\n",
    );
    let o = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&f.0)
        .args(["--queues", "4", "--print-config"])
        .output()
        .expect("run");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let line = |p: &str| out.lines().find(|l| l.starts_with(p)).unwrap_or_default().to_string();
    assert!(line("queues = 4").contains("# command line"), "{out}");
    assert!(line("also = [\"80:http\"]").contains("# config file: also"), "{out}");
    assert!(line("somaxconn = 128").contains("# config file: net.core.somaxconn"), "{out}");
    assert!(line("fin-timeout = 30").contains("# config file: net.ipv4.tcp_fin_timeout"), "{out}");
    assert!(line("quiet = true").contains("# config file: quiet"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// nic-setup.sh, without privileges

fn nic_setup(args: &[&str], interrupts: Option<&Path>) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo("deploy/nic-setup.sh")).args(args);
    if let Some(p) = interrupts {
        c.env("NIC_SETUP_INTERRUPTS", p);
    }
    c.output().expect("run nic-setup.sh")
}

/// `--dry-run` prints every command, IRQ affinity included (from a /proc/interrupts fixture
/// naming `lo`'s queues), and changes nothing.
#[test]
fn nic_setup_dry_run_lists_every_command() {
    let fixture = read("tests/data/nic-setup-interrupts").replace("@IF@", "lo");
    let f = TempFile::new("interrupts", &fixture);
    let o = nic_setup(
        &["--iface", "lo", "--queues", "3", "--cores", "4,6,8", "--client-ports", "40000-40999", "--dry-run"],
        Some(&f.0),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let cmds: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("+ ")).collect();
    let has = |c: &str| cmds.contains(&c);
    assert!(has("ethtool -L lo combined 3") || has("ethtool -L lo rx 3 tx 3"), "{out}");
    assert!(has("ethtool -X lo equal 3"), "{out}");
    for irq_core in [
        "echo 4 > /proc/irq/25/smp_affinity_list",
        "echo 6 > /proc/irq/26/smp_affinity_list",
        "echo 8 > /proc/irq/27/smp_affinity_list",
    ] {
        assert!(has(irq_core), "{irq_core}: {out}");
    }
    assert_eq!(cmds.iter().filter(|l| l.contains("/proc/irq/")).count(), 3, "only lo's queue IRQs: {out}");
    assert!(has("sysctl -q -w net.ipv4.ip_local_reserved_ports=40000-40999"), "{out}");
    for f in ["gro", "rx-vlan-offload"] {
        let off = format!("ethtool -K lo {f} off");
        assert!(has(&off) || out.contains(&format!("# {f}: off (fixed")), "{f}: {out}");
    }
    assert!(out.contains("dry run: nothing changed"), "{out}");
}

#[test]
fn nic_setup_refuses_bad_arguments() {
    for (args, want) in [
        (&["--iface", "lo", "--queues", "0", "--dry-run"][..], "--queues must be a positive integer"),
        (&["--iface", "lo", "--queues", "2", "--cores", "1", "--dry-run"][..], "--cores lists 1 core(s) for 2 queues"),
        (
            &["--iface", "lo", "--queues", "1", "--client-ports", "5000-4000", "--dry-run"][..],
            "need 1 <= A <= B <= 65535",
        ),
        (&["--iface", "no-such-if0", "--queues", "1", "--dry-run"][..], "no interface 'no-such-if0'"),
        (&["--queues", "1"][..], "--iface is required"),
    ] {
        let o = nic_setup(args, None);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// On the bed (root)

#[cfg(feature = "xdp")]
mod on_bed {
    use super::*;
    use bed::serve_bed::{Bed, SERIAL};
    use bed::{counter, privileged};
    use std::process::{Child, Stdio};
    use std::time::Duration;

    /// uid/gid `nobody`: no capabilities of its own, owns nothing.
    const NOBODY: &str = "65534";

    /// setpriv's spelling: `cap_net_admin` -> `net_admin`.
    fn setpriv_caps(caps: &[&str]) -> String {
        caps.iter().map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())).collect::<Vec<_>>().join(",")
    }

    /// The unit's ExecStart, as the unit runs it: uid nobody with `caps` as its ambient,
    /// inheritable and bounding sets, RLIMIT_MEMLOCK unlimited, the settings in the environment.
    /// `ip netns exec`, prlimit, setpriv and `sh -c 'exec ...'` all exec, so the child's pid is
    /// serve's.
    fn serve_as_unit(bed: &Bed, caps: &[&str], stats_dir: &Path, opts: &str) -> Child {
        let u = unit_entries(&read("deploy/xdptcp.service"));
        let exec = shell_command(&unit_value(&u, "Service", "ExecStart"))
            .replace("/usr/local/bin/xdptcp", BIN)
            .replace("/run/xdptcp/", &format!("{}/", stats_dir.display()));
        let set = setpriv_caps(caps);
        let (inh, bounding) = if caps.is_empty() {
            ("-all".to_string(), "-all".to_string())
        } else {
            (format!("-all,{set}"), format!("-all,{set}"))
        };
        let mut c = Command::new("ip");
        // On one CPU, the last one, as a cpuset would give it: serve's default pinning must
        // follow (queue 0 on that CPU, not on CPU 0).
        c.args(["netns", "exec", &bed.ns_srv(), "taskset", "-c", &last_cpu().to_string()]);
        // The unit's LimitMEMLOCK=infinity, where this root may raise the hard limit (it needs
        // CAP_SYS_RESOURCE, which some containers withhold); otherwise the UMEM is kept under
        // the limit there is (the default 8 MiB: 2048 frames of 2048 bytes use 4 MiB).
        let opts = if can_unlimit_memlock() {
            c.args(["prlimit", "--memlock=unlimited:unlimited"]);
            opts.to_string()
        } else {
            format!("{opts} --umem-frames 2048")
        };
        c.arg("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .arg(format!("--inh-caps={inh}"))
            .arg(format!("--bounding-set={bounding}"));
        if !caps.is_empty() {
            c.arg(format!("--ambient-caps={set}"));
        }
        c.args(["/bin/sh", "-c", &exec])
            .env("IFACE", bed.dev_srv())
            .env("ADDR", "198.18.0.1")
            .env("APP", "echo")
            .env("PORT", "7")
            .env("QUEUES", "")
            .env("CORES", "")
            .env("CONFIG", "")
            .env("DRAIN_TIMEOUT", "")
            .env("XDPTCP_OPTS", &opts)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("start serve as the unit does")
    }

    /// The highest CPU this test may run on.
    fn last_cpu() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("0").trim().to_string();
        list.split([',', '-']).filter_map(|n| n.trim().parse().ok()).max().unwrap_or(0)
    }

    fn can_unlimit_memlock() -> bool {
        let ok = Command::new("prlimit")
            .args(["--memlock=unlimited:unlimited", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = writeln!(
                std::io::stderr(),
                "note: cannot raise RLIMIT_MEMLOCK here (no CAP_SYS_RESOURCE): serving with a UMEM under the current limit"
            );
        }
        ok
    }

    fn stats_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xdptcp-ops-run-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("stats dir");
        let st = Command::new("chown").arg(format!("{NOBODY}:{NOBODY}")).arg(&d).status().expect("chown");
        assert!(st.success());
        d
    }

    /// Waits until serve has written `file` from its loop (it stamps an empty one while it
    /// checks its flags, and adds the counters once a second once it serves).
    fn wait_for(file: &Path, child: &mut Child) {
        for _ in 0..100 {
            if std::fs::read_to_string(file).is_ok_and(|s| s.contains("uptime_seconds")) {
                return;
            }
            if let Ok(Some(st)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("serve exited early ({st}):\n{err}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve wrote no {} in 10 s", file.display());
    }

    /// `(task, name, CapEff, CapPrm, CapBnd, NoNewPrivs)` of every thread of `pid`.
    fn thread_caps(pid: u32) -> Vec<(String, String, String, String, String, String)> {
        let mut out = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
            let t = t.expect("task");
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let get = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("?").trim().to_string();
            out.push((
                t.file_name().to_string_lossy().to_string(),
                get("Name:"),
                get("CapEff:"),
                get("CapPrm:"),
                get("CapBnd:"),
                get("NoNewPrivs:"),
            ));
        }
        out
    }

    fn assert_no_capabilities(pid: u32, want_threads: usize, bounding_too: bool) {
        let caps = thread_caps(pid);
        assert!(caps.len() >= want_threads, "main thread and one per queue: {caps:?}");
        assert!(caps.iter().any(|t| t.1.starts_with("xdptcp-q")), "the core threads are there: {caps:?}");
        for (tid, name, eff, prm, bnd, nnp) in &caps {
            assert_eq!(u64::from_str_radix(eff, 16), Ok(0), "thread {tid} ({name}) CapEff");
            assert_eq!(u64::from_str_radix(prm, 16), Ok(0), "thread {tid} ({name}) CapPrm");
            assert_eq!(nnp, "1", "thread {tid} ({name}) NoNewPrivs");
            if bounding_too {
                assert_eq!(u64::from_str_radix(bnd, 16), Ok(0), "thread {tid} ({name}) CapBnd");
            }
        }
    }

    /// The unit's way: uid nobody with exactly the four ambient capabilities serves kernel
    /// clients, and after start no thread holds any capability. The unit's ExecStartPre names
    /// the attached program while serve runs, and says nothing otherwise.
    #[test]
    fn unprivileged_serve_with_the_unit_capabilities() {
        if !privileged("unprivileged_serve_with_the_unit_capabilities") {
            return;
        }
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut bed = Bed::up("d1", "shared");
        let dir = stats_dir("d1");
        let mut child = serve_as_unit(&bed, &REQUIRED_CAPS, &dir, "--quiet");
        wait_for(&dir.join("xdptcp.stats"), &mut child);
        let pid = child.id();
        bed.server = Some(child);
        assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim(), "xdptcp");
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(uid.lines().any(|l| l.starts_with("Uid:") && l.contains(NOBODY)), "runs as nobody: {uid}");
        assert_no_capabilities(pid, 2, false);
        let q0 = std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("tasks")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
            .find(|s| s.lines().any(|l| l.starts_with("Name:") && l.contains("xdptcp-q0")))
            .expect("queue 0's thread");
        let pinned = q0.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("").trim().to_string();
        assert_eq!(pinned, last_cpu().to_string(), "queue 0 pinned to the one CPU serve may use");
        let out = bed.kclient(&["--conns", "50", "--concurrency", "8", "--bytes", "1000"]);
        assert_eq!(out.matches(" 25 ok").count(), 2, "{out}");

        let u = unit_entries(&read("deploy/xdptcp.service"));
        let pre = shell_command(&unit_value(&u, "Service", "ExecStartPre"));
        let (ns, dev) = (bed.ns_srv(), bed.dev_srv());
        let run_pre = || {
            let o = Command::new("ip")
                .args(["netns", "exec", &ns, "/bin/sh", "-c", &pre])
                .env("IFACE", &dev)
                .output()
                .expect("ExecStartPre");
            assert!(o.status.success(), "ExecStartPre only logs: {}", text(&o));
            String::from_utf8_lossy(&o.stderr).to_string()
        };
        let said = run_pre();
        assert!(said.contains(&format!("{} already has an XDP program attached (prog/xdp", bed.dev_srv())), "{said}");

        let summary = bed.stop();
        // Reading the steering program's counters after the drop still works (map fd).
        assert!(counter(&summary, "xdp_redirected") > 0, "{summary}");
        assert!(!bed.xdp_attached(), "the link went with the process");
        assert_eq!(run_pre(), "", "nothing attached: nothing said");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Each of the four is needed: without it serve stops at start with one line that names
    /// it, and leaves nothing attached.
    #[test]
    fn each_unit_capability_is_required() {
        if !privileged("each_unit_capability_is_required") {
            return;
        }
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bed = Bed::up("d2", "shared");
        let dir = stats_dir("d2");
        for missing in REQUIRED_CAPS {
            let caps: Vec<&str> = REQUIRED_CAPS.iter().copied().filter(|c| *c != missing).collect();
            let child = serve_as_unit(&bed, &caps, &dir, "--quiet --duration 5");
            let o = child.wait_with_output().expect("wait serve");
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert!(!o.status.success(), "serve without {missing} must fail:\n{err}");
            // Checked before anything is loaded: one line naming exactly what is missing.
            let last = err.lines().rev().find(|l| l.starts_with("xdptcp: ")).unwrap_or("");
            assert!(
                last.starts_with(&format!("xdptcp: missing capabilities: {missing} (")),
                "without {missing}: names what is missing: {last}\n{err}"
            );
            assert!(!err.contains("libbpf:"), "without {missing}: no libbpf chatter:\n{err}");
            assert!(!bed.xdp_attached(), "without {missing}: nothing left attached");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// As root on two queues, after deploy/nic-setup.sh has prepared the veth for real: every
    /// thread ends with empty effective, permitted and bounding sets, and kernel clients are
    /// served. nic-setup.sh skips what veth lacks (RSS, IRQs) with a message, and refuses a
    /// queue count the device cannot have.
    #[test]
    fn root_serve_after_nic_setup_keeps_no_capability() {
        if !privileged("root_serve_after_nic_setup_keeps_no_capability") {
            return;
        }
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut bed = Bed::up_queues("d3", "shared", 2);
        let setup = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &bed.ns_srv(), "bash"])
                .arg(repo("deploy/nic-setup.sh"))
                .args(["--iface", &bed.dev_srv()])
                .args(args)
                .output()
                .expect("nic-setup.sh")
        };
        let o = setup(&["--queues", "2", "--client-ports", "40000-40999"]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("skip: RSS indirection table on xtd3-s"), "veth has no RSS, said so: {out}");
        assert!(out.contains("skip: IRQ affinity: no queue interrupts found for xtd3-s"), "{out}");
        assert!(out.contains("xtd3-s ready: 2 queue(s)"), "{out}");
        let sysctl = Command::new("ip")
            .args(["netns", "exec", &bed.ns_srv(), "sysctl", "-n", "net.ipv4.ip_local_reserved_ports"])
            .output()
            .expect("sysctl");
        assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "40000-40999");
        let k = Command::new("ip")
            .args(["netns", "exec", &bed.ns_srv(), "ethtool", "-k", &bed.dev_srv()])
            .output()
            .expect("ethtool");
        let k = String::from_utf8_lossy(&k.stdout).to_string();
        assert!(k.contains("generic-receive-offload: off") && k.contains("rx-vlan-offload: off"), "{k}");
        let o = setup(&["--queues", "3"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains("xtd3-s has 2 receive queue(s), not 3"), "{}", text(&o));

        bed.serve(&["--stats-file", "none"]);
        assert_no_capabilities(bed.server_pid(), 3, true);
        let out = bed.kclient(&["--conns", "40", "--concurrency", "8", "--bytes", "1000"]);
        assert_eq!(out.matches(" 20 ok").count(), 2, "{out}");
        let summary = bed.stop();
        assert!(counter(&summary, "TcpPassiveOpens") >= 40, "{summary}");
    }
}
