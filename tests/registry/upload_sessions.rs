//! Upload sessions over real HTTP: the component under genreg with a hosted
//! platform's limits (`genreg up --hosted`: 10 MiB bodies, 30 s requests,
//! 128 MiB instances), the parts sent with reqwest straight to the embedded
//! S3 server through the presigned URLs the registry hands out, exactly as a
//! client would.

use base64::Engine as _;
use reqwest::StatusCode;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{self, TestRegistry};

const MIB: usize = 1 << 20;
/// S3's smallest part but the last.
const PART: usize = 5 * MIB;

struct Session {
    r: TestRegistry,
    project: u64,
    token: String,
}

impl Session {
    async fn start() -> Session {
        // Files over the 10 MiB response cap download through the redirect.
        let r = common::start_configured(&[("download_mode", "auto")], |config| {
            config.limits = genreg::Limits::hosted()
        })
        .await;
        let project = r.create_project("acme", "tools", "private").await;
        let token = r.admin();
        Session { r, project, token }
    }

    fn file_url(&self, rest: &str) -> String {
        self.r.generic(&self.project.to_string(), rest)
    }

    fn session_url(&self, id: &str) -> String {
        self.r.url(&format!(
            "/api/v4/projects/{}/packages/upload_sessions/{id}",
            self.project
        ))
    }

    /// `POST`s the file URL: creates (or resumes) a session.
    async fn create(&self, rest: &str, data: &[u8]) -> reqwest::Response {
        self.create_claiming(rest, data, &common::sha256_hex(data))
            .await
    }

