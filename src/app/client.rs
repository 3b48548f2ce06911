//! A load-generating client: keeps a number of connections in flight, each doing one
//! request/response exchange, and records connect and request latencies and errors by kind.
//! Driven by the engine like any handler (the stack as a client).

use super::{Conn, Handler};
use crate::tcp::{ApiError, CloseReason, ConnId};
use crate::time::Instant;
use core::net::{IpAddr, SocketAddr};
use hashbrown::HashMap;

#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub local: IpAddr,
    /// Source ports to cycle through (the XDP program steers their range to the stack). On a
    /// NIC with a readable RSS key, only those whose replies land on the client's queue
    /// (`engine::nic::port_pool`).
    pub ports: Vec<u16>,
    pub remote: SocketAddr,
    pub concurrency: usize,
    /// The request; the exchange ends when the server closes (HTTP `Connection: close`, or the
    /// echo app's `CLOSE` line).
    pub request: Vec<u8>,
    /// Stop opening connections at this instant.
    pub until: Instant,
}

#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub completed: u64,
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub short: u64,
    pub other: u64,
    pub connect_us: Vec<u32>,
    pub request_us: Vec<u32>,
}

struct Flow {
    opened: Instant,
    sent_at: Option<Instant>,
    got: usize,
}

pub struct Client {
    plan: ClientPlan,
    /// Index of the next port in `plan.ports`.
    next_port: usize,
    flows: HashMap<ConnId, Flow>,
    /// Connections asked for and not yet finished.
    in_flight: usize,
    pub stats: ClientStats,
    buf: Vec<u8>,
}

fn micros(from: Instant, to: Instant) -> u32 {
    to.saturating_since(from).as_micros().min(u64::from(u32::MAX)) as u32
}

impl Client {
    pub fn new(plan: ClientPlan) -> Self {
        Client {
            plan,
            next_port: 0,
            flows: HashMap::new(),
            in_flight: 0,
            stats: ClientStats::default(),
            buf: vec![0; 16384],
        }
    }
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl Handler for Client {
    fn poll_connect(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr)> {
        if now >= self.plan.until || self.in_flight >= self.plan.concurrency {
            return None;
        }
        let port = *self.plan.ports.get(self.next_port).or(self.plan.ports.first())?;
        self.next_port = (self.next_port + 1) % self.plan.ports.len().max(1);
        self.in_flight += 1;
        Some((SocketAddr::new(self.plan.local, port), self.plan.remote))
    }

    fn on_connect_result(&mut self, now: Instant, r: Result<ConnId, ApiError>) {
        match r {
            Ok(id) => {
                self.flows.insert(id, Flow { opened: now, sent_at: None, got: 0 });
            }
            Err(_) => {
                // Port still held (TIME-WAIT of an earlier round): the next call takes the next.
                self.in_flight = self.in_flight.saturating_sub(1);
                self.stats.other += 1;
            }
        }
    }

    fn on_connected(&mut self, c: &mut Conn<'_>) {
        let Some(f) = self.flows.get_mut(&c.id) else { return };
        self.stats.connect_us.push(micros(f.opened, c.now));
        f.sent_at = Some(c.now);
        let _ = c.send(&self.plan.request);
    }

    fn on_data(&mut self, c: &mut Conn<'_>) {
        let Some(f) = self.flows.get_mut(&c.id) else { return };
        loop {
            let n = c.recv(&mut self.buf);
            if n == 0 {
                break;
            }
            f.got += n;
        }
    }

    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        if let Some(f) = self.flows.get_mut(&c.id) {
            if f.got > 0 {
                if let Some(s) = f.sent_at {
                    self.stats.request_us.push(micros(s, c.now));
                }
                self.stats.completed += 1;
            } else {
                self.stats.short += 1;
            }
            self.flows.remove(&c.id);
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        c.close();
    }

    fn on_closed(&mut self, id: ConnId, reason: CloseReason) {
        if self.flows.remove(&id).is_some() {
            self.in_flight = self.in_flight.saturating_sub(1);
            match reason {
                CloseReason::Refused | CloseReason::Unreachable => self.stats.refused += 1,
                CloseReason::Reset => self.stats.reset += 1,
                CloseReason::TimedOut => self.stats.timeout += 1,
                CloseReason::Normal => self.stats.short += 1,
                CloseReason::Aborted => self.stats.other += 1,
            }
        }
    }
}
