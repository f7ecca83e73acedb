//! The embedded S3 server: `s3s` over `s3s-fs` (objects are plain files under
//! `<data>/s3/<bucket>/`), SigV4 with one access key kept in the data
//! directory, served on loopback.
//!
//! [`FastFs`] wraps s3s-fs where it is slow or incomplete: plain objects
//! stored and read in one pass on the blocking pool (`s3_plain.rs`), other
//! object downloads streamed in large blocks (s3s-fs reads 4 KiB at a
//! time), parts stored with one fast hash, their XXH3, as their ETag
//! (`s3_parts.rs`; parts copied from objects get the same ETag), multipart
//! uploads joined without reading the parts again (`s3_complete.rs`),
//! listed and aborted (`s3_uploads.rs`); everything else is s3s-fs
//! unchanged, over the files where s3s-fs keeps them (`s3_files.rs`).
//! Every stored object is on the disk before its answer: synced as it is
//! written, or, where s3s-fs wrote it (`PutObject` of larger bodies,
//! `CopyObject`, conditional completes), right after ([`FastFs::synced`]).
//! [`cors::Cors`] answers the browser's cross-origin requests from the
//! registry's own pages (`s3_cors.rs`).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result, S3};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::data_dir::{self, S3Credentials};
use crate::serve::{self, ServerHandle};

#[path = "s3_assembly.rs"]
mod assembly;
#[path = "s3_complete.rs"]
mod complete;
#[path = "s3_cors.rs"]
mod cors;
#[path = "s3_files.rs"]
mod files;
#[path = "s3_part_etags.rs"]
mod part_etags;
#[path = "s3_parts.rs"]
mod parts;
#[path = "s3_plain.rs"]
mod plain;
#[path = "s3_stored_parts.rs"]
mod stored_parts;
#[cfg(test)]
#[path = "s3_test_support.rs"]
mod test_support;
#[path = "s3_uploads.rs"]
mod uploads;

pub use cors::BrowserOrigins;

/// The bucket the embedded server creates and the component uses.
pub const BUCKET: &str = "genreg";
/// The region the embedded server reports (it accepts any in signatures).
pub const REGION: &str = "us-east-1";
/// Size of the blocks object downloads are streamed in.
const READ_BLOCK: usize = 1 << 20;
/// How many blocks a download reads ahead of what was sent.
const BLOCKS_AHEAD: usize = 4;

/// A running embedded S3 server.
pub struct EmbeddedS3 {
    pub server: ServerHandle,
    /// The S3 service the server runs, for answering requests in process.
    pub service: S3Service,
    pub credentials: S3Credentials,
    pub root: PathBuf,
}

impl EmbeddedS3 {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.local_addr())
    }
}

/// Starts the server on `listen` (default `127.0.0.1:0`), creating the root
/// directory, the bucket and the credentials on first start. Pages from
/// `origins` may call it from a browser (CORS).
pub async fn start(
    data_dir: &Path,
    listen: Option<SocketAddr>,
    origins: BrowserOrigins,
) -> anyhow::Result<EmbeddedS3> {
    let root = data_dir::s3_root(data_dir);
    std::fs::create_dir_all(root.join(BUCKET))
        .with_context(|| format!("creating {}", root.display()))?;
    let credentials = data_dir::s3_credentials(data_dir).context("reading S3 credentials")?;
    let (server, service, root) =
        serve_fs(root.clone(), root, &credentials, listen, origins).await?;
    Ok(EmbeddedS3 {
        server,
        service,
        credentials,
        root,
    })
}

/// An embedded S3 server over an existing data directory for an admin
/// command (`genreg gc`), safe to run while `genreg up` serves the same
/// directory. Stopping it removes its private root.
pub struct EmbeddedS3View {
    pub server: EmbeddedS3,
    private_root: PathBuf,
}

impl EmbeddedS3View {
    pub async fn shutdown(self) {
        self.server.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.private_root);
    }
}

