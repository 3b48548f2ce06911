//! `xdptcp serve --config FILE`: settings from a TOML file.
//!
//! The keys are the long flag names (`iface = "eth1"`, `queues = 2`, `also = ["80:http"]`,
//! `quiet = true`; `max-syn-backlog` and `max_syn_backlog` both work) and the Linux sysctl
//! names the TCP flags mirror, quoted (`"net.ipv4.tcp_syncookies" = 1`), dotted or as nested
//! tables (`[net.ipv4]` then `tcp_syncookies = 1`).
//!
//! The file becomes command-line arguments inserted right after `serve`, and clap parses the
//! whole line: one validator for both, so a value the flag refuses is refused in the file with
//! the same range. A clap error about an argument that came from the file is reported with the
//! file's key and value instead. A flag given on the command line wins over the file: the file's
//! entry for it is left out (for repeatable flags too, so `--also` replaces the file's list
//! rather than adding to it).
//!
//! `--print-config` prints the effective settings as a config file, each line saying where its
//! value came from, and exits.

use super::{Cli, Cmd};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The Linux sysctls the serve flags mirror (DESIGN.md, "Connection management"), and the flag
/// each one sets.
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "syncookies"),
    ("net.ipv4.tcp_max_syn_backlog", "max-syn-backlog"),
    ("net.core.somaxconn", "somaxconn"),
    ("net.ipv4.tcp_synack_retries", "synack-retries"),
    ("net.ipv4.tcp_fin_timeout", "fin-timeout"),
    ("net.ipv4.tcp_abort_on_overflow", "abort-on-overflow"),
    ("net.ipv4.tcp_max_tw_buckets", "max-tw-buckets"),
    ("net.ipv4.tcp_congestion_control", "congestion-control"),
];

/// Flags that make no sense inside the file.
const NOT_IN_FILE: &[&str] = &["config", "print-config", "help"];

/// A config file that cannot be used. `Display` is the one line the operator sees.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    Read { path: PathBuf, cause: String },
    Syntax { path: PathBuf, cause: String },
    UnknownKey { path: PathBuf, key: String, closest: Option<String> },
    BadValue { path: PathBuf, key: String, value: String, why: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, cause } => write!(f, "config {}: read: {cause}", path.display()),
            ConfigError::Syntax { path, cause } => {
                // toml's message spans several lines (the offending line, a caret): keep it
                // on one, as kernel tools print "operation: cause".
                let one: Vec<&str> = cause.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                write!(f, "config {}: not valid TOML: {}", path.display(), one.join(" "))
            }
            ConfigError::UnknownKey { path, key, closest } => {
                write!(f, "config {}: unknown key `{key}`", path.display())?;
                match closest {
                    Some(c) => write!(f, " (did you mean `{c}`?)"),
                    None => write!(f, " (keys are the serve flags and the sysctl names; see --print-config)"),
                }
            }
            ConfigError::BadValue { path, key, value, why } => {
                write!(f, "config {}: {key} = {value}: {why}", path.display())
            }
        }
    }
}

/// One setting from the file: its key as written (dotted path), the flag it sets, and the
/// arguments it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub flag: String,
    /// The value as written in the file (TOML syntax), for messages.
    pub shown: String,
    pub args: Vec<String>,
}

/// Parses a config file's text into entries, checking every key and every value's shape
/// (clap checks the values themselves once they are arguments).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax { path: path.into(), cause: e.to_string() })?;
    let mut flat = Vec::new();
    flatten("", &table, &mut flat);
    let serve = serve_command();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for (key, value) in flat {
        let Some(flag) = flag_for_key(&serve, &key) else {
            return Err(ConfigError::UnknownKey { path: path.into(), closest: closest_key(&serve, &key), key });
        };
        let shown = show(value);
        let bad =
            |why: String| ConfigError::BadValue { path: path.into(), key: key.clone(), value: shown.clone(), why };
        if !seen.insert(flag.clone()) {
            return Err(bad(format!("--{flag} is already set by another key of this file")));
        }
        let action = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
            .map(|a| a.get_action().clone())
            .unwrap_or(ArgAction::Set);
        let args = match action {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) | toml::Value::Integer(1) => vec![format!("--{flag}")],
                toml::Value::Boolean(false) | toml::Value::Integer(0) => vec![],
                _ => return Err(bad("expected true or false (or 1 or 0, as the sysctl takes)".into())),
            },
            ArgAction::Append => match value {
                toml::Value::Array(items) => {
                    let mut v = Vec::new();
                    for item in items {
                        v.push(format!(
                            "--{flag}={}",
                            scalar(item).ok_or_else(|| bad(format!("--{flag} takes a list of plain values")))?
                        ));
                    }
                    v
                }
                other => vec![format!(
                    "--{flag}={}",
                    scalar(other).ok_or_else(|| bad("expected a value or a list of values".into()))?
                )],
            },
            _ => {
                let s = scalar(value).ok_or_else(|| bad(format!("--{flag} takes one value, not a list or table")))?;
                vec![format!("--{flag}={s}")]
            }
        };
        out.push(Entry { key, flag, shown, args });
    }
    Ok(out)
}

