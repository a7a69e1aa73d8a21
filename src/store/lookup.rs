//! The dedup indexes, in memory: everything a candidate is checked against before it is stored.
//!
//! sled keeps the articles and the duplicate records (the truth); this module keeps what dedup
//! asks of them in compact tables, because a check against sled costs tens of microseconds once
//! the database outgrows sled's cache, and every new item is checked against all of them:
//!
//! | table      | holds                                                   | for             |
//! |------------|---------------------------------------------------------|-----------------|
//! | `items`    | the 64-bit id of every item ever delivered → the article or copy it became | re-listings, lookups by id |
//! | `guids`    | hash of each stored article's globally unique guid → seq | `guid`         |
//! | `urls`     | hash of each stored article's canonical link → seq      | `url`           |
//! | `window`   | per article in `dedup.window`: when stored, simhash, content hash | the rest |
//! | `contents` | content hash → seq, window only                          | `content`      |
//! | `near`     | per block table, block value → newest seq, and per window article the next older one with the same value (a chain) | `near` |
//! | `anchors`  | anchor shingle → seqs (a compact multimap in 64 parts), window only | `contained` |
//! | `window`'s `long` | a 1024-bit Bloom filter of each article's long marks | `contained`     |
//!
//! Hashes are 64-bit xxh3 with a fixed seed. A `guid` or `url` hit is confirmed against the
//! stored article before it counts, so a hash collision can never drop an article.
//!
//! The Bloom filters let a containment check skip reading the marks of the articles its anchors
//! found (a sled read each) when none of them could take part in a `contained` verdict: a filter
//! never misses a mark the article has, so it gives an upper bound on the marks shared
//! ([`crate::dedup::containment::may_matter`] says what bound is enough).
//!
//! The tables are saved to `lookup.bin` in the data directory (sled flushed first, so the file
//! never holds an article the database could lose in a crash), when the daemon stops and every
//! [`SAVE_EVERY`] articles. Opening loads the file and indexes the articles stored after it; with
//! no usable file, the tables are rebuilt from the article log once (with progress in the log).

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::dedup::blocks::BlockTables;
use crate::dedup::fingerprint::distance;
use crate::dedup::{MIN_CONTENT_WORDS, MIN_NEAR_WORDS};

/// Articles stored between two saves of `lookup.bin` by the running daemon; bounds what a restart
/// after a crash has to re-index.
pub const SAVE_EVERY: u64 = 50_000;
/// Articles kept per containment anchor; an anchor shared by more is boilerplate, not evidence.
pub const MAX_ANCHOR_POSTINGS: usize = 64;

const MAGIC: &[u8; 8] = b"FSLOOKUP";
/// 5: `items` maps each id to what it became (4 held the ids alone; a version-4 file still
/// loads, its ids marked [`UNKNOWN_SEQ`]).
const VERSION: u32 = 5;
/// The value in `items` of an id the tables know only as seen: one indexed from a version-4
/// file, whose `i` key in sled says what became of it.
const UNKNOWN_SEQ: u64 = u64::MAX;
/// Set in the value in `items` of an item that became a duplicate (the rest is its seq).
const DUPLICATE_BIT: u64 = 1 << 63;
/// Bits of the filter each window article keeps of its long containment marks.
const BLOOM_BITS: u64 = 1024;

/// The 64-bit hash of a guid or link, as the lookup tables key them.
pub fn key_hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(s.as_bytes(), 0x6c6f_6f6b)
}

/// Asks the CPU to start loading the cache line holding `r`, so that a loop over many random
/// table slots waits for their misses together instead of one after another.
#[inline(always)]
fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing into the program and cannot fault, whatever
    // the address; SSE, which has it, is part of every x86_64 CPU.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// The 64-bit value of an item id (`feedsieve::store::article_id`: 16 hex digits, maybe with a
/// `-seq` suffix when two ids collided; the first 16 digits are what re-listing compares).
pub fn item_value(id: &str) -> Option<u64> {
    u64::from_str_radix(id.get(..16)?, 16).ok()
}

/// What the window keeps of one article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    stored_ms: i64,
    simhash: u64,
    content: u64,
    /// Indexed for `near` (long enough).
    near: bool,
    /// Indexed for `content` (long enough).
    exact: bool,
    /// Bloom filter of its long marks.
    long: Bloom,
}

/// A 1024-bit Bloom filter of marks, three bits per mark (marks are uniform hashes, so their own
/// bits pick the filter's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bloom([u64; 16]);

impl Bloom {
    fn bits(mark: u64) -> [u64; 3] {
        [
            mark % BLOOM_BITS,
            (mark >> 10) % BLOOM_BITS,
            (mark >> 20) % BLOOM_BITS,
        ]
    }

