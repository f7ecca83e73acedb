//! Records read without decoding them: a package record's files and an
//! index shard's entries, held as the JSON text they are stored as.
//!
//! A publish into a package changes its record by one file, and a new
//! package adds one entry to its index shard. Decoding every file (up to
//! [`super::packages::TAIL_FILES`]) or entry (up to
//! [`super::INDEX_SHARD_SIZE`]) and encoding them again was the largest part
//! of such a publish's work in the component; held as text they are carried
//! through unread. What the publish asks of them (which file has a name,
//! or for a retry an object; which entries are still being created) is
//! answered by a search of their text, and only those that may be the
//! ones are decoded.
//!
//! The search rests on one fact of JSON: a value whose text holds no `\`
//! has no escape in any of its strings, so each of its strings and keys
//! appears in it quoted, exactly as written.

use memchr::memmem::Finder;

use serde_json::value::RawValue;

use super::model::{PackageFile, PackageSummary, RawFile};

/// The newest of `files` (oldest first) stored under `name`, decoded.
pub fn newest_named(files: &[RawFile], name: &str) -> serde_json::Result<Option<PackageFile>> {
    newest_holding(files, name, |file| file.file_name == name)
}

/// The file of `files` with this id and object, decoded.
pub fn with_object(
    files: &[RawFile],
    id: u64,
    object_key: &str,
) -> serde_json::Result<Option<PackageFile>> {
    newest_holding(files, object_key, |file| {
        file.id == id && file.object_key == object_key
    })
}

/// The newest of `files` that is `wanted`, among those that may hold the
/// string `value` (a `wanted` file must hold it in one of its fields).
///
/// Records whose text holds no `\` nor `"value"` cannot be the one and
/// are skipped unread; the others, and all of them when `value` itself
/// needs escaping, are decoded to ask `wanted`.
fn newest_holding(
    files: &[RawFile],
    value: &str,
    wanted: impl Fn(&PackageFile) -> bool,
) -> serde_json::Result<Option<PackageFile>> {
    let search = Search::new(value)?;
    for raw in files.iter().rev() {
        if !search.may_hold(raw) {
            continue;
        }
        let file: PackageFile = serde_json::from_str(raw.get())?;
        if wanted(&file) {
            return Ok(Some(file));
        }
    }
    Ok(None)
}

/// The entries of an index shard that may be creating (those whose text
/// may hold the key `creating`: see `meta::packages`), decoded, with their
/// positions.
pub fn maybe_creating(
    entries: &[Box<RawValue>],
) -> serde_json::Result<Vec<(usize, PackageSummary)>> {
    let search = Search::new("creating")?;
    let mut decoded = Vec::new();
    for (i, raw) in entries.iter().enumerate() {
        if search.may_hold(raw) {
            decoded.push((i, serde_json::from_str(raw.get())?));
        }
    }
    Ok(decoded)
}

/// A search of JSON texts for one string, as a key or a value.
struct Search {
    /// The string as JSON writes it, quotes included.
    quoted: Finder<'static>,
    /// Whether the string needs no escape, so that a text without `\`
    /// holds it only as `quoted`.
    plain: bool,
}

impl Search {
    fn new(value: &str) -> serde_json::Result<Search> {
        let quoted = serde_json::to_string(value)?;
        let plain = !quoted[1..quoted.len() - 1].contains('\\');
        Ok(Search {
            quoted: Finder::new(quoted.as_bytes()).into_owned(),
            plain,
        })
    }

    /// Whether `raw` may hold the string: false only when it cannot.
    fn may_hold(&self, raw: &RawValue) -> bool {
        let text = raw.get().as_bytes();
        !self.plain || memchr::memchr(b'\\', text).is_some() || self.quoted.find(text).is_some()
    }
}

