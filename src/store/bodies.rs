//! The body log: the values of articles and duplicate records (their NDJSON record and
//! fingerprint, a few kilobytes each) appended to segment files beside sled, which keeps a
//! 17-byte [`Pointer`] to each under the record's key.
//!
//! Why not in sled: sled 0.34 splits a leaf node once it holds 16 entries and rewrites nodes
//! whole as it consolidates them, so every value of several kilobytes was copied and written
//! again several times. With the values in sled, its tree work and its I/O threads took a quarter
//! of the CPU of a polling pass over 1,000 feeds (README, "Performance"). A value here is written
//! once and never moved.
//!
//! A segment file (`bodies/NNNNNNNN.log`) holds entries `len (u32 LE) | xxh3 (u64 LE) |
//! value`; a new segment starts after [`SEGMENT_BYTES`]. Retention deletes records oldest first,
//! so segments die oldest first: [`Bodies::remove_before`] deletes the segments no live record
//! points into.
//!
//! Durability follows sled's group commit: the writer appends at [`Bodies::write_pending`],
//! before the sled batch holding the pointers is applied, and [`Bodies::sync`] makes the log
//! durable before sled is flushed. A pointer sled kept across a power loss whose bytes were lost
//! fails its checksum; the store removes such records when it opens (no reader ever saw them).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A segment is closed once it holds this much.
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// Bytes of an entry's header: length and checksum.
const HEADER: u64 = 12;
/// First byte of a pointer value.
const TAG: u8 = b'@';

/// Where a value lives in the body log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pointer {
    /// Segment number.
    pub segment: u32,
    /// Offset of the entry's header in the segment.
    pub offset: u64,
    /// Length of the value.
    pub len: u32,
}

impl Pointer {
    /// Length of an encoded pointer. Inline values (written before the body log) are never
    /// this short: their length prefix, record and fingerprint take at least 60 bytes.
    pub const ENCODED: usize = 17;

    /// The value sled keeps: `@`, segment, offset and length, big-endian.
    pub fn encode(&self) -> [u8; Self::ENCODED] {
        let mut v = [TAG; Self::ENCODED];
        v[1..5].copy_from_slice(&self.segment.to_be_bytes());
        v[5..13].copy_from_slice(&self.offset.to_be_bytes());
        v[13..17].copy_from_slice(&self.len.to_be_bytes());
        v
    }

    /// The pointer in a sled value, or `None` for a value kept inline.
    pub fn decode(v: &[u8]) -> Option<Pointer> {
        if v.len() != Self::ENCODED || v[0] != TAG {
            return None;
        }
        Some(Pointer {
            segment: u32::from_be_bytes(v[1..5].try_into().ok()?),
            offset: u64::from_be_bytes(v[5..13].try_into().ok()?),
            len: u32::from_be_bytes(v[13..17].try_into().ok()?),
        })
    }

    /// The position just past this entry.
    pub fn end(&self) -> (u32, u64) {
        (self.segment, self.offset + HEADER + u64::from(self.len))
    }
}

/// Why a value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The segment.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The bytes are missing or do not match their checksum.
    #[error("{path} at {offset}: {what}")]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Where the entry starts.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

/// The open body log; see the module documentation.
pub struct Bodies {
    dir: PathBuf,
    segment_bytes: u64,
    tail: Mutex<Tail>,
    /// Segments opened for reading.
    readers: RwLock<HashMap<u32, Arc<File>>>,
}

/// The segment being appended to.
struct Tail {
    segment: u32,
    /// Shared with [`Bodies::sync`], which syncs it without holding the lock.
    file: Arc<File>,
    /// Bytes written to it.
    len: u64,
    /// Entries appended since the last [`Bodies::write_pending`].
    pending: Vec<u8>,
    /// A write failed since the last [`Bodies::discard_pending`]: values appended before it
    /// are lost, so nothing may be committed until the writer starts over.
    broken: bool,
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.log"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(io(path))
}