    fn of(marks: &[u64]) -> Bloom {
        let mut b = Bloom::default();
        for &m in marks {
            for bit in Self::bits(m) {
                b.0[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        b
    }

    /// 1 when the filter may hold `mark`, else 0: the three bits ANDed, without a branch (which
    /// of a candidate's marks a window article holds follows no pattern a predictor learns).
    #[inline]
    fn holds(&self, mark: u64) -> u32 {
        let [a, b, c] = Self::bits(mark);
        let bit = |i: u64| self.0[(i / 64) as usize] >> (i % 64);
        (bit(a) & bit(b) & bit(c) & 1) as u32
    }

    /// How many of `marks` the filter may hold.
    fn count_held(&self, marks: &[u64]) -> u32 {
        marks.iter().map(|&m| self.holds(m)).sum()
    }
}

/// Where each chain of one near table starts: the newest window article (its seq as u32, 0 for
/// none) with each block value. A direct array when blocks are narrow (16 bits at the default
/// distance, 256 KiB), a hash map when they are wide.
enum Heads {
    Direct(Vec<u32>),
    Map(HashMap<u64, u32>),
}

/// Blocks up to this many bits get a direct array of heads.
const DIRECT_HEAD_BITS: u32 = 18;

impl Heads {
    fn for_width(width: u32) -> Heads {
        if width <= DIRECT_HEAD_BITS {
            Heads::Direct(written_zeros(1 << width))
        } else {
            Heads::Map(HashMap::new())
        }
    }

    fn get(&self, block: u64) -> u32 {
        match self {
            Heads::Direct(v) => v[block as usize],
            Heads::Map(m) => m.get(&block).copied().unwrap_or(0),
        }
    }

    /// Makes `seq` the newest article of `block`; returns the one before it.
    fn replace(&mut self, block: u64, seq: u32) -> u32 {
        match self {
            Heads::Direct(v) => std::mem::replace(&mut v[block as usize], seq),
            Heads::Map(m) => m.insert(block, seq).unwrap_or(0),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Heads::Direct(v) => v.capacity() * 4,
            Heads::Map(m) => m.capacity() * 13 * 8 / 7,
        }
    }
}

/// What an article brings to the tables.
#[derive(Debug, Clone, Copy)]
pub struct Indexed<'a> {
    /// Its seq.
    pub seq: u64,
    /// Its item id.
    pub id: &'a str,
    /// Its guid, when globally unique.
    pub global_guid: Option<&'a str>,
    /// Its canonical link.
    pub url: Option<&'a str>,
    /// When it was stored (ms since the epoch).
    pub stored_ms: i64,
    /// Its simhash.
    pub simhash: u64,
    /// Its content hash.
    pub content: u64,
    /// Words in its body.
    pub words: u32,
    /// Its anchor shingles.
    pub anchors: &'a [u64],
    /// Its long containment marks.
    pub long_marks: &'a [u64],
}

/// The tables; see the module documentation.
pub struct Lookup {
    tables: BlockTables,
    /// Item id value → the seq of the article it became, [`DUPLICATE_BIT`] and the seq of the
    /// duplicate it became, or [`UNKNOWN_SEQ`]. Since store format 5 this is the only index
    /// from an item's id to its record (sled has no `i` keys for new items): one sled key less
    /// for every item stored.
    items: HashMap<u64, u64>,
    guids: HashMap<u64, u64>,
    urls: HashMap<u64, u64>,
    contents: HashMap<u64, u64>,
    /// Seq of `window[0]`; the window holds every article from it to the newest.
    front: u64,
    window: VecDeque<Entry>,
    /// Per near table, the newest article of each block value.
    heads: Vec<Heads>,
    /// Per window article and near table (`tables.count()` per article, in window order): the
    /// next older article with the same block value, 0 for none. A chain ends at the first
    /// article out of the window (all after it are older), so expiry only drops the front.
    links: VecDeque<u32>,
    anchors: AnchorTable,
    /// The newest article and duplicate seqs the tables include.
    pub last_article: u64,
    /// See `last_article`.
    pub last_duplicate: u64,
    /// Articles that left the window since the anchor table was last compacted.
    expired_since_compaction: usize,
}

impl Lookup {
    /// Empty tables for `max_distance`.
    pub fn new(max_distance: u32) -> Lookup {
        let tables = BlockTables::new(max_distance);
        Lookup {
            tables,
            items: HashMap::new(),
            guids: HashMap::new(),
            urls: HashMap::new(),
            contents: HashMap::new(),
            front: 1,
            window: VecDeque::new(),
            heads: (0..tables.count())
                .map(|t| Heads::for_width(tables.width(t)))
                .collect(),
            links: VecDeque::new(),
            anchors: AnchorTable::default(),
            last_article: 0,
            last_duplicate: 0,
            expired_since_compaction: 0,
        }
    }

    /// The distance the near tables answer for.
    pub fn max_distance(&self) -> u32 {
        self.tables.max_distance()
    }

    /// Seq of the oldest article in the window (everything before it was forgotten).
    pub fn window_front(&self) -> u64 {
        self.front
    }

    /// Adds a stored article. Articles come in seq order.
    pub fn add_article(&mut self, a: &Indexed<'_>) {
        if let Some(v) = item_value(a.id) {
            // Two ids with the same 16 digits (the second got a `-seq` suffix): the first keeps
            // the entry; the suffix names the second's seq.
            self.items.entry(v).or_insert(a.seq);
        }
        if let Some(g) = a.global_guid {
            self.guids.entry(key_hash(g)).or_insert(a.seq);
        }
        if let Some(u) = a.url {
            self.urls.entry(key_hash(u)).or_insert(a.seq);
        }
        self.last_article = self.last_article.max(a.seq);
        if self.window.is_empty() {
            self.front = a.seq;
        } else if a.seq != self.front + self.window.len() as u64 {
            // A gap (never expected: seqs are dense): fill it with entries that match nothing.
            while self.front + (self.window.len() as u64) < a.seq {
                self.push_window(Entry {
                    stored_ms: a.stored_ms,
                    simhash: 0,
                    content: 0,
                    near: false,
                    exact: false,
                    long: Bloom::default(),
                });
            }
        }
        let entry = Entry {
            stored_ms: a.stored_ms,
            simhash: a.simhash,
            content: a.content,
            near: a.words >= MIN_NEAR_WORDS,
            exact: a.words >= MIN_CONTENT_WORDS,
            long: Bloom::of(a.long_marks),
        };
        self.push_window(entry);
        self.index_window_entry(a.seq, entry);
        if let Ok(seq) = u32::try_from(a.seq) {
            // The slots are scattered over megabytes: start every miss before the first insert.
            for &mark in a.anchors {
                self.anchors.prefetch(mark);
            }
            for &mark in a.anchors {
                self.anchors.insert(mark, seq);
            }
        }
    }

    /// Appends an entry to the window, with no near links yet.
    fn push_window(&mut self, e: Entry) {
        self.window.push_back(e);
        self.links
            .extend(std::iter::repeat_n(0, self.tables.count() as usize));
    }

    /// Indexes the window's newest entry, article `seq`.
    fn index_window_entry(&mut self, seq: u64, e: Entry) {
        if e.exact {
            self.contents.entry(e.content).or_insert(seq);
        }
        if let (true, Ok(seq32)) = (e.near, u32::try_from(seq)) {
            let count = self.tables.count() as usize;
            let base = self.links.len() - count;
            for t in 0..self.tables.count() {
                let block = self.tables.block_of(t, e.simhash);
                let older = self.heads[t as usize].replace(block, seq32);
                self.links[base + t as usize] = older;
            }
        }
    }

    /// Calls `f` with the seq and simhash of every window article in the chain of `block` in
    /// near table `t`, newest first.
    fn chain(&self, t: u32, block: u64, mut f: impl FnMut(u64, u64)) {
        let count = self.tables.count() as usize;
        let mut seq = u64::from(self.heads[t as usize].get(block));
        while seq != 0 && seq >= self.front {
            let i = (seq - self.front) as usize;
            let Some(e) = self.window.get(i) else {
                break;
            };
            f(seq, e.simhash);
            seq = u64::from(self.links[i * count + t as usize]);
        }
    }

    /// Records an item suppressed as a duplicate (so its feed re-listing it is no news).
    pub fn add_duplicate(&mut self, seq: u64, id: &str) {
        if let Some(v) = item_value(id) {
            self.items.entry(v).or_insert(DUPLICATE_BIT | seq);
        }
        self.last_duplicate = self.last_duplicate.max(seq);
    }

    /// Forgets article `seq` (deleted by retention, out of the window): its item id, guid and
    /// link. Window entries are not touched: the article left the window before it was deleted.
    pub fn forget_article(
        &mut self,
        seq: u64,
        id: &str,
        global_guid: Option<&str>,
        url: Option<&str>,
    ) {
        self.forget_item(id);
        if let Some(g) = global_guid {
            let h = key_hash(g);
            if self.guids.get(&h) == Some(&seq) {
                self.guids.remove(&h);
            }
        }
        if let Some(u) = url {
            let h = key_hash(u);
            if self.urls.get(&h) == Some(&seq) {
                self.urls.remove(&h);
            }
        }
    }

    /// Forgets an item id (its record was deleted by retention). An id with a collision suffix
    /// has no entry of its own: the entry of its 16 digits is the first item's, and stays.
    pub fn forget_item(&mut self, id: &str) {
        if id.len() == 16
            && let Some(v) = item_value(id)
        {
            self.items.remove(&v);
        }
    }

    /// Was an item with this id delivered before?
    pub fn seen(&self, id: &str) -> bool {
        item_value(id).is_some_and(|v| self.items.contains_key(&v))
    }

    /// What became of the item with exactly this id, when the tables know it: `(true, seq)`
    /// for an article, `(false, seq)` for a duplicate (see [`Store::item`](super::Store::item)
    /// for the other cases).
    pub fn item(&self, id: &str) -> Option<(bool, u64)> {
        if id.len() != 16 {
            return None;
        }
        match *self.items.get(&item_value(id)?)? {
            UNKNOWN_SEQ => None,
            v if v & DUPLICATE_BIT != 0 => Some((false, v & !DUPLICATE_BIT)),
            seq => Some((true, seq)),
        }
    }

    /// The article stored under this guid's hash (to be confirmed by the caller).
    pub fn by_guid(&self, guid: &str) -> Option<u64> {
        self.guids.get(&key_hash(guid)).copied()
    }

    /// The article stored under this link's hash (to be confirmed by the caller).
    pub fn by_url(&self, url: &str) -> Option<u64> {
        self.urls.get(&key_hash(url)).copied()
    }

    /// The article in the window with this content hash.
    pub fn by_content(&self, hash: u64) -> Option<u64> {
        self.contents
            .get(&hash)
            .copied()
            .filter(|&s| s >= self.front)
    }

    fn entry(&self, seq: u64) -> Option<&Entry> {
        let i = usize::try_from(seq.checked_sub(self.front)?).ok()?;
        self.window.get(i)
    }

    /// Every article in the window sharing a block with `simhash`, with its distance, by seq.
    pub fn near_candidates(&self, simhash: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        for t in 0..self.tables.count() {
            self.chain(t, self.tables.block_of(t, simhash), |seq, h| {
                out.push((seq, distance(h, simhash)));
            });
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The article in the window nearest to `simhash` within `max_distance` (ties: the oldest).
    pub fn nearest(&self, simhash: u64, max_distance: u32) -> Option<(u64, u32)> {
        let max_distance = max_distance.min(self.tables.max_distance());
        let mut best: Option<(u64, u32)> = None;
        for t in 0..self.tables.count() {
            self.chain(t, self.tables.block_of(t, simhash), |seq, h| {
                let d = distance(h, simhash);
                if d <= max_distance && best.is_none_or(|(bs, bd)| (d, seq) < (bd, bs)) {
                    best = Some((seq, d));
                }
            });
        }
        best
    }

    /// Articles in the window indexed under any of `anchors`, with how many they share, most
    /// first (then oldest first), at most `limit`.
    pub fn anchor_hits(&self, anchors: &[u64], limit: usize) -> Vec<(u64, u32)> {
        // Every posting's seq, then runs of equal seqs counted: one allocation where a hash map
        // of counts grew four times per candidate (5% of a pass's allocations).
        let mut seqs: Vec<u32> = Vec::with_capacity(anchors.len() * 8);
        for &a in anchors {
            self.anchors.prefetch(a);
        }
        for &a in anchors {
            self.anchors.each(a, |seq| {
                if u64::from(seq) >= self.front {
                    seqs.push(seq);
                }
            });
        }
        seqs.sort_unstable();
        let mut found: Vec<(u64, u32)> = Vec::with_capacity(seqs.len());
        found.extend(
            seqs.chunk_by(|a, b| a == b)
                .map(|run| (u64::from(run[0]), run.len() as u32)),
        );
        found.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(limit);
        found
    }

    /// Starts loading the window entry of article `seq` (all its cache lines: [`Lookup::may_matter`]
    /// reads its filter at random places).
    pub fn prefetch_entry(&self, seq: u64) {
        if let Some(e) = self.entry(seq) {
            prefetch(e);
            for word in e.long.0.iter().step_by(8) {
                prefetch(word);
            }
        }
    }

    /// Whether the window article `seq` could take part in a `contained` verdict on a candidate
    /// with these long marks and simhash (see the module documentation); false when it is not in
    /// the window.
    pub fn may_matter(&self, seq: u64, long_marks: &[u64], simhash: u64) -> bool {
        let Some(e) = self.entry(seq) else {
            return false;
        };
        let at_most = e.long.count_held(long_marks);
        crate::dedup::containment::may_matter(
            at_most,
            long_marks.len() as u32,
            distance(e.simhash, simhash),
        )
    }

    /// Forgets, for `near`, `content` and `contained`, the articles stored before `cutoff_ms`.
    /// Returns how many left the window.
    pub fn expire_before(&mut self, cutoff_ms: i64) -> usize {
        let mut gone = 0;
        while let Some(e) = self.window.front().copied() {
            if e.stored_ms >= cutoff_ms {
                break;
            }
            let seq = self.front;
            self.window.pop_front();
            self.links.drain(..self.tables.count() as usize);
            self.front += 1;
            gone += 1;
            if e.exact && self.contents.get(&e.content) == Some(&seq) {
                self.contents.remove(&e.content);
            }
        }
        if self.window.is_empty() {
            self.front = self.last_article + 1;
        }
        self.expired_since_compaction += gone;
        // Anchors are dropped lazily (lookups skip them); compact once a quarter is dead.
        if self.expired_since_compaction > 1000
            && self.expired_since_compaction * 4 > self.window.len()
        {
            let front = u32::try_from(self.front).unwrap_or(u32::MAX);
            self.anchors.retain(|seq| seq >= front);
            for heads in &mut self.heads {
                if let Heads::Map(m) = heads {
                    m.retain(|_, seq| *seq >= front);
                }
            }
            self.expired_since_compaction = 0;
        }
        gone
    }

    /// Approximate bytes the tables take in memory.
    pub fn memory_bytes(&self) -> usize {
        self.memory_parts().iter().map(|(_, b)| b).sum()
    }

    /// Approximate bytes of each table (name, bytes), for benchmarks and diagnostics.
    pub fn memory_parts(&self) -> [(&'static str, usize); 6] {
        let map = |n: usize, entry: usize| n * (entry + 1) * 8 / 7;
        let near: usize =
            self.heads.iter().map(Heads::bytes).sum::<usize>() + self.links.capacity() * 4;
        [
            ("items", map(self.items.capacity(), 16)),
            (
                "guids+urls",
                map(self.guids.capacity(), 16) + map(self.urls.capacity(), 16),
            ),
            ("contents", map(self.contents.capacity(), 16)),
            (
                "window",
                self.window.capacity() * std::mem::size_of::<Entry>(),
            ),
            ("near", near),
            ("anchors", self.anchors.capacity_bytes()),
        ]
    }

    /// Articles in the window.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Writes the tables to `path` (through a temporary file and a rename, so a crash leaves the
    /// old file or the new one). `db_id` names the database they belong to.
    pub fn save(&self, path: &Path, db_id: u64) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(MAGIC)?;
        put32(&mut w, VERSION)?;
        put32(&mut w, self.tables.max_distance())?;
        for v in [db_id, self.last_article, self.last_duplicate, self.front] {
            put64(&mut w, v)?;
        }
        put64(&mut w, self.items.len() as u64)?;
        for (&v, &seq) in &self.items {
            put64(&mut w, v)?;
            put64(&mut w, seq)?;
        }
        for map in [&self.guids, &self.urls] {
            put64(&mut w, map.len() as u64)?;
            for (&k, &v) in map {
                put64(&mut w, k)?;
                put64(&mut w, v)?;
            }
        }
        put64(&mut w, self.window.len() as u64)?;
        for e in &self.window {
            put64(&mut w, e.stored_ms as u64)?;
            put64(&mut w, e.simhash)?;
            put64(&mut w, e.content)?;
            w.write_all(&[u8::from(e.near) | (u8::from(e.exact) << 1)])?;
            for word in e.long.0 {
                put64(&mut w, word)?;
            }
        }
        for shard in &self.anchors.shards {
            put64(&mut w, shard.used as u64)?;
            put64(&mut w, shard.slots.len() as u64)?;
            for &s in &shard.slots {
                put64(&mut w, s)?;
            }
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Reads tables saved by [`Lookup::save`] for the database `db_id` and `max_distance`;
    /// `None` when the file is missing, for another database or layout, or damaged.
    /// The file is read as a stream, so loading never holds the file and the tables at once.
    pub fn load(path: &Path, db_id: u64, max_distance: u32) -> Option<Lookup> {
        let file = std::fs::File::open(path).ok()?;
        let left = file.metadata().ok()?.len();
        let mut r = Reader {
            r: BufReader::with_capacity(1 << 20, file),
            left,
        };
        if &r.take::<8>()? != MAGIC {
            return None;
        }
        let version = r.u32()?;
        if !(4..=VERSION).contains(&version) || r.u32()? != max_distance {
            return None;
        }
        if r.u64()? != db_id {
            return None;
        }
        let mut l = Lookup::new(max_distance);
        l.last_article = r.u64()?;
        l.last_duplicate = r.u64()?;
        l.front = r.u64()?;
        if version == 4 {
            let n = r.len(8)?;
            l.items.reserve(n);
            for _ in 0..n {
                l.items.insert(r.u64()?, UNKNOWN_SEQ);
            }
        } else {
            let n = r.len(16)?;
            l.items.reserve(n);
            for _ in 0..n {
                let v = r.u64()?;
                l.items.insert(v, r.u64()?);
            }
        }
        for map in [&mut l.guids, &mut l.urls] {
            let n = r.len(16)?;
            map.reserve(n);
            for _ in 0..n {
                let k = r.u64()?;
                map.insert(k, r.u64()?);
            }
        }
        // Per entry: three u64s, the flags byte, the filter.
        let n = r.len(25 + std::mem::size_of::<Bloom>())?;
        l.window.reserve(n);
        for i in 0..n {
            let e = Entry {
                stored_ms: r.u64()? as i64,
                simhash: r.u64()?,
                content: r.u64()?,
                near: false,
                exact: false,
                long: Bloom::default(),
            };
            let [flags] = r.take::<1>()?;
            let mut long = Bloom::default();
            for word in &mut long.0 {
                *word = r.u64()?;
            }
            let e = Entry {
                near: flags & 1 != 0,
                exact: flags & 2 != 0,
                long,
                ..e
            };
            l.push_window(e);
            l.index_window_entry(l.front + i as u64, e);
        }
        let mut shards = Vec::with_capacity(ANCHOR_SHARDS);
        for _ in 0..ANCHOR_SHARDS {
            let used = r.u64()? as usize;
            let n = r.len(8)?;
            let mut slots = Vec::with_capacity(n);
            for _ in 0..n {
                slots.push(r.u64()?);
            }
            shards.push(AnchorShard { slots, used });
        }
        l.anchors = AnchorTable { shards };
        (r.left == 0 && l.anchors.consistent()).then_some(l)
    }
}

/// A version-5 `lookup.bin` rewritten as version 4 wrote it (the item ids without their seqs),
/// for the tests of databases from before format 5.
#[cfg(test)]
pub(crate) fn as_version_4(v5: &[u8]) -> Vec<u8> {
    // Magic, version, max distance, four u64s; then the item count and the items.
    const HEAD: usize = 8 + 4 + 4 + 4 * 8;
    let mut out = v5[..HEAD].to_vec();
    out[8..12].copy_from_slice(&4u32.to_le_bytes());
    let count = &v5[HEAD..HEAD + 8];
    out.extend_from_slice(count);
    let n = u64::from_le_bytes(count.try_into().unwrap()) as usize;
    for i in 0..n {
        let at = HEAD + 8 + 16 * i;
        out.extend_from_slice(&v5[at..at + 8]);
    }
    out.extend_from_slice(&v5[HEAD + 8 + 16 * n..]);
    out
}

fn put32(w: &mut impl Write, v: u32) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put64(w: &mut impl Write, v: u64) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

/// A reader of saved tables: little-endian numbers from a buffered file, counting the bytes
/// left so that a count in the file can be checked before anything is reserved for it.
struct Reader {
    r: BufReader<std::fs::File>,
    left: u64,
}

impl Reader {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.left = self.left.checked_sub(N as u64)?;
        let mut bytes = [0u8; N];
        self.r.read_exact(&mut bytes).ok()?;
        Some(bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take()?))
    }

    /// A count of records of `size` bytes that the rest of the file can hold.
    fn len(&mut self, size: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(size)? as u64 <= self.left).then_some(n)
    }
}

/// Parts the anchor multimap is split into, by the shingle's low bits. Each part grows on its
/// own, so growing never holds two copies of the whole table: one flat table doubling was the
/// largest single item at the peak of a 10,000-feed pass (68 MB of 335).
const ANCHOR_SHARDS: usize = 64;

/// A multimap from anchor shingle to article seqs, in [`ANCHOR_SHARDS`] flat arrays.
struct AnchorTable {
    shards: Vec<AnchorShard>,
}

impl Default for AnchorTable {
    fn default() -> AnchorTable {
        AnchorTable {
            shards: (0..ANCHOR_SHARDS).map(|_| AnchorShard::default()).collect(),
        }
    }
}

impl AnchorTable {
    fn shard(mark: u64) -> usize {
        (mark as usize) % ANCHOR_SHARDS
    }

    fn insert(&mut self, mark: u64, seq: u32) {
        self.shards[Self::shard(mark)].insert(mark, seq);
    }

    fn each(&self, mark: u64, f: impl FnMut(u32)) {
        self.shards[Self::shard(mark)].each(mark, f);
    }

    /// Starts loading the first slot `mark` probes.
    fn prefetch(&self, mark: u64) {
        let shard = &self.shards[Self::shard(mark)];
        if let Some(slot) = shard.slots.get(shard.home(mark)) {
            prefetch(slot);
        }
    }

    fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        for s in &mut self.shards {
            s.retain(&keep);
        }
    }

    fn capacity_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.slots.capacity() * 8).sum()
    }

