//! The upload algorithm against the in-memory S3 of `crate::testing`, which
//! keeps objects, open multipart uploads and their parts the way S3 does.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::blob::Blobs;
use crate::config::Config;
use crate::testing::{MemoryHelper, MemoryS3};

const PART: u64 = 8;

fn config(part_size: u64, max_size: Option<u64>) -> Config {
    let mut config = Config::from_variables(|name| {
        let value = match name {
            "s3_endpoint" => "http://127.0.0.1:1",
            "s3_bucket" => "bucket",
            "s3_access_key_id" => "k",
            "s3_secret_access_key" => "s",
            "token_secret" => "t",
            _ => return None,
        };
        Some(value.to_string())
    })
    .unwrap();
    config.part_size = part_size;
    config.max_file_size = max_size;
    config
}

/// A clock that moves one hour on every reading, as if every request came
/// long after the one before.
fn slow_clock() -> impl Fn() -> Timestamp {
    let readings = Cell::new(0i64);
    move || {
        readings.set(readings.get() + 1);
        Timestamp::from_second(1_700_000_000 + 3600 * readings.get()).unwrap()
    }
}

/// Sends `body` through an upload with parts of `part_size`.
fn upload_body(
    s3: &MemoryS3,
    part_size: u64,
    body: &mut dyn ByteSource,
    content_length: Option<u64>,
    max_size: Option<u64>,
    expected_sha256: Option<&str>,
) -> Result<Digests, UploadError> {
    let clock = slow_clock();
    let config = config(part_size, max_size);
    let blobs = Blobs::new(&config, s3, &clock).unwrap();
    blobs.upload("files/k", body, content_length, expected_sha256)
}

/// Sends `data` in chunks of `chunk` bytes through an upload with 8-byte parts.
fn upload(
    s3: &MemoryS3,
    data: &[u8],
    chunk: usize,
    content_length: Option<u64>,
    max_size: Option<u64>,
    expected_sha256: Option<&str>,
) -> Result<Digests, UploadError> {
    let mut body: VecDeque<Vec<u8>> = data.chunks(chunk).map(<[u8]>::to_vec).collect();
    upload_body(
        s3,
        PART,
        &mut body,
        content_length,
        max_size,
        expected_sha256,
    )
}

fn stored(s3: &MemoryS3) -> Option<Vec<u8>> {
    s3.objects.borrow().get("files/k").cloned()
}

fn nothing_left(s3: &MemoryS3) -> bool {
    s3.objects.borrow().is_empty() && s3.uploads.borrow().is_empty()
}

#[test]
fn small_bodies_go_up_as_one_put_with_or_without_length() {
    for length in [Some(5), None] {
        let s3 = MemoryS3::default();
        let digests = upload(&s3, b"hello", 2, length, None, None).unwrap();
        assert_eq!(digests.size, 5);
        assert_eq!(stored(&s3).unwrap(), b"hello");
        assert_eq!(s3.next_upload.get(), 0, "no multipart upload");
    }
}

#[test]
fn large_bodies_go_up_in_parts_with_or_without_length() {
    let data: Vec<u8> = (0..=200u8).collect();
    for length in [Some(data.len() as u64), None] {
        for chunk in [1, 3, 8, 50, 500] {
            let s3 = MemoryS3::default();
            let digests = upload(&s3, &data, chunk, length, None, None).unwrap();
            assert_eq!(digests.size, data.len() as u64);
            assert_eq!(
                stored(&s3).unwrap(),
                data,
                "chunk {chunk} length {length:?}"
            );
            assert_eq!(s3.next_upload.get(), 1);
            assert!(s3.uploads.borrow().is_empty());
        }
    }
}

#[test]
fn every_request_is_signed_when_it_is_sent() {
    let data = vec![3u8; 40];
    for length in [Some(40), None] {
        let s3 = MemoryS3::default();
        upload(&s3, &data, 7, length, None, None).unwrap();
        let requests = s3.requests.borrow();
        let methods: Vec<_> = requests.iter().map(|(m, _)| *m).collect();
        assert_eq!(
            methods,
            ["CREATE", "PUT", "PUT", "PUT", "PUT", "PUT", "COMPLETE"]
        );
        let dates: Vec<_> = requests.iter().map(|(_, d)| d.as_str()).collect();
        assert!(
            dates.windows(2).all(|w| w[0] < w[1]),
            "each URL signed later than the one before: {dates:?}"
        );
    }
}

#[test]
fn a_body_over_the_limit_is_refused_and_leaves_nothing() {
    let data = vec![7u8; 100];
    for length in [Some(100), None] {
        let s3 = MemoryS3::default();
        let err = upload(&s3, &data, 10, length, Some(99), None).unwrap_err();
        assert!(matches!(err, UploadError::TooLarge), "{err}");
        assert!(nothing_left(&s3));
    }
}