    /// [`Self::create`], announcing `sha256` as the whole file's.
    async fn create_claiming(&self, rest: &str, data: &[u8], sha256: &str) -> reqwest::Response {
        self.r
            .client
            .post(self.file_url(rest))
            .header("PRIVATE-TOKEN", &self.token)
            .json(&json!({
                "size": data.len(),
                "sha256": sha256,
                "part_size": PART,
            }))
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, url: String, body: Option<Value>) -> reqwest::Response {
        let mut request = self.r.client.post(url).header("PRIVATE-TOKEN", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// A presigned URL and its headers for part `number` of `bytes`.
    async fn part_link(&self, id: &str, number: usize, bytes: &[u8]) -> Value {
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
        let url = format!("{}/parts/{number}", self.session_url(id));
        let answer = self
            .post(url, Some(json!({ "sha256": sha256, "size": bytes.len() })))
            .await;
        assert_eq!(answer.status(), StatusCode::OK, "part {number}");
        common::json(answer).await
    }

    /// PUTs `body` to a part link with exactly its headers (straight to S3).
    async fn put_part(&self, link: &Value, body: Vec<u8>) -> reqwest::Response {
        let mut put = self.r.client.put(link["url"].as_str().unwrap()).body(body);
        for (name, value) in link["headers"].as_object().unwrap() {
            put = put.header(name.as_str(), value.as_str().unwrap());
        }
        put.send().await.unwrap()
    }

    async fn send_part(&self, id: &str, data: &[u8], number: usize) {
        let bytes = part(data, number);
        let link = self.part_link(id, number, bytes).await;
        let sent = self.put_part(&link, bytes.to_vec()).await;
        assert_eq!(sent.status(), StatusCode::OK, "part {number}");
    }

    async fn complete_once(&self, id: &str) -> reqwest::Response {
        self.post(format!("{}/complete", self.session_url(id)), None)
            .await
    }

    /// Repeats `complete` while it answers 202 (a bounded number of times).
    async fn complete(&self, id: &str) -> reqwest::Response {
        for _ in 0..100 {
            let answer = self.complete_once(id).await;
            if answer.status() != StatusCode::ACCEPTED {
                return answer;
            }
            let session = common::json(answer).await;
            assert_eq!(session["state"], "verifying");
        }
        panic!("complete kept answering 202");
    }

    /// The record the registry keeps of a session.
    fn record(&self, id: &str) -> genreg_layout::records::UploadSession {
        let db = genreg::data_dir::keyvalue_path(self.r.data.path());
        let store = genreg::keyvalue::SqliteStore::open_existing(&db).unwrap();
        let key = genreg_layout::keys::upload_session(self.project, id);
        serde_json::from_slice(&store.get(&key).unwrap().unwrap()).unwrap()
    }

    /// The registry's bucket, as a tool other than the registry reaches it.
    fn bucket(&self) -> (Bucket, Credentials) {
        let s3 = self.r.registry.s3();
        let bucket = Bucket::new(
            s3.endpoint.parse().unwrap(),
            UrlStyle::Path,
            s3.bucket,
            s3.region,
        )
        .unwrap();
        (
            bucket,
            Credentials::new(s3.access_key_id, s3.secret_access_key),
        )
    }
}

/// Part `number` (from 1) of `data`.
fn part(data: &[u8], number: usize) -> &[u8] {
    let start = (number - 1) * PART;
    &data[start..(start + PART).min(data.len())]
}

fn part_numbers(session: &Value) -> Vec<u64> {
    session["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["part_number"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_file_sent_in_parts_is_resumed_verified_and_downloads_identical() {
    let s = Session::start().await;
    let data = common::data(3 * PART + 1234, 11);
    let rest = "tool/1.0/linux/tool.bin";

    let created = s.create(rest, &data).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let session = common::json(created).await;
    let id = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["parts_count"], 4);
    assert_eq!(session["part_size"], PART);
    assert_eq!(session["state"], "uploading");
    assert_eq!(session["file_name"], "linux%2Ftool.bin");
    assert!(part_numbers(&session).is_empty());

    s.send_part(&id, &data, 1).await;

    // A corrupted part (same length, same signed headers) is refused by S3
    // itself; asked for again, the part goes through.
    let good = part(&data, 2);
    let link = s.part_link(&id, 2, good).await;
    let mut bad = good.to_vec();
    bad[PART / 2] ^= 0xff;
    let refused = s.put_part(&link, bad).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.unwrap();
    assert!(text.contains("BadDigest"), "{text}");
    s.send_part(&id, &data, 2).await;

    // An interrupted client creates the session again: same id, and the
    // parts S3 already holds.
    let resumed = s.create(rest, &data).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let resumed = common::json(resumed).await;
    assert_eq!(resumed["id"], id.as_str());
    assert_eq!(part_numbers(&resumed), [1, 2]);
    assert_eq!(resumed["parts"][1]["size"], PART);

    s.send_part(&id, &data, 3).await;
    s.send_part(&id, &data, 4).await;
    let shown = common::json(s.r.get(&s.session_url(&id), Some(&s.token)).await).await;
    assert_eq!(part_numbers(&shown), [1, 2, 3, 4]);
    assert_eq!(shown["parts"][3]["size"], 1234);

    let committed = s.complete(&id).await;
    assert_eq!(committed.status(), StatusCode::CREATED);
    let file = common::json(committed).await;
    assert_eq!(file["size"], data.len());
    assert_eq!(file["file_sha256"], common::sha256_hex(&data));
    assert_eq!(file["file_name"], "linux%2Ftool.bin");

    let download = s.r.get(&s.file_url(rest), Some(&s.token)).await;
    assert_eq!(download.status(), StatusCode::OK);
    let body = download.bytes().await.unwrap();
    assert!(body[..] == data[..], "the download differs from the upload");
    // Committed: the session is gone.
    let gone = s.r.get(&s.session_url(&id), Some(&s.token)).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_session_that_lies_about_the_sha256_is_refused_and_records_nothing() {
    let s = Session::start().await;
    let data = common::data(PART + 10, 14);
    let claimed = common::sha256_hex(b"another file");
    let created = s.create_claiming("tool/1.0/a.bin", &data, &claimed).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = common::json(created).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Each part is what its own checksum says, so S3 takes it.
    s.send_part(&id, &data, 1).await;
    s.send_part(&id, &data, 2).await;
    let object_key = s.record(&id).object_key;

    let refused = s.complete(&id).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        common::json(refused).await,
        json!({"message": "400 Bad request - the uploaded file's sha256 does not match the session's"})
    );
    let download = s.r.get(&s.file_url("tool/1.0/a.bin"), Some(&s.token)).await;
    assert_eq!(download.status(), StatusCode::NOT_FOUND);
    let packages = common::json(
        s.r.get(
            &s.r.url(&format!("/api/v4/projects/{}/packages", s.project)),
            Some(&s.token),
        )
        .await,
    )
    .await;
    assert_eq!(packages, json!([]));
    let gone = s.r.get(&s.session_url(&id), Some(&s.token)).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // The joined object is deleted, and no upload is left open.
    let (bucket, credentials) = s.bucket();
    let url = bucket
        .head_object(Some(&credentials), &object_key)
        .sign(std::time::Duration::from_secs(60));
    let head = reqwest::Client::new().head(url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    assert!(s.r.unfinished_uploads().is_empty());
}

#[tokio::test]
async fn an_aborted_session_answers_204_and_its_upload_is_gone() {
    let s = Session::start().await;
    let data = common::data(PART + 10, 12);
    let session = common::json(s.create("tool/1.0/a.bin", &data).await).await;
    let id = session["id"].as_str().unwrap().to_string();
    s.send_part(&id, &data, 1).await;
    let late = s.part_link(&id, 2, part(&data, 2)).await;
    assert!(!s.r.unfinished_uploads().is_empty());

    let aborted =
        s.r.request(reqwest::Method::DELETE, &s.session_url(&id), Some(&s.token))
            .await;
    assert_eq!(aborted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.r.unfinished_uploads(),
        Vec::<std::path::PathBuf>::new(),
        "the S3 upload is still there"
    );
    let gone = s.r.get(&s.session_url(&id), Some(&s.token)).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        common::json(gone).await,
        json!({"message": "404 Upload session Not Found"})
    );
    // A part URL handed out before has no upload to go to (AWS answers 404
    // NoSuchUpload; the embedded server refuses it too).
    let sent = s.put_part(&late, part(&data, 2).to_vec()).await;
    assert!(sent.status().is_client_error(), "{}", sent.status());
    assert!(s.r.unfinished_uploads().is_empty());
}

#[tokio::test]
async fn a_session_whose_parts_vanished_from_s3_answers_409_and_can_start_over() {
    let s = Session::start().await;
    let data = common::data(100, 13);
    let client = reqwest::Client::new();
    let (bucket, credentials) = s.bucket();

    // Uploading: the multipart upload is aborted behind the registry's back.
    let session = common::json(s.create("tool/1.0/a.bin", &data).await).await;
    let id = session["id"].as_str().unwrap().to_string();
    s.send_part(&id, &data, 1).await;
    let record = s.record(&id);
    let url = bucket
        .abort_multipart_upload(Some(&credentials), &record.object_key, &record.upload_id)
        .sign(std::time::Duration::from_secs(60));
    assert!(client
        .delete(url)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let answer = s.complete_once(&id).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let message = common::json(answer).await["message"].to_string();
    assert!(message.starts_with("\"409 Conflict - "), "{message}");
    assert!(message.contains("create the session again"), "{message}");
    let gone = s.r.get(&s.session_url(&id), Some(&s.token)).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // Verifying: the joined object is deleted behind the registry's back.
    let again = s.create("tool/1.0/a.bin", &data).await;
    assert_eq!(again.status(), StatusCode::CREATED, "a new session");
    let id = common::json(again).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.send_part(&id, &data, 1).await;
    assert_eq!(s.complete_once(&id).await.status(), StatusCode::ACCEPTED);
    let record = s.record(&id);
    let url = bucket
        .delete_object(Some(&credentials), &record.object_key)
        .sign(std::time::Duration::from_secs(60));
    assert!(client
        .delete(url)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(s.complete_once(&id).await.status(), StatusCode::CONFLICT);

    // Starting over works, and nothing was recorded meanwhile.
    let last = common::json(s.create("tool/1.0/a.bin", &data).await).await;
    let id = last["id"].as_str().unwrap().to_string();
    s.send_part(&id, &data, 1).await;
    assert_eq!(s.complete(&id).await.status(), StatusCode::CREATED);
    let files = common::json(
        s.r.get(
            &s.r.url(&format!("/api/v4/projects/{}/packages", s.project)),
            Some(&s.token),
        )
        .await,
    )
    .await;
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    let download = s.r.get(&s.file_url("tool/1.0/a.bin"), Some(&s.token)).await;
    assert_eq!(download.bytes().await.unwrap()[..], data[..]);
}
