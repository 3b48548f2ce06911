//! Wire formats: zero-copy views over received bytes and emitters into lent buffers.
//!
//! Two levels, as in smoltcp: a `*Packet<T: AsRef<[u8]>>` wraps frame bytes and reads fields in
//! place (network order, converted in the accessor), and a `*Repr` is the validated, owned-field
//! view that `parse`s from a packet and `emit`s into a buffer of exactly `buffer_len()` bytes.
//!
//! Contract of every view: `new_checked` = `new_unchecked` + `check_len`. After `check_len`
//! succeeded, every accessor reads inside the buffer. Accessors never panic even without it: a
//! read past the end yields zero (and trips a `debug_assert!`), a write past the end is ignored.
//! Nothing here keeps state or allocates.

// STYLE §4: never panic on packet data. Tests may index and unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod field;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod seq;
pub mod tcp;

pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use seq::SeqNum;
pub use tcp::{TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr};

/// What was wrong with a received frame. Small and `Copy`: it indexes a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer ends before the header (or the length a header claims) does.
    Truncated,
    /// IP version field does not match the header being parsed.
    BadVersion,
    /// IPv4 IHL below 5, or a header length beyond the buffer.
    BadHeaderLen,
    /// IPv4 total length / IPv6 payload length smaller than the header or beyond the frame.
    BadTotalLen,
    /// TCP data offset below 5 or beyond the segment.
    BadDataOffset,
    /// A TCP option whose length is 0 or 1, runs past the header, or has the wrong fixed size.
    BadOption,
    /// Internet checksum mismatch.
    BadChecksum,
    /// A flag combination the caller refuses (SYN+FIN, SYN+RST, ...).
    BadFlags,
    /// An IP fragment: never treated as a whole segment.
    Fragment,
    /// An IPv6 extension header we do not walk (ESP), or a malformed one.
    BadExtensionHeader,
    /// An ICMP message whose quoted packet is too short or not TCP.
    BadQuote,
    /// An ARP packet that is not IPv4 over Ethernet.
    Unsupported,
    /// An address the stack never accepts as a source (multicast, broadcast, unspecified).
    BadAddress,
}

impl ParseError {
    /// Every variant, in the order used by drop-reason counters.
    pub const ALL: [ParseError; 13] = [
        ParseError::Truncated,
        ParseError::BadVersion,
        ParseError::BadHeaderLen,
        ParseError::BadTotalLen,
        ParseError::BadDataOffset,
        ParseError::BadOption,
        ParseError::BadChecksum,
        ParseError::BadFlags,
        ParseError::Fragment,
        ParseError::BadExtensionHeader,
        ParseError::BadQuote,
        ParseError::Unsupported,
        ParseError::BadAddress,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::BadVersion => "bad_version",
            ParseError::BadHeaderLen => "bad_header_len",
            ParseError::BadTotalLen => "bad_total_len",
            ParseError::BadDataOffset => "bad_data_offset",
            ParseError::BadOption => "bad_option",
            ParseError::BadChecksum => "bad_checksum",
            ParseError::BadFlags => "bad_flags",
            ParseError::Fragment => "fragment",
            ParseError::BadExtensionHeader => "bad_extension_header",
            ParseError::BadQuote => "bad_quote",
            ParseError::Unsupported => "unsupported",
            ParseError::BadAddress => "bad_address",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for ParseError {}

pub type Result<T> = core::result::Result<T, ParseError>;

/// Which checksums the device already verified or will fill in (smoltcp `ChecksumCapabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumCaps {
    /// Verify IPv4/TCP/ICMP checksums on receive.
    pub verify_rx: bool,
    /// Compute checksums on transmit.
    pub compute_tx: bool,
}

impl Default for ChecksumCaps {
    fn default() -> Self {
        ChecksumCaps { verify_rx: true, compute_tx: true }
    }
}

/// IP protocol numbers we name.
pub mod ip_proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
}