    fn consistent(&self) -> bool {
        self.shards.len() == ANCHOR_SHARDS && self.shards.iter().all(AnchorShard::consistent)
    }
}

/// One part of the anchor multimap, in one flat array: open addressing with linear probing, a
/// slot being the upper 32 bits of the shingle (its tag, which is also what picks its home) and
/// a 32-bit seq, 0 for empty: 8 bytes a posting. Two shingles with the same tag share postings;
/// dedup confirms every candidate against its stored marks, so that costs a little time, never
/// a wrong verdict.
#[derive(Default)]
struct AnchorShard {
    slots: Vec<u64>,
    used: usize,
}

/// `n` zeros, written into a plain allocation rather than allocated zeroed.
///
/// For a table that is read before it is written (probing, or reading a head before replacing
/// it): a large zeroed allocation is fresh pages, which the kernel maps to its shared zero page
/// on the first read; the first write then copies it and flushes the page from the TLB of every
/// core the process runs on, an inter-processor interrupt a page (2.7% of pass 1 over the
/// peers' 1,000 feeds, in `AnchorShard::grow` and `Heads::replace`). Written zeros take a fresh
/// page on that first write instead. The fill value goes through `black_box` so that the
/// compiler cannot turn the writes back into a zeroed allocation.
fn written_zeros<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, std::hint::black_box(T::default()));
    v
}

