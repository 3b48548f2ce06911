//! Lines to stdout that never block the caller.
//!
//! `serve`'s main thread stops the engine, writes the stats file and answers signals; none of
//! that may wait for whoever reads stdout (a paused terminal, `| less`, a stalled log shipper).
//! Lines go through a bounded queue to a thread that does the writing; when the queue is full
//! the line is dropped and counted. At exit the queue gets a short grace to drain, and what is
//! still stuck in a blocked `write(2)` stays there: the process exits anyway.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Lines that may wait for a slow reader: a minute of per-second lines.
const QUEUE: usize = 64;

enum Msg {
    Line(String),
    /// Answered once every line queued before it has been written.
    Flushed(Sender<()>),
}

pub struct Console {
    tx: Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Console {
    /// A console writing to stdout from its own thread.
    pub fn stdout() -> Console {
        Console::with_writer(Box::new(std::io::stdout()))
    }

    pub fn with_writer(mut w: Box<dyn Write + Send>) -> Console {
        let (tx, rx): (Sender<Msg>, Receiver<Msg>) = bounded(QUEUE);
        let spawned = std::thread::Builder::new().name("xdptcp-stdout".into()).spawn(move || {
            for m in rx {
                match m {
                    Msg::Line(l) => {
                        // A reader that went away (EPIPE) is not an error of the stack.
                        let _ = w.write_all(l.as_bytes()).and_then(|_| w.flush());
                    }
                    Msg::Flushed(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        let dropped = Arc::new(AtomicU64::new(0));
        if spawned.is_err() {
            // No writer thread: every line counts as dropped (the queue fills and stays full).
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        Console { tx, dropped }
    }

    /// Queues `text` (a newline is added); drops it, counted, when the reader is behind.
    pub fn line(&self, text: impl Into<String>) {
        let mut s = text.into();
        s.push('\n');
        self.text(s);
    }

    /// Queues `text` as it is.
    pub fn text(&self, s: String) {
        match self.tx.try_send(Msg::Line(s)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because stdout did not keep up.
    #[cfg_attr(not(feature = "xdp"), allow(dead_code))] // reported by the xdp backend's summary
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits at most `grace` for the queued lines to be written. True if they were.
    pub fn flush(&self, grace: Duration) -> bool {
        let (done_tx, done_rx) = bounded(1);
        // The marker itself must not block: with the queue full, wait for room until `grace`.
        if self.tx.send_timeout(Msg::Flushed(done_tx), grace).is_err() {
            return false;
        }
        done_rx.recv_timeout(grace).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that blocks until released, as a pipe nobody reads does.
    struct Stuck(Arc<Mutex<()>>, Arc<Mutex<Vec<u8>>>);

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _g = self.0.lock();
            self.1.lock().map(|mut v| v.extend_from_slice(b)).ok();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_reader_drops_lines_and_never_blocks_the_caller() {
        let gate = Arc::new(Mutex::new(()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock().unwrap();
        let c = Console::with_writer(Box::new(Stuck(gate.clone(), out.clone())));
        for i in 0..(QUEUE * 4) {
            c.line(format!("line {i}"));
        }
        // The writer holds one line in its blocked write and the queue holds QUEUE more.
        assert!(c.dropped() >= (QUEUE * 4 - QUEUE - 1) as u64, "dropped {}", c.dropped());
        assert!(!c.flush(Duration::from_millis(50)), "flush cannot finish while the reader is stuck");
        drop(held);
        assert!(c.flush(Duration::from_secs(5)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert_eq!(text.lines().count() as u64 + c.dropped(), (QUEUE * 4) as u64);
    }

    #[test]
    fn lines_arrive_in_order() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let c = Console::with_writer(Box::new(Stuck(Arc::new(Mutex::new(())), out.clone())));
        c.line("a");
        c.text("b\n".into());
        assert!(c.flush(Duration::from_secs(5)));
        assert_eq!(&*out.lock().unwrap(), b"a\nb\n");
        assert_eq!(c.dropped(), 0);
    }
}
