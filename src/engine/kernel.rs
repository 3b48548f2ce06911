//! Kernel-socket counterparts: a load client (what `demo` and the interop tests drive the stack
//! with, from the Linux kernel's own TCP) and a kernel-socket server for the bundled apps (the
//! baseline and the fallback on hosts without XDP).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

/// Who closes first in a client exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    /// The client shuts down its side after reading the echo; the server follows.
    Client,
    /// The client sends a `CLOSE` line; the echo server closes first.
    Server,
}

#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub target: SocketAddr,
    pub connections: usize,
    pub concurrency: usize,
    /// Bytes each connection sends (and expects echoed).
    pub bytes: usize,
    pub closer: Closer,
    pub timeout: StdDuration,
}

#[derive(Debug, Default)]
pub struct ClientReport {
    pub ok: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub mismatches: u64,
    pub bytes_each_way: u64,
    pub elapsed: StdDuration,
}

/// The pattern connection `conn` sends: position and connection mixed, so a misplaced or
/// foreign byte is caught (xskxceiver-style `seq << 16 | i`).
pub fn pattern_byte(conn: usize, i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 11) as u8 ^ (conn as u8).wrapping_mul(31)
}

fn one_echo(plan: &ClientPlan, conn: usize) -> Result<(), &'static str> {
    let mut s = TcpStream::connect_timeout(&plan.target, plan.timeout).map_err(|_| "connect")?;
    s.set_read_timeout(Some(plan.timeout)).map_err(|_| "io")?;
    s.set_write_timeout(Some(plan.timeout)).map_err(|_| "io")?;
    s.set_nodelay(true).map_err(|_| "io")?;
    let mut payload: Vec<u8> = (0..plan.bytes).map(|i| pattern_byte(conn, i)).collect();
    if plan.closer == Closer::Server {
        payload.extend_from_slice(b"\nCLOSE\n");
    }
    let mut reader = s.try_clone().map_err(|_| "io")?;
    let expect = payload.len();
    let rd = std::thread::spawn(move || -> Result<Vec<u8>, &'static str> {
        let mut got = Vec::with_capacity(expect);
        let mut buf = [0u8; 65536];
        while got.len() < expect {
            let n = reader.read(&mut buf).map_err(|_| "io")?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(got)
    });
    s.write_all(&payload).map_err(|_| "io")?;
    let got = rd.join().map_err(|_| "io")??;
    if got != payload {
        return Err("mismatch");
    }
    match plan.closer {
        Closer::Client => {
            s.shutdown(Shutdown::Write).map_err(|_| "io")?;
            // The server closes when it sees our FIN: read to EOF.
            let mut rest = [0u8; 16];
            let n = s.read(&mut rest).map_err(|_| "io")?;
            if n != 0 {
                return Err("mismatch");
            }
        }
        Closer::Server => {
            let mut rest = [0u8; 16];
            let n = s.read(&mut rest).map_err(|_| "io")?;
            if n != 0 {
                return Err("mismatch");
            }
        }
    }
    Ok(())
}

/// Runs `plan.connections` echo exchanges over `plan.concurrency` threads.
#[allow(clippy::disallowed_methods)] // wall-clock timing of a real run
pub fn run_echo_clients(plan: &ClientPlan) -> ClientReport {
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let cerr = Arc::new(AtomicU64::new(0));
    let ioerr = Arc::new(AtomicU64::new(0));
    let mism = Arc::new(AtomicU64::new(0));
    let start = std::time::Instant::now();
    let mut hs = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (next, ok, cerr, ioerr, mism, plan) =
            (next.clone(), ok.clone(), cerr.clone(), ioerr.clone(), mism.clone(), plan.clone());
        hs.push(std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize;
            if i >= plan.connections {
                return;
            }
            match one_echo(&plan, i) {
                Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                Err("connect") => cerr.fetch_add(1, Ordering::Relaxed),
                Err("mismatch") => mism.fetch_add(1, Ordering::Relaxed),
                Err(_) => ioerr.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    for h in hs {
        let _ = h.join();
    }
    ClientReport {
        ok: ok.load(Ordering::Relaxed),
        connect_errors: cerr.load(Ordering::Relaxed),
        io_errors: ioerr.load(Ordering::Relaxed),
        mismatches: mism.load(Ordering::Relaxed),
        bytes_each_way: (plan.bytes * plan.connections) as u64,
        elapsed: start.elapsed(),
    }
}

/// A kernel-socket echo server (one thread per connection): the baseline for comparisons.
pub fn serve_echo_kernel(listener: TcpListener, stop: impl Fn() -> bool + Send + 'static) {
    listener.set_nonblocking(true).ok();
    while !stop() {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).ok();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(_) => std::thread::sleep(StdDuration::from_millis(1)),
        }
    }
}
