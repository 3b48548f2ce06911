//! The Internet checksum (RFC 1071), the IPv4/IPv6 pseudo-headers (RFC 9293 §3.1, RFC 8200
//! §8.1), and the incremental update of RFC 1624 for rewriting a header without summing the
//! payload again.
//!
//! Sums are carried in a `u64` accumulator of big-endian 16-bit words and folded at the end.

use core::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), not yet folded or complemented.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    // The one's-complement sum is byte-order independent up to a final swap (RFC 1071 §2(B)),
    // so the bulk is summed as native-endian 32-bit words, which the compiler turns into wide
    // vector adds with no per-word byte swap, and swapped once at the end. A u64 accumulator of
    // u32 terms cannot overflow below 2^32 words. The tail is summed big-endian directly.
    let mut chunks = data.chunks_exact(4);
    let native: u64 =
        (&mut chunks).map(|c| <[u8; 4]>::try_from(c).map_or(0, |w| u64::from(u32::from_ne_bytes(w)))).sum();
    let mut acc = u64::from(u16::from_be(fold(native)));
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        if let &[a, b] = p {
            acc = acc.wrapping_add(u64::from(u16::from_be_bytes([a, b])));
        }
    }
    if let Some(&last) = pairs.remainder().first() {
        acc = acc.wrapping_add(u64::from(last) << 8);
    }
    acc
}

/// Folds a wide sum to 16 bits (end-around carry), not complemented.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff).wrapping_add(acc >> 16);
    }
    acc as u16
}

/// The checksum field value for data whose sum (including the pseudo-header) is `acc`.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The Internet checksum of `data` (the value to store in a header whose checksum field is 0).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// True when `data`, including its checksum field, sums to all ones.
pub fn verify(data: &[u8], pseudo: u64) -> bool {
    fold(sum(data).wrapping_add(pseudo)) == 0xffff
}

/// Sum of the IPv4 pseudo-header: source, destination, zero, protocol, upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    let s = u32::from(src);
    let d = u32::from(dst);
    // Six terms below 2^16 each: no overflow in a u64.
    [s >> 16, s & 0xffff, d >> 16, d & 0xffff, u32::from(protocol), u32::from(len)]
        .into_iter()
        .fold(0u64, |acc, w| acc.wrapping_add(u64::from(w)))
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, 32-bit length, next header.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u64 {
    // Bounded terms (two 16-byte sums and three 16-bit words): no overflow in a u64.
    sum(&src.octets())
        .wrapping_add(sum(&dst.octets()))
        .wrapping_add(u64::from(len >> 16))
        .wrapping_add(u64::from(len & 0xffff))
        .wrapping_add(u64::from(next_header))
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit field changes from `old` to `new`,
/// `HC' = ~(~HC + ~m + m')`.
///
/// Equals a full recompute whenever the covered data does not sum to zero, i.e. is not all
/// zero bytes (no IPv4 header is: its version nibble is 4; no TCP/UDP/ICMPv6 checksum is: the
/// pseudo-header carries the protocol). For all-zero data it yields 0x0000 where a recompute
/// yields 0xffff. `tests/wire_prop.rs` checks this against [`checksum`].
#[inline]
pub fn update_u16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check).wrapping_add(u64::from(!old)).wrapping_add(u64::from(new));
    !fold(acc)
}

/// RFC 1624 update for a 32-bit field (two 16-bit words).
#[inline]
pub fn update_u32(check: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(check, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    /// The wide native-endian sum equals the plain big-endian word sum of RFC 1071 §4.1, for
    /// every length and alignment (the tail paths included) and for sums that carry a lot.
    #[test]
    fn wide_sum_matches_word_by_word() {
        let reference = |d: &[u8]| -> u16 {
            let mut acc: u64 = 0;
            for p in d.chunks(2) {
                acc += u64::from(p[0]) << 8 | u64::from(*p.get(1).unwrap_or(&0));
            }
            fold(acc)
        };
        let mut x: u32 = 0x1234_5678;
        let bytes: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for start in 0..8 {
            for len in (0..200).chain([1447, 1448, 1449, 2990]) {
                let d = &bytes[start..start + len];
                assert_eq!(fold(sum(d)), reference(d), "start {start} len {len}");
            }
        }
        let ones = vec![0xffu8; 2999];
        assert_eq!(fold(sum(&ones)), reference(&ones));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_full() {
        let mut d = [0x45u8, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = checksum(&d);
        d[8] = 63; // TTL 64 -> 63
        let full = checksum(&d);
        assert_eq!(update_u16(c, 0x4006, 0x3f06), full);
    }
}
