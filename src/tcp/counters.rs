//! Per-shard counters, named as Linux's `nstat` names them, and the drop reasons.
//!
//! Only the owning core writes them; the engine copies a snapshot out over the control channel.

macro_rules! counters {
    ($( $(#[$m:meta])* $field:ident => $name:literal, )*) => {
        /// Protocol counters of one shard. Field names are the `nstat` names in snake case;
        /// [`Counters::iter`] yields the exact `nstat` spelling.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Counters {
            $( $(#[$m])* pub $field: u64, )*
            /// Drops by reason, indexed by [`DropReason::index`].
            pub drops: [u64; DropReason::COUNT],
        }

        impl Counters {
            /// `(nstat name, value)` for every counter (drop reasons excluded).
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$( ($name, self.$field), )*].into_iter()
            }

            /// Adds every counter of `o` into `self` (aggregation across shards).
            pub fn merge(&mut self, o: &Counters) {
                $( self.$field = self.$field.wrapping_add(o.$field); )*
                for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
                    *a = a.wrapping_add(*b);
                }
            }
        }
    };
}

counters! {
    /// Active opens (SYN-SENT entered from CLOSED).
    tcp_active_opens => "TcpActiveOpens",
    /// Passive opens (SYN-RECEIVED entered from LISTEN, cookies included).
    tcp_passive_opens => "TcpPassiveOpens",
    /// SYN-SENT/SYN-RECEIVED to CLOSED, or SYN-RECEIVED to LISTEN.
    tcp_attempt_fails => "TcpAttemptFails",
    /// ESTABLISHED/CLOSE-WAIT to CLOSED by a reset.
    tcp_estab_resets => "TcpEstabResets",
    /// Connections currently ESTABLISHED or CLOSE-WAIT (a gauge).
    tcp_curr_estab => "TcpCurrEstab",
    tcp_in_segs => "TcpInSegs",
    tcp_out_segs => "TcpOutSegs",
    tcp_retrans_segs => "TcpRetransSegs",
    /// Segments received in error (bad checksum, malformed header).
    tcp_in_errs => "TcpInErrs",
    tcp_out_rsts => "TcpOutRsts",
    tcp_in_csum_errors => "TcpInCsumErrors",
    tcp_ext_syncookies_sent => "TcpExtSyncookiesSent",
    tcp_ext_syncookies_recv => "TcpExtSyncookiesRecv",
    tcp_ext_syncookies_failed => "TcpExtSyncookiesFailed",
    /// Final ACKs (or SYNs) dropped because the accept queue was full.
    tcp_ext_listen_overflows => "TcpExtListenOverflows",
    /// Every SYN or final ACK a listener dropped, for any reason.
    tcp_ext_listen_drops => "TcpExtListenDrops",
    /// SYNs dropped because the SYN queue was full and cookies are off.
    tcp_ext_tcp_req_q_full_drop => "TcpExtTCPReqQFullDrop",
    /// SYNs answered with a cookie because the SYN queue was full.
    tcp_ext_tcp_req_q_full_do_cookies => "TcpExtTCPReqQFullDoCookies",
    tcp_ext_tcp_challenge_ack => "TcpExtTCPChallengeACK",
    tcp_ext_tcp_syn_challenge => "TcpExtTCPSYNChallenge",
    /// Challenge ACKs suppressed by the per-connection rate limit.
    tcp_ext_tcp_ack_skipped_challenge => "TcpExtTCPACKSkippedChallenge",
    tcp_ext_out_of_window_icmps => "TcpExtOutOfWindowIcmps",
    /// Connections that entered TIME-WAIT.
    tcp_ext_tw => "TcpExtTW",
    /// Connections that closed without a TIME-WAIT entry: `tcp_max_tw_buckets` was reached.
    tcp_ext_tcp_time_wait_overflow => "TcpExtTCPTimeWaitOverflow",
    /// TIME-WAIT entries reused by a new SYN (RFC 6191).
    tcp_ext_tw_recycled => "TcpExtTWRecycled",
    /// Answers a SYN-queue entry did not send because of its rate limit.
    tcp_ext_tcp_ack_skipped_syn_recv => "TcpExtTCPACKSkippedSynRecv",
    /// ACKs TIME-WAIT did not send because of the per-entry rate limit.
    tcp_ext_tcp_ack_skipped_time_wait => "TcpExtTCPACKSkippedTimeWait",
    /// RSTs ignored in TIME-WAIT (RFC 1337).
    tcp_ext_tw_rst_ignored => "TcpExtTWRstIgnored",
    /// Segments dropped by PAWS (RFC 7323 §5).
    tcp_ext_paws_estab_rejected => "TcpExtPAWSEstab",
    tcp_ext_tcp_timeouts => "TcpExtTCPTimeouts",
    /// Timeouts F-RTO found spurious and undid (RFC 5682, RFC 4015).
    tcp_ext_tcp_spurious_rtos => "TcpExtTCPSpuriousRTOs",
    tcp_ext_tcp_abort_on_timeout => "TcpExtTCPAbortOnTimeout",
    tcp_ext_tcp_abort_on_data => "TcpExtTCPAbortOnData",
    tcp_ext_tcp_abort_on_close => "TcpExtTCPAbortOnClose",
    tcp_ext_tcp_fast_retrans => "TcpExtTCPFastRetrans",
    tcp_ext_tcp_syn_retrans => "TcpExtTCPSynRetrans",
    tcp_ext_tcp_ofo_queue => "TcpExtTCPOFOQueue",
    /// Out-of-order segments dropped: the out-of-order store was full and they lay beyond it.
    tcp_ext_tcp_ofo_drop => "TcpExtTCPOFODrop",
    /// Times the far end of the out-of-order store was forgotten to take nearer data.
    tcp_ext_ofo_pruned => "TcpExtOfoPruned",
    /// Timeouts that found the data at SND.UNA SACKed (the peer dropped what it had SACKed) and
    /// so forgot every SACK (Linux `tcp_timeout_mark_lost`).
    tcp_ext_tcp_sack_reneging => "TcpExtTCPSACKReneging",
    /// SACK-based loss recoveries entered (RFC 6675).
    tcp_ext_tcp_sack_recovery => "TcpExtTCPSackRecovery",
    /// Tail Loss Probes sent (RFC 8985 §7.3).
    tcp_ext_tcp_loss_probes => "TcpExtTCPLossProbes",
    /// Loss probes that repaired a loss (RFC 8985 §7.4: the ACK passed the probe without a
    /// D-SACK for it).
    tcp_ext_tcp_loss_probe_recovery => "TcpExtTCPLossProbeRecovery",
    /// SACK blocks ignored as invalid: empty, wrapping, beyond SND.NXT, below SND.UNA, or
    /// overlapping an earlier block of the same option.
    tcp_ext_tcp_sack_discard => "TcpExtTCPSACKDiscard",
    /// D-SACK blocks received (RFC 2883).
    tcp_ext_tcp_dsack_recv => "TcpExtTCPDSACKRecv",
    /// D-SACK blocks below SND.UNA: nothing to undo here (no undo state is kept).
    tcp_ext_tcp_dsack_ignored_no_undo => "TcpExtTCPDSACKIgnoredNoUndo",
    /// D-SACK blocks that reported more than was retransmitted, or more than a window (Linux
    /// `tcp_dsack_seen`): they do not widen RACK's reordering window.
    tcp_ext_tcp_dsack_ignored_dubious => "TcpExtTCPDSACKIgnoredDubious",
    /// Retransmitted segments RACK found lost again (RFC 8985 §6.2 step 5), sent once more.
    tcp_ext_tcp_lost_retransmit => "TcpExtTCPLostRetransmit",
    /// D-SACK blocks sent for data below RCV.NXT.
    tcp_ext_tcp_dsack_old_sent => "TcpExtTCPDSACKOldSent",
    /// D-SACK blocks sent for duplicate out-of-order data.
    tcp_ext_tcp_dsack_ofo_sent => "TcpExtTCPDSACKOfoSent",
    tcp_ext_tcp_pure_acks => "TcpExtTCPPureAcks",
    tcp_ext_tcp_delayed_acks => "TcpExtDelayedACKs",
    tcp_ext_tcp_zero_window_probes => "TcpExtTCPWinProbe",
    tcp_ext_tcp_keepalive => "TcpExtTCPKeepAlive",
    tcp_ext_tcp_fin_wait2_timeouts => "TcpExtTCPFinWait2Timeout",
    tcp_ext_tcp_mtup_icmp => "TcpExtTCPMTUPICMP",
    /// Connections that finished (reached CLOSED or TIME-WAIT), for any reason.
    tcp_ext_closed => "XdptcpConnectionsClosed",
    /// Segments for flows this shard does not own (handed to the owner by the engine).
    tcp_ext_foreign_shard => "XdptcpForeignShard",
    /// Transmit attempts refused for lack of a frame.
    tcp_ext_tx_no_frame => "XdptcpTxNoFrame",
    /// RSTs not sent to segments that matched nothing, by the `rst_rate_limit` bucket (cf.
    /// FreeBSD's "Limiting closed port RST response"; Linux has no such counter).
    tcp_ext_rst_rate_limited => "XdptcpRstRateLimited",
}