/// Starts an embedded S3 server on an ephemeral loopback port over the
/// bucket of an existing data directory; never creates the bucket or the
/// credentials.
///
/// s3s-fs deletes every `.tmp.*.internal.part` file of its root when it
/// starts: those are the objects a running server is writing. So this
/// server gets a private root of its own (under the system temporary
/// directory) holding only a symbolic link to the bucket directory, and a
/// `genreg up` on the same data directory keeps its uploads in flight. On
/// systems without symbolic links it uses the data directory's root.
pub async fn start_view(data_dir: &Path) -> anyhow::Result<EmbeddedS3View> {
    let root = data_dir::s3_root(data_dir);
    let bucket_dir = root.join(BUCKET);
    anyhow::ensure!(
        bucket_dir.is_dir(),
        "{} holds no embedded S3 bucket (for a registry on an external S3, give --s3-endpoint)",
        bucket_dir.display()
    );
    let credentials_path = data_dir.join(data_dir::S3_CREDENTIALS_FILE);
    anyhow::ensure!(
        credentials_path.is_file(),
        "{} is missing",
        credentials_path.display()
    );
    let credentials = data_dir::s3_credentials(data_dir).context("reading S3 credentials")?;

    let private_root = std::env::temp_dir().join(format!("genreg-s3-{}", data_dir::random_hex(8)));
    std::fs::create_dir_all(&private_root)
        .with_context(|| format!("creating {}", private_root.display()))?;
    let fs_root = match link_bucket(&bucket_dir, &private_root.join(BUCKET)) {
        Ok(()) => private_root.clone(),
        Err(_) => root.clone(),
    };
    let started = serve_fs(fs_root, root, &credentials, None, BrowserOrigins::none()).await;
    match started {
        Ok((server, service, root)) => Ok(EmbeddedS3View {
            server: EmbeddedS3 {
                server,
                service,
                credentials,
                root,
            },
            private_root,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&private_root);
            Err(e)
        }
    }
}

#[cfg(unix)]
fn link_bucket(bucket_dir: &Path, link: &Path) -> std::io::Result<()> {
    let target = bucket_dir.canonicalize()?;
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn link_bucket(_bucket_dir: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Serves s3s-fs over `root` with one access key, answering CORS for
/// `origins`; multipart uploads are listed and aborted in `uploads_root`,
/// where s3s-fs keeps them. Answers the server, its S3 service and `root`.
async fn serve_fs(
    root: PathBuf,
    uploads_root: PathBuf,
    credentials: &S3Credentials,
    listen: Option<SocketAddr>,
    origins: BrowserOrigins,
) -> anyhow::Result<(ServerHandle, S3Service, PathBuf)> {
    let fs = s3s_fs::FileSystem::new(&root)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(FastFs {
        inner: fs,
        root: root.clone(),
        uploads_root,
        part_etags: Default::default(),
        completing: Default::default(),
        assemblies: Default::default(),
    });
    builder.set_auth(SimpleAuth::from_single(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
    ));
    let s3_service = builder.build();
    let service = cors::Cors::new(s3_service.clone(), origins);

    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the embedded S3 server to {listen}"))?;
    let server = serve::spawn(listener, move |_peer| service.clone())?;
    Ok((server, s3_service, root))
}

/// s3s-fs with faster object reads, and multipart uploads listed.
struct FastFs {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    /// The data directory's S3 root, where open multipart uploads live.
    uploads_root: PathBuf,
    /// ListParts pages with ETags (s3s-fs leaves them out); the parts' ETags
    /// CompleteMultipartUpload checks without reading the parts again.
    part_etags: part_etags::PartEtags,
    /// Multipart uploads being completed now.
    completing: complete::Completing,
    /// The parts of uploads under way, joined ahead of their completion.
    assemblies: assembly::Assemblies,
}

impl std::fmt::Debug for FastFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastFs").field("root", &self.root).finish()
    }
}