/// Every leaf of the table with its dotted path. `"net.ipv4.tcp_syncookies" = 1`,
/// `net.ipv4.tcp_syncookies = 1` and `[net.ipv4] tcp_syncookies = 1` all give the same path.
fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten(&path, t, out),
            other => out.push((path, other)),
        }
    }
}

/// A scalar as clap would read it from a command line; `None` for arrays and tables.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// A value in TOML syntax, for messages and `--print-config`.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => quote(s),
        toml::Value::Array(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(", ")),
        toml::Value::Table(_) => "{...}".into(),
        other => scalar(other).unwrap_or_default(),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `serve` subcommand as clap built it.
fn serve_command() -> Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand("serve").cloned().unwrap_or_else(|| Command::new("serve"))
}

/// Long names the file may use (the flags, minus those in [`NOT_IN_FILE`]).
fn file_flags(serve: &Command) -> Vec<String> {
    serve
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_IN_FILE.contains(l))
        .map(str::to_string)
        .collect()
}

/// The flag a file key sets: a sysctl name, or a flag's long name with `_` or `-`.
fn flag_for_key(serve: &Command, key: &str) -> Option<String> {
    if let Some((_, flag)) = SYSCTLS.iter().find(|(s, _)| *s == key) {
        return Some((*flag).to_string());
    }
    let long = key.replace('_', "-");
    file_flags(serve).into_iter().find(|f| *f == long)
}

/// The valid key nearest to `key` (edit distance at most a third of its length, at least 2).
fn closest_key(serve: &Command, key: &str) -> Option<String> {
    let candidates = file_flags(serve).into_iter().chain(SYSCTLS.iter().map(|(s, _)| s.to_string()));
    let limit = (key.len() / 3).max(2);
    candidates
        .map(|c| (edit_distance(&key.replace('_', "-"), &c.replace('_', "-")), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars (two rows).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            row[j + 1] = sub.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

/// What [`expand`] made of the command line.
#[derive(Debug, Default)]
pub struct Expanded {
    pub argv: Vec<OsString>,
    pub path: Option<PathBuf>,
    /// The file's entries that were used (not overridden on the command line).
    pub entries: Vec<Entry>,
}

/// Inserts the settings of `serve --config FILE` after `serve`, leaving out those whose flag
/// the command line gives. Any other command line is returned as it is.
pub fn expand(argv: Vec<OsString>) -> Result<Expanded, ConfigError> {
    let Some(serve_at) = argv.iter().position(|a| a == "serve").filter(|&i| i == 1) else {
        return Ok(Expanded { argv, ..Expanded::default() });
    };
    let after: Vec<&str> = argv.iter().skip(serve_at + 1).filter_map(|a| a.to_str()).collect();
    let path = after.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--config") {
        Some("") => after.get(i + 1).map(PathBuf::from),
        Some(v) => v.strip_prefix('=').map(PathBuf::from),
        None => None,
    });
    let Some(path) = path else { return Ok(Expanded { argv, ..Expanded::default() }) };
    let text =
        std::fs::read_to_string(&path).map_err(|e| ConfigError::Read { path: path.clone(), cause: e.to_string() })?;
    let given: BTreeSet<&str> =
        after.iter().filter_map(|a| a.strip_prefix("--")).map(|a| a.split_once('=').map_or(a, |(f, _)| f)).collect();
    let entries: Vec<Entry> = parse(&path, &text)?.into_iter().filter(|e| !given.contains(e.flag.as_str())).collect();
    let mut out: Vec<OsString> = argv.iter().take(serve_at + 1).cloned().collect();
    out.extend(entries.iter().flat_map(|e| e.args.iter().map(OsString::from)));
    out.extend(argv.iter().skip(serve_at + 1).cloned());
    Ok(Expanded { argv: out, path: Some(path), entries })
}

/// When a clap error is about an argument that came from the file, the same error in the
/// file's terms (key, value as written, and what clap allows).
pub fn remap(err: &clap::Error, ex: &Expanded) -> Option<ConfigError> {
    let path = ex.path.clone()?;
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return None,
    };
    // clap names the argument as `--flag <VALUE>` (or `--flag`).
    let flag = arg.trim_start_matches('-').split([' ', '=']).next().unwrap_or("").to_string();
    let entry = ex.entries.iter().find(|e| e.flag == flag)?;
    let why = match err.kind() {
        ErrorKind::InvalidValue => match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(v)) => format!("allowed values: {}", v.join(", ")),
            _ => "not an allowed value".into(),
        },
        ErrorKind::ValueValidation => {
            let cause = std::error::Error::source(err).map(|s| s.to_string()).unwrap_or_else(|| "invalid".into());
            match integer_range(&flag) {
                Some(r) if !cause.contains("..") && !cause.contains("between") => format!("{cause} (allowed: {r})"),
                _ => cause,
            }
        }
        ErrorKind::ArgumentConflict => {
            format!("conflicts with {}", err.get(ContextKind::PriorArg).map(|v| v.to_string()).unwrap_or_default())
        }
        _ => err.render().to_string().lines().next().unwrap_or("").trim_start_matches("error: ").to_string(),
    };
    Some(ConfigError::BadValue {
        path,
        key: entry.key.clone(),
        value: entry.shown.clone(),
        why: format!("{why} (sets --{flag})"),
    })
}

