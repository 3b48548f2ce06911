//! The stats file `serve` rewrites every second and `xdptcp stats` reads.
//!
//! Counters that stopped moving must never read as a healthy instance, so the file is stamped:
//! the writer's pid, when it was written (UNIX milliseconds) and whether the writer is still
//! running or wrote its final counters on the way out. Each write goes to a temporary file that
//! is renamed over the old one: a reader sees a whole file, never half of one.

use std::path::Path;

/// A file older than this is stale even if its writer's pid is alive (the writer rewrites it
/// every second; in another pid namespace the pid says nothing).
pub const STALE_AFTER_MS: u64 = 3_000;

/// What the writer says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    Running,
    /// Written by a clean exit: the last counters, kept for a post-mortem.
    Final,
}

/// UNIX time in milliseconds.
pub fn unix_ms() -> u64 {
    #[allow(clippy::disallowed_methods)] // a wall-clock stamp for readers in other processes
    let t = std::time::SystemTime::now();
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The temporary file a write goes through before it is renamed over `path`.
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    tmp.into()
}

/// Writes `body` (the `name value` lines) under a stamp, atomically.
pub fn write(path: &Path, state: WriterState, body: &str) -> std::io::Result<()> {
    let stamp = format!(
        "xdptcp_pid               {}\nxdptcp_written_unix_ms   {}\nxdptcp_state             {}\n",
        std::process::id(),
        unix_ms(),
        match state {
            WriterState::Running => "running",
            WriterState::Final => "final",
        }
    );
    let tmp = temp_beside(path);
    std::fs::write(&tmp, stamp + body)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Checks that `path` can be written, as [`write()`] will (a temporary file beside it, then a
/// rename), without touching what is there: a start refused later must not replace the last
/// instance's final counters.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    std::fs::write(&tmp, b"")?;
    let _ = std::fs::remove_file(&tmp);
    if path.exists() {
        // Replacing it needs write access to the directory (checked above) only; a file that
        // cannot be replaced shows here.
        std::fs::OpenOptions::new().append(true).open(path).map(|_| ())?;
    }
    Ok(())
}

/// How a stats file reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Written less than [`STALE_AFTER_MS`] ago by a live writer.
    Fresh,
    /// The final counters of a writer that exited cleanly.
    Final { pid: u32, age_ms: u64 },
    /// The writer is gone without saying so (killed, crashed).
    WriterGone { pid: u32, age_ms: u64 },
    /// Not rewritten for too long.
    Old { pid: u32, age_ms: u64 },
    /// No stamp: written by something else, or an older version.
    Unstamped,
}

/// Judges a stats file's text at `now_ms`.
pub fn freshness(text: &str, now_ms: u64) -> Freshness {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().map(str::to_string)).flatten()
        })
    };
    let pid = field("xdptcp_pid").and_then(|v| v.parse::<u32>().ok());
    let written = field("xdptcp_written_unix_ms").and_then(|v| v.parse::<u64>().ok());
    let (Some(pid), Some(written)) = (pid, written) else { return Freshness::Unstamped };
    let age_ms = now_ms.saturating_sub(written);
    if field("xdptcp_state").as_deref() == Some("final") {
        return Freshness::Final { pid, age_ms };
    }
    if !process_alive(pid) {
        return Freshness::WriterGone { pid, age_ms };
    }
    if age_ms > STALE_AFTER_MS {
        return Freshness::Old { pid, age_ms };
    }
    Freshness::Fresh
}

/// Does process `pid` exist (in this pid namespace)? kill(2) with signal 0 checks without
/// sending; EPERM means it exists under another user.
pub fn process_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else { return false };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; no memory is passed.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(pid: u32, at: u64, state: &str) -> String {
        format!("xdptcp_pid {pid}\nxdptcp_written_unix_ms {at}\nxdptcp_state {state}\nTcpPassiveOpens 5\n")
    }

    #[test]
    fn a_live_writer_within_three_seconds_is_fresh() {
        let me = std::process::id();
        assert_eq!(freshness(&stamped(me, 10_000, "running"), 12_999), Freshness::Fresh);
        assert_eq!(freshness(&stamped(me, 10_000, "running"), 13_001), Freshness::Old { pid: me, age_ms: 3_001 });
    }

    #[test]
    fn a_gone_writer_or_a_final_file_is_never_fresh() {
        // Pid 0 is never a process that wrote a file; a pid beyond pid_max never exists.
        let gone = 4_194_304 + 17;
        assert_eq!(
            freshness(&stamped(gone, 10_000, "running"), 10_001),
            Freshness::WriterGone { pid: gone, age_ms: 1 }
        );
        let me = std::process::id();
        assert_eq!(freshness(&stamped(me, 10_000, "final"), 10_001), Freshness::Final { pid: me, age_ms: 1 });
        assert_eq!(freshness("TcpPassiveOpens 5\n", 1), Freshness::Unstamped);
    }

    #[test]
    fn writes_replace_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("xdptcp-stats-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s");
        write(&p, WriterState::Running, "a 1\n").unwrap();
        write(&p, WriterState::Final, "a 2\n").unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains("xdptcp_state             final\n") && t.ends_with("a 2\n"), "{t}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
