//! The scenario language: one step a line, written the way RFC 9293 draws its figures.
//!
//! ```text
//! # comment
//! title   RFC 9293 Figure 6, the DUT is TCP B
//! sysctl  tcp_timestamps=0            # DUT namespace sysctl; the stack's Config follows it
//! isn     4294967293                  # the driver's ISN (absolute); default 1000000
//! port    40000                       # the driver's port
//! app listen 80                       # application calls on the DUT (see `App`)
//! --> SYN seq=0 win=65535 mss=1460    # the driver sends (seq relative to its ISN,
//!                                     #  ack relative to the DUT's ISN)
//! <-- SYN,ACK seq=0 ack=1 win=open opts=mss   # the next segment the DUT sends
//! <-- none 250                        # nothing for 250 ms
//! <-- any 300                         # whatever comes in 300 ms; the last one is compared
//! wait 300                            # let 300 ms pass (stack: clock; Linux: sleep)
//! --> icmp port-unreachable           # ICMP error quoting the DUT's last SYN
//! ```
//!
//! Any `<--` or `app` line may end in `deviation: <reason>`: the stack's answer to that step is
//! printed but not compared with Linux's.
//!
//! Numbers: `seq=`/`ack=` take a signed offset from the ISN (wrapping mod 2^32), `.` for "the
//! next sequence number of that side" (driver: highest seq sent; DUT: highest seq seen), `^`
//! for the last ACK number the DUT sent, or `*` (anything, not compared). The DUT's ISN is learned from every SYN it sends.

use xdptcp::wire::TcpFlags;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    /// Offset from the ISN of the side that owns the sequence space.
    Rel(i64),
    /// That side's next sequence number.
    Next,
    /// Not checked.
    Any,
    /// `^`: the last ACK number the DUT sent (its RCV.NXT): in a driver's `seq=`, where the
    /// DUT wants data next; in an expected `ack=`, "unchanged".
    Acked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinClass {
    Zero,
    Open,
}

/// Which options a segment carries (SACK blocks only as "some").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptSet {
    pub mss: bool,
    pub ws: bool,
    pub sackok: bool,
    pub ts: bool,
    pub sack: bool,
}

impl std::fmt::Display for OptSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> =
            [(self.mss, "mss"), (self.ws, "ws"), (self.sackok, "sackok"), (self.ts, "ts"), (self.sack, "sack")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
        if names.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", names.join(","))
        }
    }
}

/// A segment the driver injects.
#[derive(Debug, Clone)]
pub struct Send {
    pub flags: TcpFlags,
    pub seq: Num,
    pub ack: Num,
    pub len: usize,
    pub win: u16,
    pub mss: Option<u16>,
    pub ws: Option<u8>,
    pub sackok: bool,
    /// TSval and, if given, TSecr (else the last TSval the DUT sent).
    pub ts: Option<(u32, Option<u32>)>,
    /// SACK blocks: data the driver holds, so relative to the DUT's ISN.
    pub sack: Vec<(i64, i64)>,
}

/// What the DUT is expected to send next.
#[derive(Debug, Clone)]
pub struct Expect {
    pub flags: TcpFlags,
    pub seq: Num,
    pub ack: Num,
    pub win: Option<WinClass>,
    pub opts: Option<OptSet>,
    /// The SACK blocks, in order, relative to the driver's ISN (`sack=L-R,L-R`).
    pub sack: Option<Vec<(i64, i64)>>,
    pub len: Option<usize>,
    /// How long to wait for it.
    pub within_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// Passive open on a port (Linux: a listening socket in the DUT namespace).
    Listen(u16),
    /// Take the next connection from the accept queue.
    Accept,
    /// Active open from this local port to the driver.
    Connect(u16),
    /// Write N bytes.
    Send(usize),
    /// Read what is buffered; the outcome says how much, or EOF / reset.
    Read,
    /// Read at most N bytes.
    ReadN(usize),
    /// Half-close (SHUT_WR).
    Shutdown,
    /// Full close of the connection's handle.
    Close,
    /// SO_RCVBUF before listen/connect (stack: Config::rcv_buf).
    RcvBuf(usize),
    /// Outcome of the active open: connected / failed / pending.
    Status,
}