impl AnchorShard {
    /// A shingle's first slot, from its tag alone (so that a rebuild, which only has the tags,
    /// puts every posting back where lookups start).
    fn home(&self, mark: u64) -> usize {
        let h = (mark >> 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Multiply-shift range reduction: any table size, uniform for uniform tags.
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    fn slot(mark: u64, seq: u32) -> u64 {
        (mark & 0xFFFF_FFFF_0000_0000) | u64::from(seq)
    }

    fn insert(&mut self, mark: u64, seq: u32) {
        if seq == 0 {
            return;
        }
        if (self.used + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let tag = mark & 0xFFFF_FFFF_0000_0000;
        let n = self.slots.len();
        let mut i = self.home(mark);
        let mut same = 0;
        loop {
            let s = self.slots[i];
            if s == 0 {
                self.slots[i] = Self::slot(mark, seq);
                self.used += 1;
                return;
            }
            if s & 0xFFFF_FFFF_0000_0000 == tag {
                same += 1;
                if same >= MAX_ANCHOR_POSTINGS {
                    return;
                }
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    fn each(&self, mark: u64, mut f: impl FnMut(u32)) {
        if self.slots.is_empty() {
            return;
        }
        let tag = mark & 0xFFFF_FFFF_0000_0000;
        let n = self.slots.len();
        let mut i = self.home(mark);
        for _ in 0..n {
            let s = self.slots[i];
            if s == 0 {
                return;
            }
            if s & 0xFFFF_FFFF_0000_0000 == tag {
                f(s as u32);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 3 / 2).max(64);
        self.rebuild(size, |_| true);
    }

    fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        let live = self
            .slots
            .iter()
            .filter(|&&s| s != 0 && keep(s as u32))
            .count();
        self.rebuild((live * 3 / 2).max(64), keep);
    }

    /// Re-inserts the kept postings into `size` slots.
    fn rebuild(&mut self, size: usize, keep: impl Fn(u32) -> bool) {
        let old = std::mem::replace(&mut self.slots, written_zeros(size));
        self.used = 0;
        for s in old {
            if s != 0 && keep(s as u32) {
                self.insert(s, s as u32);
            }
        }
    }

    /// Every slot's tag hashes home consistently (a check on a loaded file).
    fn consistent(&self) -> bool {
        self.used <= self.slots.len() && self.slots.iter().filter(|&&s| s != 0).count() == self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article<'a>(seq: u64, simhash: u64, anchors: &'a [u64], id: &'a str) -> Indexed<'a> {
        Indexed {
            seq,
            id,
            global_guid: None,
            url: None,
            stored_ms: seq as i64 * 1000,
            simhash,
            content: seq * 7919,
            words: 100,
            anchors,
            long_marks: anchors,
        }
    }

    /// Forgetting the second of two colliding ids (`<id>-<seq>`) keeps the first one's entry.
    #[test]
    fn forgetting_a_suffixed_id_keeps_the_first_items_entry() {
        let mut l = Lookup::new(3);
        let first = "00000000000000aa";
        let second = "00000000000000aa-2";
        l.add_article(&article(1, 1, &[], first));
        l.add_article(&article(2, 2, &[], second));
        l.forget_item(second);
        assert_eq!(l.item(first), Some((true, 1)));
        l.forget_item(first);
        assert_eq!(l.item(first), None);
        assert!(!l.seen(second));
    }

    #[test]
    fn anchors_find_their_articles_and_expire() {
        let mut l = Lookup::new(3);
        let ids: Vec<String> = (1..=5000u64).map(|s| format!("{s:016x}")).collect();
        for seq in 1..=5000u64 {
            let marks = [seq << 32 | 1, (seq % 10) << 40 | 7, 0xABCD_0000_0000_0000];
            l.add_article(&article(
                seq,
                seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                &marks,
                &ids[seq as usize - 1],
            ));
        }
        assert_eq!(l.anchor_hits(&[42 << 32 | 1], 4), vec![(42, 1)]);
        // A shared anchor keeps at most MAX_ANCHOR_POSTINGS articles (the first ones).
        let common = l.anchor_hits(&[0xABCD_0000_0000_0000], 1000);
        assert_eq!(common.len(), MAX_ANCHOR_POSTINGS);
        assert!(l.seen(&ids[10]));
        assert_eq!(l.by_content(3 * 7919), Some(3));
        assert_eq!(l.expire_before(2_500_000), 2499);
        assert_eq!(l.window_front(), 2500);
        assert!(l.anchor_hits(&[42 << 32 | 1], 4).is_empty());
        assert_eq!(l.anchor_hits(&[4200 << 32 | 1], 4), vec![(4200, 1)]);
        assert_eq!(l.by_content(3 * 7919), None);
        // Identity outlives the window.
        assert!(l.seen(&ids[10]));
    }

    #[test]
    fn near_finds_what_a_scan_finds_and_saved_tables_load_back() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut l = Lookup::new(3);
        let mut all = Vec::new();
        let ids: Vec<String> = (1..=3000u64).map(|s| format!("{s:016x}")).collect();
        for seq in 1..=3000u64 {
            let h = rng.u64(..);
            all.push((seq, h));
            l.add_article(&article(seq, h, &[h], &ids[seq as usize - 1]));
        }
        for _ in 0..200 {
            let (_, base) = all[rng.usize(..all.len())];
            let mut q = base;
            for _ in 0..rng.u32(0..5) {
                q ^= 1 << rng.u32(0..64);
            }
            let scan = all
                .iter()
                .map(|&(s, h)| (distance(h, q), s))
                .filter(|&(d, _)| d <= 3)
                .min()
                .map(|(d, s)| (s, d));
            assert_eq!(l.nearest(q, 3), scan);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lookup.bin");
        l.save(&path, 77).unwrap();
        assert!(
            Lookup::load(&path, 78, 3).is_none(),
            "another database's file"
        );
        assert!(Lookup::load(&path, 77, 2).is_none(), "another layout");
        let back = Lookup::load(&path, 77, 3).unwrap();
        for &(seq, h) in all.iter().step_by(37) {
            assert_eq!(back.nearest(h, 0), Some((seq, 0)));
            assert_eq!(back.anchor_hits(&[h], 1), vec![(seq, 1)]);
        }
        assert_eq!(back.last_article, 3000);
        // A damaged file is not used.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Lookup::load(&path, 77, 3).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// For every layout (k = 0 to 7) and every k' <= k, the near tables return exactly the
        /// stored fingerprints a scan finds within k', and the nearest of them; also after the
        /// window has dropped its oldest articles.
        #[test]
        fn near_tables_return_exactly_what_a_scan_finds(
            k in 0u32..=7,
            bases in proptest::collection::vec(proptest::prelude::any::<u64>(), 1..40),
            flips in proptest::collection::vec(proptest::collection::vec(0u32..64, 0..9), 1..200),
            queries in proptest::collection::vec((0usize..1000, proptest::collection::vec(0u32..64, 0..9)), 1..40),
            expire in 0usize..60,
        ) {
            // Articles clustered around a few bases, so that many lie within k of each other.
            let flip = |mut h: u64, bits: &[u32]| {
                for &b in bits {
                    h ^= 1 << b;
                }
                h
            };
            let stored: Vec<(u64, u64)> = flips
                .iter()
                .enumerate()
                .map(|(i, bits)| (i as u64 + 1, flip(bases[i % bases.len()], bits)))
                .collect();
            let ids: Vec<String> = stored.iter().map(|(s, _)| format!("{s:016x}")).collect();
            let mut l = Lookup::new(k);
            for (i, &(seq, h)) in stored.iter().enumerate() {
                l.add_article(&article(seq, h, &[], &ids[i]));
            }
            let expire = expire.min(stored.len());
            l.expire_before(expire as i64 * 1000 + 1);
            let live = &stored[expire..];
            for (pick, bits) in &queries {
                let q = flip(stored[pick % stored.len()].1, bits);
                for within in 0..=k {
                    let mut scan: Vec<(u64, u32)> = live
                        .iter()
                        .map(|&(s, h)| (s, distance(h, q)))
                        .filter(|&(_, d)| d <= within)
                        .collect();
                    scan.sort_unstable();
                    let mut found: Vec<(u64, u32)> = l
                        .near_candidates(q)
                        .into_iter()
                        .filter(|&(_, d)| d <= within)
                        .collect();
                    found.sort_unstable();
                    proptest::prop_assert_eq!(&found, &scan);
                    let nearest = scan.iter().map(|&(s, d)| (d, s)).min().map(|(d, s)| (s, d));
                    proptest::prop_assert_eq!(l.nearest(q, within), nearest);
                }
            }
        }
    }

    #[test]
    fn the_long_mark_filter_never_misses_and_rarely_lies() {
        // A 400-word article has about 110 long marks, an 800-word one about 220. At 512 bits
        // the filter said "may hold" to 29% of foreign marks at 190, so nearly every anchor
        // hit had its marks read; at 1024 bits, 2% at 110 and 8% at 190.
        let mut rng = fastrand::Rng::with_seed(3);
        for (n, most) in [(110, 400), (190, 1_100)] {
            let marks: Vec<u64> = (0..n).map(|_| rng.u64(..)).collect();
            let b = Bloom::of(&marks);
            assert!(marks.iter().all(|&m| b.holds(m) == 1));
            assert_eq!(b.count_held(&marks), marks.len() as u32);
            let false_hits = (0..10_000).filter(|_| b.holds(rng.u64(..)) == 1).count();
            assert!(false_hits < most, "{n} marks: {false_hits} of 10000");
        }
    }
}