/// Every one of `files`, decoded.
pub fn decode_all(files: &[RawFile]) -> serde_json::Result<Vec<PackageFile>> {
    files
        .iter()
        .map(|raw| serde_json::from_str(raw.get()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, name: &str) -> PackageFile {
        PackageFile {
            id,
            file_name: name.to_string(),
            size: 1,
            md5: "m".into(),
            sha1: "s".into(),
            sha256: "h".into(),
            object_key: format!("objects/{id}"),
            created_at: 0,
        }
    }

    fn raw(text: &str) -> RawFile {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_newest_file_of_a_name_is_found_and_others_are_not() {
        let files: Vec<RawFile> = [file(1, "a.bin"), file(2, "b.bin"), file(3, "a.bin")]
            .iter()
            .map(PackageFile::to_raw)
            .collect();
        assert_eq!(newest_named(&files, "a.bin").unwrap().unwrap().id, 3);
        assert_eq!(newest_named(&files, "b.bin").unwrap().unwrap().id, 2);
        // A name that is part of another's, or another field's value.
        assert_eq!(newest_named(&files, "a.bi").unwrap(), None);
        assert_eq!(newest_named(&files, "objects/1").unwrap(), None);
        assert_eq!(newest_named(&files, "m").unwrap(), None);
    }

    #[test]
    fn a_file_is_found_by_its_id_and_object() {
        let files: Vec<RawFile> = [file(1, "a.bin"), file(2, "a.bin")]
            .iter()
            .map(PackageFile::to_raw)
            .collect();
        assert_eq!(with_object(&files, 1, "objects/1").unwrap().unwrap().id, 1);
        assert_eq!(with_object(&files, 2, "objects/1").unwrap(), None);
        assert_eq!(with_object(&files, 3, "objects/3").unwrap(), None);
    }

    #[test]
    fn names_written_with_escapes_are_found() {
        // Valid JSON another writer could have stored: `\/` and `\u` escapes.
        let escaped = raw(
            r#"{"id":7,"file_name":"dir%2F\u0061.bin","size":1,"md5":"m","sha1":"s","sha256":"h","object_key":"o\/7","created_at":0}"#,
        );
        let spaced = raw(
            r#"{ "id" : 8 , "file_name" : "b.bin" , "size":1,"md5":"m","sha1":"s","sha256":"h","object_key":"o","created_at":0}"#,
        );
        let files = vec![escaped, spaced];
        assert_eq!(newest_named(&files, "dir%2Fa.bin").unwrap().unwrap().id, 7);
        assert_eq!(newest_named(&files, "b.bin").unwrap().unwrap().id, 8);
        // Names that need escaping themselves are compared decoded.
        let quoted = vec![
            file(9, "say \"hi\"").to_raw(),
            file(10, "back\\slash").to_raw(),
        ];
        assert_eq!(newest_named(&quoted, "say \"hi\"").unwrap().unwrap().id, 9);
        assert_eq!(
            newest_named(&quoted, "back\\slash").unwrap().unwrap().id,
            10
        );
        assert_eq!(newest_named(&quoted, "say").unwrap(), None);
    }

    #[test]
    fn every_creating_entry_is_decoded_and_few_others() {
        let entries: Vec<Box<RawValue>> = [
            r#"{"id":1,"name":"a","version":"1","status":"default","created_at":0}"#,
            r#"{"id":2,"name":"a","version":"2","status":"default","created_at":0,"creating":5}"#,
            // Named like the key: decoded, and found settled.
            r#"{"id":3,"name":"creating","version":"1","status":"default","created_at":0}"#,
            // The key written with an escape.
            r#"{"id":4,"name":"a","version":"4","status":"default","created_at":0,"creating":6}"#,
            r#"{"id":5,"name":"a","version":"5","status":"default","created_at":0,"pending":true,"creating":7}"#,
        ]
        .into_iter()
        .map(raw)
        .collect();
        let decoded = maybe_creating(&entries).unwrap();
        let positions: Vec<usize> = decoded.iter().map(|(i, _)| *i).collect();
        assert_eq!(positions, [1, 2, 3, 4]);
        let creating: Vec<Option<i64>> = decoded.iter().map(|(_, e)| e.creating).collect();
        assert_eq!(creating, [Some(5), None, Some(6), Some(7)]);
    }

    #[test]
    fn a_file_record_that_does_not_decode_is_an_error_when_it_may_match() {
        let files = vec![raw(r#"{"id":"not a number","file_name":"a.bin"}"#)];
        assert!(newest_named(&files, "a.bin").is_err());
    }
}
