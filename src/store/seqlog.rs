//! The seq logs: article, tombstone and duplicate records in the order of their seq, in `main`.
//!
//! Since format 6 the records one commit writes (one feed's new items) share one sled key: the
//! group prefix (`A` for articles, `D` for duplicates) and the group's *last* seq. Its value is
//! the body-log pointers of the group's consecutive seqs, [`ENTRY`] bytes each, oldest first; a
//! record removed from a group leaves a zero-length hole, and a group of holes goes.
//!
//! Why: sled 0.34 copies a leaf node on every insert and splits one every eighth insert, then
//! rewrites its parent. With a key per record, the seq logs were the last sled insert a stored
//! article cost; one key per commit instead measured 4% less CPU for a polling pass (README,
//! "Performance").
//!
//! Keying a group by its last seq lets every read go forward, sled's cheap direction: the first
//! group key at or after `seq` is the only group that can hold it.
//!
//! Records from before format 6, and every tombstone (retention writes them one at a time),
//! keep a key of their own: the single prefix (`a`, `d`, `t`) and the seq, holding a pointer or
//! (before format 4) the value inline. Seqs only grow, so all of them come before every group,
//! and each reader here sees both.

use std::collections::BTreeMap;

use super::StoreError;
use super::bodies::Pointer;
use super::keys;

/// Bytes of one pointer in a group: segment (u32), offset (u64) and length (u32), big-endian.
pub const ENTRY: usize = 16;
/// Most records in one group. A commit of more (a feed's first fetch can deliver hundreds of
/// items) makes several groups, so that retention, which removes records one at a time, never
/// rewrites more than 1 KiB for one.
pub const MAX_GROUP: usize = 64;

/// One of the seq logs: where its records live in `main`.
#[derive(Debug, Clone, Copy)]
pub struct SeqLog {
    /// Prefix of a record with a key of its own.
    single: u8,
    /// Prefix of a group of records, if the log has groups.
    group: Option<u8>,
    /// What a record is, for error messages.
    what: &'static str,
}

/// The article log.
pub const ARTICLES: SeqLog = SeqLog {
    single: keys::ARTICLE,
    group: Some(keys::ARTICLE_GROUP),
    what: "article",
};

/// The duplicate log.
pub const DUPLICATES: SeqLog = SeqLog {
    single: keys::DUPLICATE,
    group: Some(keys::DUPLICATE_GROUP),
    what: "duplicate",
};

/// The tombstones (retention writes them one at a time, so they have no groups).
pub const TOMBSTONES: SeqLog = SeqLog {
    single: keys::TOMBSTONE,
    group: None,
    what: "tombstone",
};

/// A record's seq and its stored value: a body-log pointer ([`Pointer::encode`]) or, before
/// format 4, the value itself.
pub type Entry = (u64, sled::IVec);

impl SeqLog {
    /// Adds to `batch` the group of records whose body-log pointers are `bodies`, the last one
    /// with seq `last` (the others just before it, in order): one key for each [`MAX_GROUP`].
    pub fn insert_group(&self, batch: &mut sled::Batch, last: u64, bodies: &[Pointer]) {
        let Some(group) = self.group else {
            for (seq, p) in (last + 1 - bodies.len() as u64..).zip(bodies) {
                batch.insert(&keys::logged(self.single, seq)[..], &p.encode()[..]);
            }
            return;
        };
        let mut chunk_last = last - bodies.len() as u64;
        for chunk in bodies.chunks(MAX_GROUP) {
            let mut value = Vec::with_capacity(chunk.len() * ENTRY);
            for p in chunk {
                value.extend_from_slice(&p.encode()[1..]);
            }
            chunk_last += chunk.len() as u64;
            batch.insert(&keys::logged(group, chunk_last)[..], value);
        }
    }

    /// The stored value of record `seq`, if there is one.
    pub fn get(&self, tree: &sled::Tree, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        if let Some((last, value)) = self.group_at(tree, seq)?
            && let Some(i) = position(last, &value, seq)
        {
            return Ok(entry(&value, i));
        }
        Ok(tree.get(keys::logged(self.single, seq))?)
    }

    /// The records with seq in `from..=to`, oldest first.
    pub fn forward<'t>(
        &self,
        tree: &'t sled::Tree,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + 't {
        let log = *self;
        let singles = tree
            .range(keys::logged(log.single, from)..=keys::logged(log.single, to))
            .map(move |kv| log.single_entry(kv));
        let groups = log
            .group
            .map(|g| tree.range(keys::logged(g, from)..=keys::logged(g, u64::MAX)))
            .into_iter()
            .flatten()
            .flat_map(move |kv| log.expand(kv))
            .filter(move |e| e.as_ref().map_or(true, |(seq, _)| *seq >= from))
            .take_while(move |e| e.as_ref().map_or(true, |(seq, _)| *seq <= to));
        singles.chain(groups)
    }

