//! Lease table files: `<data>/leases/<application>.leases`, one per application.
//!
//! The byte layout is documented in `docs/formats/leases.md`; offsets here are derived from
//! field sizes and a test checks the header against the document. A file is always
//! replaced whole through [`write_atomic`], so after a crash it holds the last table whose
//! write returned, or the one being written. Decoding checks every byte (magic, version,
//! reserved field, length, CRC32, then the body field by field) and never panics: anything
//! wrong is [`Error::BadFormat`] naming the file.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::mem::size_of;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::table::{check_checkpoint, InitialPosition, Lease, LeaseTable};
use crate::datadir::{write_atomic, TMP_SUFFIX};
use crate::error::{Error, Result};
use crate::ids::ShardId;

/// First bytes of every lease table file.
pub const MAGIC: [u8; 8] = *b"SHLNLEAS";
/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// File name suffix of lease tables.
pub const FILE_SUFFIX: &str = ".leases";

pub(crate) const MAGIC_OFFSET: usize = 0;
pub(crate) const VERSION_OFFSET: usize = MAGIC_OFFSET + MAGIC.len();
pub(crate) const LEN_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
pub(crate) const CRC_OFFSET: usize = LEN_OFFSET + size_of::<u32>();
pub(crate) const RESERVED_OFFSET: usize = CRC_OFFSET + size_of::<u32>();
/// Size of the fixed header before the body.
pub const HEADER_LEN: usize = RESERVED_OFFSET + size_of::<u32>();

/// Longest application name kept verbatim in a file name; longer names are shortened and
/// made unique with their MD5, so that the name stays under the common 255-byte limit.
const MAX_VERBATIM_NAME: usize = 200;

/// Initial position codes in the body.
const POSITION_TRIM_HORIZON: u8 = 0;
const POSITION_LATEST: u8 = 1;
const POSITION_AT_TIMESTAMP: u8 = 2;

/// Most parents (a merge) or children (a split) a shard has.
const MAX_LINEAGE: u8 = 2;

/// The file holding `application`'s table in `dir`.
pub fn table_path(dir: &Path, application: &str) -> PathBuf {
    dir.join(file_name(application))
}

fn file_name(application: &str) -> String {
    if application.len() <= MAX_VERBATIM_NAME {
        return format!("{application}{FILE_SUFFIX}");
    }
    // Application names are ASCII (`[a-zA-Z0-9_.-]+`), so any byte index is a char boundary;
    // `get` keeps that an assumption checked rather than a panic.
    let head = application.get(..MAX_VERBATIM_NAME).unwrap_or("");
    let digest = Md5::digest(application.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}~{hex}{FILE_SUFFIX}")
}

/// Durably replaces `table`'s file in `dir`.
///
/// # Errors
/// [`Error::Io`] naming the failed step; the previous table is then still in place.
pub fn write(dir: &Path, table: &LeaseTable) -> Result<()> {
    write_atomic(&table_path(dir, &table.application), &encode(table))
}

/// Reads every table in `dir` (missing directory = none), ignoring temp files a crash left.
///
/// # Errors
/// [`Error::Io`]; [`Error::BadFormat`] naming the first damaged file.
pub fn read_all(dir: &Path) -> Result<BTreeMap<String, LeaseTable>> {
    let mut tables = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tables),
        Err(e) => return Err(Error::io("list lease tables", dir, e)),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io("list lease tables", dir, e))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(TMP_SUFFIX) {
            continue;
        }
        if !name.ends_with(FILE_SUFFIX) {
            tracing::warn!("ignoring {} (not a lease table)", path.display());
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let table = decode(&bytes, &path)?;
        if file_name(&table.application) != name {
            return Err(Error::BadFormat {
                path,
                reason: format!(
                    "holds the lease table of application {}, which belongs in {}",
                    table.application,
                    file_name(&table.application)
                ),
            });
        }
        tables.insert(table.application.clone(), table);
    }
    Ok(tables)
}

