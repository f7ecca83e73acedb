//! Atomic counters (`wasi:keyvalue/atomics` increments) as the stores keep
//! them: 8 bytes, little-endian, two's complement. Spin's SQLite store
//! writes them so (and panics on anything else), genreg's SQLite store and
//! the component's in-memory test store do the same.

/// The stored bytes of a counter holding `value`.
pub fn encode(value: i64) -> [u8; 8] {
    value.to_le_bytes()
}

/// The value of a stored counter, or `None` when the bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_eight_bytes_little_endian() {
        assert_eq!(encode(1), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(258), [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(-1), [0xff; 8]);
        for value in [0, 1, 42, -7, i64::MAX, i64::MIN] {
            assert_eq!(decode(&encode(value)), Some(value));
        }
    }

    #[test]
    fn other_bytes_are_no_counter() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"1"), None);
        assert_eq!(decode(&[0; 9]), None);
    }
}
