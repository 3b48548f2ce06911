//! Shard configuration. Knob names and defaults mirror the Linux sysctls (net.ipv4.tcp_*,
//! net.core.somaxconn) so operators find what they know.

use crate::time::Duration;

/// `tcp_congestion_control`: how the window grows between losses and how far it falls at one.
/// Recovery itself (RFC 6675 with SACK, RFC 6582 without, RACK-TLP, RTO) is the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionControl {
    /// RFC 5681 AIMD: one segment per round trip, the window halved at a loss.
    Reno,
    /// RFC 9438 CUBIC, Linux's default since 2.6.19 (`CONFIG_DEFAULT_TCP_CONG`): the window
    /// follows a cubic function of the time since the last loss and falls to 0.7 of itself.
    Cubic,
}

/// `tcp_syncookies`: 0 off, 1 when the SYN queue overflows (default), 2 always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynCookies {
    Off,
    OnOverflow,
    Always,
}

impl SynCookies {
    pub fn from_sysctl(v: u8) -> Option<Self> {
        match v {
            0 => Some(SynCookies::Off),
            1 => Some(SynCookies::OnOverflow),
            2 => Some(SynCookies::Always),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `net.ipv4.tcp_max_syn_backlog`: SYN-RECEIVED entries per shard, across listeners.
    pub max_syn_backlog: usize,
    /// `net.core.somaxconn`: upper bound for any listener's backlog.
    pub somaxconn: usize,
    pub syncookies: SynCookies,
    /// `tcp_synack_retries`: SYN-ACK retransmissions before a SYN-RECEIVED entry is dropped.
    pub synack_retries: u8,
    /// `tcp_syn_retries`: SYN retransmissions before an active open fails.
    pub syn_retries: u8,
    /// `tcp_retries2`: data/FIN retransmissions before an established connection is aborted.
    pub retries2: u8,
    /// `tcp_orphan_retries` for FIN retransmission after close(); Linux's 0 means 8.
    pub orphan_retries: u8,
    /// `tcp_fin_timeout`: how long an orphaned connection stays in FIN-WAIT-2.
    pub fin_timeout: Duration,
    /// `tcp_abort_on_overflow`: RST instead of dropping a final ACK when the accept queue is full.
    pub abort_on_overflow: bool,
    /// TIME-WAIT length, 2·MSL. Linux fixes it at 60 s (`TCP_TIMEWAIT_LEN`).
    pub time_wait: Duration,
    /// `tcp_timestamps`.
    pub timestamps: bool,
    /// `tcp_window_scaling`.
    pub window_scaling: bool,
    /// `tcp_sack`: we advertise SACK-permitted only when we use SACK; receiving SACK blocks is
    /// understood either way.
    pub sack: bool,
    /// `tcp_dsack`: report duplicate segments with a D-SACK block (RFC 2883). Only with SACK.
    pub dsack: bool,
    /// `tcp_early_retrans` = 3 (Linux's default): Tail Loss Probes (RFC 8985 §7) on
    /// connections that use SACK. Off gives the RFC 6298 timer alone.
    pub tlp: bool,
    /// `tcp_recovery` bit 1 (Linux's default): RACK loss detection (RFC 8985 §6) on
    /// connections that use SACK.
    pub rack: bool,
    /// `tcp_rfc1337`: a RST does not end TIME-WAIT (RFC 1337 §3). On by default here.
    pub rfc1337: bool,
    /// `tcp_invalid_ratelimit`: at most one challenge ACK / out-of-window ACK per connection per
    /// this interval (RFC 5961 §7; a per-connection limit, never a global counter,
    /// CVE-2016-5696).
    pub invalid_ratelimit: Duration,
    /// `tcp_keepalive_time`, `_intvl`, `_probes`; keepalive is off unless `keepalive` is set.
    pub keepalive: bool,
    pub keepalive_time: Duration,
    pub keepalive_intvl: Duration,
    pub keepalive_probes: u8,
    /// Delayed ACK timeout (Linux's minimum, `TCP_DELACK_MIN`, is 40 ms; RFC 5681 §4.2 allows
    /// up to 500 ms).
    pub delayed_ack: Duration,
    /// RFC 6298 (2.1): initial RTO.
    pub rto_initial: Duration,
    /// Lower bound of the RTO. RFC 6298 (2.4) says 1 s; Linux uses 200 ms (`TCP_RTO_MIN`), and
    /// so do we, since real clients on short paths expect it.
    pub rto_min: Duration,
    /// RFC 6298 (2.5): an upper bound of at least 60 s; Linux uses 120 s.
    pub rto_max: Duration,
    /// Advertised MSS for IPv4 / IPv6 (link MTU minus headers).
    pub mss_v4: u16,
    pub mss_v6: u16,
    /// Smallest send MSS a peer's MSS option or an ICMP PTB may impose (Linux
    /// `tcp_min_snd_mss` 48; we keep a safer floor).
    pub min_snd_mss: u16,
    /// Receive buffer per connection (bytes); sets the advertised window.
    pub rcv_buf: usize,
    /// Send buffer per connection (bytes).
    pub snd_buf: usize,
    /// Most connections (all states but TIME-WAIT and SYN-RECEIVED) a shard holds.
    pub max_connections: usize,
    /// Most TIME-WAIT entries (`tcp_max_tw_buckets`); at the limit a closing connection skips
    /// TIME-WAIT and closes at once, counted in TcpExtTCPTimeWaitOverflow, as Linux's
    /// `tcp_time_wait` does when `inet_twsk_alloc` finds the count at the limit. Default
    /// 262,144: Linux's default is half its established-hash size (one bucket per 128 KB of
    /// memory, at most 512 Ki), so 262,144 on machines with 64 GB or more; Linux's counts the
    /// whole network namespace, this one each shard.
    pub max_tw_buckets: usize,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_cwnd: u32,
    /// Congestion control (`tcp_congestion_control`); default CUBIC, as Linux.
    pub congestion_control: CongestionControl,
    /// `net.ipv4.tcp_slow_start_after_idle` (default on, as Linux): a connection that sent no
    /// data for longer than its RTO restarts from at most the initial window (RFC 5681 §4.1).
    pub slow_start_after_idle: bool,
    /// IP TTL / hop limit of emitted packets.
    pub ttl: u8,
    /// RSTs per second this shard sends in answer to segments that match nothing (no
    /// connection, no SYN-queue entry, a bad ACK or SYN-ACK to a listener); 0: no limit, RFC
    /// 9293 §3.10.7.1's one RST per segment. Default 200, FreeBSD's `net.inet.icmp.icmplim`
    /// (its `badport_bandlim()` limits closed-port and open-port RSTs); Linux has no such limit.
    /// Suppressed RSTs count in `XdptcpRstRateLimited`. Segments carrying data, SYN or FIN (what
    /// a peer whose connection we lost retransmits) keep a reserve that pure ACKs cannot spend,
    /// and one source gets at most half the rate: see [`super::rst_limit`]. RSTs of a
    /// connection (SYN-SENT's answer to a bad ACK, aborts) are never limited; challenge ACKs and
    /// TIME-WAIT ACKs have their own per-connection limit (`invalid_ratelimit`).
    pub rst_rate_limit: u32,
    /// Tokens of that bucket: the most RSTs sent at once after a quiet spell (default one
    /// second's worth, as FreeBSD counts per second). At most `burst + rate × seconds` go out.
    pub rst_rate_burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_syn_backlog: 4096,
            somaxconn: 4096,
            syncookies: SynCookies::OnOverflow,
            synack_retries: 5,
            syn_retries: 6,
            retries2: 15,
            orphan_retries: 8,
            fin_timeout: Duration::from_secs(60),
            abort_on_overflow: false,
            time_wait: Duration::from_secs(60),
            timestamps: true,
            window_scaling: true,
            // Linux `tcp_sack` = 1 and `tcp_dsack` = 1.
            sack: true,
            dsack: true,
            tlp: true,
            rack: true,
            rfc1337: true,
            invalid_ratelimit: Duration::from_millis(500),
            keepalive: false,
            keepalive_time: Duration::from_secs(7200),
            keepalive_intvl: Duration::from_secs(75),
            keepalive_probes: 9,
            delayed_ack: Duration::from_millis(40),
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            mss_v4: 1460,
            mss_v6: 1440,
            min_snd_mss: 536,
            rcv_buf: 256 * 1024,
            snd_buf: 256 * 1024,
            max_connections: 1 << 20,
            max_tw_buckets: 1 << 18,
            initial_cwnd: 10,
            congestion_control: CongestionControl::Cubic,
            slow_start_after_idle: true,
            ttl: 64,
            rst_rate_limit: 200,
            rst_rate_burst: 200,
        }
    }
}

impl Config {
    /// Window scale we offer: the smallest shift that lets the receive buffer be advertised
    /// (RFC 7323 §2.3; at most 14).
    pub fn rcv_wscale(&self) -> u8 {
        let mut s = 0u8;
        while s < 14 && (self.rcv_buf >> s) > 65535 {
            s += 1;
        }
        s
    }
}
