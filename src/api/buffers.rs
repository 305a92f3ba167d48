//! Reusable response buffers for bulk replies.
//!
//! A GetRecords reply is up to ~14 MB of JSON. Allocating that afresh for every call makes
//! the kernel fault in and zero new pages each time, which cost as much as encoding the
//! records. Large replies are written into buffers from a small pool instead, handed to
//! hyper as `Bytes` whose owner returns the buffer to the pool when the reply has been sent.

use std::sync::Mutex;

use bytes::Bytes;

/// Replies at least this large use pooled buffers.
pub const POOLED_MIN_BYTES: usize = 1 << 20;
/// Buffers kept for reuse; more concurrent large replies allocate as usual.
const POOL_SIZE: usize = 4;
/// Buffers larger than this are not kept.
const MAX_KEPT_BYTES: usize = 32 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with at least `capacity` bytes of room, reused when possible.
pub fn take(capacity: usize) -> Vec<u8> {
    if capacity < POOLED_MIN_BYTES {
        return Vec::with_capacity(capacity);
    }
    if let Ok(mut pool) = POOL.lock() {
        if let Some(i) = pool.iter().position(|b| b.capacity() >= capacity) {
            return pool.swap_remove(i);
        }
    }
    // Rounded up, so buffers fit the next replies of about the same size.
    Vec::with_capacity(capacity.next_multiple_of(POOLED_MIN_BYTES * 4))
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
        if let Ok(mut pool) = POOL.lock() {
            if pool.len() < POOL_SIZE {
                pool.push(buf);
            }
        }
    }
}

/// Turns an encoded reply into `Bytes`, returning large buffers to the pool after use.
pub fn into_bytes(buf: Vec<u8>) -> Bytes {
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
    fn large_buffers_come_back_for_reuse() {
        let mut b = take(2 << 20);
        b.extend_from_slice(b"hello");
        let cap = b.capacity();
        let bytes = into_bytes(b);
        assert_eq!(&bytes[..], b"hello");
        drop(bytes);
        let again = take(2 << 20);
        assert!(again.is_empty());
        assert!(again.capacity() >= cap.min(2 << 20));
    }
}
