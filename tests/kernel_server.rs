//! The kernel-socket server (`rig::kernel_server`) over loopback, unprivileged: every bundled
//! app's rules, checked with plain `std` clients, and the run's statistics.
//!
//! Each test starts its own server (two threads sharing each port with `SO_REUSEPORT`) on ports
//! derived from the process id plus a per-test slot, so tests running in parallel never share a
//! port. Every client socket has a timeout: a server bug fails a test instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use xdptcp::app::AppKind;
use xdptcp::rig::kernel_server::{run, KernelServeConfig, KernelServeStats, KernelServer};

const TIMEOUT: Duration = Duration::from_secs(10);
const BODY: usize = 1000;

/// Port slots handed out to the tests of this process.
static SLOT: AtomicU16 = AtomicU16::new(0);

/// A base port with `n` (at most three) free consecutive ports after it: 40000 + (pid % 300) * 64,
/// then three ports per slot, skipping ports something else already holds.
fn pick_ports(addr: IpAddr, n: u16) -> u16 {
    assert!(n <= 3);
    let pid_part = (std::process::id() % 300) as u16 * 64;
    loop {
        let slot = SLOT.fetch_add(1, Ordering::Relaxed);
        assert!(slot < 21, "ran out of port slots");
        let base = 40_000 + pid_part + slot * 3;
        // A plain (non-reuseport) bind succeeds only if nobody holds the port; dropped at once.
        let free = (0..n).all(|i| TcpListener::bind(SocketAddr::new(addr, base + i)).is_ok());
        if free {
            return base;
        }
    }
}

struct Server {
    addr: IpAddr,
    base: u16,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<std::io::Result<KernelServeStats>>>,
}

/// Starts `run` in a thread with two threads serving `apps` on consecutive ports.
fn start(addr: IpAddr, apps: &[AppKind]) -> Server {
    start_with(addr, apps, None)
}

fn start_with(addr: IpAddr, apps: &[AppKind], congestion: Option<&'static str>) -> Server {
    let base = pick_ports(addr, apps.len() as u16);
    let cfg = KernelServeConfig {
        addr,
        apps: apps.iter().enumerate().map(|(i, k)| (base + i as u16, k.clone())).collect(),
        threads: 2,
        cores: Vec::new(),
        backlog: 1024,
        congestion,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || run(&cfg, &s));
    Server { addr, base, stop, handle: Some(handle) }
}

impl Server {
    fn addr(&self, app: u16) -> SocketAddr {
        SocketAddr::new(self.addr, self.base + app)
    }

    /// Connects to app number `app`, waiting (a refused connect is not a connection) while the
    /// server is still binding.
    fn connect(&self, app: u16) -> TcpStream {
        let addr = self.addr(app);
        for _ in 0..500 {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(s) => {
                    s.set_read_timeout(Some(TIMEOUT)).unwrap();
                    s.set_write_timeout(Some(TIMEOUT)).unwrap();
                    s.set_nodelay(true).unwrap();
                    return s;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    let exited = self.handle.as_ref().is_some_and(|h| h.is_finished());
                    assert!(!exited, "the server exited before listening on {addr} (a bind error?)");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("connect {addr}: {e}"),
            }
        }
        panic!("connect {addr}: still refused after 5 s");
    }

    /// Sets the stop flag and returns the run's totals.
    fn stop(mut self) -> KernelServeStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("server thread panicked").expect("server run failed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave server threads running.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads until EOF; panics on a timeout or error.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to EOF");
    got
}

fn assert_eof(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    let n = s.read(&mut b).expect("read after the last reply");
    assert_eq!(n, 0, "expected EOF, got {:?}", String::from_utf8_lossy(&b[..n]));
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed as u8).collect()
}

