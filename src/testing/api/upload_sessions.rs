//! Upload sessions (ours): created like a publish, parts sent straight to
//! S3 through presigned URLs, completed over several requests, committed
//! like a publish.

use std::collections::VecDeque;

use genreg_token::{Role, Scope};
use jiff::Timestamp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::Context;
use crate::blob::Blobs;
use crate::blob::ObjectStore;
use crate::http::{Method, Request};
use crate::meta::kv::{KeyValue, CLAIM_EPOCH_MS, CLOCK_SKEW_MS};
use crate::router;
use crate::testing::{deploy, personal, CrashAfter, Credential, MemoryHelper, TestRegistry, NOW};

const MIB: usize = 1 << 20;
const PART: usize = 5 * MIB;

fn file_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 253) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Setup {
    r: TestRegistry,
    project: u64,
    developer: Credential,
}

fn setup() -> Setup {
    let r = TestRegistry::default();
    let project = r.create_project("acme", "tools", "private");
    let developer =
        Credential::private(r.token(personal(&[Scope::Api], "acme/tools", Role::Developer)));
    Setup {
        r,
        project,
        developer,
    }
}

impl Setup {
    fn file_url(&self, rest: &str) -> String {
        self.r.generic(self.project, rest)
    }

    fn sessions_url(&self) -> String {
        format!("/api/v4/projects/{}/packages/upload_sessions", self.project)
    }

    fn create(&self, rest: &str, body: Value) -> crate::testing::Reply {
        self.r.call(
            Method::Post,
            &self.file_url(rest),
            &self.developer,
            Some(body),
        )
    }

    fn create_for(&self, rest: &str, data: &[u8]) -> Value {
        let reply = self.create(
            rest,
            json!({"size": data.len(), "sha256": sha256_hex(data), "part_size": PART}),
        );
        assert_eq!(reply.status, 201, "{:?}", reply.json());
        reply.json()
    }

    fn session_url(&self, session: &Value) -> String {
        format!(
            "{}/{}",
            self.sessions_url(),
            session["id"].as_str().unwrap()
        )
    }

    /// Asks for part `number`'s URL and PUTs `bytes` to it, as a client.
    fn send_part(&self, session: &Value, number: usize, bytes: &[u8]) {
        let link = self.r.call(
            Method::Post,
            &format!("{}/parts/{number}", self.session_url(session)),
            &self.developer,
            Some(json!({"sha256": sha256_hex(bytes), "size": bytes.len()})),
        );
        assert_eq!(link.status, 200, "{:?}", link.json());
        let link = link.json();
        let url: url::Url = link["url"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            link["headers"]["content-length"],
            bytes.len().to_string().as_str()
        );
        let mut put = self.r.s3.start_put(&url, bytes.len() as u64).unwrap();
        put.write(bytes).unwrap();
        put.finish().unwrap();
    }

    fn send_all_parts(&self, session: &Value, data: &[u8]) {
        for (i, part) in data.chunks(PART).enumerate() {
            self.send_part(session, i + 1, part);
        }
    }

    fn complete_once(&self, session: &Value) -> crate::testing::Reply {
        self.r.call(
            Method::Post,
            &format!("{}/complete", self.session_url(session)),
            &self.developer,
            None,
        )
    }

    /// POSTs complete while it answers 202; returns the last answer and
    /// how many 202s came before it.
    fn complete(&self, session: &Value) -> (crate::testing::Reply, usize) {
        for accepted in 0..100 {
            let reply = self.complete_once(session);
            if reply.status != 202 {
                return (reply, accepted);
            }
        }
        panic!("complete never finished")
    }

    fn download(&self, rest: &str) -> crate::testing::Reply {
        self.r.get(&self.file_url(rest), &self.developer)
    }
}

