//! Reusable buffers for `pread` reads (the active segment, and sealed ones in `Pread` mode).
//!
//! A read's chunks are shared as `Bytes` with the batches it returns, so they live until the
//! caller is done with the records (for the API, until the reply is encoded). Allocating
//! them afresh for every read makes the kernel fault in and zero new pages each time, which
//! cost more than the read's own copy (a GetRecords profile: ~10% page zeroing). Large
//! chunks come from a small pool instead and go back when the last `Bytes` sharing them
//! drops.
//!
//! Invariant: a pooled buffer is handed out empty (`len` 0); a reader only ever exposes the
//! bytes it read into it, never what an earlier read left in its spare capacity.

use bytes::Bytes;
use parking_lot::Mutex;

/// Reads at least this large use pooled buffers.
const POOLED_MIN_BYTES: usize = 1 << 20;
/// Buffers kept for reuse; more concurrent large reads allocate as usual.
const POOL_SIZE: usize = 4;
/// Buffers larger than this are not kept (reads are at most 16 MiB).
const MAX_KEPT_BYTES: usize = 20 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `capacity` bytes, reused when possible.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    if capacity < POOLED_MIN_BYTES {
        return Vec::with_capacity(capacity);
    }
    {
        let mut pool = POOL.lock();
        if let Some(i) = pool.iter().position(|b| b.capacity() >= capacity) {
            return pool.swap_remove(i);
        }
    }
    // Rounded up, so a buffer fits later reads of about the same size.
    Vec::with_capacity(capacity.next_multiple_of(POOLED_MIN_BYTES))
}

/// A buffer that goes back to the pool when the last `Bytes` sharing it drops.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() < POOLED_MIN_BYTES || buf.capacity() > MAX_KEPT_BYTES {
            return;
        }
        buf.clear();
        let mut pool = POOL.lock();
        if pool.len() < POOL_SIZE {
            pool.push(buf);
        }
    }
}

/// Shares a filled buffer as `Bytes`, returning large ones to the pool after use.
pub(crate) fn into_bytes(buf: Vec<u8>) -> Bytes {
    if buf.capacity() >= POOLED_MIN_BYTES {
        Bytes::from_owner(Pooled(buf))
    } else {
        Bytes::from(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_back_empty_for_reuse() {
        let mut b = take(3 << 20);
        b.extend_from_slice(b"hello");
        let bytes = into_bytes(b);
        let slice = bytes.slice(1..3);
        drop(bytes);
        // Still shared by `slice`: not back in the pool yet.
        assert_eq!(&slice[..], b"el");
        drop(slice);
        let again = take(3 << 20);
        assert!(again.is_empty());
        assert!(again.capacity() >= 3 << 20);
    }

    #[test]
    fn small_reads_are_not_pooled() {
        let b = take(100);
        assert!(b.capacity() < POOLED_MIN_BYTES);
        assert_eq!(&into_bytes(b"abc".to_vec())[..], b"abc");
    }
}
