//! The upload algorithm against an in-memory object store that keeps
//! objects, open multipart uploads and their parts the way S3 does.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::blob::store::{ObjectBody, PutRequest};
use crate::config::S3Settings;
use url::Url;

/// An open multipart upload: its key and its parts by number.
type OpenUpload = (String, BTreeMap<u16, Vec<u8>>);

#[derive(Default)]
struct MemoryS3 {
    objects: RefCell<BTreeMap<String, Vec<u8>>>,
    /// By upload id.
    uploads: RefCell<BTreeMap<String, OpenUpload>>,
    next_upload: RefCell<u32>,
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn key_of(url: &Url) -> String {
    url.path().trim_start_matches("/bucket/").to_string()
}

struct MemoryPut<'a> {
    s3: &'a MemoryS3,
    url: Url,
    length: u64,
    bytes: Vec<u8>,
}

impl PutRequest for MemoryPut<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<String, StoreError> {
        assert_eq!(
            self.bytes.len() as u64,
            self.length,
            "body matches Content-Length"
        );
        let etag = format!("\"{}\"", self.bytes.len());
        match (query(&self.url, "uploadId"), query(&self.url, "partNumber")) {
            (Some(id), Some(n)) => {
                let mut uploads = self.s3.uploads.borrow_mut();
                let upload = uploads
                    .get_mut(&id)
                    .ok_or(StoreError("NoSuchUpload".into()))?;
                upload.1.insert(n.parse().unwrap(), self.bytes);
            }
            _ => {
                self.s3
                    .objects
                    .borrow_mut()
                    .insert(key_of(&self.url), self.bytes);
            }
        }
        Ok(etag)
    }

    fn cancel(self: Box<Self>) {}
}

impl ObjectStore for MemoryS3 {
    fn start_put(&self, url: &Url, length: u64) -> Result<Box<dyn PutRequest + '_>, StoreError> {
        Ok(Box::new(MemoryPut {
            s3: self,
            url: url.clone(),
            length,
            bytes: Vec::new(),
        }))
    }

    fn create_multipart(&self, url: &Url) -> Result<String, StoreError> {
        let mut n = self.next_upload.borrow_mut();
        *n += 1;
        let id = format!("upload-{n}");
        self.uploads
            .borrow_mut()
            .insert(id.clone(), (key_of(url), BTreeMap::new()));
        Ok(id)
    }

    fn complete_multipart(&self, url: &Url, _xml: String) -> Result<(), StoreError> {
        let id = query(url, "uploadId").unwrap();
        let (key, parts) = self.uploads.borrow_mut().remove(&id).unwrap();
        let bytes = parts.into_values().flatten().collect();
        self.objects.borrow_mut().insert(key, bytes);
        Ok(())
    }

    fn delete(&self, url: &Url) -> Result<(), StoreError> {
        match query(url, "uploadId") {
            Some(id) => {
                self.uploads.borrow_mut().remove(&id);
            }
            None => {
                self.objects.borrow_mut().remove(&key_of(url));
            }
        }
        Ok(())
    }

    fn get(&self, _url: &Url, _range: Option<(u64, u64)>) -> Result<ObjectBody, StoreError> {
        unimplemented!("uploads never read")
    }
}

const PART: u64 = 8;

fn requests() -> Requests {
    let settings = S3Settings {
        endpoint: "http://127.0.0.1:1".into(),
        bucket: "bucket".into(),
        region: "us-east-1".into(),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
    };
    Requests::new(&settings, jiff::Timestamp::UNIX_EPOCH).unwrap()
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
    let requests = requests();
    let mut body: VecDeque<Vec<u8>> = data.chunks(chunk).map(<[u8]>::to_vec).collect();
    Upload {
        store: s3,
        requests: &requests,
        key: "files/k",
        part_size: PART,
        max_size,
        expected_sha256,
    }
    .run(&mut body, content_length)
}

fn stored(s3: &MemoryS3) -> Option<Vec<u8>> {
    s3.objects.borrow().get("files/k").cloned()
}

#[test]
fn small_bodies_go_up_as_one_put_with_or_without_length() {
    for length in [Some(5), None] {
        let s3 = MemoryS3::default();
        let digests = upload(&s3, b"hello", 2, length, None, None).unwrap();
        assert_eq!(digests.size, 5);
        assert_eq!(stored(&s3).unwrap(), b"hello");
        assert_eq!(*s3.next_upload.borrow(), 0, "no multipart upload");
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
            assert_eq!(*s3.next_upload.borrow(), 1);
            assert!(s3.uploads.borrow().is_empty());
        }
    }
}

#[test]
fn a_body_over_the_limit_is_refused_and_leaves_nothing() {
    let data = vec![7u8; 100];
    for length in [Some(100), None] {
        let s3 = MemoryS3::default();
        let err = upload(&s3, &data, 10, length, Some(99), None).unwrap_err();
        assert!(matches!(err, UploadError::TooLarge), "{err}");
        assert!(s3.objects.borrow().is_empty());
        assert!(s3.uploads.borrow().is_empty());
    }
}

#[test]
fn a_checksum_mismatch_keeps_nothing() {
    for data in [&b"tiny"[..], &[1u8; 50][..]] {
        let s3 = MemoryS3::default();
        let wrong = "0".repeat(64);
        let err = upload(&s3, data, 7, None, None, Some(&wrong)).unwrap_err();
        assert!(matches!(err, UploadError::ChecksumMismatch));
        assert!(s3.objects.borrow().is_empty());
        assert!(s3.uploads.borrow().is_empty());
    }
}

#[test]
fn a_body_shorter_than_its_content_length_keeps_nothing() {
    for (data, length) in [(&b"abc"[..], 5), (&[1u8; 20][..], 30)] {
        let s3 = MemoryS3::default();
        assert!(upload(&s3, data, 4, Some(length), None, None).is_err());
        assert!(s3.objects.borrow().is_empty());
        assert!(s3.uploads.borrow().is_empty());
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

#[test]
fn a_client_that_goes_away_aborts_the_multipart_upload() {
    let s3 = MemoryS3::default();
    let requests = requests();
    let mut body = Failing(vec![vec![1u8; 20]].into());
    let err = Upload {
        store: &s3,
        requests: &requests,
        key: "files/k",
        part_size: PART,
        max_size: None,
        expected_sha256: None,
    }
    .run(&mut body, None)
    .unwrap_err();
    assert!(matches!(err, UploadError::ClientGone(_)));
    assert_eq!(*s3.next_upload.borrow(), 1);
    assert!(s3.uploads.borrow().is_empty(), "aborted");
    assert!(s3.objects.borrow().is_empty());
}