#[test]
fn a_file_sent_in_parts_is_verified_in_steps_and_committed_like_a_publish() {
    let s = setup();
    let data = file_of(2 * PART + 123);
    let session = s.create_for("tool/1.0/linux/tool.bin", &data);
    assert_eq!(session["parts_count"], 3);
    assert_eq!(session["state"], "uploading");
    assert_eq!(session["file_name"], "linux%2Ftool.bin");
    s.send_all_parts(&session, &data);

    let (done, accepted) = s.complete(&session);
    assert_eq!(done.status, 201, "{:?}", done.json());
    // One 202 to join the parts, then one per 4 MiB verification step.
    assert_eq!(accepted, 1 + data.len().div_ceil(4 * MIB));
    let record = done.json();
    assert_eq!(record["file_sha256"], sha256_hex(&data));
    assert_eq!(record["size"], data.len());
    assert_eq!(record["file_md5"], hex::encode(md5::Md5::digest(&data)));

    // The same record a publish answers with select=package_file.
    let published = s.r.put_bytes(
        &format!("{}?select=package_file", s.file_url("tool/1.0/other.bin")),
        &s.developer,
        b"x",
    );
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&record), keys(&published.json()));

    assert_eq!(s.download("tool/1.0/linux/tool.bin").body, data);
    // The session is gone.
    assert_eq!(s.r.get(&s.session_url(&session), &s.developer).status, 404);
    assert_eq!(s.r.get(&s.sessions_url(), &s.developer).json(), json!([]));
}

#[test]
fn verification_hands_each_step_s_sha256_to_a_helper_and_records_the_same_digests() {
    let mut s = setup();
    s.r.sha256_helper = Some(MemoryHelper::new(MIB as u64));
    // Steps of 4 MiB, 4 MiB and 123 bytes: the last is too small for a helper.
    let data = file_of(8 * MIB + 123);
    let session = s.create_for("tool/1.0/tool.bin", &data);
    s.send_all_parts(&session, &data);
    let (done, _) = s.complete(&session);
    assert_eq!(done.status, 201, "{:?}", done.json());
    let record = done.json();
    assert_eq!(record["file_sha256"], sha256_hex(&data));
    assert_eq!(record["file_md5"], hex::encode(md5::Md5::digest(&data)));
    assert_eq!(record["file_sha1"], hex::encode(sha1::Sha1::digest(&data)));
    let helper = s.r.sha256_helper.as_ref().unwrap();
    assert_eq!(helper.started.get(), 2);
    assert_eq!(helper.sent.get(), (data.len() - 123) as u64);
}

#[test]
fn a_helper_failing_mid_step_answers_503_and_the_next_complete_goes_on() {
    let mut s = setup();
    s.r.sha256_helper = Some(MemoryHelper {
        fail_after: Some(MIB as u64),
        ..MemoryHelper::new(MIB as u64)
    });
    let data = file_of(PART + 7);
    let session = s.create_for("tool/1.0/tool.bin", &data);
    s.send_all_parts(&session, &data);
    assert_eq!(s.complete_once(&session).status, 202, "parts joined");
    let failed = s.complete_once(&session);
    assert_eq!(failed.status, 503, "{:?}", failed.json());
    assert_eq!(failed.header("retry-after"), Some("1"));
    // Nothing of the failed step was kept: with a working helper (or none)
    // the verification goes on from where it stood and gets it right.
    s.r.sha256_helper = Some(MemoryHelper::new(MIB as u64));
    let (done, _) = s.complete(&session);
    assert_eq!(done.status, 201, "{:?}", done.json());
    assert_eq!(done.json()["file_sha256"], sha256_hex(&data));
    assert_eq!(s.download("tool/1.0/tool.bin").body, data);
}

#[test]
fn sessions_are_authorized_like_publishes() {
    let s = setup();
    let body = json!({"size": 10, "sha256": sha256_hex(b"0123456789")});
    let url = s.file_url("tool/1.0/a.bin");
    let reporter =
        Credential::private(s.r.token(personal(&[Scope::Api], "acme/tools", Role::Reporter)));
    let reader = Credential::deploy(s.r.token(deploy(&[Scope::ReadPackageRegistry], "acme/tools")));
    let writer =
        Credential::deploy(s.r.token(deploy(&[Scope::WritePackageRegistry], "acme/tools")));
    let stranger = Credential::private(s.r.token(personal(&[Scope::Api], "other/x", Role::Owner)));
    let status = |who: &Credential| s.r.call(Method::Post, &url, who, Some(body.clone())).status;
    assert_eq!(status(&Credential::anonymous()), 401);
    assert_eq!(status(&reporter), 403);
    assert_eq!(status(&reader), 403);
    assert_eq!(status(&stranger), 404);
    assert_eq!(status(&writer), 201);
    assert_eq!(s.r.get(&s.sessions_url(), &reporter).status, 403);
    assert_eq!(
        s.r.get(&s.sessions_url(), &Credential::anonymous()).status,
        401
    );
}

