//! What the embedded S3 server's unit tests share: a server over a
//! temporary root and requests as s3s hands them over.

use s3s::auth::{Credentials, SecretKey};
use s3s::dto::*;
use s3s::{S3Request, S3};

use super::FastFs;

pub const ACCESS_KEY: &str = "test-key";
pub const MIB: usize = 1 << 20;

pub fn request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: http::Method::POST,
        uri: http::Uri::from_static("/"),
        headers: Default::default(),
        extensions: Default::default(),
        credentials: Some(Credentials {
            access_key: ACCESS_KEY.into(),
            secret_key: SecretKey::from("secret"),
        }),
        region: None,
        service: None,
        trailing_headers: None,
    }
}

pub fn server(root: &std::path::Path) -> FastFs {
    std::fs::create_dir_all(root.join("genreg")).unwrap();
    FastFs {
        inner: s3s_fs::FileSystem::new(root).unwrap(),
        root: root.canonicalize().unwrap(),
        uploads_root: root.canonicalize().unwrap(),
        part_etags: Default::default(),
        completing: Default::default(),
        assemblies: Default::default(),
    }
}

/// The names of the files and directories in `dir`, sorted.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Uploads `data` as part `number`; returns the ETag UploadPart answered.
pub async fn upload_part(
    fs: &FastFs,
    key: &str,
    upload_id: &str,
    number: i32,
    data: Vec<u8>,
) -> ETag {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(data))]);
    let input = UploadPartInput {
        bucket: "genreg".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        part_number: number,
        body: Some(StreamingBlob::wrap(body)),
        ..Default::default()
    };
    fs.upload_part(request(input))
        .await
        .unwrap()
        .output
        .e_tag
        .unwrap()
}

/// An AbortMultipartUpload of `upload_id` of `key`.
pub fn abort_input(key: &str, upload_id: &str) -> AbortMultipartUploadInput {
    AbortMultipartUploadInput {
        bucket: "genreg".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        ..Default::default()
    }
}

/// Starts a multipart upload of `key`; answers its id.
pub async fn create_upload(fs: &FastFs, key: &str) -> String {
    let input = CreateMultipartUploadInput {
        bucket: "genreg".into(),
        key: key.into(),
        ..Default::default()
    };
    let answer = fs.create_multipart_upload(request(input)).await.unwrap();
    answer.output.upload_id.unwrap()
}

pub async fn head(fs: &FastFs, key: &str) -> (Option<i64>, Option<ETag>) {
    let input = HeadObjectInput {
        bucket: "genreg".into(),
        key: key.into(),
        ..Default::default()
    };
    let output = fs.head_object(request(input)).await.unwrap().output;
    (output.content_length, output.e_tag)
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}