/// Why a segment was dropped. Every drop bumps `Counters::drops[reason.index()]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The frame did not parse (see [`crate::wire::ParseError`]).
    Malformed,
    BadChecksum,
    /// SYN+FIN or SYN+RST.
    BadFlags,
    /// Source address is multicast, broadcast or unspecified.
    BadAddress,
    /// Segment outside the receive window (§3.10.7.4 first).
    OutOfWindow,
    /// ACK of data never sent, or older than the window allows (RFC 5961 §5).
    InvalidAck,
    /// RST outside the window, or in-window but not exact (RFC 5961 §3).
    InvalidRst,
    /// SYN in a synchronized state, answered with a challenge ACK (RFC 5961 §4).
    SynChallenge,
    /// RST in LISTEN or for no connection.
    RstNoConnection,
    /// No listener and no connection (answered with a RST unless it was a RST).
    NoListener,
    /// PAWS rejected an old timestamp (RFC 7323 §5.3).
    Paws,
    CookieInvalid,
    CookieExpired,
    /// SYN queue full and cookies off.
    SynQueueFull,
    /// Accept queue full.
    AcceptQueueFull,
    /// The shard's connection table is at capacity.
    TableFull,
    /// No transmit frame was available for a reply.
    TxExhausted,
    /// Data received after the application closed (the connection is reset, as Linux does).
    DataAfterClose,
    /// A segment with neither SYN, RST nor ACK in a state that needs one.
    NoAck,
    /// RST received in TIME-WAIT and ignored (RFC 1337).
    TimeWaitRst,
    /// ICMP error whose quoted sequence number is outside SND.UNA..SND.NXT (RFC 5927).
    IcmpOutOfWindow,
    /// ICMP error for no connection.
    IcmpNoConnection,
    /// Receive buffer full: data beyond the window.
    RcvBufFull,
    /// ICMPv6 packet-too-big below IPv6's minimum MTU of 1280 (RFC 8201 §4).
    IcmpBadMtu,
}