impl Bodies {
    /// Opens (creating if needed) the body log in `dir`, appending to its newest segment and
    /// starting a new one past `segment_bytes`.
    pub fn open(dir: &Path, segment_bytes: u64) -> std::io::Result<Bodies> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let newest = Self::segments(dir)?.into_iter().max().unwrap_or(1);
        let path = segment_path(dir, newest);
        let file = Arc::new(open_append(&path)?);
        let len = file.metadata().map_err(io(&path))?.len();
        Ok(Bodies {
            dir: dir.to_path_buf(),
            segment_bytes,
            tail: Mutex::new(Tail {
                segment: newest,
                file,
                len,
                pending: Vec::new(),
                broken: false,
            }),
            readers: RwLock::new(HashMap::new()),
        })
    }

    /// The segment numbers present.
    fn segments(dir: &Path) -> std::io::Result<Vec<u32>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let name = entry.map_err(io(dir))?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
            {
                out.push(n);
            }
        }
        Ok(out)
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a value (buffered until [`Bodies::write_pending`]) and returns where it will be.
    /// When the segment is full, what is buffered is written, the segment is made durable and
    /// a new one started.
    pub fn append(&self, value: &[u8]) -> std::io::Result<Pointer> {
        let mut t = self.tail();
        let len = u32::try_from(value.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a value over 4 GiB")
        })?;
        if t.len + t.pending.len() as u64 >= self.segment_bytes {
            Self::write(&mut t, &self.dir)?;
            t.file
                .sync_data()
                .map_err(io(&segment_path(&self.dir, t.segment)))?;
            let segment = t.segment + 1;
            let path = segment_path(&self.dir, segment);
            t.file = Arc::new(open_append(&path)?);
            t.segment = segment;
            t.len = 0;
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        let offset = t.len + t.pending.len() as u64;
        t.pending.extend_from_slice(&len.to_le_bytes());
        t.pending
            .extend_from_slice(&xxhash_rust::xxh3::xxh3_64(value).to_le_bytes());
        t.pending.extend_from_slice(value);
        Ok(Pointer {
            segment: t.segment,
            offset,
            len,
        })
    }

    /// Writes the appended values to the segment (no sync). On failure the segment is cut
    /// back to what it held before and the values are dropped: their records must not be
    /// committed.
    pub fn write_pending(&self) -> std::io::Result<()> {
        Self::write(&mut self.tail(), &self.dir)
    }

    fn write(t: &mut Tail, dir: &Path) -> std::io::Result<()> {
        if t.broken {
            return Err(std::io::Error::other(
                "an earlier write to the body log failed; the values appended since are lost",
            ));
        }
        if t.pending.is_empty() {
            return Ok(());
        }
        let written = (&*t.file).write_all(&t.pending);
        let appended = t.pending.len() as u64;
        t.pending.clear();
        match written {
            Ok(()) => {
                t.len += appended;
                Ok(())
            }
            Err(e) => {
                let path = segment_path(dir, t.segment);
                let _ = t.file.set_len(t.len);
                t.broken = true;
                Err(io(&path)(e))
            }
        }
    }

    /// Drops the values appended since the last write (their batch was not committed), and
    /// forgets a failed write: the writer starts over.
    pub fn discard_pending(&self) {
        let mut t = self.tail();
        t.pending.clear();
        t.broken = false;
    }

    /// Makes everything written durable; returns the position up to which it is.
    /// The writer goes on appending meanwhile: what it writes after the call began may or may
    /// not be durable, and the position returned does not cover it.
    pub fn sync(&self) -> std::io::Result<(u32, u64)> {
        let (segment, len, file) = {
            let t = self.tail();
            (t.segment, t.len, t.file.clone())
        };
        // A segment that was closed since was synced as it was closed.
        file.sync_data()
            .map_err(io(&segment_path(&self.dir, segment)))?;
        Ok((segment, len))
    }

    fn reader(&self, segment: u32) -> Result<Arc<File>, ReadError> {
        if let Some(f) = self
            .readers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&segment)
        {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, segment);
        let file = Arc::new(File::open(&path).map_err(|source| ReadError::Io {
            path: path.clone(),
            source,
        })?);
        self.readers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(segment, file.clone());
        Ok(file)
    }

    /// Reads the value `p` points at, checking its length and checksum.
    pub fn read(&self, p: Pointer) -> Result<Vec<u8>, ReadError> {
        let damaged = |what| ReadError::Damaged {
            path: segment_path(&self.dir, p.segment),
            offset: p.offset,
            what,
        };
        let file = match self.reader(p.segment) {
            Err(ReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged("the segment is missing"));
            }
            other => other?,
        };
        let mut buf = vec![0u8; HEADER as usize + p.len as usize];
        if let Err(e) = file.read_exact_at(&mut buf, p.offset) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Err(damaged("the entry was never written"));
            }
            return Err(ReadError::Io {
                path: segment_path(&self.dir, p.segment),
                source: e,
            });
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let sum = u64::from_le_bytes(buf[4..12].try_into().unwrap_or_default());
        if len != p.len {
            return Err(damaged("the entry's length differs"));
        }
        let value = buf.split_off(HEADER as usize);
        if xxhash_rust::xxh3::xxh3_64(&value) != sum {
            return Err(damaged("the entry's checksum differs"));
        }
        Ok(value)
    }

    /// Deletes the segments before `segment` (no live record points into them); returns how
    /// many.
    pub fn remove_before(&self, segment: u32) -> std::io::Result<usize> {
        let current = self.tail().segment;
        let mut removed = 0;
        for s in Self::segments(&self.dir)? {
            if s < segment && s < current {
                self.readers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&s);
                let path = segment_path(&self.dir, s);
                std::fs::remove_file(&path).map_err(io(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes the segments take on disk.
    pub fn size_on_disk(&self) -> std::io::Result<u64> {
        let mut total = 0;
        for s in Self::segments(&self.dir)? {
            let path = segment_path(&self.dir, s);
            total += std::fs::metadata(&path).map_err(io(&path))?.len();
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_and_damage_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let log = Bodies::open(dir.path(), SEGMENT_BYTES).unwrap();
        let a = log.append(b"first value").unwrap();
        let b = log.append(&[7u8; 5000]).unwrap();
        log.write_pending().unwrap();
        assert_eq!(log.read(a).unwrap(), b"first value");
        assert_eq!(log.read(b).unwrap(), vec![7u8; 5000]);
        assert_eq!(Pointer::decode(&a.encode()), Some(a));
        assert_eq!(Pointer::decode(b"not a pointer"), None);
        // Appended but never written: not there.
        let c = log.append(b"lost").unwrap();
        log.discard_pending();
        assert!(matches!(log.read(c), Err(ReadError::Damaged { .. })));
        // Reopened, it appends after what is there.
        drop(log);
        let log = Bodies::open(dir.path(), SEGMENT_BYTES).unwrap();
        let d = log.append(b"after").unwrap();
        log.write_pending().unwrap();
        assert_eq!(d.offset, b.end().1);
        assert_eq!(log.read(d).unwrap(), b"after");
        // A flipped byte is caught.
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(a.offset + HEADER) as usize] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let log = Bodies::open(dir.path(), SEGMENT_BYTES).unwrap();
        assert!(matches!(log.read(a), Err(ReadError::Damaged { .. })));
        assert_eq!(log.read(b).unwrap(), vec![7u8; 5000]);
    }

    #[test]
    fn segments_roll_over_and_old_ones_can_go() {
        let dir = tempfile::tempdir().unwrap();
        let log = Bodies::open(dir.path(), 1000).unwrap();
        let big = vec![1u8; 500];
        let ps: Vec<Pointer> = (0..5)
            .map(|_| {
                let p = log.append(&big).unwrap();
                log.write_pending().unwrap();
                p
            })
            .collect();
        assert_eq!(
            ps.iter().map(|p| p.segment).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3]
        );
        assert_eq!(log.remove_before(3).unwrap(), 2);
        assert!(matches!(log.read(ps[0]), Err(ReadError::Damaged { .. })));
        assert_eq!(log.read(ps[4]).unwrap().len(), big.len());
        assert!(log.size_on_disk().unwrap() < 1000);
    }
}