/// Serializes a table into the bytes of its file.
pub fn encode(table: &LeaseTable) -> Vec<u8> {
    let mut body = Vec::with_capacity(128 + table.leases.len() * 160);
    put_str(&mut body, &table.application);
    put_str(&mut body, &table.stream);
    put_str(&mut body, &table.stream_incarnation);
    let (code, ts) = match table.initial_position {
        InitialPosition::TrimHorizon => (POSITION_TRIM_HORIZON, 0),
        InitialPosition::Latest => (POSITION_LATEST, 0),
        InitialPosition::AtTimestamp { timestamp_ms } => (POSITION_AT_TIMESTAMP, timestamp_ms),
    };
    body.push(code);
    body.extend_from_slice(&ts.to_le_bytes());
    body.extend_from_slice(&table.next_shard_index.to_le_bytes());
    put_len(&mut body, table.leases.len());
    for l in table.leases.values() {
        body.extend_from_slice(&l.shard.0.to_le_bytes());
        match &l.owner {
            Some(o) => {
                body.push(1);
                put_str(&mut body, o);
            }
            None => body.push(0),
        }
        body.extend_from_slice(&l.counter.to_le_bytes());
        put_str(&mut body, &l.checkpoint);
        body.extend_from_slice(&l.checkpoint_sub_sequence.to_le_bytes());
        body.extend_from_slice(&l.owner_switches_since_checkpoint.to_le_bytes());
        body.extend_from_slice(&l.hash_start.to_le_bytes());
        body.extend_from_slice(&l.hash_end.to_le_bytes());
        put_ids(&mut body, &l.parents);
        put_ids(&mut body, &l.children);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    put_len(&mut out, body.len());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&body);
    out
}

/// Lengths are u32 on disk. Tables hold at most a few thousand leases of a few hundred
/// bytes each, and names are at most 256 characters.
fn put_len(out: &mut Vec<u8>, len: usize) {
    let len =
        u32::try_from(len).expect("invariant: lease tables and their strings are far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_ids(out: &mut Vec<u8>, ids: &[ShardId]) {
    // Lineage has at most two entries (see `MAX_LINEAGE`), so the count fits in a byte.
    out.push(ids.len().min(usize::from(MAX_LINEAGE)) as u8);
    for id in ids.iter().take(usize::from(MAX_LINEAGE)) {
        out.extend_from_slice(&id.0.to_le_bytes());
    }
}

/// Parses and checks the bytes of a lease table file.
///
/// # Errors
/// [`Error::BadFormat`] with `path` and the first problem found.
pub fn decode(bytes: &[u8], path: &Path) -> Result<LeaseTable> {
    decode_bytes(bytes).map_err(|reason| Error::BadFormat {
        path: path.to_path_buf(),
        reason: format!("damaged lease table: {reason}. Restore the file from a backup, or delete it to drop the application's leases (SyncLeases then creates new ones, without checkpoints)"),
    })
}

fn decode_bytes(bytes: &[u8]) -> Result<LeaseTable, String> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    };
    if header[MAGIC_OFFSET..VERSION_OFFSET] != MAGIC {
        return Err(format!(
            "not a lease table (magic {:02x?}, expected {MAGIC:02x?})",
            &header[MAGIC_OFFSET..VERSION_OFFSET]
        ));
    }
    let version = u32_at(header, VERSION_OFFSET);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {version} (this build reads version {FORMAT_VERSION})"
        ));
    }
    let reserved = u32_at(header, RESERVED_OFFSET);
    if reserved != 0 {
        return Err(format!("reserved header field is {reserved:#x}, must be 0"));
    }
    let body_len = u32_at(header, LEN_OFFSET);
    let body = &bytes[HEADER_LEN..];
    let len = usize::try_from(body_len).unwrap_or(usize::MAX);
    match len.cmp(&body.len()) {
        Ordering::Equal => {}
        Ordering::Greater => {
            return Err(format!(
                "truncated: header says the body is {body_len} bytes, file has {}",
                body.len()
            ))
        }
        Ordering::Less => {
            return Err(format!(
                "{} trailing bytes after the {body_len}-byte body",
                body.len() - len
            ))
        }
    }
    let expected = u32_at(header, CRC_OFFSET);
    let actual = crc32fast::hash(body);
    if expected != actual {
        return Err(format!(
            "CRC mismatch: header says {expected:#010x}, body has {actual:#010x}"
        ));
    }
    decode_body(&mut Reader {
        bytes: body,
        pos: 0,
    })
}