/// Implements [`S3`] for [`FastFs`]: the listed operations go to s3s-fs
/// unchanged, the others as the module says. (A macro writes the whole impl
/// so `async_trait` sees the generated methods.)
macro_rules! s3_impl {
    ($($op:ident($input:ty) -> $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for FastFs {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$op(req).await
                }
            )*

            async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
                if let Some(answer) = plain::get(&self.root, &req.input).await? {
                    return Ok(answer);
                }
                self.get_object_fast(req).await
            }

            async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
                if plain::is_plain_put(&req) {
                    return plain::put(&self.root, req).await;
                }
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                self.synced(bucket, key, self.inner.put_object(req)).await
            }

            async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                self.synced(bucket, key, self.inner.copy_object(req)).await
            }

            async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
                let (upload_id, number) = (req.input.upload_id.clone(), req.input.part_number);
                let answer = parts::upload(&self.root, &self.assemblies, req).await?;
                if let Some(etag) = &answer.output.e_tag {
                    self.part_etags.remember(&self.root, &upload_id, number, etag);
                }
                self.assemblies.part_stored(&self.root, &upload_id);
                Ok(answer)
            }

            async fn upload_part_copy(&self, req: S3Request<UploadPartCopyInput>) -> S3Result<S3Response<UploadPartCopyOutput>> {
                let (upload_id, number) = (req.input.upload_id.clone(), req.input.part_number);
                let mut answer = self.inner.upload_part_copy(req).await?;
                // s3s-fs answered the part's md5: give it the ETag UploadPart would.
                let etag = self.part_etags.hash_stored(&self.root, &upload_id, number).await
                    .ok_or_else(|| s3s::s3_error!(InternalError, "the copied part cannot be read"))?;
                if let Some(result) = answer.output.copy_part_result.as_mut() {
                    result.e_tag = Some(ETag::Strong(etag));
                }
                self.assemblies.part_stored(&self.root, &upload_id);
                Ok(answer)
            }

            async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
                let input = req.input.clone();
                uploads::ensure_open(&self.uploads_root, &input.upload_id)?;
                let mut answer = self.inner.list_parts(req).await?;
                stored_parts::add_assembled(&self.root, &input.upload_id, &mut answer.output);
                self.part_etags.page(&self.root, &input, &mut answer.output).await;
                Ok(answer)
            }

            async fn complete_multipart_upload(&self, req: S3Request<CompleteMultipartUploadInput>) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
                if complete::needs_s3s_fs(&req.input) {
                    return self.complete_in_s3s_fs(req).await;
                }
                complete::complete(&self.root, &self.part_etags, &self.completing, &self.assemblies, req).await
            }

            async fn list_multipart_uploads(&self, req: S3Request<ListMultipartUploadsInput>) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
                uploads::list(&self.uploads_root, req)
            }

            async fn abort_multipart_upload(&self, req: S3Request<AbortMultipartUploadInput>) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
                let upload_id = req.input.upload_id.clone();
                let answer = uploads::abort(&self.uploads_root, req)?;
                self.part_etags.forget_upload(&self.root, &upload_id);
                drop(self.assemblies.take(&self.root, &upload_id));
                Ok(answer)
            }
        }
    };
}

s3_impl! {
    create_bucket(CreateBucketInput) -> CreateBucketOutput;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    head_bucket(HeadBucketInput) -> HeadBucketOutput;
    head_object(HeadObjectInput) -> HeadObjectOutput;
    list_buckets(ListBucketsInput) -> ListBucketsOutput;
    list_objects(ListObjectsInput) -> ListObjectsOutput;
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
}

impl FastFs {
    /// CompleteMultipartUpload by s3s-fs, which reads the parts from their
    /// files: the parts written into the assembly get files first, and
    /// what is left of the upload goes once s3s-fs completed it.
    async fn complete_in_s3s_fs(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        let root = self.root.clone();
        let assembly = self.assemblies.take(&root, &upload_id);
        let given_files = tokio::task::spawn_blocking({
            let (root, upload_id) = (root.clone(), upload_id.clone());
            move || {
                // Nothing more is written into it meanwhile.
                let _held = assembly.as_ref().map(|shared| shared.assembly());
                stored_parts::give_assembled_parts_files(&root, &upload_id)
            }
        })
        .await;
        match given_files {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(s3s::s3_error!(e, InternalError)),
            Err(e) => {
                return Err(s3s::s3_error!(
                    InternalError,
                    "copying the parts out failed: {e}"
                ))
            }
        }
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let answer = self
            .synced(bucket, key, self.inner.complete_multipart_upload(req))
            .await?;
        if let Err(e) = stored_parts::remove_upload_files(&root, &upload_id) {
            eprintln!("warning: removing the parts of completed upload {upload_id}: {e}");
        }
        Ok(answer)
    }