#[test]
fn bad_sessions_are_refused_before_anything_is_created() {
    let s = setup();
    let sha = sha256_hex(b"x");
    let cases = [
        ("bad name/1.0/a.bin", json!({"size": 1, "sha256": sha}), 400),
        ("tool/1.0/a.bin", json!({"sha256": sha}), 400),
        ("tool/1.0/a.bin", json!({"size": 1}), 400),
        ("tool/1.0/a.bin", json!({"size": 1, "sha256": "abc"}), 400),
        (
            "tool/1.0/a.bin",
            json!({"size": "many", "sha256": sha}),
            400,
        ),
        (
            "tool/1.0/a.bin",
            json!({"size": 1, "sha256": sha, "part_size": 1024}),
            400,
        ),
        (
            "tool/1.0/a.bin",
            json!({"size": 100_000u64 * PART as u64, "sha256": sha, "part_size": PART}),
            400,
        ),
        (
            "tool/1.0/a.bin",
            json!({"size": 6u64 << 30, "sha256": sha}),
            413,
        ),
    ];
    for (rest, body, status) in cases {
        let reply = s.create(rest, body.clone());
        assert_eq!(reply.status, status, "{rest} {body}: {:?}", reply.json());
    }
    assert_eq!(
        s.create("tool/1.0/a.bin", json!({"sha256": "abc"})).json(),
        json!({"error": "size is missing, sha256 is invalid"})
    );
    assert!(
        s.r.s3.uploads.borrow().is_empty(),
        "no multipart upload started"
    );
}

#[test]
fn creating_the_same_session_again_resumes_it_with_the_parts_s3_holds() {
    let s = setup();
    let data = file_of(PART + 7);
    let session = s.create_for("tool/1.0/a.bin", &data);
    s.send_part(&session, 1, &data[..PART]);
    let again = s.create(
        "tool/1.0/a.bin",
        json!({"size": data.len(), "sha256": sha256_hex(&data), "part_size": PART}),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], session["id"]);
    assert_eq!(
        again.json()["parts"],
        json!([{"part_number": 1, "size": PART}])
    );
    // Another size is another session.
    let other = s.create(
        "tool/1.0/a.bin",
        json!({"size": 9, "sha256": sha256_hex(&data)}),
    );
    assert_eq!(other.status, 201);
    assert_ne!(other.json()["id"], session["id"]);
    assert_eq!(
        s.r.get(&s.sessions_url(), &s.developer)
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn completing_with_missing_parts_names_them_and_wrong_sizes_get_no_url() {
    let s = setup();
    let data = file_of(3 * PART);
    let session = s.create_for("tool/1.0/a.bin", &data);
    s.send_part(&session, 2, &data[PART..2 * PART]);
    let reply = s.complete_once(&session);
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"message": "400 Bad request - missing parts: 1, 3"})
    );
    let wrong = s.r.call(
        Method::Post,
        &format!("{}/parts/3", s.session_url(&session)),
        &s.developer,
        Some(json!({"sha256": sha256_hex(b"x"), "size": 12})),
    );
    assert_eq!(wrong.status, 400);
    let beyond = s.r.call(
        Method::Post,
        &format!("{}/parts/4", s.session_url(&session)),
        &s.developer,
        Some(json!({"sha256": sha256_hex(b"x"), "size": PART})),
    );
    assert_eq!(beyond.status, 400);
}