fn u32_at(header: &[u8; HEADER_LEN], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&header[offset..offset + 4]);
    u32::from_le_bytes(b)
}

fn decode_body(r: &mut Reader<'_>) -> Result<LeaseTable, String> {
    let application = r.string("application name")?;
    let stream = r.string("stream name")?;
    let stream_incarnation = r.string("stream incarnation")?;
    let code = r.u8("initial position")?;
    let ts = r.u64("initial timestamp")?;
    let initial_position = match code {
        POSITION_TRIM_HORIZON => InitialPosition::TrimHorizon,
        POSITION_LATEST => InitialPosition::Latest,
        POSITION_AT_TIMESTAMP => InitialPosition::AtTimestamp { timestamp_ms: ts },
        other => return Err(format!("unknown initial position code {other}")),
    };
    let next_shard_index = r.u32("next shard index")?;
    let count = r.u32("lease count")?;
    let mut leases = BTreeMap::new();
    let mut previous: Option<ShardId> = None;
    for i in 0..count {
        let shard = ShardId(r.u32("lease key")?);
        if previous.is_some_and(|p| p >= shard) {
            return Err(format!(
                "lease {i} ({shard}) is not in ascending lease key order"
            ));
        }
        previous = Some(shard);
        let owner = match r.u8("owner flag")? {
            0 => None,
            1 => Some(r.string("owner")?),
            other => {
                return Err(format!(
                    "lease {shard}: owner flag is {other}, must be 0 or 1"
                ))
            }
        };
        let counter = r.u64("counter")?;
        let checkpoint = r.string("checkpoint")?;
        check_checkpoint(&checkpoint).map_err(|e| format!("lease {shard}: {e}"))?;
        let lease = Lease {
            shard,
            owner,
            counter,
            checkpoint,
            checkpoint_sub_sequence: r.u64("checkpoint sub-sequence number")?,
            owner_switches_since_checkpoint: r.u64("owner switches")?,
            hash_start: r.u128("starting hash key")?,
            hash_end: r.u128("ending hash key")?,
            parents: r.ids("parents")?,
            children: r.ids("children")?,
        };
        leases.insert(shard, lease);
    }
    if r.pos != r.bytes.len() {
        return Err(format!(
            "{} bytes left over after {count} leases",
            r.bytes.len() - r.pos
        ));
    }
    Ok(LeaseTable {
        application,
        stream,
        stream_incarnation,
        initial_position,
        next_shard_index,
        leases,
    })
}

/// A bounds-checked cursor over the body.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "body ends inside the {what} at byte {} of {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn u128(&mut self, what: &str) -> Result<u128, String> {
        self.array(what).map(u128::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = usize::try_from(self.u32(what)?).unwrap_or(usize::MAX);
        let at = self.pos;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{what} at byte {at} is not UTF-8"))
    }

    fn ids(&mut self, what: &str) -> Result<Vec<ShardId>, String> {
        let n = self.u8(what)?;
        if n > MAX_LINEAGE {
            return Err(format!("{n} {what}, at most {MAX_LINEAGE} allowed"));
        }
        (0..n).map(|_| self.u32(what).map(ShardId)).collect()
    }
}