#[derive(Debug, Clone)]
pub enum Step {
    App(App),
    Send(Box<Send>),
    /// ICMP destination unreachable (type 3) with this code, quoting the DUT's last SYN.
    Icmp(u8),
    Expect(Box<Expect>),
    ExpectNone(u64),
    /// `<-- any MS`: takes everything sent within MS; only the last segment's flags and
    /// window class are compared (for ACK trains whose count is Linux's business).
    Drain(u64),
    Wait(u64),
}

#[derive(Debug, Clone)]
pub struct Line {
    pub no: usize,
    pub text: String,
    pub step: Step,
    pub deviation: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub title: String,
    /// Full sysctl names (net.ipv4.*) and values, in order.
    pub sysctls: Vec<(String, String)>,
    pub isn: u32,
    pub port: u16,
    pub lines: Vec<Line>,
}

pub const EXPECT_WITHIN_MS: u64 = 600;
pub const NONE_FOR_MS: u64 = 300;

pub fn parse_flags(s: &str) -> Result<TcpFlags, String> {
    let mut f = TcpFlags::NONE;
    for p in s.split(',') {
        f = f | match p {
            "SYN" => TcpFlags::SYN,
            "ACK" => TcpFlags::ACK,
            "FIN" => TcpFlags::FIN,
            "RST" => TcpFlags::RST,
            "PSH" => TcpFlags::PSH,
            "URG" => TcpFlags::URG,
            _ => return Err(format!("unknown flag {p:?}")),
        };
    }
    Ok(f)
}

pub fn flags_str(f: TcpFlags) -> String {
    let mut v = Vec::new();
    for (b, n) in [(TcpFlags::SYN, "SYN"), (TcpFlags::FIN, "FIN"), (TcpFlags::RST, "RST"), (TcpFlags::ACK, "ACK")] {
        if f.contains(b) {
            v.push(n);
        }
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

fn num(s: &str) -> Result<Num, String> {
    match s {
        "." => Ok(Num::Next),
        "*" => Ok(Num::Any),
        "^" => Ok(Num::Acked),
        _ => s.parse::<i64>().map(Num::Rel).map_err(|e| format!("bad number {s:?}: {e}")),
    }
}

fn int<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| format!("bad number {s:?}: {e}"))
}

fn opt_set(s: &str) -> Result<OptSet, String> {
    let mut o = OptSet::default();
    if s == "none" {
        return Ok(o);
    }
    for p in s.split(',') {
        match p {
            "mss" => o.mss = true,
            "ws" => o.ws = true,
            "sackok" => o.sackok = true,
            "ts" => o.ts = true,
            "sack" => o.sack = true,
            _ => return Err(format!("unknown option {p:?}")),
        }
    }
    Ok(o)
}

/// `L-R,L-R`: SACK blocks relative to the driver's ISN.
fn sack_blocks(v: &str) -> Result<Vec<(i64, i64)>, String> {
    v.split(',')
        .map(|b| {
            let (l, r) = b.split_once('-').ok_or(format!("sack block {b:?} is not L-R"))?;
            Ok((int(l)?, int(r)?))
        })
        .collect()
}

fn parse_send(words: &[&str]) -> Result<Send, String> {
    let (first, rest) = words.split_first().ok_or("--> needs flags")?;
    let flags = parse_flags(first)?;
    let mut s = Send {
        flags,
        seq: Num::Next,
        ack: if flags.ack() { Num::Next } else { Num::Rel(0) },
        len: 0,
        win: 65535,
        mss: None,
        ws: None,
        sackok: false,
        ts: None,
        sack: Vec::new(),
    };
    for w in rest {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        match k {
            "seq" => s.seq = num(v)?,
            "ack" => s.ack = num(v)?,
            "len" => s.len = int(v)?,
            "win" => s.win = int(v)?,
            "mss" => s.mss = Some(int(v)?),
            "ws" => s.ws = Some(int(v)?),
            "sackok" => s.sackok = true,
            "ts" => {
                s.ts = Some(match v.split_once(':') {
                    Some((val, ecr)) => (int(val)?, Some(int(ecr)?)),
                    None => (int(v)?, None),
                })
            }
            "sack" => s.sack = sack_blocks(v)?,
            _ => return Err(format!("unknown field {k:?}")),
        }
    }
    Ok(s)
}

