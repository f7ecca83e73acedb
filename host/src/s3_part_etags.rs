//! ListParts answers as S3 gives them: s3s-fs lists every part, unsorted,
//! without ETags and without `MaxParts`/`IsTruncated`, while an S3 client
//! (rusty-s3, the component's upload sessions) needs the ETags to complete
//! the upload and pages by `max-parts` and `part-number-marker`.
//! [`PartEtags::page`] sorts the parts, keeps the asked-for page, says
//! whether more follow and gives every part its ETag.
//!
//! A part's ETag is what UploadPart answered (`s3_parts.rs`). It is
//! remembered when the part is stored, and computed from the part's bytes
//! (its file, or its range of the assembly) when it is not known (parts
//! stored before a restart). Entries go when their part does (the upload
//! was completed or aborted).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use s3s::dto::{ETag, ListPartsInput, ListPartsOutput};

use super::stored_parts;

/// Parts in one answer when the request does not say (S3's default).
const DEFAULT_MAX_PARTS: i32 = 1000;

pub struct PartEtags {
    pub(super) known: Mutex<HashMap<PathBuf, String>>,
    /// When this server started: a part stored before may carry the ETag
    /// an earlier version answered.
    started: SystemTime,
}

impl Default for PartEtags {
    fn default() -> Self {
        PartEtags {
            known: Default::default(),
            started: SystemTime::now(),
        }
    }
}

/// Where s3s-fs keeps part `number` of `upload_id` under its root.
pub fn part_path(root: &Path, upload_id: &str, number: i32) -> PathBuf {
    root.join(format!(".upload_id-{upload_id}.part-{number}"))
}

impl PartEtags {
    /// Notes the ETag UploadPart answered for a stored part.
    pub fn remember(&self, root: &Path, upload_id: &str, number: i32, etag: &ETag) {
        let value = match etag {
            ETag::Strong(value) | ETag::Weak(value) => value.clone(),
        };
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(part_path(root, upload_id, number), value);
    }

    /// Turns s3s-fs's listing into the page `input` asked for.
    pub async fn page(&self, root: &Path, input: &ListPartsInput, output: &mut ListPartsOutput) {
        let max_parts = input.max_parts.unwrap_or(DEFAULT_MAX_PARTS).clamp(1, 1000);
        let after = input.part_number_marker.unwrap_or(0);
        let mut parts = output.parts.take().unwrap_or_default();
        parts.retain(|part| part.part_number.is_some_and(|n| n > after));
        parts.sort_by_key(|part| part.part_number);
        let truncated = parts.len() > max_parts as usize;
        parts.truncate(max_parts as usize);
        output.max_parts = Some(max_parts);
        output.part_number_marker = input.part_number_marker;
        output.is_truncated = Some(truncated);
        output.next_part_number_marker = parts.last().and_then(|p| p.part_number);
        output.parts = Some(parts);
        self.fill(root, &input.upload_id, output).await;
    }

    /// Gives every listed part its ETag (on the blocking pool: a part not
    /// remembered is read to hash it).
    async fn fill(&self, root: &Path, upload_id: &str, output: &mut ListPartsOutput) {
        let Some(parts) = output.parts.as_mut() else {
            return;
        };
        for part in parts.iter_mut().filter(|part| part.e_tag.is_none()) {
            let Some(number) = part.part_number else {
                continue;
            };
            let etag = self.etag_of(root, upload_id, number).await;
            part.e_tag = etag.map(ETag::Strong);
        }
        self.forget_gone_parts();
    }

    /// The ETag of a stored part: remembered, or hashed from its
    /// file on the blocking pool; `None` when the part cannot be read.
    pub async fn etag_of(&self, root: &Path, upload_id: &str, number: i32) -> Option<String> {
        match self.lookup(&part_path(root, upload_id, number)) {
            Some(etag) => Some(etag),
            None => self.hash_stored(root, upload_id, number).await,
        }
    }