/// The integer range `--flag` takes when its parser is a plain unsigned integer: probed with
/// clap itself at each width's bounds, so it can never disagree with the flag.
fn integer_range(flag: &str) -> Option<String> {
    let accepts = |v: &str| {
        let argv = ["xdptcp", "serve", "--iface=x", &format!("--{flag}={v}")];
        match Cli::command().try_get_matches_from(argv) {
            Ok(_) => true,
            Err(e) => {
                !matches!(e.get(ContextKind::InvalidArg), Some(ContextValue::String(s)) if s.starts_with(&format!("--{flag}")))
            }
        }
    };
    // Flags that refuse 0 (a port, a backlog) start at 1.
    let lo = [0u64, 1].into_iter().find(|lo| accepts(&lo.to_string()))?;
    [u8::MAX as u64, u16::MAX as u64, u32::MAX as u64, u64::MAX]
        .into_iter()
        .find(|&max| accepts(&max.to_string()) && !accepts(&(u128::from(max) + 1).to_string()))
        .map(|max| format!("an integer in {lo}..={max}"))
}

/// The command line, config file included: what `main` parses. Exits 2 on a bad file or a bad
/// command line (clap's usage-error code), and 0 after `serve --print-config`.
pub fn parse_cli() -> Cli {
    let ex = match expand(std::env::args_os().collect()) {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("xdptcp: {e}");
            std::process::exit(2);
        }
    };
    let matches = match Cli::command().try_get_matches_from(&ex.argv) {
        Ok(m) => m,
        Err(e) => match remap(&e, &ex) {
            Some(c) => {
                eprintln!("xdptcp: {c}");
                std::process::exit(2);
            }
            None => e.exit(),
        },
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Cmd::Serve(a), Some(m)) = (&cli.cmd, matches.subcommand_matches("serve")) {
        if a.print_config {
            print!("{}", effective(m, &ex));
            std::process::exit(0);
        }
    }
    cli
}

/// The effective serve settings as a config file: every flag, its value, and where the value
/// came from (command line, the config file and its key, or the default).
pub fn effective(m: &ArgMatches, ex: &Expanded) -> String {
    let serve = serve_command();
    let mut o = String::from("# xdptcp serve: effective settings (usable as --config)\n");
    for arg in serve.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else { continue };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let from_file = ex.entries.iter().find(|e| e.flag == long);
        let source = match (m.value_source(id), from_file) {
            (Some(ValueSource::CommandLine), Some(e)) => format!("config file: {}", e.key),
            (Some(ValueSource::CommandLine), None) => "command line".into(),
            (Some(ValueSource::DefaultValue), _) => "default".into(),
            _ => "not set".into(),
        };
        let sysctl = SYSCTLS.iter().find(|(_, f)| *f == long).map(|(s, _)| format!("; sysctl {s}")).unwrap_or_default();
        let line = if matches!(arg.get_action(), ArgAction::SetTrue) {
            Some(format!("{long} = {}", m.get_flag(id)))
        } else {
            m.get_raw(id).map(|vals| {
                let vals: Vec<String> = vals.map(|v| toml_scalar(&v.to_string_lossy())).collect();
                if matches!(arg.get_action(), ArgAction::Append) {
                    format!("{long} = [{}]", vals.join(", "))
                } else {
                    format!("{long} = {}", vals.join(", "))
                }
            })
        };
        match line {
            Some(l) => o.push_str(&format!("{l:<40} # {source}{sysctl}\n")),
            None => o.push_str(&format!("{:<40} # {source}{sysctl}\n", format!("# {long} ="))),
        }
    }
    o
}

/// A command-line value as TOML: integers bare, anything else quoted.
fn toml_scalar(v: &str) -> String {
    if v.parse::<i64>().is_ok() {
        v.to_string()
    } else {
        quote(v)
    }
}

#[cfg(test)]
mod tests;
