//! `xdptcp ss`: the connection table of a running `serve`, laid out as `ss -tan` does, with a
//! Core column (read from the control socket, see `engine::control`).

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use xdptcp::engine::control::{self, Filter};

#[derive(Args, Debug, Clone)]
pub struct SsArgs {
    /// The control socket of the running `serve`.
    #[arg(long, value_name = "PATH", default_value = xdptcp::engine::ops::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
    /// Only listening sockets (as ss -l).
    #[arg(short = 'l', long, conflicts_with = "all")]
    pub listening: bool,
    /// Listening and connected sockets (as ss -a).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// No header line (as ss -H).
    #[arg(short = 'H', long)]
    pub no_header: bool,
    /// State filter, as ss takes it: `state established`, `state time-wait state syn-recv`
    /// (names: established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed,
    /// close-wait, last-ack, listening, closing).
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn ss(a: &SsArgs) -> Result<()> {
    let mut states = Vec::new();
    for w in a.filter.iter().filter(|w| w.as_str() != "state") {
        states.push(control::parse_state(w).with_context(|| format!("unknown state {w:?}"))?);
    }
    // A state filter names what to show, LISTEN included (as ss does).
    let (listening, connected) = match (a.all || !states.is_empty(), a.listening) {
        (true, _) => (true, true),
        (false, true) => (true, false),
        (false, false) => (false, true),
    };
    let filter = Filter { listening, connected, states };
    let lines = control::query(&a.socket, &filter).with_context(|| {
        format!("read {} (is `xdptcp serve` running with this --control-socket?)", a.socket.display())
    })?;
    print!("{}", layout(&lines, !a.no_header));
    Ok(())
}

/// Aligns the answer lines under an `ss -tan` header: State, Recv-Q, Send-Q, Local
/// Address:Port, Peer Address:Port, Core.
fn layout(lines: &[String], header: bool) -> String {
    const HEAD: [&str; 6] = ["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Core"];
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split_whitespace().collect()).collect();
    let mut width = [0usize; 6];
    for r in rows.iter().map(|r| r.as_slice()).chain(header.then_some(&HEAD[..])) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |r: &[&str]| {
        let mut s = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            // Text left, queues right (as ss aligns them).
            if i == 1 || i == 2 {
                s.push_str(&format!("{c:>w$} "));
            } else {
                s.push_str(&format!("{c:<w$} "));
            }
            if i == 2 {
                s.push(' ');
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    if header {
        line(&HEAD);
    }
    for r in &rows {
        line(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_ss() {
        let l = vec!["ESTAB 0 12 198.18.0.1:7 198.18.0.2:40000 1".to_string(), "LISTEN 0 4096 *:7 *:* 0".to_string()];
        let t = layout(&l, true);
        let rows: Vec<&str> = t.lines().collect();
        assert!(rows[0].starts_with("State  Recv-Q Send-Q  Local Address:Port"));
        assert_eq!(rows[1].split_whitespace().collect::<Vec<_>>(), l[0].split_whitespace().collect::<Vec<_>>());
        assert_eq!(rows[1].find("198.18.0.1:7"), rows[2].find("*:7"));
        assert_eq!(layout(&l, false).lines().count(), 2);
    }
}