/// Writes `data` from a second thread while this one reads `expect` bytes back, so neither side
/// blocks on a full socket buffer.
fn echo_exchange(s: &TcpStream, data: Vec<u8>, expect: usize) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&data));
    let mut r = s.try_clone().unwrap();
    let mut got = vec![0u8; expect];
    r.read_exact(&mut got).expect("read the echo");
    writer.join().unwrap().expect("write the payload");
    got
}

fn v4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[test]
fn echo_round_trips_one_mib() {
    let srv = start(v4(), &[AppKind::Echo]);
    let mut s = srv.connect(0);
    let data = pattern(1 << 20, 7);
    let got = echo_exchange(&s, data.clone(), data.len());
    assert!(got == data, "echoed bytes differ");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eof(&mut s);
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (1, 1, 0, 0), "{st:?}");
    assert_eq!((st.bytes_in, st.bytes_out), (1 << 20, 1 << 20), "{st:?}");
}

#[test]
fn echo_close_line_closes_after_the_echo() {
    let srv = start(v4(), &[AppKind::Echo]);
    for msg in [&b"hello\nCLOSE\n"[..], b"CLOSE\r\n", b"first line\r\nCLOSE\r\n"] {
        let mut s = srv.connect(0);
        s.write_all(msg).unwrap();
        assert_eq!(read_to_eof(&mut s), msg, "echo, then EOF, without any shutdown from us");
    }
    // Not a CLOSE line: the connection stays open.
    let mut s = srv.connect(0);
    s.write_all(b"CLOSED\nNOCLOSE\n").unwrap();
    let mut got = [0u8; 15];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"CLOSED\nNOCLOSE\n");
    s.write_all(b"CLO").unwrap();
    s.write_all(b"SE\n").unwrap();
    assert_eq!(read_to_eof(&mut s), b"CLOSE\n", "a CLOSE line split across writes");
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (4, 4, 0, 0), "{st:?}");
}

#[test]
fn echo_peer_shutdown_echoes_the_rest_then_closes() {
    let srv = start(v4(), &[AppKind::Echo]);
    // Small: the FIN arrives with (or right after) the data.
    let mut s = srv.connect(0);
    s.write_all(b"abc").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut s), b"abc");
    // Large and sent before we read anything: the server still has output queued at our FIN.
    let mut s = srv.connect(0);
    let data = pattern(600 * 1024, 3);
    let mut w = s.try_clone().unwrap();
    let payload = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&payload)?;
        w.shutdown(Shutdown::Write)
    });
    let got = read_to_eof(&mut s);
    writer.join().unwrap().unwrap();
    assert!(got == data, "echoed {} of {} bytes, or different ones", got.len(), data.len());
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (2, 2, 0, 0), "{st:?}");
    let total = 3 + data.len() as u64;
    assert_eq!((st.bytes_in, st.bytes_out), (total, total), "{st:?}");
}

#[test]
fn echo_sender_that_does_not_read_is_held_back_not_lost() {
    let srv = start(v4(), &[AppKind::Echo]);
    let mut s = srv.connect(0);
    // Far more than the socket buffers plus the server's output limit: the server must stop
    // reading while its output is stuck, and resume once we read.
    let data = pattern(8 << 20, 5);
    let mut w = s.try_clone().unwrap();
    let payload = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&payload));
    std::thread::sleep(Duration::from_millis(300));
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).expect("read the echo");
    writer.join().unwrap().expect("write the payload");
    assert!(got == data, "echoed bytes differ");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eof(&mut s);
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors), (1, 1, 0), "{st:?}");
    assert_eq!((st.bytes_in, st.bytes_out), (8 << 20, 8 << 20), "{st:?}");
}

/// Reads one HTTP response: the head, then `Content-Length` body bytes.
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).expect("read response head");
        assert_eq!(n, 1, "EOF inside a response head after {:?}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).expect("Content-Length").trim().parse().unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read response body");
    (head, body)
}

fn expected_body() -> Vec<u8> {
    (0..BODY).map(|i| b'a' + (i % 26) as u8).collect()
}

const HEAD_KEEP_ALIVE: &str =
    "HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