impl DropReason {
    pub const COUNT: usize = 24;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::BadFlags,
        DropReason::BadAddress,
        DropReason::OutOfWindow,
        DropReason::InvalidAck,
        DropReason::InvalidRst,
        DropReason::SynChallenge,
        DropReason::RstNoConnection,
        DropReason::NoListener,
        DropReason::Paws,
        DropReason::CookieInvalid,
        DropReason::CookieExpired,
        DropReason::SynQueueFull,
        DropReason::AcceptQueueFull,
        DropReason::TableFull,
        DropReason::TxExhausted,
        DropReason::DataAfterClose,
        DropReason::NoAck,
        DropReason::TimeWaitRst,
        DropReason::IcmpOutOfWindow,
        DropReason::IcmpNoConnection,
        DropReason::RcvBufFull,
        DropReason::IcmpBadMtu,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadFlags => "bad_flags",
            DropReason::BadAddress => "bad_address",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::InvalidAck => "invalid_ack",
            DropReason::InvalidRst => "invalid_rst",
            DropReason::SynChallenge => "syn_challenge",
            DropReason::RstNoConnection => "rst_no_connection",
            DropReason::NoListener => "no_listener",
            DropReason::Paws => "paws",
            DropReason::CookieInvalid => "cookie_invalid",
            DropReason::CookieExpired => "cookie_expired",
            DropReason::SynQueueFull => "syn_queue_full",
            DropReason::AcceptQueueFull => "accept_queue_full",
            DropReason::TableFull => "table_full",
            DropReason::TxExhausted => "tx_exhausted",
            DropReason::DataAfterClose => "data_after_close",
            DropReason::NoAck => "no_ack",
            DropReason::TimeWaitRst => "time_wait_rst",
            DropReason::IcmpOutOfWindow => "icmp_out_of_window",
            DropReason::IcmpNoConnection => "icmp_no_connection",
            DropReason::RcvBufFull => "rcv_buf_full",
            DropReason::IcmpBadMtu => "icmp_bad_mtu",
        }
    }
}

impl Counters {
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        if let Some(c) = self.drops.get_mut(r.index()) {
            *c = c.wrapping_add(1);
        }
    }

    pub fn drops_of(&self, r: DropReason) -> u64 {
        self.drops.get(r.index()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_table_is_complete() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{}", r.name());
        }
    }
}
