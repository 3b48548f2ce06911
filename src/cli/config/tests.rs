use super::*;

fn path() -> PathBuf {
    PathBuf::from("t.toml")
}

fn args_of(text: &str) -> Vec<String> {
    parse(&path(), text).expect("parses").into_iter().flat_map(|e| e.args).collect()
}

fn err_of(text: &str) -> String {
    parse(&path(), text).expect_err("refused").to_string()
}

#[test]
fn flags_map_to_arguments() {
    let a = args_of(
        "iface = \"eth1\"\nqueues = 2\nalso = [\"80:http\", \"81:discard\"]\nquiet = true\nown_address = false\nmax-syn-backlog = 128\n",
    );
    assert_eq!(
        a,
        ["--iface=eth1", "--queues=2", "--also=80:http", "--also=81:discard", "--quiet", "--max-syn-backlog=128"]
    );
}

#[test]
fn sysctl_names_quoted_dotted_and_nested_are_one_key() {
    let quoted = args_of("\"net.ipv4.tcp_syncookies\" = 2\n\"net.core.somaxconn\" = 512\n");
    let dotted = args_of("net.ipv4.tcp_syncookies = 2\nnet.core.somaxconn = 512\n");
    let nested = args_of("[net.ipv4]\ntcp_syncookies = 2\n[net.core]\nsomaxconn = 512\n");
    assert_eq!(quoted, ["--syncookies=2", "--somaxconn=512"]);
    assert_eq!(dotted, quoted);
    assert_eq!(nested, quoted);
    let all = args_of(
        "[net.ipv4]\ntcp_max_syn_backlog = 64\ntcp_synack_retries = 3\ntcp_fin_timeout = 30\ntcp_abort_on_overflow = 1\n",
    );
    assert_eq!(all, ["--max-syn-backlog=64", "--synack-retries=3", "--fin-timeout=30", "--abort-on-overflow"]);
}

#[test]
fn tcp_max_tw_buckets_sets_max_tw_buckets() {
    assert_eq!(args_of("[net.ipv4]\ntcp_max_tw_buckets = 1000\n"), ["--max-tw-buckets=1000"]);
}

#[test]
fn unknown_key_names_it_and_the_closest() {
    assert_eq!(err_of("queus = 2\n"), "config t.toml: unknown key `queus` (did you mean `queues`?)");
    assert_eq!(
        err_of("[net.ipv4]\ntcp_syncookie = 1\n"),
        "config t.toml: unknown key `net.ipv4.tcp_syncookie` (did you mean `net.ipv4.tcp_syncookies`?)"
    );
    let far = err_of("colour = \"blue\"\n");
    assert!(far.contains("unknown key `colour`") && !far.contains("did you mean"), "{far}");
    // The file cannot point at another file or ask to print itself.
    assert!(err_of("config = \"x.toml\"\n").contains("unknown key `config`"));
}

#[test]
fn shapes_are_checked_before_clap() {
    assert!(err_of("queues = [1, 2]\n").contains("queues = [1, 2]: --queues takes one value"));
    assert!(err_of("quiet = \"yes\"\n").contains("quiet = \"yes\": expected true or false"));
    assert!(err_of("syncookies = 1\n\"net.ipv4.tcp_syncookies\" = 2\n").contains("already set"));
    assert!(err_of("iface = \n").starts_with("config t.toml: not valid TOML:"));
    assert!(!err_of("iface = \n").contains('\n'), "one line");
}

fn expand_with(text: &str, cmdline: &[&str]) -> Result<Expanded, ConfigError> {
    // One file per call: the tests run in parallel.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let f = std::env::temp_dir().join(format!("xdptcp-config-test-{}-{n}.toml", std::process::id()));
    std::fs::write(&f, text).expect("write");
    let mut argv: Vec<OsString> = vec!["xdptcp".into(), "serve".into(), "--config".into(), f.clone().into()];
    argv.extend(cmdline.iter().map(OsString::from));
    let r = expand(argv);
    let _ = std::fs::remove_file(&f);
    r
}