const HEAD_CLOSE: &str =
    "HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";

#[test]
fn http_keep_alive_serves_several_requests_on_one_connection() {
    let srv = start(v4(), &[AppKind::Http { body: BODY }]);
    let mut s = srv.connect(0);
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(head, HEAD_KEEP_ALIVE);
        assert_eq!(body, expected_body());
    }
    // Pipelined, and the last head split across two writes.
    s.write_all(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nHost: te").unwrap();
    s.write_all(b"st\r\n\r\n").unwrap();
    for _ in 0..3 {
        let (head, body) = read_response(&mut s);
        assert_eq!((head.as_str(), body.len()), (HEAD_KEEP_ALIVE, BODY));
    }
    // HTTP/1.0 that asks for keep-alive stays open too.
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).0, HEAD_KEEP_ALIVE);
    // Our FIN: the server closes.
    s.shutdown(Shutdown::Write).unwrap();
    assert_eof(&mut s);
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (1, 1, 0, 0), "{st:?}");
    assert_eq!(st.bytes_out, 7 * (HEAD_KEEP_ALIVE.len() + BODY) as u64, "{st:?}");
}

#[test]
fn http_pipelined_large_responses_arrive_whole_and_in_order() {
    const BIG: usize = 100_000;
    const N: usize = 40;
    let srv = start(v4(), &[AppKind::Http { body: BIG }]);
    let mut s = srv.connect(0);
    // Every request before reading anything: 4 MB of responses queue up behind a full socket.
    let mut reqs = Vec::new();
    for i in 0..N {
        reqs.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    }
    reqs.extend_from_slice(b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n");
    s.write_all(&reqs).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let want: Vec<u8> = (0..BIG).map(|i| b'a' + (i % 26) as u8).collect();
    for i in 0..=N {
        let (head, body) = read_response(&mut s);
        assert_eq!(head.contains("Connection: close"), i == N, "response {i}: {head}");
        assert!(body == want, "response {i}: body differs");
    }
    assert_eof(&mut s);
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors), (1, 1, 0), "{st:?}");
}

#[test]
fn http_connection_close_and_http10_close_after_one_response() {
    let srv = start(v4(), &[AppKind::Http { body: BODY }]);
    let requests = [
        &b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nconnection: keep-alive, Close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        // Requests after a closing one are read and ignored.
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    ];
    for req in requests {
        let mut s = srv.connect(0);
        s.write_all(req).unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(head, HEAD_CLOSE, "request {:?}", String::from_utf8_lossy(req));
        assert_eq!(body, expected_body());
        assert_eof(&mut s);
    }
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (4, 4, 0, 0), "{st:?}");
}

#[test]
fn http_oversized_head_gets_431_and_a_close() {
    let srv = start(v4(), &[AppKind::Http { body: BODY }]);
    let mut s = srv.connect(0);
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    while req.len() <= 20 * 1024 {
        req.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    s.write_all(&req).unwrap();
    let got = read_to_eof(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors), (1, 1, 0), "{st:?}");
}

#[test]
fn discard_reads_everything_and_closes_on_eof() {
    let srv = start(v4(), &[AppKind::Discard]);
    let mut s = srv.connect(0);
    let data = pattern(300 * 1024, 9);
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut s), b"", "discard sends nothing");
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (1, 1, 0, 0), "{st:?}");
    assert_eq!((st.bytes_in, st.bytes_out), (data.len() as u64, 0), "{st:?}");
}

