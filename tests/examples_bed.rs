//! The programs in `examples/` on the veth bed, driven by kernel TCP clients from the peer's
//! namespace, on one queue and on two: `kv` (per-core state, pipelined requests, a client that
//! does not read) and `upper` (half-close and backpressure).
//!
//! The example binaries are built by `cargo build --all-targets` (scripts/test.sh) or
//! `cargo test` without a target filter; run alone, build them first with
//! `cargo build --examples`.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping.

#![cfg(feature = "xdp")]

mod bed;
use bed::privileged;
use bed::serve_bed::{Bed, SERIAL};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `target/<profile>/examples/<name>`, next to this test's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(p.exists(), "{} is not built: run `cargo build --examples` first", p.display());
    p
}

/// Starts example `name` on the bed's stack side, serving `port` on `queues` queue(s).
fn start(bed: &mut Bed, name: &str, port: u16, queues: u32) {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &bed.ns_srv()])
        .arg(example(name))
        .args(["--iface", &bed.dev_srv(), "--addr", "198.18.0.1", "--port", &port.to_string()])
        .args(["--queues", &queues.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    bed.serve_with(c);
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("read a reply line");
    s
}

fn kv_session(bed: &Bed) -> (String, BufReader<TcpStream>) {
    let s = bed.peer_connect("198.18.0.1:7000").expect("connect to kv");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s);
    r.get_mut().write_all(b"CORE\n").unwrap();
    (line(&mut r), r)
}

#[test]
fn kv_example_serves_kernel_clients_with_per_core_state() {
    if !privileged("kv_example_serves_kernel_clients_with_per_core_state") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in [("e1", 1u32), ("e2", 2)] {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        start(&mut bed, "kv", 7000, queues);

        // One connection: set, get, overwrite, delete, an unknown command.
        let (core, mut r) = kv_session(&bed);
        assert!(core.starts_with("CORE ") && core.ends_with(&format!(" OF {queues}\n")), "{core:?}");
        let s = r.get_mut();
        s.write_all(b"SET colour blue\nGET colour\nSET colour red green\nGET colour\nDEL colour\nGET colour\n")
            .unwrap();
        s.write_all(b"FLY away\nDEL colour\n").unwrap();
        let want = ["OK\n", "VALUE blue\n", "OK\n", "VALUE red green\n", "DELETED\n", "NOT_FOUND\n"];
        for w in want {
            assert_eq!(line(&mut r), w, "{queues} queue(s)");
        }
        assert_eq!(line(&mut r), "ERROR unknown command\n");
        assert_eq!(line(&mut r), "NOT_FOUND\n");

        // Per-core state: a key set on one connection is seen by every connection the NIC
        // put on the same core, and by no other.
        r.get_mut().write_all(b"SET shared yes\n").unwrap();
        assert_eq!(line(&mut r), "OK\n");
        let mut same_core = 0;
        for _ in 0..8 {
            let (c2, mut r2) = kv_session(&bed);
            r2.get_mut().write_all(b"GET shared\nQUIT\n").unwrap();
            let got = line(&mut r2);
            if c2 == core {
                same_core += 1;
                assert_eq!(got, "VALUE yes\n", "same core ({c2:?})");
            } else {
                assert_eq!(got, "NOT_FOUND\n", "another core's store ({c2:?} vs {core:?})");
            }
            assert_eq!(line(&mut r2), "BYE\n");
            let mut rest = Vec::new();
            r2.read_to_end(&mut rest).expect("the server closes after BYE");
            assert!(rest.is_empty());
        }
        if queues == 1 {
            assert_eq!(same_core, 8);
        }

        // Pipelining past the send buffer from a client that does not read at first: 20,000
        // requests (about 240 KB of replies) are all answered, in order, once it reads.
        let s = r.get_mut();
        let mut reqs = Vec::new();
        for i in 0..20_000 {
            reqs.extend_from_slice(format!("SET k{i} v{i}\nGET k{i}\n").as_bytes());
        }
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(&reqs));
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..20_000 {
            assert_eq!(line(&mut r), "OK\n", "request {i}");
            assert_eq!(line(&mut r), format!("VALUE v{i}\n"), "request {i}");
        }
        writer.join().unwrap().expect("all requests written");
        // Half-close: the server answers what was sent, then closes.
        r.get_mut().write_all(b"GET k7\n").unwrap();
        r.get_mut().shutdown(Shutdown::Write).unwrap();
        assert_eq!(line(&mut r), "VALUE v7\n");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).expect("EOF after the answers");
        assert!(rest.is_empty());

        let out = bed.stop();
        assert!(out.contains("kv: stopped"), "{out}");
    }
}

#[test]
fn upper_example_half_close_and_backpressure() {
    if !privileged("upper_example_half_close_and_backpressure") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (tag, queues) in [("e3", 1u32), ("e4", 2)] {
        let mut bed = Bed::up_queues(tag, "shared", queues);
        start(&mut bed, "upper", 7001, queues);

        // A small exchange: the reply, then the trailer after our FIN, then EOF.
        let mut s = bed.peer_connect("198.18.0.1:7001").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"hello, world").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), "HELLO, WORLD\n-- 12 bytes\n");

        // Backpressure: 8 MiB sent by a client that reads nothing for a while. The server
        // stops reading when its send buffer is full, so the client's writes block (its
        // sending stalls well short of 8 MiB) until it reads; then every byte comes back
        // transformed, in order, and the trailer counts them all.
        let total: usize = 8 << 20;
        let data: Vec<u8> = (0..total).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]).collect();
        let s = bed.peer_connect("198.18.0.1:7001").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut w = s.try_clone().unwrap();
        let (d2, sent2) = (data.clone(), std::sync::Arc::clone(&sent));
        let writer = std::thread::spawn(move || {
            for c in d2.chunks(64 * 1024) {
                w.write_all(c)?;
                sent2.fetch_add(c.len(), std::sync::atomic::Ordering::SeqCst);
            }
            w.shutdown(Shutdown::Write)
        });
        std::thread::sleep(Duration::from_millis(1500));
        let stalled_at = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(stalled_at < total / 2, "the client sent {stalled_at} bytes without reading: no backpressure");
        let mut r = s;
        let mut got = Vec::with_capacity(total + 32);
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap().expect("the client's writes complete once it reads");
        let (body, trailer) = got.split_at(total.min(got.len()));
        assert!(body == data.to_ascii_uppercase(), "{queues} queue(s): stream corrupted ({} bytes)", got.len());
        assert_eq!(String::from_utf8_lossy(trailer), format!("\n-- {total} bytes\n"));
        bed.stop();
    }
}
