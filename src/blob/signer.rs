//! SigV4-presigned URLs for the S3 requests the registry makes (signature
//! in the query string, payload unsigned). Pure: the signing time is an
//! input, nothing is sent. Every URL is signed right before its request goes
//! out ([`super::Blobs`] asks its clock), so a long upload never carries a
//! URL that expired while earlier parts were sent.

use std::time::Duration;

use jiff::Timestamp;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use crate::config::S3Settings;

/// How long a URL signed for the component's own use stays valid: it is
/// signed the moment its request starts, so this only has to cover clock
/// skew between the registry and S3.
const OWN_USE: Duration = Duration::from_secs(15 * 60);

/// Signs requests for one bucket.
pub struct Signer {
    pub(super) bucket: Bucket,
    pub(super) credentials: Credentials,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid S3 settings: {0}")]
pub struct SettingsError(String);

impl Signer {
    pub fn new(settings: &S3Settings) -> Result<Signer, SettingsError> {
        let endpoint: Url = settings
            .endpoint
            .parse()
            .map_err(|e| SettingsError(format!("s3_endpoint: {e}")))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| SettingsError(e.to_string()))?;
        Ok(Signer {
            bucket,
            credentials: Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.clone(),
            ),
        })
    }

    fn sign<'a>(action: impl S3Action<'a>, at: &Timestamp) -> Url {
        action.sign_with_time(OWN_USE, at)
    }

    pub fn put_object(&self, key: &str, at: &Timestamp) -> Url {
        Self::sign(self.bucket.put_object(Some(&self.credentials), key), at)
    }

    pub fn get_object(&self, key: &str, at: &Timestamp) -> Url {
        Self::sign(self.bucket.get_object(Some(&self.credentials), key), at)
    }

    pub fn delete_object(&self, key: &str, at: &Timestamp) -> Url {
        Self::sign(self.bucket.delete_object(Some(&self.credentials), key), at)
    }

    pub fn create_multipart_upload(&self, key: &str, at: &Timestamp) -> Url {
        Self::sign(
            self.bucket
                .create_multipart_upload(Some(&self.credentials), key),
            at,
        )
    }

    pub fn upload_part(&self, key: &str, part_number: u16, upload_id: &str, at: &Timestamp) -> Url {
        Self::sign(
            self.bucket
                .upload_part(Some(&self.credentials), key, part_number, upload_id),
            at,
        )
    }

    /// The URL and XML body that complete a multipart upload.
    pub fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        at: &Timestamp,
    ) -> (Url, String) {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign_with_time(OWN_USE, at);
        (url, action.body())
    }

    pub fn abort_multipart_upload(&self, key: &str, upload_id: &str, at: &Timestamp) -> Url {
        Self::sign(
            self.bucket
                .abort_multipart_upload(Some(&self.credentials), key, upload_id),
            at,
        )
    }

    /// A URL a client can download the object from for `expires_in` after
    /// `at`, served as an attachment named `file_name`.
    pub fn download_link(
        &self,
        key: &str,
        file_name: &str,
        expires_in: Duration,
        at: &Timestamp,
    ) -> Url {
        let mut action = self.bucket.get_object(Some(&self.credentials), key);
        action.query_mut().insert(
            "response-content-disposition",
            content_disposition(file_name),
        );
        action
            .query_mut()
            .insert("response-content-type", "application/octet-stream");
        action.sign_with_time(expires_in, at)
    }
}

/// `attachment; filename="<name>"; filename*=UTF-8''<name>`, with the name
/// made safe for the quoted form and percent-encoded for the extended one.
pub fn content_disposition(file_name: &str) -> String {
    let quoted: String = file_name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '_',
        })
        .collect();
    let encoded = crate::validate::encode_component(file_name);
    format!("attachment; filename=\"{quoted}\"; filename*=UTF-8''{encoded}")
}

/// Pulls `<UploadId>` out of a CreateMultipartUpload answer.
pub fn parse_upload_id(xml: &str) -> Option<String> {
    rusty_s3::actions::CreateMultipartUpload::parse_response(xml)
        .ok()
        .map(|r| r.upload_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let settings = S3Settings {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "genreg".into(),
            region: "us-east-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
        };
        Signer::new(&settings).unwrap()
    }

    fn at() -> Timestamp {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    fn query(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn urls_are_path_style_and_presigned() {
        let url = signer().put_object("objects/abc", &at());
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.path(), "/genreg/objects/abc");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("X-Amz-Algorithm").as_deref(), Some("AWS4-HMAC-SHA256"));
        assert_eq!(get("X-Amz-Date").as_deref(), Some("20260102T030405Z"));
        assert!(get("X-Amz-Credential")
            .unwrap()
            .starts_with("AKID/20260102/us-east-1/s3/"));
        assert_eq!(get("X-Amz-Signature").unwrap().len(), 64);
    }

    #[test]
    fn signing_is_deterministic_for_a_given_time() {
        assert_eq!(
            signer().get_object("k", &at()),
            signer().get_object("k", &at())
        );
        assert_ne!(
            signer().get_object("k", &at()),
            signer().get_object("j", &at())
        );
    }

    #[test]
    fn each_url_carries_the_time_it_was_signed_at() {
        let later: Timestamp = "2026-01-02T05:00:00Z".parse().unwrap();
        let first = signer().upload_part("k", 1, "up", &at());
        let last = signer().upload_part("k", 2, "up", &later);
        assert_eq!(
            query(&first, "X-Amz-Date").as_deref(),
            Some("20260102T030405Z")
        );
        assert_eq!(
            query(&last, "X-Amz-Date").as_deref(),
            Some("20260102T050000Z")
        );
    }

    #[test]
    fn multipart_requests_carry_the_upload_id_and_part_number() {
        let url = signer().upload_part("k", 3, "up-1", &at());
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(query.contains(&("partNumber".into(), "3".into())));
        assert!(query.contains(&("uploadId".into(), "up-1".into())));
        let (_, body) = signer().complete_multipart_upload(
            "k",
            "up-1",
            &["\"e1\"".into(), "\"e2\"".into()],
            &at(),
        );
        assert!(body.contains("<PartNumber>2</PartNumber>"), "{body}");
    }

    #[test]
    fn download_links_keep_the_file_name() {
        let url = signer().download_link("k", "tool.tar.gz", Duration::from_secs(60), &at());
        let disposition = url
            .query_pairs()
            .find(|(k, _)| k == "response-content-disposition")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(
            disposition,
            "attachment; filename=\"tool.tar.gz\"; filename*=UTF-8''tool.tar.gz"
        );
    }

    #[test]
    fn upload_ids_are_read_from_the_create_answer() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>abc-123</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(parse_upload_id(xml).as_deref(), Some("abc-123"));
        assert_eq!(parse_upload_id("<nope/>"), None);
    }
}