#[test]
fn a_session_lying_about_the_whole_file_is_refused_and_records_nothing() {
    let s = setup();
    let data = file_of(PART + 1);
    let reply = s.create(
        "tool/1.0/a.bin",
        json!({"size": data.len(), "sha256": sha256_hex(b"something else"), "part_size": PART}),
    );
    let session = reply.json();
    s.send_all_parts(&session, &data);
    let (refused, _) = s.complete(&session);
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json(),
        json!({"message": "400 Bad request - the uploaded file's sha256 does not match the session's"})
    );
    assert_eq!(s.download("tool/1.0/a.bin").status, 404);
    assert!(s.r.s3.objects.borrow().is_empty(), "the object is deleted");
    assert_eq!(s.r.get(&s.session_url(&session), &s.developer).status, 404);
}

#[test]
fn duplicates_are_refused_at_create_and_at_complete() {
    let s = setup();
    let admin = s.r.admin();
    let settings = s.r.call(
        Method::Put,
        "/api/v4/groups/acme/packages/settings",
        &admin,
        Some(json!({"generic_duplicates_allowed": false})),
    );
    assert_eq!(settings.status, 200, "{:?}", settings.json());
    let data = file_of(PART + 2);
    // A session opened before the file was published...
    let session = s.create_for("tool/1.0/a.bin", &data);
    s.send_all_parts(&session, &data);
    assert_eq!(
        s.r.put_bytes(&s.file_url("tool/1.0/a.bin"), &s.developer, b"x")
            .status,
        201
    );
    // ...is refused at its commit,
    let (refused, _) = s.complete(&session);
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json(),
        json!({"message": "400 Bad request - Duplicate package is not allowed"})
    );
    // and a new one at its creation.
    let again = s.create(
        "tool/1.0/a.bin",
        json!({"size": 5, "sha256": sha256_hex(b"abcde")}),
    );
    assert_eq!(again.status, 400);
    assert_eq!(s.download("tool/1.0/a.bin").body, b"x");
}

#[test]
fn protected_packages_refuse_sessions_of_those_who_may_not_push() {
    let s = setup();
    let maintainer =
        Credential::private(s.r.token(personal(&[Scope::Api], "acme/tools", Role::Maintainer)));
    let rule = s.r.call(
        Method::Post,
        &format!("/api/v4/projects/{}/packages/protection/rules", s.project),
        &maintainer,
        Some(json!({
            "package_name_pattern": "release-*",
            "package_type": "generic",
            "minimum_access_level_for_push": "maintainer",
        })),
    );
    assert_eq!(rule.status, 201);
    let reply = s.create(
        "release-app/1.0/a.bin",
        json!({"size": 1, "sha256": sha256_hex(b"a")}),
    );
    assert_eq!(reply.status, 403);
}

#[test]
fn an_aborted_session_is_gone_with_its_upload() {
    let s = setup();
    let data = file_of(PART + 3);
    let session = s.create_for("tool/1.0/a.bin", &data);
    s.send_part(&session, 1, &data[..PART]);
    let deleted =
        s.r.call(Method::Delete, &s.session_url(&session), &s.developer, None);
    assert_eq!(deleted.status, 204);
    assert!(s.r.s3.uploads.borrow().is_empty());
    let gone = s.r.get(&s.session_url(&session), &s.developer);
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json(),
        json!({"message": "404 Upload session Not Found"})
    );
    assert_eq!(s.complete_once(&session).status, 404);
}

#[test]
fn expired_sessions_are_not_found() {
    let s = setup();
    let session = s.create_for("tool/1.0/a.bin", &file_of(10));
    // The clock stands still: age the record instead, past its expiry.
    let key = genreg_layout::keys::upload_session(s.project, session["id"].as_str().unwrap());
    let mut record: Value = serde_json::from_slice(&s.r.kv.get(&key).unwrap().unwrap()).unwrap();
    record["expires_at"] = json!(NOW as i64 * 1000);
    s.r.kv.set(&key, record.to_string().as_bytes()).unwrap();
    assert_eq!(s.r.get(&s.session_url(&session), &s.developer).status, 404);
    assert_eq!(s.complete_once(&session).status, 404);
    assert_eq!(s.r.get(&s.sessions_url(), &s.developer).json(), json!([]));
    // A new session for the same file is a new one.
    let again = s.create(
        "tool/1.0/a.bin",
        json!({"size": 10, "sha256": sha256_hex(&file_of(10))}),
    );
    assert_eq!(again.status, 201);
}

