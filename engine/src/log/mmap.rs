//! Read-only maps of sealed segments, shared as `bytes::Bytes`.
//!
//! The only module besides the io_uring backend that may use `unsafe`. Decoders never see
//! the map type: they get `&[u8]` or `Bytes` slices of it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapOptions};

/// Maps the first `len` bytes of a sealed segment.
///
/// # Errors
/// The kernel's refusal to map the file.
pub fn map_sealed(file: &File, len: u64) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    let len = usize::try_from(len).map_err(|_| io::Error::other("segment too large to map"))?;
    // SAFETY: only sealed segments are mapped, and a sealed segment is never written or
    // truncated again (segment.rs invariant); the data directory is held under an exclusive
    // lock, so no other shardline process writes it; retention unlinks files, which leaves
    // live maps valid; truncation only runs in recovery, and when a roll cuts direct writes'
    // padding off the segment it seals, both before any map of the file exists.
    let map: Mmap = unsafe { MmapOptions::new().len(len).map(file)? };
    // Replay reads segments front to back; the hint is only advice, so failure is harmless.
    let _ = map.advise(Advice::Sequential);
    Ok(Bytes::from_owner(map))
}