    /// Hashes a stored part (its file, or its range of the assembly) on the
    /// blocking pool and remembers its ETag (for a part s3s-fs stored,
    /// which answered another); `None` when the part cannot be read.
    pub async fn hash_stored(&self, root: &Path, upload_id: &str, number: i32) -> Option<String> {
        let path = part_path(root, upload_id, number);
        let hashed = tokio::task::spawn_blocking({
            let (root, upload_id) = (root.to_path_buf(), upload_id.to_string());
            move || {
                let part = stored_parts::stored_part(&root, &upload_id, number)?;
                super::parts::etag_of_stored(&part)
            }
        })
        .await
        .ok()
        .flatten()?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(path, hashed.clone());
        Some(hashed)
    }

    /// Drops the entries of every part of `upload_id` (it was completed).
    pub fn forget_upload(&self, root: &Path, upload_id: &str) {
        let prefix = root.join(format!(".upload_id-{upload_id}.part-"));
        let prefix = prefix.to_string_lossy();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|path, _| !path.to_string_lossy().starts_with(prefix.as_ref()));
    }

    /// Whether the part at `path` was stored before this server started
    /// (so an earlier version may have answered its ETag).
    pub fn stored_before_start(&self, path: &Path) -> bool {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < self.started)
    }

    fn lookup(&self, path: &Path) -> Option<String> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(path).cloned()
    }

    /// Drops the entries of parts that are gone: neither their file nor
    /// their marker in the assembly is left.
    fn forget_gone_parts(&self) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|path, _| {
            path.exists() || stored_parts::marker_of_part_path(path).is_some_and(|m| m.exists())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::Part;

    fn listing(numbers: &[i32]) -> ListPartsOutput {
        let parts = numbers
            .iter()
            .map(|&number| Part {
                part_number: Some(number),
                size: Some(4),
                ..Default::default()
            })
            .collect();
        ListPartsOutput {
            parts: Some(parts),
            ..Default::default()
        }
    }

    fn input(max_parts: i32, after: Option<i32>) -> ListPartsInput {
        ListPartsInput {
            upload_id: "u".into(),
            max_parts: Some(max_parts),
            part_number_marker: after,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn parts_are_sorted_paged_and_given_their_etags() {
        let root = tempfile::tempdir().unwrap();
        let etags = PartEtags::default();
        for number in 1..=3 {
            std::fs::write(part_path(root.path(), "u", number), b"part").unwrap();
        }
        etags.remember(root.path(), "u", 1, &ETag::Strong("remembered".into()));

        let mut first = listing(&[3, 1, 2]);
        etags.page(root.path(), &input(2, None), &mut first).await;
        let parts = first.parts.unwrap();
        let numbers: Vec<_> = parts.iter().map(|p| p.part_number.unwrap()).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(
            (first.is_truncated, first.next_part_number_marker),
            (Some(true), Some(2))
        );
        assert_eq!(parts[0].e_tag, Some(ETag::Strong("remembered".into())));
        // Not remembered: hashed from the file, as UploadPart would have.
        let hashed = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b"part"));
        assert_eq!(parts[1].e_tag, Some(ETag::Strong(hashed)));

        let mut rest = listing(&[3, 1, 2]);
        etags.page(root.path(), &input(2, Some(2)), &mut rest).await;
        let numbers: Vec<_> = rest
            .parts
            .unwrap()
            .iter()
            .map(|p| p.part_number.unwrap())
            .collect();
        assert_eq!(numbers, [3]);
        assert_eq!(rest.is_truncated, Some(false));
    }

    #[test]
    fn entries_of_gone_parts_are_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let etags = PartEtags::default();
        etags.remember(root.path(), "u", 1, &ETag::Strong("x".into()));
        etags.forget_gone_parts();
        assert!(etags.lookup(&part_path(root.path(), "u", 1)).is_none());
    }
}
