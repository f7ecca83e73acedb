//! The checksums of a file, computed in one pass while it streams through.

use md5::Md5;
use sha1::Sha1;
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
