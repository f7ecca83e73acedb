//! An in-memory S3: objects, open multipart uploads and their parts kept
//! the way S3 keeps them, reached through the same presigned URLs the
//! component sends over `wasi:http`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use url::Url;

use crate::blob::store::{ObjectBody, ObjectStore, PutRequest, StoreError};

/// An open multipart upload: its key and its parts by number.
pub type OpenUpload = (String, BTreeMap<u16, Vec<u8>>);

/// An S3 bucket in memory. Every request is recorded; DELETEs can be made
/// to fail; `pause` records instead of sleeping.
#[derive(Default)]
pub struct MemoryS3 {
    pub objects: RefCell<BTreeMap<String, Vec<u8>>>,
    /// By upload id.
    pub uploads: RefCell<BTreeMap<String, OpenUpload>>,
    pub next_upload: Cell<u32>,
    /// The part sizes of the last completed multipart upload.
    pub completed_parts: RefCell<Vec<usize>>,
    /// Every request as (method, X-Amz-Date), in order.
    pub requests: RefCell<Vec<(&'static str, String)>>,
    /// How many DELETEs fail before one succeeds, and how.
    pub failing_deletes: Cell<u32>,
    pub delete_failure: RefCell<Option<StoreError>>,
    pub pauses: RefCell<Vec<Duration>>,
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The object key of a path-style URL (`/<bucket>/<key>`).
fn key_of(url: &Url) -> String {
    let path = url.path().trim_start_matches('/');
    path.split_once('/').map_or("", |(_, key)| key).to_string()
}

impl MemoryS3 {
    fn record(&self, method: &'static str, url: &Url) {
        let date = query(url, "X-Amz-Date").expect("every URL is signed");
        self.requests.borrow_mut().push((method, date));
    }

    /// ListParts: the parts of an open upload as S3's XML, all on one page.
    fn list_parts(&self, upload_id: &str) -> Result<ObjectBody, StoreError> {
        let uploads = self.uploads.borrow();
        let (_, parts) = uploads
            .get(upload_id)
            .ok_or_else(|| StoreError::Failed("404 NoSuchUpload".into()))?;
        let listed: String = parts
            .iter()
            .map(|(number, bytes)| {
                format!(
                    "<Part><PartNumber>{number}</PartNumber><ETag>\"{}\"</ETag>\
                     <LastModified>2026-01-01T00:00:00.000Z</LastModified><Size>{}</Size></Part>",
                    bytes.len(),
                    bytes.len()
                )
            })
            .collect();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>{listed}</ListPartsResult>"
        );
        Ok(ObjectBody {
            length: xml.len() as u64,
            source: Box::new(VecDeque::from([xml.into_bytes()])),
        })
    }

    /// Makes the next `times` DELETEs fail with `error`.
    pub fn deletes_fail(&self, times: u32, error: StoreError) {
        self.failing_deletes.set(times);
        *self.delete_failure.borrow_mut() = Some(error);
    }
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
                    .ok_or(StoreError::Failed("NoSuchUpload".into()))?;
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
        self.record("PUT", url);
        Ok(Box::new(MemoryPut {
            s3: self,
            url: url.clone(),
            length,
            bytes: Vec::new(),
        }))
    }

    fn create_multipart(&self, url: &Url) -> Result<String, StoreError> {
        self.record("CREATE", url);
        self.next_upload.set(self.next_upload.get() + 1);
        let id = format!("upload-{}", self.next_upload.get());
        self.uploads
            .borrow_mut()
            .insert(id.clone(), (key_of(url), BTreeMap::new()));
        Ok(id)
    }

    fn complete_multipart(&self, url: &Url, _xml: String) -> Result<(), StoreError> {
        self.record("COMPLETE", url);
        let id = query(url, "uploadId").unwrap();
        let (key, parts) = self
            .uploads
            .borrow_mut()
            .remove(&id)
            .ok_or_else(|| StoreError::Failed("404 NoSuchUpload".into()))?;
        *self.completed_parts.borrow_mut() = parts.values().map(Vec::len).collect();
        let bytes = parts.into_values().flatten().collect();
        self.objects.borrow_mut().insert(key, bytes);
        Ok(())
    }

    fn delete(&self, url: &Url) -> Result<(), StoreError> {
        self.record("DELETE", url);
        if self.failing_deletes.get() > 0 {
            self.failing_deletes.set(self.failing_deletes.get() - 1);
            return Err(self.delete_failure.borrow().clone().unwrap());
        }
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

    fn get(&self, url: &Url, range: Option<(u64, u64)>) -> Result<ObjectBody, StoreError> {
        self.record("GET", url);
        if let Some(id) = query(url, "uploadId") {
            return self.list_parts(&id);
        }
        let objects = self.objects.borrow();
        let object = objects
            .get(&key_of(url))
            .ok_or_else(|| StoreError::Failed("404 NoSuchKey".into()))?;
        let bytes = match range {
            Some((start, end)) => object
                .get(start as usize..=end as usize)
                .ok_or_else(|| StoreError::Failed("416 InvalidRange".into()))?,
            None => object.as_slice(),
        };
        Ok(ObjectBody {
            length: bytes.len() as u64,
            source: Box::new(VecDeque::from([bytes.to_vec()])),
        })
    }

    fn pause(&self, duration: Duration) {
        self.pauses.borrow_mut().push(duration);
    }
}
