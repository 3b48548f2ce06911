//! The local control socket (`serve --control-socket PATH`) and `xdptcp ss`.
//!
//! A unix stream socket, mode 0600, owned by the serving user: only that user (or root)
//! reads the connection table. One thread serves it, one client at a time, with write
//! timeouts, so a stuck client delays only the next one.
//!
//! # Protocol (line text)
//!
//! The client sends one line: `ss MODE [STATE ...]`, MODE one of `all`, `listening`,
//! `connected` (`ss -a`, `ss -l`, plain `ss`), STATE an `ss` state name (`established`,
//! `syn-recv`, `time-wait`, ...). The answer is one line per socket,
//!
//! ```text
//! ESTAB 0 0 198.18.0.1:7 198.18.0.2:40000 0
//! ```
//!
//! (state, Recv-Q, Send-Q, local, peer, core), then `end N` with the number of lines sent; a
//! listing cut short (a core did not answer) ends with `error ...` instead. The client lays
//! the columns out.
//!
//! # What a listing costs a core
//!
//! Cores answer from their loop ([`super::Control::List`]), one page of at most
//! [`LIST_PAGE`] entries per request and one request per loop turn, into a buffer the
//! requester lends and gets back: a big table is streamed page by page, never copied whole.
//! A page costs its entries plus, in the SYN-queue and TIME-WAIT hash tables, a walk over the
//! entries before it (hashbrown has no seek; the slab of connections has one), so the pause
//! grows with the position in those tables, not with the number of pages asked. An idle
//! core sleeps up to 2 ms between turns, which bounds how fast a listing advances there.
//! Pages are not a snapshot: like `ss` reading `/proc/net/tcp`, an entry that moves while the
//! listing runs may be missed or shown twice.

use super::{Control, ListPage};
use crate::tcp::shard::SockEntry;
use crate::tcp::State;
use crossbeam_channel::{bounded, Sender};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Entries a core lists per request.
pub const LIST_PAGE: usize = 256;
/// How long the server waits for one page from a core.
const PAGE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a client may take to send its request or to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The name `ss` prints for a state (iproute2 `sstate_name`).
pub fn ss_name(s: State) -> &'static str {
    match s {
        State::Established => "ESTAB",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECV",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::TimeWait => "TIME-WAIT",
        State::Closed => "UNCONN",
        State::CloseWait => "CLOSE-WAIT",
        State::LastAck => "LAST-ACK",
        State::Listen => "LISTEN",
        State::Closing => "CLOSING",
    }
}

/// The state an `ss` filter name stands for (iproute2 `sstate_namel`).
pub fn parse_state(name: &str) -> Option<State> {
    Some(match name.to_ascii_lowercase().as_str() {
        "established" | "estab" => State::Established,
        "syn-sent" => State::SynSent,
        "syn-recv" | "syn-received" => State::SynReceived,
        "fin-wait-1" => State::FinWait1,
        "fin-wait-2" => State::FinWait2,
        "time-wait" => State::TimeWait,
        "closed" | "unconn" => State::Closed,
        "close-wait" => State::CloseWait,
        "last-ack" => State::LastAck,
        "listening" | "listen" => State::Listen,
        "closing" => State::Closing,
        _ => return None,
    })
}

/// Which sockets a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub listening: bool,
    pub connected: bool,
    /// Only these states (empty: all that `listening`/`connected` allow).
    pub states: Vec<State>,
}

impl Filter {
    /// Parses the request line `ss MODE [STATE ...]`.
    pub fn parse(line: &str) -> Result<Filter, String> {
        let mut w = line.split_whitespace();
        if w.next() != Some("ss") {
            return Err("unknown request (expected `ss MODE [STATE ...]`)".into());
        }
        let (listening, connected) = match w.next() {
            Some("all") => (true, true),
            Some("listening") => (true, false),
            Some("connected") => (false, true),
            m => return Err(format!("unknown mode {m:?} (all, listening, connected)")),
        };
        let states = w.map(|s| parse_state(s).ok_or(format!("unknown state {s:?}"))).collect::<Result<_, _>>()?;
        Ok(Filter { listening, connected, states })
    }

