//! Direct writes: the active segment written with `O_DIRECT`, past the page cache.
//!
//! With a direct write the disk reads the bytes from our memory: the kernel neither copies
//! them into the page cache nor writes them back later. On 1 KiB ingest that copy was the
//! largest single cost of the machine (docs/performance.md).
//!
//! `O_DIRECT` wants the file position, the length and the buffer's address aligned to the
//! file system's direct-I/O alignment (`statx`, `STATX_DIOALIGN`), which must divide
//! [`BLOCK`]. So a direct write:
//! - starts at the block boundary at or before the log's end, with the bytes of that
//!   partial block again ([`TailBlock`], kept in memory), unchanged;
//! - ends with zeros up to the next block boundary. The zeros lie past the log's end, and the
//!   next write overwrites them. Recovery drops whatever is left of them at the end of the
//!   active segment, and a roll cuts the file at the log's end before sealing it
//!   (docs/formats/segment.md).
//!
//! Invariants:
//! - A [`TailBlock`] holds exactly the log's bytes from its `start` (a multiple of
//!   [`BLOCK`]) to the log's end; it moves only when a write completed.
//! - A staged buffer's address, position and length are multiples of [`BLOCK`].

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::segment;

/// Alignment of direct writes: position, length and buffer address.
pub const BLOCK: usize = 4096;

/// Capacity of the staging buffers a [`StagingPool`] keeps for reuse, in all.
const POOLED_BYTES: usize = 64 << 20;
/// Staging buffers are allocated in multiples of this.
const STAGING_ROUNDING: usize = 256 << 10;

fn align_down(n: u64) -> u64 {
    n - n % BLOCK as u64
}

/// Opens `path` for direct writes, if its file system takes them with alignments that
/// divide [`BLOCK`]; `None` otherwise (the log then writes through the page cache).
pub fn open(path: &Path) -> Option<File> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let refuse = |why: String| {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!("direct writes unavailable for {}: {why}", path.display());
        }
    };
    let file = match File::options()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            refuse(format!("open with O_DIRECT: {e}"));
            return None;
        }
    };
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let st = match statx(&file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) {
        Ok(st) => st,
        Err(e) => {
            refuse(format!("statx: {e}"));
            return None;
        }
    };
    let fits = |a: u32| a != 0 && BLOCK.is_multiple_of(a as usize);
    if st.stx_mask & StatxFlags::DIOALIGN.bits() == 0
        || !fits(st.stx_dio_offset_align)
        || !fits(st.stx_dio_mem_align)
    {
        refuse(format!(
            "alignment (offset {}, memory {}) unknown or not a divisor of {BLOCK}",
            st.stx_dio_offset_align, st.stx_dio_mem_align
        ));
        return None;
    }
    Some(file)
}

/// The log's last partial block: its bytes from `start`, the block boundary at or before the
/// log's end, to the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailBlock {
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl TailBlock {
    /// Reads the partial block before `end` from `file`.
    ///
    /// # Errors
    /// The read's.
    pub fn read(file: &File, end: u64) -> io::Result<TailBlock> {
        let start = align_down(end);
        Ok(TailBlock {
            start,
            bytes: segment::read_at(file, start, (end - start) as usize)?,
        })
    }

    /// The log's end.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Moves the block past `chunks`, written at its end.
    pub fn advance(&mut self, chunks: &[Bytes]) {
        let added: usize = chunks.iter().map(Bytes::len).sum();
        let end = self.end() + added as u64;
        let start = align_down(end);
        let keep = (end - start) as usize;
        // The last `keep` bytes of the old block followed by the chunks.
        let mut suffix: Vec<&[u8]> = Vec::new();
        let mut need = keep;
        for part in chunks
            .iter()
            .map(|c| &c[..])
            .rev()
            .chain(std::iter::once(&self.bytes[..]))
        {
            if need == 0 {
                break;
            }
            let take = need.min(part.len());
            suffix.push(&part[part.len() - take..]);
            need -= take;
        }
        let mut bytes = Vec::with_capacity(BLOCK);
        for part in suffix.iter().rev() {
            bytes.extend_from_slice(part);
        }
        *self = TailBlock { start, bytes };
    }
}

