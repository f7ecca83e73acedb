//! Single byte ranges (`Range: bytes=...`) for downloads.

/// What to send for a `Range` header against a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole file with 200. Malformed headers and
    /// multiple ranges land here too, as RFC 9110 allows.
    Whole,
    /// Send bytes `start..=end` with 206.
    Part { start: u64, end: u64 },
    /// The range starts beyond the file: 416.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => RangeRequest::Whole,
        },
        (start, end) => {
            let Some(start) = number(start) else {
                return RangeRequest::Whole;
            };
            let end = match end {
                "" => None,
                end => match number(end) {
                    Some(end) if end >= start => Some(end),
                    _ => return RangeRequest::Whole,
                },
            };
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Part {
                start,
                end: end.map_or(size - 1, |e| e.min(size - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse(None, 10), Whole);
        assert_eq!(parse(Some("bytes=0-3"), 10), Part { start: 0, end: 3 });
        assert_eq!(parse(Some("bytes=4-"), 10), Part { start: 4, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), Part { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=5-100"), 10), Part { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-0,2-3"), 10), Whole);
        assert_eq!(parse(Some("bytes=3-1"), 10), Whole);
        assert_eq!(parse(Some("items=0-1"), 10), Whole);
        assert_eq!(parse(Some("bytes=x-1"), 10), Whole);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
    }
}

/// Any `Range` header against any size gives a range inside the file, or
/// the whole file, or 416; never a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn size() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 0u64..1024, any::<u64>()]
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            any::<u64>().prop_map(|n| n.to_string()),
            (0u64..2048).prop_map(|n| n.to_string()),
            "[0-9 +x-]{1,24}",
        ]
    }

    fn inside(range: RangeRequest, size: u64) -> bool {
        match range {
            RangeRequest::Part { start, end } => start <= end && end < size,
            RangeRequest::Whole | RangeRequest::Unsatisfiable => true,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_header_stays_inside_the_file(header in "\\PC{0,40}", size in size()) {
            prop_assert!(inside(parse(Some(&header), size), size));
        }

        #[test]
        fn byte_ranges_of_any_numbers_stay_inside_the_file(
            first in number(),
            last in number(),
            size in size(),
        ) {
            let header = format!("bytes={first}-{last}");
            prop_assert!(inside(parse(Some(&header), size), size), "{header} of {size}");
        }
    }
}