    /// The request line for this filter.
    pub fn request(&self) -> String {
        let mode = match (self.listening, self.connected) {
            (true, true) => "all",
            (true, false) => "listening",
            _ => "connected",
        };
        let mut s = format!("ss {mode}");
        for st in &self.states {
            s.push(' ');
            s.push_str(&ss_name(*st).to_ascii_lowercase());
        }
        s
    }

    pub fn admits(&self, e: &SockEntry) -> bool {
        let kind_ok = if e.state == State::Listen { self.listening } else { self.connected };
        kind_ok && (self.states.is_empty() || self.states.contains(&e.state))
    }
}

/// One answer line (see the module doc).
pub fn format_entry(e: &SockEntry, core: usize) -> String {
    let local = match e.local {
        (Some(ip), port) => std::net::SocketAddr::new(ip, port).to_string(),
        (None, port) => format!("*:{port}"),
    };
    let peer = e.remote.map_or_else(|| "*:*".to_string(), |r| r.to_string());
    format!("{} {} {} {local} {peer} {core}", ss_name(e.state), e.recv_q, e.send_q)
}

/// Binds the control socket at `path`, mode 0600. A socket file left by an instance that
/// died is replaced; one a running instance answers on is refused, and so is any other kind
/// of file (never deleted).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::io::{Error, ErrorKind};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::new(ErrorKind::AddrInUse, "a running instance answers on it"));
            }
            // Nobody listens: a leftover of an instance that was killed.
            std::fs::remove_file(path)?;
        }
        Ok(_) => return Err(Error::new(ErrorKind::AlreadyExists, "exists and is not a socket")),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The socket is created with the umask's mode; 0177 makes it 0600 from the start, with no
    // window in which another user could connect. Called while serve is starting, before the
    // engine's threads exist, so no other thread's files see this umask.
    // SAFETY: umask(2) only swaps the process's file mode mask.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let l = l?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The control socket's thread; removes the socket file when dropped.