#[test]
fn two_hundred_concurrent_connections_over_three_apps() {
    let srv = start(v4(), &[AppKind::Echo, AppKind::Http { body: BODY }, AppKind::Discard]);
    const N: usize = 200;
    // All open at once, spread over the apps.
    let mut conns: Vec<TcpStream> = (0..N).map(|i| srv.connect((i % 3) as u16)).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        match i % 3 {
            0 => s.write_all(format!("connection {i}\n").as_bytes()).unwrap(),
            1 => s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap(),
            _ => s.write_all(&pattern(1000, i as u32)).unwrap(),
        }
    }
    for (i, s) in conns.iter_mut().enumerate() {
        match i % 3 {
            0 => {
                let want = format!("connection {i}\n");
                let mut got = vec![0u8; want.len()];
                s.read_exact(&mut got).unwrap();
                assert_eq!(got, want.as_bytes());
            }
            1 => assert_eq!(read_response(s).1.len(), BODY),
            _ => {}
        }
    }
    for s in &conns {
        s.shutdown(Shutdown::Write).unwrap();
    }
    for s in conns.iter_mut() {
        assert_eof(s);
    }
    let st = srv.stop();
    let n = N as u64;
    assert_eq!((st.accepted, st.closed, st.errors, st.open_at_stop), (n, n, 0, 0), "{st:?}");
}

#[test]
fn stop_with_open_connections_reports_them() {
    let srv = start(v4(), &[AppKind::Echo]);
    let mut s = srv.connect(0);
    s.write_all(b"ping\n").unwrap();
    let mut got = [0u8; 5];
    s.read_exact(&mut got).unwrap();
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed, st.open_at_stop), (1, 0, 1), "{st:?}");
    // The server closed it on the way out.
    assert_eof(&mut s);
}

#[test]
fn echo_over_ipv6_loopback() {
    let addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    if TcpListener::bind(SocketAddr::new(addr, 0)).is_err() {
        eprintln!("SKIPPED echo_over_ipv6_loopback: no IPv6 loopback here");
        return;
    }
    let srv = start(addr, &[AppKind::Echo]);
    let mut s = srv.connect(0);
    s.write_all(b"over ipv6\nCLOSE\n").unwrap();
    assert_eq!(read_to_eof(&mut s), b"over ipv6\nCLOSE\n");
    let st = srv.stop();
    assert_eq!((st.accepted, st.closed), (1, 1), "{st:?}");
}

/// `serve --backend kernel --congestion-control reno`: the listening sockets carry the
/// algorithm (`TCP_CONGESTION`) and the connections they accept inherit it, whatever the
/// namespace's default; `ss -ti` shows it on the server's side of the connection.
#[test]
fn accepted_connections_use_the_configured_congestion_control() {
    let srv = start_with(v4(), &[AppKind::Echo], Some("reno"));
    let mut c = srv.connect(0);
    c.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap();
    let port = srv.addr(0).port();
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" reno "), "the server's socket is not reno:\n{text}");
}

#[test]
fn bind_refuses_bad_configs_and_reports_ports_in_use() {
    let cfg = |apps: Vec<(u16, AppKind)>, threads| KernelServeConfig {
        addr: v4(),
        apps,
        threads,
        cores: Vec::new(),
        backlog: 16,
        congestion: None,
    };
    let err = |c: &KernelServeConfig| KernelServer::bind(c).err().expect("bind should fail").kind();
    assert_eq!(err(&cfg(vec![(0, AppKind::Echo)], 1)), ErrorKind::InvalidInput);
    assert_eq!(err(&cfg(vec![(40_000, AppKind::Echo)], 0)), ErrorKind::InvalidInput);
    assert_eq!(err(&cfg(Vec::new(), 1)), ErrorKind::InvalidInput);
    assert_eq!(err(&cfg(vec![(40_000, AppKind::Echo), (40_000, AppKind::Discard)], 1)), ErrorKind::InvalidInput);
    // A port held by a socket without SO_REUSEPORT cannot be shared.
    let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    assert_eq!(err(&cfg(vec![(port, AppKind::Echo)], 2)), ErrorKind::AddrInUse);
    // `run` with the stop flag already set binds, serves nothing and returns zeros.
    drop(holder);
    let stop = AtomicBool::new(true);
    assert_eq!(run(&cfg(vec![(port, AppKind::Echo)], 2), &stop).unwrap(), KernelServeStats::default());
}