/// A staged write's buffer: a block-aligned window of a vector, given back to its pool
/// when the write's last reference goes.
struct Staged {
    buf: Vec<u8>,
    at: usize,
    len: usize,
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for Staged {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let mut pool = self.pool.lock();
        let kept: usize = pool.iter().map(Vec::capacity).sum();
        if kept + self.buf.capacity() <= POOLED_BYTES {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Builds direct writes' buffers, reusing them (a fresh buffer costs a page fault and the
/// zeroing of every page), up to `POOLED_BYTES` of them.
#[derive(Default)]
pub struct StagingPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl StagingPool {
    /// One aligned buffer for a direct write at `tail.start`: the tail block's bytes, then
    /// `chunks`, then zeros up to the next multiple of [`BLOCK`].
    pub fn stage(&self, tail: &TailBlock, chunks: &[Bytes]) -> Bytes {
        let data = tail.bytes.len() + chunks.iter().map(Bytes::len).sum::<usize>();
        let len = data.div_ceil(BLOCK) * BLOCK;
        let need = len + BLOCK;
        let pooled = {
            let mut pool = self.0.lock();
            match pool.iter().position(|b| b.capacity() >= need) {
                Some(i) => Some(pool.swap_remove(i)),
                None => {
                    // Freed, so that the larger buffer made below takes its place.
                    pool.pop();
                    None
                }
            }
        };
        // A buffer too small is not grown: `reserve` would copy its old capacity into the
        // new allocation. A new one is rounded up, so later writes of about this size fit.
        let mut buf =
            pooled.unwrap_or_else(|| Vec::with_capacity(need.next_multiple_of(STAGING_ROUNDING)));
        buf.clear();
        // Fewer than BLOCK bytes, since the capacity is at least `len + BLOCK`.
        let at = buf.as_ptr().align_offset(BLOCK);
        buf.resize(at, 0);
        buf.extend_from_slice(&tail.bytes);
        for c in chunks {
            buf.extend_from_slice(c);
        }
        buf.resize(at + len, 0);
        debug_assert_eq!((buf[at..].as_ptr() as usize) % BLOCK, 0);
        Bytes::from_owner(Staged {
            buf,
            at,
            len,
            pool: self.0.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&[u8]]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    #[test]
    fn the_tail_block_follows_the_log_across_boundaries() {
        let mut log: Vec<u8> = (0..100u8).collect();
        let mut tail = TailBlock {
            start: 0,
            bytes: log.clone(),
        };
        for n in [10usize, 4000, 1, 9000, 0, 4096, 3, 12288] {
            let add: Vec<u8> = (0..n).map(|i| (i * 7 + log.len()) as u8).collect();
            // Split in uneven chunks, so suffixes cross chunk edges.
            let (a, b) = add.split_at(n / 3);
            tail.advance(&chunks(&[a, b]));
            log.extend_from_slice(&add);
            let start = align_down(log.len() as u64);
            assert_eq!(tail.start, start);
            assert_eq!(tail.bytes, log[start as usize..]);
        }
    }

    #[test]
    fn staged_buffers_are_aligned_and_padded() {
        let pool = StagingPool::default();
        let tail = TailBlock {
            start: 8192,
            bytes: vec![1; 100],
        };
        for _ in 0..3 {
            let staged = pool.stage(&tail, &chunks(&[&[2; 5000], &[3; 7]]));
            assert_eq!(staged.as_ptr() as usize % BLOCK, 0);
            assert_eq!(staged.len(), 2 * BLOCK);
            assert!(staged[..100].iter().all(|b| *b == 1));
            assert!(staged[100..5100].iter().all(|b| *b == 2));
            assert!(staged[5100..5107].iter().all(|b| *b == 3));
            assert!(staged[5107..].iter().all(|b| *b == 0));
        }
        // Each dropped buffer went back to the pool and was taken again.
        assert_eq!(pool.0.lock().len(), 1);
    }

    #[test]
    fn a_pooled_buffer_too_small_is_replaced_and_reuse_pads_with_zeros() {
        let pool = StagingPool::default();
        let tail = TailBlock {
            start: 0,
            bytes: Vec::new(),
        };
        let big = STAGING_ROUNDING + 10;
        drop(pool.stage(&tail, &chunks(&[&[7; 100]])));
        let staged = pool.stage(&tail, &chunks(&[&vec![9; big]]));
        assert_eq!(staged.len(), big.div_ceil(BLOCK) * BLOCK);
        assert!(staged[..big].iter().all(|b| *b == 9));
        assert!(staged[big..].iter().all(|b| *b == 0));
        drop(staged);
        // The small buffer was freed for the large one, which now serves small writes:
        // what the large write left behind its new bytes is zeros again.
        assert_eq!(pool.0.lock().len(), 1);
        assert!(pool.0.lock()[0].capacity() >= big + BLOCK);
        let staged = pool.stage(&tail, &chunks(&[&[5; 10]]));
        assert_eq!(staged.len(), BLOCK);
        assert!(staged[..10].iter().all(|b| *b == 5));
        assert!(staged[10..].iter().all(|b| *b == 0));
    }
}