#[test]
fn a_second_complete_committing_the_same_session_keeps_one_record() {
    let s = setup();
    let data = file_of(PART + 5);
    let session = s.create_for("tool/1.0/a.bin", &data);
    s.send_all_parts(&session, &data);
    let key = genreg_layout::keys::upload_session(s.project, session["id"].as_str().unwrap());
    let verified = || {
        let record: Value = serde_json::from_slice(&s.r.kv.get(&key).unwrap().unwrap()).unwrap();
        record
    };
    while verified().get("digests").is_none() {
        assert_eq!(s.complete_once(&session).status, 202);
    }
    let before_commit = verified();
    let first = s.complete_once(&session);
    assert_eq!(first.status, 201, "{:?}", first.json());
    // A second complete read the session, with the file id the first one
    // stored, before the first forgot it: it commits the same file again.
    let mut replayed = before_commit;
    replayed["file_id"] = first.json()["id"].clone();
    s.r.kv.set(&key, replayed.to_string().as_bytes()).unwrap();
    let second = s.complete_once(&session);
    assert_eq!(second.status, 201, "{:?}", second.json());
    assert_eq!(second.json()["id"], first.json()["id"]);
    assert_eq!(file_count(&s), 1);
}

fn file_count(s: &Setup) -> usize {
    let packages = s.r.get(
        &format!("/api/v4/projects/{}/packages", s.project),
        &s.developer,
    );
    let id = packages.json()[0]["id"].as_u64().unwrap();
    s.r.get(
        &format!("/api/v4/projects/{}/packages/{id}/package_files", s.project),
        &s.developer,
    )
    .json()
    .as_array()
    .unwrap()
    .len()
}

/// Sends one request through the router over `kv` (a crashing store).
fn send_over<K: KeyValue>(
    r: &TestRegistry,
    kv: &K,
    method: Method,
    path: &str,
    who: &Credential,
) -> u16 {
    let request = Request::new(
        method,
        path,
        who.headers()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
    );
    let now = Timestamp::from_second(NOW as i64).unwrap();
    let clock = move || now;
    let random = || r.next_random();
    let ctx = Context {
        config: r.config.clone(),
        kv,
        blobs: Blobs::new(&r.config, &r.s3, &clock).unwrap(),
        now,
        random: &random,
    };
    router::handle(&ctx, &request, &mut VecDeque::new()).status
}

#[test]
fn a_completion_cut_after_any_write_finishes_on_the_next_post_with_one_record() {
    for writes in 0..200 {
        let s = setup();
        let data = file_of(2 * PART);
        let session = s.create_for("tool/1.0/a.bin", &data);
        s.send_all_parts(&session, &data);
        let url = format!("{}/complete", s.session_url(&session));
        // Complete over a store that dies after `writes` writes in total.
        let crashing = CrashAfter::new(&s.r.kv, writes);
        let mut finished = false;
        for _ in 0..20 {
            let status = send_over(&s.r, &crashing, Method::Post, &url, &s.developer);
            if crashing.crashed() {
                break;
            }
            if status != 202 {
                assert_eq!(status, 201);
                finished = true;
                break;
            }
        }
        if finished {
            assert!(writes > 3, "the crash points were tried");
            return;
        }
        // The next requests come later, on a store that works.
        s.r.kv.pause((CLAIM_EPOCH_MS + CLOCK_SKEW_MS) as u64);
        let (done, _) = s.complete(&session);
        assert_eq!(done.status, 201, "after {writes} writes: {:?}", done.json());
        assert_eq!(
            s.download("tool/1.0/a.bin").body,
            data,
            "after {writes} writes"
        );
        assert_eq!(file_count(&s), 1, "after {writes} writes");
    }
    panic!("a completion that never finishes");
}