#[test]
fn a_checksum_mismatch_keeps_nothing() {
    for data in [&b"tiny"[..], &[1u8; 50][..]] {
        let s3 = MemoryS3::default();
        let wrong = "0".repeat(64);
        let err = upload(&s3, data, 7, None, None, Some(&wrong)).unwrap_err();
        assert!(matches!(err, UploadError::ChecksumMismatch));
        assert!(nothing_left(&s3));
    }
}

#[test]
fn a_body_shorter_than_its_content_length_keeps_nothing() {
    for (data, length) in [(&b"abc"[..], 5), (&[1u8; 20][..], 30)] {
        let s3 = MemoryS3::default();
        assert!(upload(&s3, data, 4, Some(length), None, None).is_err());
        assert!(nothing_left(&s3));
    }
}

struct Failing(VecDeque<Vec<u8>>);

impl ByteSource for Failing {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.0
            .pop_front()
            .map(Some)
            .ok_or_else(|| "connection reset".to_string())
    }
}

fn cut_upload(s3: &MemoryS3) -> UploadError {
    let mut body = Failing(vec![vec![1u8; 20]].into());
    upload_body(s3, PART, &mut body, None, None, None).unwrap_err()
}

#[test]
fn a_client_that_goes_away_aborts_the_multipart_upload() {
    let s3 = MemoryS3::default();
    assert!(matches!(cut_upload(&s3), UploadError::ClientGone(_)));
    assert_eq!(s3.next_upload.get(), 1);
    assert!(nothing_left(&s3), "aborted");
}

#[test]
fn a_failed_abort_is_retried_with_growing_pauses() {
    let s3 = MemoryS3::default();
    s3.deletes_fail(2, StoreError::Failed("503 Slow Down".into()));
    cut_upload(&s3);
    assert!(nothing_left(&s3), "the third attempt aborted it");
    assert_eq!(
        *s3.pauses.borrow(),
        [Duration::from_millis(200), Duration::from_millis(400)]
    );
}

#[test]
fn aborts_are_retried_a_bounded_number_of_times() {
    let s3 = MemoryS3::default();
    s3.deletes_fail(100, StoreError::Failed("500".into()));
    cut_upload(&s3);
    let deletes = s3
        .requests
        .borrow()
        .iter()
        .filter(|(m, _)| *m == "DELETE")
        .count();
    assert_eq!(deletes, 4);
    assert_eq!(s3.uploads.borrow().len(), 1, "left for genreg gc");
}

#[test]
fn a_timed_out_abort_is_not_retried() {
    let s3 = MemoryS3::default();
    s3.deletes_fail(1, StoreError::TimedOut("no answer".into()));
    cut_upload(&s3);
    let deletes = s3
        .requests
        .borrow()
        .iter()
        .filter(|(m, _)| *m == "DELETE")
        .count();
    assert_eq!(deletes, 1);
    assert!(s3.pauses.borrow().is_empty());
}

#[test]
fn chunked_parts_grow_every_1000_parts() {
    let s3 = MemoryS3::default();
    let data = vec![5u8; 1000 * 8 + 40];
    upload(&s3, &data, 5, None, None, None).unwrap();
    let parts = s3.completed_parts.borrow();
    assert_eq!(parts.len(), 1000 + 3);
    assert!(parts[..1000].iter().all(|&n| n == 8));
    assert_eq!(parts[1000..], [16, 16, 8]);
    assert_eq!(stored(&s3).unwrap(), data);
}

/// A chunked body of `total` bytes, made up as it is read.
struct Endless {
    left: u64,
    chunk: usize,
}

impl ByteSource for Endless {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.left == 0 {
            return Ok(None);
        }
        let n = self.left.min(self.chunk as u64);
        self.left -= n;
        Ok(Some(vec![9u8; n as usize]))
    }
}

#[test]
fn a_chunked_body_that_needs_more_than_10000_parts_is_refused() {
    // 10,000 growing parts of at least 8 bytes hold 8 * 1000 * (1 + 2 + ... + 512).
    let capacity = 8 * 1000 * 1023;
    for (total, fits) in [(capacity, true), (capacity + 1, false)] {
        let s3 = MemoryS3::default();
        let mut body = Endless {
            left: total,
            chunk: 4096,
        };
        let result = upload_body(&s3, PART, &mut body, None, None, None);
        if fits {
            assert_eq!(result.unwrap().size, total);
            assert_eq!(s3.completed_parts.borrow().len(), 10_000);
        } else {
            assert!(matches!(result, Err(UploadError::TooLarge)));
            assert!(nothing_left(&s3), "aborted");
        }
    }
}

#[test]
fn a_known_length_never_needs_more_than_10000_parts() {
    // 10,000 parts of 8 bytes, and one byte more: parts grow to a whole MiB.
    for (total, parts) in [(80_000, 10_000), (80_001, 1)] {
        let s3 = MemoryS3::default();
        let mut body = Endless {
            left: total,
            chunk: 1000,
        };
        let digests = upload_body(&s3, PART, &mut body, Some(total), None, None).unwrap();
        assert_eq!(digests.size, total);
        assert_eq!(s3.completed_parts.borrow().len(), parts);
    }
}

