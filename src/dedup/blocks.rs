//! The layout of the near-duplicate index, after Manku, Jain and Das Sarma, "Detecting
//! Near-Duplicates for Web Crawling" (WWW 2007).
//!
//! To find every stored fingerprint within Hamming distance k of a query without scanning them
//! all, split the 64 bits into k+1 contiguous blocks. Two fingerprints that differ in at most k
//! bits differ in at most k blocks, so they agree exactly on at least one (pigeonhole). Keep one
//! table per block, each sorted by the fingerprint rotated so that its block comes first; a lookup
//! is then k+1 range scans over the keys sharing the query's block, plus a popcount per hit.
//!
//! With k = 3 the blocks are 16 bits wide: among 1,000,000 random fingerprints a range holds about
//! 15 entries, so a lookup reads about 60 keys. [`BlockTables`] is only the arithmetic; the store
//! keeps the tables in memory ([`crate::store::lookup`]).

/// The k+1 block tables for a maximum distance k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTables {
    k: u32,
}

impl BlockTables {
    /// Tables for finding fingerprints within `max_distance` bits (at most 63).
    pub fn new(max_distance: u32) -> BlockTables {
        BlockTables {
            k: max_distance.min(63),
        }
    }

    /// The distance these tables answer for.
    pub fn max_distance(&self) -> u32 {
        self.k
    }

    /// Number of tables (k+1).
    pub fn count(&self) -> u32 {
        self.k + 1
    }

    /// First bit (from the most significant) and width of block `t`. The first `64 % n` blocks
    /// are one bit wider.
    fn block(&self, t: u32) -> (u32, u32) {
        let n = self.count();
        let (base, extra) = (64 / n, 64 % n);
        let width = base + u32::from(t < extra);
        let start = t * base + t.min(extra);
        (start, width)
    }

    /// Bits of block `t`.
    pub fn width(&self, t: u32) -> u32 {
        self.block(t).1
    }

    /// The key of `fp` in table `t`: `fp` rotated so that block `t` occupies the top bits.
    pub fn key(&self, t: u32, fp: u64) -> u64 {
        fp.rotate_left(self.block(t).0)
    }

    /// Undoes [`BlockTables::key`].
    pub fn fingerprint(&self, t: u32, key: u64) -> u64 {
        key.rotate_right(self.block(t).0)
    }

    /// The value of block `t` of `fp`: the key of its bucket in table `t`.
    pub fn block_of(&self, t: u32, fp: u64) -> u64 {
        let width = self.block(t).1;
        if width == 64 {
            fp
        } else {
            self.key(t, fp) >> (64 - width)
        }
    }

    /// The inclusive range of keys in table `t` that share block `t` with `fp`.
    pub fn range(&self, t: u32, fp: u64) -> (u64, u64) {
        let width = self.block(t).1;
        let low_bits = 64 - width;
        let low_mask = if low_bits == 64 {
            u64::MAX
        } else {
            (1u64 << low_bits) - 1
        };
        let key = self.key(t, fp);
        (key & !low_mask, key | low_mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_all_bits_once() {
        for k in 0..=7 {
            let tables = BlockTables::new(k);
            let mut covered = 0u32;
            for t in 0..tables.count() {
                let (start, width) = tables.block(t);
                assert_eq!(start, covered, "k={k} t={t}");
                covered += width;
            }
            assert_eq!(covered, 64, "k={k}");
        }
    }

    #[test]
    fn any_fingerprint_within_k_shares_a_range() {
        let mut rng = fastrand::Rng::with_seed(7);
        for k in 0..=7u32 {
            let tables = BlockTables::new(k);
            for _ in 0..2000 {
                let a = rng.u64(..);
                let mut b = a;
                for _ in 0..rng.u32(0..=k) {
                    b ^= 1 << rng.u32(0..64);
                }
                let hit = (0..tables.count()).any(|t| {
                    let (lo, hi) = tables.range(t, a);
                    let key = tables.key(t, b);
                    let in_range = lo <= key && key <= hi;
                    assert_eq!(in_range, tables.block_of(t, a) == tables.block_of(t, b));
                    in_range
                });
                assert!(hit, "k={k} a={a:x} b={b:x}");
                for t in 0..tables.count() {
                    assert_eq!(tables.fingerprint(t, tables.key(t, a)), a);
                }
            }
        }
    }
}
