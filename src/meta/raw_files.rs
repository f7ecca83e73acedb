//! A package record's files read without decoding them.
//!
//! A publish into a package changes its record by one file. Decoding every
//! file record it holds (up to [`super::packages::TAIL_FILES`]) and encoding
//! them again was the largest part of such a publish's work in the
//! component; holding them as the JSON text they are stored as
//! ([`RawFile`]) carries them through unread. What the publish asks of
//! them, whether one has a given name (or, for a retry, its object), is
//! answered by a search of their text, and a file is decoded only when it
//! may be the one.

use memchr::memmem::Finder;

use super::model::{PackageFile, RawFile};

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
/// A file record whose text holds no `\` has no escape in any of its
/// strings, so if one of its strings is `value` (a string that needs no
/// escape in JSON) its text holds `"value"` as it is. Records without that
/// text are skipped unread; the others, and all of them when `value` needs
/// escaping, are decoded to ask `wanted`.
fn newest_holding(
    files: &[RawFile],
    value: &str,
    wanted: impl Fn(&PackageFile) -> bool,
) -> serde_json::Result<Option<PackageFile>> {
    let quoted = serde_json::to_string(value)?;
    let searchable = !quoted[1..quoted.len() - 1].contains('\\');
    let finder = Finder::new(quoted.as_bytes());
    for raw in files.iter().rev() {
        let text = raw.get().as_bytes();
        if searchable && memchr::memchr(b'\\', text).is_none() && finder.find(text).is_none() {
            continue;
        }
        let file: PackageFile = serde_json::from_str(raw.get())?;
        if wanted(&file) {
            return Ok(Some(file));
        }
    }
    Ok(None)
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
    fn a_file_record_that_does_not_decode_is_an_error_when_it_may_match() {
        let files = vec![raw(r#"{"id":"not a number","file_name":"a.bin"}"#)];
        assert!(newest_named(&files, "a.bin").is_err());
    }
}