fn cli_of(ex: &Expanded) -> Result<super::super::ServeArgs, String> {
    let m = Cli::command().try_get_matches_from(&ex.argv).map_err(|e| match remap(&e, ex) {
        Some(c) => c.to_string(),
        None => e.to_string(),
    })?;
    match Cli::from_arg_matches(&m).map_err(|e| e.to_string())?.cmd {
        Cmd::Serve(a) => Ok(a),
        _ => Err("not serve".into()),
    }
}

#[test]
fn command_line_overrides_the_file() {
    let ex = expand_with(
        "iface = \"eth1\"\nport = 80\nalso = [\"81:http\"]\n[net.ipv4]\ntcp_syncookies = 2\n",
        &["--port", "8080", "--also=82:echo", "--syncookies=0"],
    )
    .expect("expands");
    let a = cli_of(&ex).expect("parses");
    assert_eq!(a.iface.as_deref(), Some("eth1"));
    assert_eq!(a.port, 8080);
    assert_eq!(a.also, vec![(82, super::super::AppArg::Echo)], "the command line's list replaces the file's");
    assert_eq!(a.syncookies, 0);
    assert_eq!(ex.entries.len(), 1, "only iface came from the file");
}

#[test]
fn bad_values_name_the_key_value_and_range() {
    let e = cli_of(&expand_with("iface = \"eth1\"\n\"net.ipv4.tcp_syncookies\" = 5\n", &[]).expect("expands"))
        .expect_err("refused");
    assert!(
        e.starts_with("config ")
            && e.ends_with(".toml: net.ipv4.tcp_syncookies = 5: 5 is not in 0..=2 (sets --syncookies)"),
        "{e}"
    );
    let e = cli_of(&expand_with("iface = \"eth1\"\n[net.ipv4]\ntcp_synack_retries = 300\n", &[]).expect("expands"))
        .expect_err("refused");
    assert!(e.contains("net.ipv4.tcp_synack_retries = 300: 300 is not in 0..=255 (sets --synack-retries)"), "{e}");
    let e = cli_of(&expand_with("iface = \"eth1\"\napp = \"ftp\"\n", &[]).expect("expands")).expect_err("refused");
    assert!(e.contains("app = \"ftp\": allowed values: echo, http, discard"), "{e}");
    let e = cli_of(&expand_with("iface = \"eth1\"\nqueues = \"two\"\n", &[]).expect("expands")).expect_err("refused");
    assert!(
        e.contains("queues = \"two\": invalid digit found in string (allowed: an integer in 0..=4294967295)"),
        "{e}"
    );
    let e = cli_of(&expand_with("iface = \"eth1\"\nport = 70000\n", &[]).expect("expands")).expect_err("refused");
    assert!(e.contains("port = 70000: ") && e.contains("1..=65535"), "{e}");
    let e = cli_of(&expand_with("iface = \"eth1\"\nport = \"seven\"\n", &[]).expect("expands")).expect_err("refused");
    assert!(e.contains("port = \"seven\": ") && e.contains("1..=65535"), "{e}");
    let e =
        cli_of(&expand_with("iface = \"eth1\"\ndirectory-slots = 4\n", &[]).expect("expands")).expect_err("refused");
    assert!(e.contains("directory-slots = 4: must be between 8 and"), "{e}");
}

#[test]
fn other_commands_pass_through() {
    let argv: Vec<OsString> = ["xdptcp", "stats", "--file", "x"].iter().map(OsString::from).collect();
    let ex = expand(argv.clone()).expect("no config");
    assert_eq!(ex.argv, argv);
    assert!(ex.path.is_none());
}

