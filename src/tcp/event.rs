//! What the shard tells the application.

use super::tuple::ConnId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both FINs exchanged and acknowledged (or our side done and the peer's FIN received).
    Normal,
    /// The peer sent an acceptable RST.
    Reset,
    /// Retransmissions, keepalive probes or the FIN-WAIT-2 timer ran out.
    TimedOut,
    /// An active open was refused (RST in SYN-SENT or active SYN-RECEIVED).
    Refused,
    /// The application aborted (RST sent).
    Aborted,
    /// An ICMP error ended a connection attempt (SYN-SENT or SYN-RECEIVED): the network said
    /// the peer cannot be reached (Linux EHOSTUNREACH, ENETUNREACH and kin). A port or
    /// protocol unreachable reports [`CloseReason::Refused`] instead.
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A listener's accept queue became non-empty: call `Shard::accept(port)` until it is empty.
    AcceptReady { port: u16 },
    /// An active open reached ESTABLISHED.
    Connected(ConnId),
    /// New in-order data can be read.
    Readable(ConnId),
    /// Send buffer space became free after a short write.
    Writable(ConnId),
    /// The peer sent FIN: no more data will arrive (reads drain what is buffered).
    PeerClosed(ConnId),
    /// The connection reached CLOSED (or TIME-WAIT). The handle stays valid until `close`.
    Closed(ConnId, CloseReason),
}
