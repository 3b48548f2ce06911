//! Field ranges and panic-free big-endian accessors shared by every header.
//!
//! The views check lengths once (`check_len`); these helpers still never index out of bounds, so
//! a logic error degrades to a zero read or a dropped write, never to a panic on packet data.

pub type Field = core::ops::Range<usize>;
pub type Rest = core::ops::RangeFrom<usize>;

#[inline]
pub fn read_u8(buf: &[u8], at: usize) -> u8 {
    debug_assert!(at < buf.len(), "read_u8 past the end");
    buf.get(at).copied().unwrap_or(0)
}

#[inline]
pub fn read_u16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => {
            debug_assert!(false, "read_u16 past the end");
            0
        }
    }
}

#[inline]
pub fn read_u32(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => {
            debug_assert!(false, "read_u32 past the end");
            0
        }
    }
}

#[inline]
pub fn read_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    match buf.get(at..at.wrapping_add(N)) {
        Some(s) => out.copy_from_slice(s),
        None => debug_assert!(false, "read_array past the end"),
    }
    out
}

#[inline]
pub fn write_u8(buf: &mut [u8], at: usize, v: u8) {
    match buf.get_mut(at) {
        Some(b) => *b = v,
        None => debug_assert!(false, "write_u8 past the end"),
    }
}

#[inline]
pub fn write_u16(buf: &mut [u8], at: usize, v: u16) {
    write_bytes(buf, at, &v.to_be_bytes());
}

#[inline]
pub fn write_u32(buf: &mut [u8], at: usize, v: u32) {
    write_bytes(buf, at, &v.to_be_bytes());
}

#[inline]
pub fn write_bytes(buf: &mut [u8], at: usize, v: &[u8]) {
    match buf.get_mut(at..at.wrapping_add(v.len())) {
        Some(s) => s.copy_from_slice(v),
        None => debug_assert!(false, "write_bytes past the end"),
    }
}

/// `&buf[range]`, or empty if the range is not inside `buf`.
#[inline]
pub fn slice(buf: &[u8], r: Field) -> &[u8] {
    buf.get(r).unwrap_or(&[])
}

/// `&mut buf[range]`, or empty if the range is not inside `buf`.
#[inline]
pub fn slice_mut(buf: &mut [u8], r: Field) -> &mut [u8] {
    buf.get_mut(r).unwrap_or(&mut [])
}