    /// The records with seq in `from..=to`, newest first.
    pub fn backward<'t>(
        &self,
        tree: &'t sled::Tree,
        from: u64,
        to: u64,
    ) -> Result<impl Iterator<Item = Result<Entry, StoreError>> + 't, StoreError> {
        let log = *self;
        // The group that holds `to` is the first at or after it; none after it matters.
        let end = match log.group {
            Some(g) => Some(match log.group_at(tree, to)? {
                Some((last, _)) => keys::logged(g, last),
                None => keys::logged(g, u64::MAX),
            }),
            None => None,
        };
        let groups = log
            .group
            .zip(end)
            .map(|(g, end)| tree.range(keys::logged(g, from)..=end).rev())
            .into_iter()
            .flatten()
            .flat_map(move |kv| {
                let mut entries = log.expand(kv);
                entries.reverse();
                entries
            })
            .filter(move |e| e.as_ref().map_or(true, |(seq, _)| *seq <= to))
            .take_while(move |e| e.as_ref().map_or(true, |(seq, _)| *seq >= from));
        let singles = tree
            .range(keys::logged(log.single, from)..=keys::logged(log.single, to))
            .rev()
            .map(move |kv| log.single_entry(kv));
        Ok(groups.chain(singles))
    }

    /// Adds to `batch` the removal of records `seqs` (each in a group or under a key of its own);
    /// a group keeps a hole for each, and goes when only holes are left. Nothing else may edit
    /// these groups until `batch` is applied.
    ///
    /// A group's key stays its last *live* seq: holes at its end are cut off and the group moves
    /// to the key of its new last record. Otherwise seqs handed out again (after a crash took
    /// the newest records, [`super::Store`] sets the counter back) would start a group below the
    /// old one's key, and the old group's live records would be hidden behind it.
    pub fn remove(
        &self,
        tree: &sled::Tree,
        batch: &mut sled::Batch,
        seqs: impl IntoIterator<Item = u64>,
    ) -> Result<(), StoreError> {
        // Groups edited so far, by last seq.
        let mut edited: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for seq in seqs {
            // The group that holds `seq`, as edited so far or as stored: its last seq and the
            // entry's place in it.
            let edited_group = edited
                .range(seq..)
                .next()
                .and_then(|(&last, value)| Some((last, position(last, value, seq)?)));
            let held = match edited_group {
                Some(held) => Some(held),
                None => match self.group_at(tree, seq)? {
                    Some((last, value)) => position(last, &value, seq).map(|i| {
                        edited.insert(last, value.to_vec());
                        (last, i)
                    }),
                    None => None,
                },
            };
            match held.and_then(|(last, i)| Some((i, edited.get_mut(&last)?))) {
                Some((i, value)) => value[i * ENTRY..(i + 1) * ENTRY].fill(0),
                None => batch.remove(&keys::logged(self.single, seq)[..]),
            }
        }
        if let Some(g) = self.group {
            for (last, mut value) in edited {
                let key = keys::logged(g, last);
                let holes_at_end = value.rchunks(ENTRY).take_while(|e| is_hole(e)).count();
                value.truncate(value.len() - holes_at_end * ENTRY);
                if holes_at_end > 0 {
                    batch.remove(&key[..]);
                }
                if !value.is_empty() {
                    batch.insert(&keys::logged(g, last - holes_at_end as u64)[..], value);
                }
            }
        }
        Ok(())
    }

    /// The first group at or after `seq` (the only one that can hold it): its last seq and its
    /// value, checked.
    fn group_at(
        &self,
        tree: &sled::Tree,
        seq: u64,
    ) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        let Some(g) = self.group else {
            return Ok(None);
        };
        match tree
            .range(keys::logged(g, seq)..=keys::logged(g, u64::MAX))
            .next()
        {
            Some(kv) => {
                let (k, v) = kv?;
                let last = self.check_group(&k, &v)?;
                Ok(Some((last, v)))
            }
            None => Ok(None),
        }
    }

    /// A group's last seq, once its key and value are known to be well formed.
    fn check_group(&self, key: &[u8], value: &[u8]) -> Result<u64, StoreError> {
        let last = keys::read_u64(key.get(1..).unwrap_or_default()).filter(|_| key.len() == 9);
        match last {
            Some(last)
                if !value.is_empty()
                    && value.len().is_multiple_of(ENTRY)
                    && (value.len() / ENTRY) as u64 <= last =>
            {
                Ok(last)
            }
            _ => Err(StoreError::Corrupt {
                what: format!("a group of {} records", self.what),
                message: format!(
                    "key of {} bytes, value of {} bytes (not a whole number of {ENTRY}-byte pointers)",
                    key.len(),
                    value.len()
                ),
            }),
        }
    }

    /// The live records of one group, oldest first (or the error it makes).
    fn expand(&self, kv: sled::Result<(sled::IVec, sled::IVec)>) -> Vec<Result<Entry, StoreError>> {
        let (k, v) = match kv {
            Ok(kv) => kv,
            Err(e) => return vec![Err(e.into())],
        };
        let last = match self.check_group(&k, &v) {
            Ok(last) => last,
            Err(e) => return vec![Err(e)],
        };
        let n = v.len() / ENTRY;
        let first = last + 1 - n as u64;
        (0..n)
            .filter_map(|i| Some(Ok((first + i as u64, entry(&v, i)?))))
            .collect()
    }

    /// A record with a key of its own.
    fn single_entry(
        &self,
        kv: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Result<Entry, StoreError> {
        let (k, v) = kv?;
        match keys::read_u64(&k[1..]).filter(|_| k.len() == 9) {
            Some(seq) => Ok((seq, v)),
            None => Err(StoreError::Corrupt {
                what: format!("{} record key", self.what),
                message: format!("{} bytes long, not 9", k.len()),
            }),
        }
    }
}

