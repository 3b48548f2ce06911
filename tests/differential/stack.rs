//! The stack side: one `Shard` in memory, its clock advanced by hand, fed the very packets
//! the driver would put on the wire.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use xdptcp::tcp::{CloseReason, Config, ConnId, Event, IcmpError, Secrets, Shard, State, SynCookies};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::icmp::IcmpRepr;
use xdptcp::wire::ip_proto;

use crate::driver::{Dut, DUT_IP};
use crate::linux::BASE_SYSCTLS;
use crate::script::App;

/// The stack's `Config` for the DUT namespace's sysctls (base table, then the scenario's).
pub fn config_for(sysctls: &[(String, String)]) -> Config {
    let mut c = Config::default();
    let all = BASE_SYSCTLS.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(sysctls.iter().cloned());
    for (k, v) in all {
        let name = k.strip_prefix("net.ipv4.").unwrap_or(&k);
        let n: u64 = v.parse().unwrap_or(0);
        match name {
            "tcp_syncookies" => c.syncookies = SynCookies::from_sysctl(n as u8).expect("tcp_syncookies is 0, 1 or 2"),
            "tcp_timestamps" => c.timestamps = n != 0,
            "tcp_sack" => c.sack = n != 0,
            "tcp_dsack" => c.dsack = n != 0,
            // Linux turns TLP on at 3 and 4 (`tcp_schedule_loss_probe`).
            "tcp_early_retrans" => c.tlp = n >= 3,
            // Bit 1 of `tcp_recovery`: RACK loss detection.
            "tcp_recovery" => c.rack = n & 1 != 0,
            "tcp_window_scaling" => c.window_scaling = n != 0,
            "tcp_rfc1337" => c.rfc1337 = n != 0,
            "tcp_invalid_ratelimit" => c.invalid_ratelimit = Duration::from_millis(n),
            "tcp_syn_retries" => c.syn_retries = n as u8,
            "tcp_synack_retries" => c.synack_retries = n as u8,
            // No counterpart in the stack (ECN, TFO, corking, metrics, MTU probing, the
            // global challenge-ACK budget): the base table turns them off on Linux.
            _ => {}
        }
    }
    // The veth's MTU is 1500, so Linux advertises 1460.
    c.mss_v4 = 1460;
    c
}

pub struct StackDut {
    cfg: Config,
    shard: Shard,
    start: Instant,
    now: Instant,
    out: VecDeque<Vec<u8>>,
    events: Vec<Event>,
    port: u16,
    conn: Option<ConnId>,
}

impl StackDut {
    pub fn new(sysctls: &[(String, String)]) -> StackDut {
        let cfg = config_for(sysctls);
        let start = Instant::from_secs(1000);
        StackDut {
            shard: Shard::new(cfg.clone(), Secrets::from_seed(0x5eed)),
            cfg,
            start,
            now: start,
            out: VecDeque::new(),
            events: Vec::new(),
            port: 0,
            conn: None,
        }
    }

    fn settle(&mut self, mut v: Vec<Vec<u8>>) {
        self.shard.poll_transmit(self.now, &mut v);
        self.out.extend(v);
        while let Some(e) = self.shard.poll_event() {
            self.events.push(e);
        }
    }

    /// Fires timers up to `end`; stops early at the first packet when `stop_on_output`.
    fn run_until(&mut self, end: Instant, stop_on_output: bool) {
        loop {
            if stop_on_output && !self.out.is_empty() {
                return;
            }
            match self.shard.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let mut v = Vec::new();
                    self.shard.handle_timeout(self.now, &mut v);
                    self.settle(v);
                }
                _ => {
                    self.now = self.now.max(end);
                    return;
                }
            }
        }
    }

    fn conn(&self) -> Result<ConnId, String> {
        self.conn.ok_or_else(|| "no connection".to_string())
    }

    fn closed_reason(&self, id: ConnId) -> Option<CloseReason> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(i, r) if *i == id => Some(*r),
            _ => None,
        })
    }
}