fn parse_expect(words: &[&str]) -> Result<Step, String> {
    let (first, rest) = words.split_first().ok_or("<-- needs flags or `none`")?;
    if *first == "any" {
        return Ok(Step::Drain(int(rest.first().ok_or("<-- any needs a time in ms")?)?));
    }
    if *first == "none" {
        let ms = match rest.first() {
            Some(v) => int(v)?,
            None => NONE_FOR_MS,
        };
        return Ok(Step::ExpectNone(ms));
    }
    let flags = parse_flags(first)?;
    let mut e = Expect {
        flags,
        seq: Num::Any,
        ack: Num::Any,
        win: None,
        opts: None,
        sack: None,
        len: None,
        within_ms: EXPECT_WITHIN_MS,
    };
    for w in rest {
        let (k, v) = w.split_once('=').ok_or(format!("{w:?} is not key=value"))?;
        match k {
            "seq" => e.seq = num(v)?,
            "ack" => e.ack = num(v)?,
            "len" => e.len = Some(int(v)?),
            "win" => {
                e.win = Some(match v {
                    "zero" => WinClass::Zero,
                    "open" => WinClass::Open,
                    _ => return Err(format!("win is zero or open, not {v:?}")),
                })
            }
            "opts" => e.opts = Some(opt_set(v)?),
            "sack" => e.sack = Some(sack_blocks(v)?),
            "within" => e.within_ms = int(v)?,
            _ => return Err(format!("unknown field {k:?}")),
        }
    }
    Ok(Step::Expect(Box::new(e)))
}

fn parse_app(words: &[&str]) -> Result<App, String> {
    let arg = |i: usize| words.get(i).copied().ok_or(format!("app {} needs an argument", words[0]));
    Ok(match words.first().copied().unwrap_or("") {
        "listen" => App::Listen(int(arg(1)?)?),
        "accept" => App::Accept,
        "connect" => App::Connect(int(arg(1)?)?),
        "send" => App::Send(int(arg(1)?)?),
        "read" => App::Read,
        "readn" => App::ReadN(int(arg(1)?)?),
        "shutdown" => App::Shutdown,
        "close" => App::Close,
        "rcvbuf" => App::RcvBuf(int(arg(1)?)?),
        "status" => App::Status,
        other => return Err(format!("unknown app call {other:?}")),
    })
}

/// Parses a scenario; `name` is used in messages.
pub fn parse(name: &str, text: &str) -> Script {
    let mut sc = Script {
        name: name.into(),
        title: String::new(),
        sysctls: Vec::new(),
        isn: 1_000_000,
        port: 40000,
        lines: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let (body, deviation) = match raw.split_once("deviation:") {
            Some((b, d)) => (b, Some(d.trim().to_string())),
            None => (raw, None),
        };
        let body = body.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let words: Vec<&str> = body.split_whitespace().collect();
        let fail = |e: String| -> ! { panic!("{name}:{no}: {e}\n    {raw}") };
        let step = match words[0] {
            "title" => {
                sc.title = body["title".len()..].trim().to_string();
                continue;
            }
            "sysctl" => {
                for kv in &words[1..] {
                    let (k, v) = kv.split_once('=').unwrap_or_else(|| fail(format!("{kv:?} is not key=value")));
                    let k = if k.contains('.') { k.to_string() } else { format!("net.ipv4.{k}") };
                    sc.sysctls.push((k, v.to_string()));
                }
                continue;
            }
            "isn" => {
                sc.isn = int::<u32>(words.get(1).copied().unwrap_or("")).unwrap_or_else(|e| fail(e));
                continue;
            }
            "port" => {
                sc.port = int::<u16>(words.get(1).copied().unwrap_or("")).unwrap_or_else(|e| fail(e));
                continue;
            }
            "app" => Step::App(parse_app(&words[1..]).unwrap_or_else(|e| fail(e))),
            "-->" if words.get(1) == Some(&"icmp") => Step::Icmp(match words.get(2).copied() {
                Some("port-unreachable") => 3,
                Some("host-unreachable") => 1,
                Some("proto-unreachable") => 2,
                other => fail(format!("unknown icmp kind {other:?}")),
            }),
            "-->" => Step::Send(Box::new(parse_send(&words[1..]).unwrap_or_else(|e| fail(e)))),
            "<--" => parse_expect(&words[1..]).unwrap_or_else(|e| fail(e)),
            "wait" => Step::Wait(int(words.get(1).copied().unwrap_or("")).unwrap_or_else(|e| fail(e))),
            other => fail(format!("unknown step {other:?}")),
        };
        sc.lines.push(Line { no, text: body.to_string(), step, deviation });
    }
    sc
}
