//! Shard iterators: opaque, tamper-proof, expiring tokens naming a position in a shard.
//!
//! A token is base64 of `nonce (12) || AES-256-GCM(payload)`; the payload holds the format
//! version, the stream's creation time (so a token for a deleted and re-created stream of the
//! same name is refused), the shard index, the offset to read next, the issue time and the
//! stream name. Any change to a token fails authentication: `Invalid ShardIterator.` The key
//! lives in `<data>/iterator.key`, so tokens outlive a restart, like AWS's five-minute ones.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;

use super::error::ApiError;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
/// AWS's limit on iterator length (`ShardIterator`: 1 to 512 characters).
pub const MAX_ITERATOR_CHARS: usize = 512;

/// What an iterator points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorPosition {
    pub stream_name: String,
    pub stream_created_ms: u64,
    pub shard_index: u32,
    /// Offset of the next record to return.
    pub offset: u64,
    pub issued_ms: u64,
}

/// Seals and opens iterator tokens.
pub struct IteratorCodec {
    cipher: Aes256Gcm,
}

impl IteratorCodec {
    /// Loads `<data>/iterator.key`, creating it with a fresh random key if missing.
    ///
    /// # Errors
    /// I/O errors reading or writing the key file.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<IteratorCodec> {
        let path = data_dir.join("iterator.key");
        let key = match std::fs::read(&path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                let mut k = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                let tmp = data_dir.join("iterator.key.tmp");
                std::fs::write(&tmp, &k)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                k
            }
        };
        let cipher = Aes256Gcm::new_from_slice(&key)
            .map_err(|_| std::io::Error::other("iterator key must be 32 bytes"))?;
        Ok(IteratorCodec { cipher })
    }

    /// Seals a position into a token.
    pub fn seal(&self, p: &IteratorPosition) -> String {
        let mut plain = Vec::with_capacity(29 + p.stream_name.len());
        plain.push(VERSION);
        plain.extend_from_slice(&p.stream_created_ms.to_le_bytes());
        plain.extend_from_slice(&p.shard_index.to_le_bytes());
        plain.extend_from_slice(&p.offset.to_le_bytes());
        plain.extend_from_slice(&p.issued_ms.to_le_bytes());
        plain.extend_from_slice(p.stream_name.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .unwrap_or_default();
        let mut token = nonce.to_vec();
        token.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD.encode(token)
    }

    /// Opens a token.
    ///
    /// # Errors
    /// `InvalidArgumentException: Invalid ShardIterator.` for anything not sealed by us.
    pub fn open(&self, token: &str) -> Result<IteratorPosition, ApiError> {
        let invalid = || ApiError::InvalidArgument("Invalid ShardIterator.".into());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| invalid())?;
        if raw.len() <= NONCE_LEN {
            return Err(invalid());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| invalid())?;
        if plain.len() < 29 || plain[0] != VERSION {
            return Err(invalid());
        }
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&plain[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let mut idx = [0u8; 4];
        idx.copy_from_slice(&plain[9..13]);
        Ok(IteratorPosition {
            stream_created_ms: u64_at(1),
            shard_index: u32::from_le_bytes(idx),
            offset: u64_at(13),
            issued_ms: u64_at(21),
            stream_name: String::from_utf8(plain[29..].to_vec()).map_err(|_| invalid())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let c = IteratorCodec::load_or_create(dir.path()).unwrap();
        let p = IteratorPosition {
            stream_name: "s".repeat(128),
            stream_created_ms: 5,
            shard_index: 7,
            offset: 99,
            issued_ms: 1234,
        };
        let t = c.seal(&p);
        assert!(t.len() <= MAX_ITERATOR_CHARS);
        assert_eq!(c.open(&t).unwrap(), p);
        let mut b = t.into_bytes();
        b[20] = if b[20] == b'A' { b'B' } else { b'A' };
        assert!(c.open(std::str::from_utf8(&b).unwrap()).is_err());
        // Same key after reload.
        let c2 = IteratorCodec::load_or_create(dir.path()).unwrap();
        assert_eq!(c2.open(&c.seal(&p)).unwrap(), p);
    }
}