impl Dut for StackDut {
    fn inject(&mut self, ip: &[u8]) {
        let mut v = Vec::new();
        if ip.get(9) == Some(&ip_proto::ICMP) {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            // As `net` hands ICMP errors to TCP.
            match IcmpRepr::parse_v4(&ip[ihl..], true) {
                Ok(IcmpRepr::Error { icmp_type, code, quote }) => {
                    if let Some(err) = IcmpError::from_v4(icmp_type, code) {
                        self.shard.handle_icmp_error(self.now, &quote, err, &mut v);
                    }
                }
                Ok(IcmpRepr::PacketTooBig { mtu, quote }) => {
                    self.shard.handle_icmp_error(self.now, &quote, IcmpError::PacketTooBig { mtu }, &mut v);
                }
                other => panic!("the driver sent an ICMP message the stack cannot take: {other:?}"),
            }
        } else {
            self.shard.handle_ip(self.now, ip, &mut v);
        }
        self.settle(v);
    }

    fn next(&mut self, within_ms: u64) -> Option<Vec<u8>> {
        let end = self.now + Duration::from_millis(within_ms);
        self.run_until(end, true);
        self.out.pop_front()
    }

    fn wait(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        self.run_until(end, false);
    }

    fn now_ms(&self) -> u64 {
        self.now.saturating_since(self.start).as_millis()
    }

    fn app(&mut self, a: &App, driver: SocketAddr) -> Result<String, String> {
        let mut v = Vec::new();
        let r = match a {
            App::RcvBuf(n) => {
                // Only before anything else happened: the buffer size is a shard setting.
                self.cfg.rcv_buf = *n;
                self.shard = Shard::new(self.cfg.clone(), Secrets::from_seed(0x5eed));
                Ok("ok".into())
            }
            App::Listen(p) => {
                self.port = *p;
                self.shard.listen(*p, None, 128).map(|_| "ok".into()).map_err(|e| format!("listen: {e:?}"))
            }
            App::Accept => match self.shard.accept(self.port) {
                Some(id) => {
                    self.conn = Some(id);
                    Ok("accepted".into())
                }
                None => Ok("nothing to accept".into()),
            },
            App::Connect(p) => {
                let local = SocketAddr::new(IpAddr::V4(DUT_IP), *p);
                match self.shard.connect(self.now, local, driver) {
                    Ok(id) => {
                        self.conn = Some(id);
                        Ok("connecting".into())
                    }
                    Err(e) => Err(format!("connect: {e:?}")),
                }
            }
            App::Status => {
                let id = self.conn()?;
                match self.closed_reason(id) {
                    Some(r) => Ok(format!("failed ({r:?})")),
                    None if self.events.contains(&Event::Connected(id)) => Ok("connected".into()),
                    None => Ok("pending".into()),
                }
            }
            App::Send(n) => {
                let data: Vec<u8> = (0..*n).map(|i| b'A' + (i % 26) as u8).collect();
                let id = self.conn()?;
                self.shard.send(id, &data).map(|k| format!("sent {k}")).map_err(|e| format!("write: {e:?}"))
            }
            App::Read => {
                let id = self.conn()?;
                let mut total = 0usize;
                let mut buf = vec![0u8; 65536];
                while let Ok(k) = self.shard.recv(id, &mut buf) {
                    if k == 0 {
                        break;
                    }
                    total += k;
                }
                self.settle(Vec::new());
                let eof = self.events.contains(&Event::PeerClosed(id))
                    || matches!(
                        self.shard.state(id),
                        Some(State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
                    );
                match self.closed_reason(id) {
                    Some(CloseReason::Reset) => Ok(format!("read {total}, reset")),
                    Some(CloseReason::Normal) => Ok(format!("read {total}, eof")),
                    Some(r) => Ok(format!("read {total}, error ({r:?})")),
                    None if eof => Ok(format!("read {total}, eof")),
                    None => Ok(format!("read {total}")),
                }
            }
            App::ReadN(n) => {
                let id = self.conn()?;
                let mut buf = vec![0u8; *n];
                let k = self.shard.recv(id, &mut buf).unwrap_or(0);
                self.settle(Vec::new());
                Ok(format!("read {k}"))
            }
            App::Shutdown => {
                let id = self.conn()?;
                self.shard.shutdown(self.now, id, &mut v).map(|_| "ok".into()).map_err(|e| format!("shutdown: {e:?}"))
            }
            App::Close => {
                let id = self.conn.take().ok_or("no connection")?;
                self.shard.close(self.now, id, &mut v).map(|_| "ok".into()).map_err(|e| format!("close: {e:?}"))
            }
        };
        self.settle(v);
        r
    }
}