#[test]
fn the_part_buffer_holds_at_most_one_part() {
    const CHUNK: usize = 3;
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let mut source: VecDeque<Vec<u8>> = data.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let mut reader = BodyReader::new(&mut source, u64::MAX);
    let mut buffer = Vec::new();
    let mut read = Vec::new();
    for size in [8, 8, 16, 16, 64, 64, 1000] {
        reader.fill(&mut buffer, size).unwrap();
        assert!(buffer.len() as u64 <= size);
        assert_eq!(buffer.capacity() as u64, size, "allocated once, exactly");
        assert!(reader.pending.capacity() <= CHUNK, "one read chunk beyond");
        read.extend_from_slice(&buffer);
    }
    assert_eq!(read, data);
}

fn upload_with_helper(
    s3: &MemoryS3,
    data: &[u8],
    chunk: usize,
    content_length: Option<u64>,
    helper: &MemoryHelper,
) -> Result<Digests, UploadError> {
    let clock = slow_clock();
    let config = config(PART, None);
    let blobs = Blobs::new(&config, s3, &clock)
        .unwrap()
        .with_sha256_helper(helper);
    let mut body: VecDeque<Vec<u8>> = data.chunks(chunk).map(<[u8]>::to_vec).collect();
    blobs.upload("files/k", &mut body, content_length, None)
}

fn one_pass(data: &[u8]) -> Digests {
    let mut sums = Checksums::default();
    sums.update(data);
    sums.finish()
}

#[test]
fn a_large_body_hands_its_sha256_to_the_helper_and_gets_the_digests_of_one_pass() {
    let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    for length in [Some(data.len() as u64), None] {
        for chunk in [1, 5, 7, 64, 300] {
            let s3 = MemoryS3::default();
            let helper = MemoryHelper::new(16);
            let digests = upload_with_helper(&s3, &data, chunk, length, &helper).unwrap();
            assert_eq!(digests, one_pass(&data), "chunk {chunk} length {length:?}");
            assert_eq!(stored(&s3).unwrap(), data);
            assert_eq!(helper.started.get(), 1);
            // Handed off at the first piece read after 16 bytes were hashed
            // here (pieces end at chunks and at parts).
            let here = data.len() as u64 - helper.sent.get();
            assert!((16..16 + chunk as u64).contains(&here), "{here}");
        }
    }
}

#[test]
fn a_body_with_too_little_left_keeps_its_sha256_here() {
    let data = vec![4u8; 30];
    // 16 hashed, 14 left: not worth a helper.
    let s3 = MemoryS3::default();
    let helper = MemoryHelper::new(16);
    let digests = upload_with_helper(&s3, &data, 4, Some(30), &helper).unwrap();
    assert_eq!(digests, one_pass(&data));
    assert_eq!(helper.started.get(), 0);
    // Without a length the rest is unknown: handed off.
    let s3 = MemoryS3::default();
    let digests = upload_with_helper(&s3, &data, 4, None, &helper).unwrap();
    assert_eq!(digests, one_pass(&data));
    assert_eq!(helper.started.get(), 1);
    // A body shorter than the threshold never asks.
    let helper = MemoryHelper::new(64);
    upload_with_helper(&MemoryS3::default(), &data, 4, None, &helper).unwrap();
    assert_eq!(helper.started.get(), 0);
}

#[test]
fn without_a_helper_to_be_had_the_sha256_goes_on_here() {
    let data = vec![6u8; 100];
    let s3 = MemoryS3::default();
    let helper = MemoryHelper {
        available: false,
        ..MemoryHelper::new(16)
    };
    let digests = upload_with_helper(&s3, &data, 10, None, &helper).unwrap();
    assert_eq!(digests, one_pass(&data));
    assert_eq!(stored(&s3).unwrap(), data);
}

#[test]
fn a_helper_that_fails_fails_the_upload_and_leaves_nothing() {
    let data = [8u8; 100];
    // Cut while streaming (multipart and single PUT), and at the answer.
    for (fail_after, parts) in [(30, PART), (30, 1024), (80, PART), (80, 1024)] {
        for length in [Some(100), None] {
            let s3 = MemoryS3::default();
            let helper = MemoryHelper {
                fail_after: Some(fail_after),
                ..MemoryHelper::new(20)
            };
            let clock = slow_clock();
            let config = config(parts, None);
            let blobs = Blobs::new(&config, &s3, &clock)
                .unwrap()
                .with_sha256_helper(&helper);
            let mut body: VecDeque<Vec<u8>> = data.chunks(10).map(<[u8]>::to_vec).collect();
            let err = blobs
                .upload("files/k", &mut body, length, None)
                .unwrap_err();
            assert!(matches!(err, UploadError::Helper(_)), "{err}");
            assert!(
                nothing_left(&s3),
                "fail after {fail_after}, parts {parts}, length {length:?}"
            );
        }
    }
}