    /// The answer of `store`, an s3s-fs call that stores the object at
    /// `bucket`/`key`, once that object is synced (see
    /// [`files::sync_stored`]).
    async fn synced<T>(
        &self,
        bucket: String,
        key: String,
        store: impl std::future::Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let answer = store.await?;
        let path = files::object_path(&self.root, &bucket, &key)?;
        tokio::task::spawn_blocking(move || files::sync_stored(&path))
            .await
            .map_err(|e| s3s::s3_error!(InternalError, "syncing the object failed: {e}"))?
            .map_err(|e| s3s::s3_error!(e, InternalError))?;
        Ok(answer)
    }

    /// s3s-fs answers (headers, range checks, metadata); the body is then
    /// re-read from the same file in large blocks.
    async fn get_object_fast(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let path = files::object_path(&self.root, &req.input.bucket, &req.input.key)?;
        let range = req.input.range;
        let mut response = self.inner.get_object(req).await?;
        let Some(length) = response
            .output
            .content_length
            .and_then(|l| u64::try_from(l).ok())
        else {
            return Ok(response);
        };
        let Ok(file) = std::fs::File::open(&path) else {
            return Ok(response);
        };
        let Ok(file_len) = file.metadata().map(|m| m.len()) else {
            return Ok(response);
        };
        let start = match range {
            None => 0,
            Some(r) => match r.check(file_len) {
                Ok(r) => r.start,
                Err(_) => return Ok(response),
            },
        };
        response.output.body = Some(StreamingBlob::wrap(FileBlocks::spawn(file, start, length)));
        Ok(response)
    }
}

/// `length` bytes of a file from `start`, read on a blocking thread and
/// handed over in [`READ_BLOCK`]-sized chunks ([`BLOCKS_AHEAD`] read ahead).
struct FileBlocks {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl FileBlocks {
    fn spawn(mut file: std::fs::File, start: u64, length: u64) -> Self {
        let (tx, rx) = mpsc::channel(BLOCKS_AHEAD);
        tokio::task::spawn_blocking(move || {
            use std::io::{Seek, SeekFrom};
            if let Err(e) = file.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut remaining = length;
            while remaining > 0 {
                let want = remaining.min(READ_BLOCK as u64);
                let chunk = read_block(&mut file, want);
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
                remaining -= want;
            }
        });
        FileBlocks { rx }
    }
}

/// The next `want` bytes of `file`, read into memory no one zeroed first
/// (`read_to_end` fills a vector's spare capacity); an error when the file
/// ends sooner.
fn read_block(file: &mut std::fs::File, want: u64) -> std::io::Result<Bytes> {
    let mut block = Vec::with_capacity(want as usize);
    file.take(want).read_to_end(&mut block)?;
    if (block.len() as u64) < want {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Bytes::from(block))
}

impl futures_core::Stream for FileBlocks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn file_blocks_hand_over_the_range_in_blocks_and_fail_on_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let data = test_support::pattern(2 * READ_BLOCK + 1000, 7);
        std::fs::write(&path, &data).unwrap();

        let start = 500;
        let length = (data.len() - start - 10) as u64;
        let file = std::fs::File::open(&path).unwrap();
        let blocks: Vec<Bytes> = FileBlocks::spawn(file, start as u64, length)
            .map(|block| block.unwrap())
            .collect()
            .await;
        let sizes: Vec<usize> = blocks.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [READ_BLOCK, READ_BLOCK, 490]);
        assert!(blocks.concat() == data[start..start + length as usize]);

        // The file is shorter than the range asked for: the last block is
        // an error, not fewer bytes.
        let file = std::fs::File::open(&path).unwrap();
        let answers: Vec<std::io::Result<Bytes>> =
            FileBlocks::spawn(file, 0, data.len() as u64 + 1)
                .collect()
                .await;
        assert_eq!(answers.len(), 3);
        let error = answers[2].as_ref().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
