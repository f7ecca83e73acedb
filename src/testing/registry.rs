//! A registry in memory: the router over [`MemoryStore`] and [`MemoryS3`],
//! a configuration with test secrets, a clock that stands still and
//! randomness that counts. A request goes through [`router::handle`] exactly
//! as the component sends it, without WASI, HTTP or a host.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;
use serde_json::Value;

use super::counting::{Counting, Counts};
use super::kv::MemoryStore;
use super::s3::MemoryS3;
use super::sha256_helper::MemoryHelper;
use super::tokens::{Credential, TEST_SECRET};
use crate::api::Context;
use crate::blob::Blobs;
use crate::config::Config;
use crate::http::{Body, Method, Request};
use crate::meta::read_ahead::ReadAhead;
use crate::router;

/// The moment every request of a test registry happens: the key-value
/// store's clock (2026-01-01, mid claim epoch), in seconds.
pub const NOW: u64 = 1_767_225_610;

/// What the router answered, and what answering cost.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The key-value operations and S3 requests made for this request,
    /// reading the answer's body included.
    pub counts: Counts,
}

impl Reply {
    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One registry, its stores in memory.
pub struct TestRegistry {
    pub kv: MemoryStore,
    pub s3: MemoryS3,
    pub config: Config,
    /// Large uploads and verifications hand their SHA-256 to it, when set.
    pub sha256_helper: Option<MemoryHelper>,
    /// How many random values were handed out; the next one is derived
    /// from it, so runs repeat exactly.
    randoms: Cell<u64>,
}

/// What the stores hold at one moment; see [`TestRegistry::snapshot`].
pub struct Snapshot {
    values: BTreeMap<String, Vec<u8>>,
    objects: BTreeMap<String, Vec<u8>>,
}

impl Default for TestRegistry {
    fn default() -> Self {
        TestRegistry::with_variables(&[])
    }
}

impl TestRegistry {
    /// A registry whose Spin variables are the test defaults overridden by
    /// `variables` (e.g. `max_file_size`).
    pub fn with_variables(variables: &[(&str, &str)]) -> TestRegistry {
        let defaults = [
            ("s3_endpoint", "http://s3.test"),
            ("s3_bucket", "bucket"),
            ("s3_access_key_id", "test-key"),
            ("s3_secret_access_key", "test-s3-secret"),
            ("token_secret", TEST_SECRET),
            ("public_url", "http://registry.test"),
        ];
        let config = Config::from_variables(|name| {
            variables
                .iter()
                .chain(defaults.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .expect("the test configuration is valid");
        let kv = MemoryStore::default();
        kv.clock.set(NOW as i64 * 1000);
        TestRegistry {
            kv,
            s3: MemoryS3::default(),
            config,
            sha256_helper: None,
            randoms: Cell::new(0),
        }
    }

    /// Sends one request through the router and reads the whole answer,
    /// counting the round trips it makes to the stores.
    /// `headers` are sent as given; `body` is the request body.
    pub fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let head = matches!(method, Method::Head);
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        let request = Request::new(method, path, headers);
        let mut body: VecDeque<Vec<u8>> = VecDeque::from([body.to_vec()]);
        let now = Timestamp::from_second(NOW as i64).expect("a valid time");
        let clock = move || now;
        let random = || self.next_random();
        let mut blobs = Blobs::new(&self.config, &self.s3, &clock).expect("valid S3 settings");
        if let Some(helper) = &self.sha256_helper {
            blobs = blobs.with_sha256_helper(helper);
        }
        let counting = Counting::new(&self.kv);
        let kv = ReadAhead::new(&counting);
        let s3_requests_before = self.s3.requests.borrow().len();
        let ctx = Context {
            config: self.config.clone(),
            kv: &kv,
            blobs,
            now,
            random: &random,
        };
        let response = router::handle(&ctx, &request, &mut body);
        let body = if head {
            Vec::new()
        } else {
            read_body(response.body)
        };
        let mut counts = counting.counts();
        counts.add_s3_requests_since(&self.s3, s3_requests_before);
        Reply {
            status: response.status,
            headers: response.headers,
            body,
            counts,
        }
    }

    /// Sends `body` as JSON (when given) with `who`'s credential.
    pub fn call(&self, method: Method, path: &str, who: &Credential, body: Option<Value>) -> Reply {
        let mut headers = who.headers();
        let bytes = match &body {
            Some(json) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(json).expect("JSON serializes")
            }
            None => Vec::new(),
        };
        self.send(method, path, &headers, &bytes)
    }

    /// `GET`s `path` with `who`'s credential.
    pub fn get(&self, path: &str, who: &Credential) -> Reply {
        self.send(Method::Get, path, &who.headers(), b"")
    }

    /// The path of a generic package file: `rest` is
    /// `name/version/(path/)file_name`.
    pub fn generic(&self, project: u64, rest: &str) -> String {
        format!("/api/v4/projects/{project}/packages/generic/{rest}")
    }

    /// `PUT`s raw bytes (a generic package file) with `who`'s credential.
    pub fn put_bytes(&self, path: &str, who: &Credential, bytes: &[u8]) -> Reply {
        self.send(Method::Put, path, &who.headers(), bytes)
    }

    /// Creates `namespace/path` as the administrator and returns its id.
    pub fn create_project(&self, namespace: &str, path: &str, visibility: &str) -> u64 {
        let reply = self.call(
            Method::Post,
            "/api/v4/projects",
            &self.admin(),
            Some(serde_json::json!({
                "path": path,
                "namespace_path": namespace,
                "visibility": visibility,
            })),
        );
        assert_eq!(reply.status, 201, "project created: {:?}", reply.json());
        reply.json()["id"].as_u64().expect("a numeric id")
    }

    /// What the stores hold now, to go back to with [`Self::restore`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: self.kv.values.borrow().clone(),
            objects: self.s3.objects.borrow().clone(),
        }
    }

    /// Puts the stores back as they were at `snapshot`.
    pub fn restore(&self, snapshot: &Snapshot) {
        *self.kv.values.borrow_mut() = snapshot.values.clone();
        *self.s3.objects.borrow_mut() = snapshot.objects.clone();
        self.s3.uploads.borrow_mut().clear();
    }

    /// 16 bytes that differ on every call and repeat from run to run.
    pub(super) fn next_random(&self) -> [u8; 16] {
        let n = self.randoms.get() + 1;
        self.randoms.set(n);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        bytes
    }
}

fn read_body(body: Body) -> Vec<u8> {
    match body {
        Body::Empty => Vec::new(),
        Body::Bytes(bytes) => bytes,
        Body::Stream(mut source) => {
            let mut bytes = Vec::new();
            while let Some(chunk) = source.next_chunk().expect("an in-memory body") {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        }
    }
}
