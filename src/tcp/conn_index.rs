//! The connection table's index: 4-tuple to slab index.
//!
//! A map from `FourTuple` (64 bytes) to `ConnId` (8) spends 73 bytes per bucket, about 150 per
//! connection at hashbrown's load. This index keeps only the slab index and 32 bits of the
//! tuple's hash, 9 bytes per bucket: the tuple itself is already in the TCB, and a candidate is
//! confirmed against it. The stored hash bits let the table grow without reading the TCBs.
//! The hash is hashbrown's default, seeded at random per table, so a peer that picks its
//! addresses and ports cannot aim them at one bucket chain.

use super::tuple::PackedTuple;
use core::hash::BuildHasher;
use hashbrown::{DefaultHashBuilder, HashTable};

#[derive(Debug, Clone, Copy)]
struct Entry {
    index: u32,
    tag: u32,
}

/// Where each tuple's TCB is in the slab. Every method that compares takes `is(index)`, which
/// says whether the TCB at `index` has the tuple asked about.
#[derive(Default)]
pub(crate) struct ConnIndex {
    table: HashTable<Entry>,
    hasher: DefaultHashBuilder,
}

/// The table's 64-bit hash made from the 32 stored bits: hashbrown takes the bucket from the
/// low bits and the 7-bit control tag from the top ones, so both come from the stored word.
fn wide(tag: u32) -> u64 {
    u64::from(tag) | (u64::from(tag) << 32)
}

impl ConnIndex {
    /// The 32 bits of `t`'s hash this table files it under. Hashed packed, so that what a
    /// `SocketAddrV6` carries beyond the tuple (flow label, scope id) cannot file one
    /// connection under two hashes.
    pub fn tag(&self, t: &PackedTuple) -> u32 {
        let h = self.hasher.hash_one(t);
        (h ^ (h >> 32)) as u32
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn find(&self, tag: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
        self.table.find(wide(tag), |e| e.tag == tag && is(e.index)).map(|e| e.index)
    }

    /// Files `index` under `tag`, in place of the entry `is` recognises if there is one.
    pub fn insert(&mut self, tag: u32, index: u32, is: impl Fn(u32) -> bool) {
        match self.table.find_mut(wide(tag), |e| e.tag == tag && is(e.index)) {
            Some(e) => e.index = index,
            None => {
                self.table.insert_unique(wide(tag), Entry { index, tag }, |e| wide(e.tag));
            }
        }
    }

    pub fn remove(&mut self, tag: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
        let e = self.table.find_entry(wide(tag), |e| e.tag == tag && is(e.index)).ok()?;
        Some(e.remove().0.index)
    }

    /// Every slab index filed, in table order.
    pub fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().map(|e| e.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::tuple::FourTuple;
    use std::collections::HashMap;

    fn tuple(i: u32) -> FourTuple {
        FourTuple::new(
            "198.18.0.1:80".parse().unwrap(),
            std::net::SocketAddr::new(
                std::net::Ipv4Addr::from(0xc612_0000 + (i >> 10)).into(),
                (i & 1023) as u16 + 1024,
            ),
        )
    }

    /// Against a `HashMap` model over many inserts, replacements and removals, with the "slab"
    /// a vector of tuples as the shard's is a vector of TCBs.
    #[test]
    fn agrees_with_a_map() {
        let mut idx = ConnIndex::default();
        let mut slab: Vec<Option<FourTuple>> = Vec::new();
        let mut model: HashMap<FourTuple, u32> = HashMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = tuple((x % 5_000) as u32);
            let tag = idx.tag(&PackedTuple::from(t));
            match x >> 62 {
                0 | 1 => {
                    slab.push(Some(t));
                    let i = slab.len() as u32 - 1;
                    idx.insert(tag, i, |j| slab[j as usize] == Some(t) && j != i);
                    if let Some(old) = model.insert(t, i) {
                        slab[old as usize] = None;
                    }
                }
                _ => {
                    let got = idx.remove(tag, |j| slab[j as usize] == Some(t));
                    let want = model.remove(&t);
                    assert_eq!(got, want);
                    if let Some(i) = got {
                        slab[i as usize] = None;
                    }
                }
            }
        }
        assert_eq!(idx.len(), model.len());
        for (t, i) in &model {
            assert_eq!(idx.find(idx.tag(&PackedTuple::from(*t)), |j| slab[j as usize] == Some(*t)), Some(*i));
        }
        let mut all: Vec<u32> = idx.indexes().collect();
        all.sort_unstable();
        let mut want: Vec<u32> = model.values().copied().collect();
        want.sort_unstable();
        assert_eq!(all, want);
    }
}