pub struct ControlServer {
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Serves `listener` until `stop` is set, listing the cores behind `ctl`.
    pub fn spawn(
        listener: UnixListener,
        path: PathBuf,
        ctl: Vec<Sender<Control>>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<ControlServer> {
        let thread = super::caps::spawn_unprivileged("xdptcp-control", move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = answer(conn, &ctl);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        })?;
        Ok(ControlServer { path, thread: Some(thread) })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn answer(conn: UnixStream, ctl: &[Sender<Control>]) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    // The request is one short line: read byte-bounded, and bounded in time as a whole (a
    // client trickling bytes gets no more than IO_TIMEOUT).
    let mut line = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    #[allow(clippy::disallowed_methods)] // a management-socket deadline, not the datapath's clock
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while !line.contains(&b'\n') && line.len() < 1024 {
        #[allow(clippy::disallowed_methods)]
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        conn.set_read_timeout(Some(left))?;
        let n = std::io::Read::read(&mut &conn, &mut chunk)?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    let line = String::from_utf8_lossy(&line);
    let line = line.split('\n').next().unwrap_or("");
    let mut out = std::io::BufWriter::new(&conn);
    let filter = match Filter::parse(line.trim()) {
        Ok(f) => f,
        Err(e) => return writeln!(out, "error {e}"),
    };
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(LIST_PAGE);
    for (core, c) in ctl.iter().enumerate() {
        let mut from = 0;
        loop {
            buf.clear();
            let (tx, rx) = bounded(1);
            let page = c
                .send(Control::List(ListPage { from, max: LIST_PAGE, buf, reply: tx }))
                .ok()
                .and_then(|()| rx.recv_timeout(PAGE_TIMEOUT).ok());
            let Some((entries, next)) = page else {
                writeln!(out, "error core {core} did not answer; the listing is incomplete")?;
                return out.flush();
            };
            for e in entries.iter().filter(|e| filter.admits(e)) {
                writeln!(out, "{}", format_entry(e, core))?;
                sent += 1;
            }
            buf = entries;
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
    }
    writeln!(out, "end {sent}")?;
    out.flush()
}

/// The client side: sends `filter` to the socket at `path` and returns the answer lines
/// (without the final `end N`). An `error` line from the server becomes an error.
pub fn query(path: &Path, filter: &Filter) -> std::io::Result<Vec<String>> {
    use std::io::{Error, ErrorKind};
    let mut conn = UnixStream::connect(path)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(conn, "{}", filter.request())?;
    let mut lines = Vec::new();
    for l in BufReader::new(conn).lines() {
        let l = l?;
        if let Some(n) = l.strip_prefix("end ") {
            if n.parse() != Ok(lines.len()) {
                return Err(Error::new(ErrorKind::InvalidData, format!("expected {n} lines, got {}", lines.len())));
            }
            return Ok(lines);
        }
        if let Some(e) = l.strip_prefix("error ") {
            return Err(Error::other(e.to_string()));
        }
        lines.push(l);
    }
    Err(Error::new(ErrorKind::UnexpectedEof, "the listing ended early"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, SocketAddr};

    fn est(port: u16) -> SockEntry {
        SockEntry {
            state: State::Established,
            local: (Some(IpAddr::from([198, 18, 0, 1])), 7),
            remote: Some(SocketAddr::from(([198, 18, 0, 2], port))),
            recv_q: 1,
            send_q: 2,
        }
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(parse_state(ss_name(s)), Some(s), "{s:?}");
        }
        assert_eq!(parse_state("established"), Some(State::Established));
        assert_eq!(parse_state("bogus"), None);
    }

    #[test]
    fn filters_parse_and_admit() {
        let f = Filter::parse("ss connected time-wait established").unwrap();
        assert_eq!(Filter::parse(&f.request()).unwrap(), f);
        assert!(f.admits(&est(1)));
        let listen = SockEntry { state: State::Listen, local: (None, 7), remote: None, recv_q: 0, send_q: 128 };
        assert!(!f.admits(&listen));
        assert!(Filter::parse("ss listening").unwrap().admits(&listen));
        assert!(Filter::parse("ss all").unwrap().admits(&listen));
        assert!(Filter::parse("ss everything").is_err());
        assert!(Filter::parse("ss all nosuch").is_err());
        assert!(Filter::parse("ls").is_err());
    }

    #[test]
    fn lines_look_like_ss() {
        assert_eq!(format_entry(&est(40000), 1), "ESTAB 1 2 198.18.0.1:7 198.18.0.2:40000 1");
        let listen = SockEntry { state: State::Listen, local: (None, 80), remote: None, recv_q: 0, send_q: 4096 };
        assert_eq!(format_entry(&listen, 0), "LISTEN 0 4096 *:80 *:* 0");
    }

    /// A fake core answering pages from a fixed table, as core_thread does.
    fn fake_core(table: Vec<SockEntry>) -> Sender<Control> {
        let (tx, rx) = bounded::<Control>(4);
        std::thread::spawn(move || {
            while let Ok(c) = rx.recv() {
                if let Control::List(mut p) = c {
                    let end = (p.from + p.max).min(table.len());
                    p.buf.extend_from_slice(&table[p.from..end]);
                    let _ = p.reply.send((p.buf, (end < table.len()).then_some(end)));
                }
            }
        });
        tx
    }

    #[test]
    fn streams_pages_from_every_core_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("xdptcp-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&path);
        // A stale socket (bound, then its listener gone) does not block the start.
        drop(UnixListener::bind(&path).unwrap());
        let l = bind(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(bind(&path).is_err(), "a live socket is refused");
        let big: Vec<SockEntry> = (0..(LIST_PAGE as u16 * 2 + 5)).map(|p| est(1000 + p)).collect();
        let ctl = vec![fake_core(big), fake_core(vec![est(1)])];
        let stop = Arc::new(AtomicBool::new(false));
        let srv = ControlServer::spawn(l, path.clone(), ctl, stop.clone()).unwrap();
        let all = query(&path, &Filter::parse("ss connected").unwrap()).unwrap();
        assert_eq!(all.len(), LIST_PAGE * 2 + 6);
        assert!(all.last().unwrap().ends_with(" 1"), "core 1 last");
        let none = query(&path, &Filter::parse("ss connected time-wait").unwrap()).unwrap();
        assert!(none.is_empty());
        stop.store(true, Ordering::Relaxed);
        drop(srv);
        assert!(!path.exists(), "removed on exit");
        let f = dir.join("plain");
        std::fs::write(&f, b"x").unwrap();
        assert!(bind(&f).is_err(), "a regular file is never replaced");
        assert!(f.exists());
    }
}
