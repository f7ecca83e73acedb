//! The checksums of a file, computed in one pass while it streams through,
//! or in steps over several requests ([`Checksums::save`],
//! [`Checksums::resume`]: the hash state is kept between them). A large
//! body's SHA-256 can also be handed off part-way to another instance
//! ([`Checksums::sha256_state`], [`Sha256Resumed`]), so that two cores hash
//! it.

use md5::Md5;
use sha1::Sha1;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256};

#[derive(Default, Clone)]
pub struct Checksums {
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
    size: u64,
}

/// The finished checksums, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

impl Checksums {
    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha1.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> Digests {
        Digests {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

/// A file's checksums after its SHA-256 was handed off: md5, sha1 and the
/// size go on here, and [`Checksums::rejoin`] takes the SHA-256 back.
pub struct HandedOff {
    md5: Md5,
    sha1: Sha1,
    size: u64,
}

impl Checksums {
    /// The SHA-256's state so far, for [`Sha256Resumed::resume`].
    pub fn sha256_state(&self) -> String {
        encode_state(&self.sha256)
    }

    /// Drops the SHA-256 (handed off from [`Self::sha256_state`]) and goes
    /// on with the rest.
    pub fn hand_off_sha256(self) -> HandedOff {
        HandedOff {
            md5: self.md5,
            sha1: self.sha1,
            size: self.size,
        }
    }

    /// The checksums again whole: `rest`, and the SHA-256 from the state its
    /// helper reached over the same bytes.
    pub fn rejoin(rest: HandedOff, sha256_state: &str) -> Result<Checksums, CorruptState> {
        Ok(Checksums {
            md5: rest.md5,
            sha1: rest.sha1,
            sha256: decode_state(sha256_state)?,
            size: rest.size,
        })
    }
}

impl HandedOff {
    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha1.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A SHA-256 continued from a state that [`Checksums::sha256_state`] gave: the helper instance's side.
pub struct Sha256Resumed(Sha256);

impl Sha256Resumed {
    pub fn resume(state: &str) -> Result<Sha256Resumed, CorruptState> {
        decode_state(state).map(Sha256Resumed)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The state reached, for [`Checksums::rejoin`].
    pub fn state(&self) -> String {
        encode_state(&self.0)
    }
}

/// The hashing state of a file read part of the way, to continue in a later
/// request (kept in an upload session's record).
pub use genreg_layout::records::HashState as SavedChecksums;

#[derive(Debug, thiserror::Error)]
#[error("saved hash state is corrupt")]
pub struct CorruptState;

impl Checksums {
    /// The state to [`Checksums::resume`] from.
    pub fn save(&self) -> SavedChecksums {
        SavedChecksums {
            md5: encode_state(&self.md5),
            sha1: encode_state(&self.sha1),
            sha256: encode_state(&self.sha256),
            size: self.size,
        }
    }

    /// Continues hashing where [`Checksums::save`] stopped.
    pub fn resume(saved: &SavedChecksums) -> Result<Checksums, CorruptState> {
        Ok(Checksums {
            md5: decode_state(&saved.md5)?,
            sha1: decode_state(&saved.sha1)?,
            sha256: decode_state(&saved.sha256)?,
            size: saved.size,
        })
    }
}

fn encode_state<H: SerializableState>(hasher: &H) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hasher.serialize().as_slice())
}

fn decode_state<H: SerializableState>(text: &str) -> Result<H, CorruptState> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| CorruptState)?;
    let state = SerializedState::<H>::try_from(bytes.as_slice()).map_err(|_| CorruptState)?;
    H::deserialize(&state).map_err(|_| CorruptState)
}

/// Parses a client's `X-Checksum-SHA256` header: 64 hex digits, any case.
pub fn parse_sha256_header(value: &str) -> Option<String> {
    let value = value.trim();
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_vectors_across_chunk_boundaries() {
        let mut sums = Checksums::default();
        sums.update(b"hello ");
        sums.update(b"world");
        let d = sums.finish();
        assert_eq!(d.size, 11);
        assert_eq!(d.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(d.sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(
            d.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[test]
    fn hashing_resumed_from_a_saved_state_gives_the_digests_of_one_pass() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = Checksums::default();
        whole.update(&data);
        // Cuts that fall inside blocks, so partial blocks are saved too.
        let mut sums = Checksums::default();
        for chunk in data.chunks(999) {
            sums.update(chunk);
            let saved = sums.save();
            let json = serde_json::to_string(&saved).unwrap();
            sums = Checksums::resume(&serde_json::from_str(&json).unwrap()).unwrap();
        }
        assert_eq!(sums.finish(), whole.finish());
    }

    #[test]
    fn a_sha256_handed_off_part_way_gives_the_digests_of_one_pass() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let mut whole = Checksums::default();
        whole.update(&data);
        let whole = whole.finish();
        // Cut inside a block, as a hand-off after any chunk may.
        let (head, tail) = data.split_at(4_321);
        let mut sums = Checksums::default();
        sums.update(head);
        let mut elsewhere = Sha256Resumed::resume(&sums.sha256_state()).unwrap();
        let mut here = sums.hand_off_sha256();
        here.update(tail);
        elsewhere.update(tail);
        assert_eq!(here.size(), 10_000);
        let rejoined = Checksums::rejoin(here, &elsewhere.state()).unwrap();
        assert_eq!(rejoined.finish(), whole);
        assert!(Sha256Resumed::resume("AAAA").is_err());
    }

    #[test]
    fn a_corrupt_saved_state_is_refused() {
        let mut saved = Checksums::default().save();
        saved.sha256 = "AAAA".into();
        assert!(Checksums::resume(&saved).is_err());
        saved.sha256 = "not base64!".into();
        assert!(Checksums::resume(&saved).is_err());
    }

    #[test]
    fn sha256_header_must_be_64_hex_digits() {
        let upper = "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9";
        assert_eq!(
            parse_sha256_header(upper).unwrap(),
            upper.to_ascii_lowercase()
        );
        assert_eq!(parse_sha256_header("abc"), None);
        assert_eq!(parse_sha256_header(&"g".repeat(64)), None);
    }
}
