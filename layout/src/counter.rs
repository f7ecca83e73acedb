//! Atomic counters (`wasi:keyvalue/atomics` increments) as the stores keep
//! them. Two encodings exist, and a counter read with `get` may be in
//! either:
//!
//! - 8 bytes, little-endian, two's complement: Spin's SQLite store (which
//!   panics on anything else), genreg's SQLite store and the component's
//!   in-memory test store;
//! - ASCII decimal text (`"42"`, `"-7"`): Redis (`INCRBY`), in Spin's Redis
//!   store and genreg's.
//!
//! [`decode`] accepts both. Canonical decimal text is tried first: eight
//! ASCII digits read as little-endian bytes would be a counter above
//! 3.4 × 10^18, which no counter of the registry ever reaches.

/// The stored bytes of a counter holding `value`, as the SQLite stores
/// write them.
pub fn encode(value: i64) -> [u8; 8] {
    value.to_le_bytes()
}

/// The value of a stored counter in either encoding, or `None` when the
/// bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<i64> {
    decode_decimal(bytes).or_else(|| decode_little_endian(bytes))
}

/// Redis's form: canonical decimal text, as `INCRBY` writes it (an optional
/// `-`, no `+`, no leading zeros, no spaces).
fn decode_decimal(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

fn decode_little_endian(bytes: &[u8]) -> Option<i64> {
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
    fn redis_counters_are_decimal_text() {
        assert_eq!(decode(b"0"), Some(0));
        assert_eq!(decode(b"1"), Some(1));
        assert_eq!(decode(b"42"), Some(42));
        assert_eq!(decode(b"-7"), Some(-7));
        assert_eq!(decode(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(decode(b"-9223372036854775808"), Some(i64::MIN));
        for value in [0, 1, 42, -7, 1 << 40, i64::MAX, i64::MIN] {
            assert_eq!(decode(value.to_string().as_bytes()), Some(value));
        }
    }

    #[test]
    fn eight_digits_are_read_as_decimal() {
        // Eight bytes that are both: the decimal reading wins.
        assert_eq!(decode(b"12345678"), Some(12_345_678));
        assert_eq!(decode(b"-1234567"), Some(-1_234_567));
    }

    #[test]
    fn other_bytes_are_no_counter() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[0; 9]), None);
        assert_eq!(decode(&[1, 2, 3]), None);
        // Not Redis's canonical text.
        for text in ["+1", "01", "-0", " 1", "1 ", "1.0", "1e3", "x", "-"] {
            assert_eq!(decode(text.as_bytes()), None, "{text:?}");
        }
        // Out of range for an i64.
        assert_eq!(decode(b"9223372036854775808"), None);
    }
}
