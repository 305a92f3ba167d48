//! Segment files: `{base_offset:020}.log`, a fixed header followed by record batches.
//!
//! Invariants:
//! - The name's zero-padded base offset makes lexical order log order.
//! - A segment is only ever appended to while it is the shard's active (last) segment; once
//!   sealed it is never written or truncated again, which is what makes mapping it sound.
//! - The header is written and synced when the segment is created, before any batch.
//!
//! Layout: `docs/formats/segment.md`.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ids::SegmentId;

/// First bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"SHLNLOG\0";
/// The segment format version this code writes and reads.
pub const VERSION: u32 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + MAGIC.len();
const RESERVED_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
const BASE_OFFSET_OFFSET: usize = RESERVED_OFFSET + size_of::<u32>();
const CRC_OFFSET: usize = BASE_OFFSET_OFFSET + size_of::<u64>();
const RESERVED2_OFFSET: usize = CRC_OFFSET + size_of::<u32>();
/// Size of the segment header; the first batch starts here.
pub const HEADER_LEN: usize = RESERVED2_OFFSET + size_of::<u32>();

/// The log file of segment `id` in `dir`.
pub fn log_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("{id}.log"))
}

/// The index file of segment `id` in `dir`.
pub fn index_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("{id}.idx"))
}

/// Parses a segment file name (`00000000000000000042.log`) into its id.
pub fn parse_log_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SegmentId)
}

/// Encodes the header of segment `id`.
pub fn encode_header(id: SegmentId) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&MAGIC);
    h[VERSION_OFFSET..RESERVED_OFFSET].copy_from_slice(&VERSION.to_le_bytes());
    h[BASE_OFFSET_OFFSET..CRC_OFFSET].copy_from_slice(&id.0.to_le_bytes());
    let crc = crc32fast::hash(&h[..CRC_OFFSET]);
    h[CRC_OFFSET..RESERVED2_OFFSET].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header against the id its file name gives.
///
/// # Errors
/// [`Error::BadFormat`] naming `path` if the magic, version, CRC, reserved fields or base
/// offset are wrong.
pub fn check_header(h: &[u8], id: SegmentId, path: &Path) -> Result<()> {
    let bad = |reason: String| Error::BadFormat {
        path: path.to_path_buf(),
        reason,
    };
    if h.len() < HEADER_LEN {
        return Err(bad(format!(
            "segment header is {} bytes, expected {HEADER_LEN}",
            h.len()
        )));
    }
    if h[MAGIC_OFFSET..VERSION_OFFSET] != MAGIC {
        return Err(bad("not a shardline segment (bad magic number)".into()));
    }
    let mut w = [0u8; 4];
    w.copy_from_slice(&h[VERSION_OFFSET..RESERVED_OFFSET]);
    let version = u32::from_le_bytes(w);
    if version != VERSION {
        return Err(bad(format!(
            "segment format version {version}; this build reads version {VERSION}"
        )));
    }
    w.copy_from_slice(&h[CRC_OFFSET..RESERVED2_OFFSET]);
    if u32::from_le_bytes(w) != crc32fast::hash(&h[..CRC_OFFSET]) {
        return Err(bad("segment header checksum mismatch".into()));
    }
    if h[RESERVED_OFFSET..BASE_OFFSET_OFFSET] != [0; 4] || h[RESERVED2_OFFSET..HEADER_LEN] != [0; 4]
    {
        return Err(bad("segment header reserved fields are not zero".into()));
    }
    let mut q = [0u8; 8];
    q.copy_from_slice(&h[BASE_OFFSET_OFFSET..CRC_OFFSET]);
    let base = u64::from_le_bytes(q);
    if base != id.0 {
        return Err(bad(format!(
            "segment header says base offset {base}, file name says {}",
            id.0
        )));
    }
    Ok(())
}

/// Creates segment `id` in `dir` with its header written and synced.
///
/// # Errors
/// I/O errors creating, writing or syncing the file, or if it already exists.
pub fn create(dir: &Path, id: SegmentId) -> Result<File> {
    let path = log_path(dir, id);
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create segment", &path, e))?;
    let written = std::os::unix::fs::FileExt::write_all_at(&file, &encode_header(id), 0)
        .map_err(|e| Error::io("write segment header", &path, e))
        .and_then(|()| {
            file.sync_data()
                .map_err(|e| Error::io("sync segment header", &path, e))
        });
    if let Err(e) = written {
        // Leave no half-made segment behind for recovery to trip over.
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(file)
}

/// Opens an existing segment for reading and appending, returning it with its length.
///
/// # Errors
/// I/O errors, or [`Error::BadFormat`] if the header is wrong.
pub fn open(dir: &Path, id: SegmentId) -> Result<(File, u64)> {
    let path = log_path(dir, id);
    let mut file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open segment", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat segment", &path, e))?
        .len();
    let mut h = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut h)
        .map_err(|e| Error::io("read segment header", &path, e))?;
    check_header(&h, id, &path)?;
    Ok((file, len))
}

/// Reads `len` bytes at `pos`.
///
/// # Errors
/// I/O errors, including a file shorter than expected.
pub fn read_at(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    read_into(file, pos, len, Vec::with_capacity(len))
}

/// Reads exactly `len` bytes at `pos` into `buf` (empty, any capacity), returning it.
///
/// # Errors
/// As [`read_at`].
pub(crate) fn read_into(
    file: &File,
    pos: u64,
    len: usize,
    mut buf: Vec<u8>,
) -> io::Result<Vec<u8>> {
    // Read into the vector's spare capacity: zeroing a buffer the read then overwrites
    // costs as much as the read itself for large reads.
    buf.clear();
    buf.reserve(len);
    while buf.len() < len {
        let at = pos + buf.len() as u64;
        let want = len - buf.len();
        let n = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ends before byte {}", at + want as u64),
            ));
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_size_matches_the_format_doc() {
        assert_eq!(HEADER_LEN, 32);
    }

    #[test]
    fn names_sort_in_log_order() {
        assert_eq!(SegmentId(42).to_string(), "00000000000000000042");
        assert_eq!(
            parse_log_name("00000000000000000042.log"),
            Some(SegmentId(42))
        );
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.idx"), None);
    }

    #[test]
    fn header_checks() {
        let p = Path::new("x.log");
        let h = encode_header(SegmentId(9));
        check_header(&h, SegmentId(9), p).unwrap();
        assert!(check_header(&h, SegmentId(8), p).is_err());
        assert!(check_header(&h[..10], SegmentId(9), p).is_err());
        for i in 0..HEADER_LEN {
            let mut b = h;
            b[i] ^= 1;
            assert!(check_header(&b, SegmentId(9), p).is_err(), "flip at {i}");
        }
    }
}