#[test]
fn effective_settings_say_where_each_came_from() {
    let ex = expand_with("iface = \"eth1\"\n[net.ipv4]\ntcp_syncookies = 2\n", &["--port", "80", "--print-config"])
        .expect("expands");
    let m = Cli::command().try_get_matches_from(&ex.argv).expect("parses");
    let out = effective(m.subcommand_matches("serve").expect("serve"), &ex);
    let line = |k: &str| out.lines().find(|l| l.starts_with(k)).unwrap_or("").to_string();
    assert!(line("iface = \"eth1\"").contains("# config file: iface"), "{out}");
    assert!(
        line("syncookies = 2").contains("# config file: net.ipv4.tcp_syncookies; sysctl net.ipv4.tcp_syncookies"),
        "{out}"
    );
    assert!(line("port = 80").contains("# command line"), "{out}");
    assert!(line("somaxconn = 4096").contains("# default; sysctl net.core.somaxconn"), "{out}");
    assert!(out.contains("# queues ="), "unset flags are commented out: {out}");
    // The output is itself a valid config file (comments aside, every line parses).
    let reparsed: Vec<String> = parse(&path(), &out).expect("re-parses").into_iter().map(|e| e.flag).collect();
    assert!(reparsed.contains(&"iface".to_string()) && reparsed.contains(&"syncookies".to_string()));
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(edit_distance("queues", "queues"), 0);
    assert_eq!(edit_distance("queus", "queues"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn the_relay_is_configured_from_the_file() {
    let ex = expand_with(
        "iface = \"eth1\"\nport = 443\napp = \"proxy\"\nalso = [\"80:proxy\"]\nupstream = \"127.0.0.1:8443\"\n\
         proxy-protocol = \"v2\"\nproxy_connect_timeout = 2\nproxy-idle-timeout = 60\n",
        &[],
    )
    .expect("expands");
    let a = cli_of(&ex).expect("parses");
    use super::super::{AppArg, ProxyProtocolArg};
    assert_eq!(a.app_args(), vec![(443, AppArg::Proxy), (80, AppArg::Proxy)]);
    assert_eq!(a.upstream.as_deref(), Some("127.0.0.1:8443"));
    assert_eq!(a.proxy_protocol, ProxyProtocolArg::V2);
    assert_eq!((a.proxy_connect_timeout, a.proxy_idle_timeout), (2, 60));
    assert!(a.apps().is_empty(), "no bundled app");
    let e = cli_of(&expand_with("proxy-protocol = \"v3\"\n", &[]).expect("expands")).expect_err("refused");
    assert!(e.contains("proxy-protocol") && e.contains("v3"), "{e}");
}

#[test]
fn the_relay_needs_an_upstream_and_the_xdp_backend() {
    let args = |cmdline: &[&str]| {
        let mut v = vec!["--stats-file", "none"];
        v.extend_from_slice(cmdline);
        cli_of(&expand_with("", &v).expect("expands")).expect("parses").validate().map_err(|e| e.to_string())
    };
    let e = args(&["--iface", "lo", "--app", "proxy"]).unwrap_err();
    assert!(e.contains("needs --upstream"), "{e}");
    let e = args(&["--iface", "lo", "--upstream", "127.0.0.1:8080"]).unwrap_err();
    assert!(e.contains("no port serves the proxy app"), "{e}");
    let e = args(&["--backend", "kernel", "--also", "81:proxy", "--upstream", "127.0.0.1:8080"]).unwrap_err();
    assert!(e.contains("needs the xdp backend"), "{e}");
    args(&["--iface", "lo", "--also", "81:proxy", "--upstream", "127.0.0.1:8080"]).expect("valid");
    args(&["--iface", "lo", "--also", "81:proxy", "--upstream", "unix:/run/nginx/relay.sock"]).expect("valid");
    for bad in ["unix:relay.sock", "unix:@relay", "unix:"] {
        let e = args(&["--iface", "lo", "--also", "81:proxy", "--upstream", bad]).unwrap_err();
        assert!(e.contains(bad) && e.contains("unix:"), "{bad}: {e}");
    }
}