/// Where `seq` sits in the group whose last seq is `last` (`last` at least `seq`), if the group
/// reaches back that far.
fn position(last: u64, value: &[u8], seq: u64) -> Option<usize> {
    let n = value.len() / ENTRY;
    let back = usize::try_from(last - seq).ok()?;
    (back < n).then(|| n - 1 - back)
}

/// Entry `i` of a group as a stored value (an encoded pointer), or `None` for a hole.
fn entry(value: &[u8], i: usize) -> Option<sled::IVec> {
    let e = value.get(i * ENTRY..(i + 1) * ENTRY)?;
    if is_hole(e) {
        return None;
    }
    let p = Pointer {
        segment: u32::from_be_bytes(e[..4].try_into().ok()?),
        offset: u64::from_be_bytes(e[4..12].try_into().ok()?),
        len: u32::from_be_bytes(e[12..16].try_into().ok()?),
    };
    Some(sled::IVec::from(&p.encode()[..]))
}

/// A removed record's place in a group: a pointer to no bytes (a value is never empty).
fn is_hole(e: &[u8]) -> bool {
    e.get(12..16) == Some(&[0; 4][..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let t = db.open_tree("main").unwrap();
        (dir, t)
    }

    fn ptr(seq: u64) -> Pointer {
        Pointer {
            segment: 1,
            offset: seq * 100,
            len: 60 + seq as u32,
        }
    }

    fn seqs(it: impl Iterator<Item = Result<Entry, StoreError>>) -> Vec<u64> {
        it.map(|e| {
            let (seq, v) = e.unwrap();
            assert_eq!(Pointer::decode(&v), Some(ptr(seq)), "seq {seq}");
            seq
        })
        .collect()
    }

    /// Singles 1..=3 (an older database), then groups 4..=6, 7 and 8..=12.
    fn filled() -> (tempfile::TempDir, sled::Tree) {
        let (dir, t) = tree();
        let mut b = sled::Batch::default();
        for seq in 1..=3 {
            b.insert(&keys::logged(b'a', seq)[..], &ptr(seq).encode()[..]);
        }
        ARTICLES.insert_group(&mut b, 6, &[ptr(4), ptr(5), ptr(6)]);
        ARTICLES.insert_group(&mut b, 7, &[ptr(7)]);
        ARTICLES.insert_group(&mut b, 12, &(8..=12).map(ptr).collect::<Vec<_>>());
        t.apply_batch(b).unwrap();
        (dir, t)
    }

    #[test]
    fn reads_singles_and_groups_by_seq_and_in_both_directions() {
        let (_d, t) = filled();
        for seq in 1..=12 {
            let v = ARTICLES.get(&t, seq).unwrap().unwrap();
            assert_eq!(Pointer::decode(&v), Some(ptr(seq)));
        }
        assert!(ARTICLES.get(&t, 0).unwrap().is_none());
        assert!(ARTICLES.get(&t, 13).unwrap().is_none());
        assert!(DUPLICATES.get(&t, 5).unwrap().is_none());
        assert_eq!(
            seqs(ARTICLES.forward(&t, 0, u64::MAX)),
            (1..=12).collect::<Vec<_>>()
        );
        assert_eq!(
            seqs(ARTICLES.forward(&t, 2, 9)),
            (2..=9).collect::<Vec<_>>()
        );
        assert_eq!(seqs(ARTICLES.forward(&t, 5, 5)), vec![5]);
        assert_eq!(
            seqs(ARTICLES.backward(&t, 0, u64::MAX).unwrap()),
            (1..=12).rev().collect::<Vec<_>>()
        );
        assert_eq!(
            seqs(ARTICLES.backward(&t, 3, 9).unwrap()),
            (3..=9).rev().collect::<Vec<_>>()
        );
        assert_eq!(seqs(ARTICLES.backward(&t, 10, 10).unwrap()), vec![10]);
    }

    #[test]
    fn removing_leaves_holes_and_drops_empty_groups() {
        let (_d, t) = filled();
        let mut b = sled::Batch::default();
        // Several in one group within one batch, a whole group, and a single.
        ARTICLES.remove(&t, &mut b, [9, 11, 7, 2]).unwrap();
        t.apply_batch(b).unwrap();
        let left = [1, 3, 4, 5, 6, 8, 10, 12];
        assert_eq!(seqs(ARTICLES.forward(&t, 0, u64::MAX)), left);
        assert_eq!(
            seqs(ARTICLES.backward(&t, 0, u64::MAX).unwrap()),
            left.iter().rev().copied().collect::<Vec<_>>()
        );
        for seq in [2, 7, 9, 11] {
            assert!(ARTICLES.get(&t, seq).unwrap().is_none(), "seq {seq}");
        }
        assert!(t.get(keys::logged(b'A', 7)).unwrap().is_none());
        let mut b = sled::Batch::default();
        ARTICLES.remove(&t, &mut b, [8, 10, 12]).unwrap();
        t.apply_batch(b).unwrap();
        assert!(t.get(keys::logged(b'A', 12)).unwrap().is_none());
        assert_eq!(seqs(ARTICLES.forward(&t, 0, u64::MAX)), [1, 3, 4, 5, 6]);
    }

    /// Records removed from the end of a group (a crash took them) and their seqs handed out
    /// again: the new group does not hide the old group's live records.
    #[test]
    fn seqs_handed_out_again_after_the_end_of_a_group_went() {
        let (_d, t) = filled();
        let mut b = sled::Batch::default();
        ARTICLES.remove(&t, &mut b, [11, 12]).unwrap();
        t.apply_batch(b).unwrap();
        assert!(t.get(keys::logged(b'A', 12)).unwrap().is_none());
        assert!(t.get(keys::logged(b'A', 10)).unwrap().is_some());
        let mut b = sled::Batch::default();
        ARTICLES.insert_group(&mut b, 12, &[ptr(11), ptr(12)]);
        t.apply_batch(b).unwrap();
        for seq in 1..=12 {
            let v = ARTICLES.get(&t, seq).unwrap().unwrap();
            assert_eq!(Pointer::decode(&v), Some(ptr(seq)), "seq {seq}");
        }
        assert_eq!(
            seqs(ARTICLES.forward(&t, 0, u64::MAX)),
            (1..=12).collect::<Vec<_>>()
        );
        // A hole in the middle keeps the key.
        let mut b = sled::Batch::default();
        ARTICLES.remove(&t, &mut b, [9]).unwrap();
        t.apply_batch(b).unwrap();
        assert!(t.get(keys::logged(b'A', 10)).unwrap().is_some());
        assert!(ARTICLES.get(&t, 9).unwrap().is_none());
    }

    #[test]
    fn a_large_commit_makes_several_groups() {
        let (_d, t) = tree();
        let mut b = sled::Batch::default();
        let bodies: Vec<Pointer> = (1..=150).map(ptr).collect();
        ARTICLES.insert_group(&mut b, 150, &bodies);
        t.apply_batch(b).unwrap();
        let lasts: Vec<u64> = t
            .scan_prefix([b'A'])
            .keys()
            .map(|k| keys::read_u64(&k.unwrap()[1..]).unwrap())
            .collect();
        assert_eq!(lasts, [64, 128, 150]);
        assert_eq!(
            seqs(ARTICLES.forward(&t, 0, u64::MAX)),
            (1..=150).collect::<Vec<_>>()
        );
        assert_eq!(
            seqs(ARTICLES.forward(&t, 60, 70)),
            (60..=70).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_malformed_group_is_an_error_not_a_panic() {
        let (_d, t) = tree();
        t.insert(keys::logged(b'A', 5), &[1u8; 17][..]).unwrap();
        assert!(matches!(
            ARTICLES.get(&t, 5),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(ARTICLES.forward(&t, 0, u64::MAX).any(|e| e.is_err()));
        // More pointers than seqs before the key.
        t.insert(keys::logged(b'A', 5), &[1u8; 6 * ENTRY][..])
            .unwrap();
        assert!(ARTICLES.get(&t, 5).is_err());
    }
}
