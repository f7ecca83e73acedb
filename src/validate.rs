//! Name, version, path and file-name rules of GitLab's generic packages API.
//!
//! Every value is checked after exactly one URL-decoding. Two kinds of
//! failure exist, each with GitLab's message: a value that could walk out of
//! its place (`<param> should be a valid file path`) and a value outside the
//! allowed characters (`<param> is invalid`).

use percent_encoding::percent_decode_str;

/// Longest package name, version or file name we accept (GitLab stores them
/// in 255-character columns).
pub const MAX_NAME_LEN: usize = 255;
/// Longest `path/file_name` we store.
pub const MAX_STORED_NAME_LEN: usize = 1024;

/// One rejected parameter: its name and whether it failed the traversal check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParam {
    pub param: &'static str,
    pub traversal: bool,
}

impl InvalidParam {
    pub fn message(&self) -> String {
        if self.traversal {
            format!("{} should be a valid file path", self.param)
        } else {
            format!("{} is invalid", self.param)
        }
    }
}

/// Joins several failures the way GitLab's API does: `a is invalid, b is invalid`.
pub fn join_messages(invalid: &[InvalidParam]) -> String {
    invalid
        .iter()
        .map(InvalidParam::message)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes one URL path segment once. `None` when the bytes are not UTF-8.
pub fn decode_segment(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Whether a decoded value could be used to escape its directory: `.` or `..`
/// as a segment, a leading `/`, a backslash, a control character such as a
/// newline, or a second layer of percent-encoding.
pub fn is_traversal(value: &str) -> bool {
    value.starts_with('/')
        || value.contains('\\')
        || value.chars().any(char::is_control)
        || value
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        || has_percent_escape(value)
}

fn has_percent_escape(value: &str) -> bool {
    value
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// `^[A-Za-z0-9._+-]+$`
pub fn is_valid_package_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// `^[A-Za-z0-9_.+-]+$` with no `..` anywhere.
pub fn is_valid_package_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= MAX_NAME_LEN
        && !version.contains("..")
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
}

/// `^[A-Za-z0-9._+~@-]+$`, not starting or ending with `~` or `@`.
pub fn is_valid_file_name(name: &str) -> bool {
    let edge_ok = |b: Option<&u8>| !matches!(b, Some(b'~' | b'@'));
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && edge_ok(name.as_bytes().first())
        && edge_ok(name.as_bytes().last())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~@-".contains(&b))
}

/// The coordinates of one file in the generic registry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCoordinates {
    pub package_name: String,
    pub package_version: String,
    /// The stored file name: `path/file_name` URL-encoded as one component
    /// (`linux%2Famd64%2Ftool.tar.gz`), or the file name alone.
    pub stored_file_name: String,
    /// The last segment alone, for `Content-Disposition`.
    pub file_name: String,
}

/// Validates the raw (still percent-encoded) segments after `generic/`:
/// package name, version, optional path segments, and the file name last.
pub fn file_coordinates(raw: &[&str]) -> Result<FileCoordinates, Vec<InvalidParam>> {
    let mut invalid = Vec::new();
    if raw.len() < 3 {
        invalid.push(InvalidParam {
            param: "file_name",
            traversal: false,
        });
        return Err(invalid);
    }
    let decoded: Vec<Option<String>> = raw.iter().map(|s| decode_segment(s)).collect();
    let check = |param: &'static str,
                 value: &Option<String>,
                 valid: fn(&str) -> bool,
                 invalid: &mut Vec<InvalidParam>| {
        match value {
            Some(v) if is_traversal(v) => invalid.push(InvalidParam {
                param,
                traversal: true,
            }),
            Some(v) if valid(v) => {}
            _ => invalid.push(InvalidParam {
                param,
                traversal: false,
            }),
        }
    };
    check(
        "package_name",
        &decoded[0],
        is_valid_package_name,
        &mut invalid,
    );
    check(
        "package_version",
        &decoded[1],
        is_valid_package_version,
        &mut invalid,
    );
    let path_segments = &decoded[2..decoded.len() - 1];
    let path: Option<String> = path_segments
        .iter()
        .map(|s| s.clone().filter(|s| !s.is_empty()))
        .collect::<Option<Vec<_>>>()
        .map(|segments| segments.join("/"));
    if !path_segments.is_empty() {
        check("path", &path, |_| true, &mut invalid);
    }
    check(
        "file_name",
        &decoded[decoded.len() - 1],
        is_valid_file_name,
        &mut invalid,
    );
    if !invalid.is_empty() {
        return Err(invalid);
    }
    let file_name = decoded[decoded.len() - 1].clone().unwrap_or_default();
    let stored_file_name = match path.filter(|_| !path_segments.is_empty()) {
        Some(path) => encode_component(&format!("{path}/{file_name}")),
        None => file_name.clone(),
    };
    if stored_file_name.len() > MAX_STORED_NAME_LEN {
        return Err(vec![InvalidParam {
            param: "path",
            traversal: false,
        }]);
    }
    Ok(FileCoordinates {
        package_name: decoded[0].clone().unwrap_or_default(),
        package_version: decoded[1].clone().unwrap_or_default(),
        stored_file_name,
        file_name,
    })
}

/// Percent-encodes everything but unreserved characters, as Ruby's
/// `ERB::Util.url_encode` does (GitLab's encoding of `path/file_name`).
pub fn encode_component(value: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(value, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coords(path: &str) -> Result<FileCoordinates, String> {
        let raw: Vec<&str> = path.split('/').collect();
        file_coordinates(&raw).map_err(|e| join_messages(&e))
    }

    #[test]
    fn plain_coordinates_are_accepted() {
        let c = coords("my-tool/1.2.3/tool.tar.gz").unwrap();
        assert_eq!(c.package_name, "my-tool");
        assert_eq!(c.package_version, "1.2.3");
        assert_eq!(c.stored_file_name, "tool.tar.gz");
        assert_eq!(c.file_name, "tool.tar.gz");
    }

    #[test]
    fn path_segments_are_stored_encoded_as_one_component() {
        let c = coords("tool/1.0.0/linux/amd64/tool.tar.gz").unwrap();
        assert_eq!(c.stored_file_name, "linux%2Famd64%2Ftool.tar.gz");
        assert_eq!(c.file_name, "tool.tar.gz");
    }

    #[test]
    fn characters_outside_the_rules_are_invalid() {
        assert_eq!(
            coords("my tool/1.0/a").unwrap_err(),
            "package_name is invalid"
        );
        assert_eq!(
            coords("t/1.0..1/a").unwrap_err(),
            "package_version is invalid"
        );
        assert_eq!(coords("t/1.0/~a").unwrap_err(), "file_name is invalid");
        assert_eq!(coords("t/1.0/a@").unwrap_err(), "file_name is invalid");
        assert_eq!(
            coords("t%C3%A9/1%2F0/a").unwrap_err(),
            "package_name is invalid, package_version is invalid"
        );
        assert_eq!(
            coords("t/1.0/caf%C3%A9").unwrap_err(),
            "file_name is invalid"
        );
    }

    #[test]
    fn traversal_is_reported_as_an_invalid_file_path() {
        for (path, param) in [
            ("../1.0/a", "package_name"),
            ("t/%2E%2E/a", "package_version"),
            ("t/1.0/..", "file_name"),
            ("t/1.0/%252e%252e/a", "path"),
            ("t/1.0/x/..%2F..%2Fetc/a", "path"),
            ("t/1.0/x%5C..%5Cy/a", "path"),
            ("t/1.0/%2Fetc/a", "path"),
            ("t/1.0/a%0Ab/a", "path"),
            ("t/1.0/a%2500", "file_name"),
        ] {
            assert_eq!(
                coords(path).unwrap_err(),
                format!("{param} should be a valid file path"),
                "{path}"
            );
        }
    }

    #[test]
    fn file_names_allow_their_extra_characters() {
        assert!(is_valid_file_name("a+b~c@d-e_f.g"));
        assert!(!is_valid_file_name("@a"));
        assert!(!is_valid_file_name(""));
        assert!(!is_valid_file_name(&"a".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn empty_path_segments_are_invalid() {
        assert_eq!(coords("t/1.0//a").unwrap_err(), "path is invalid");
    }

    #[test]
    fn too_few_segments_name_no_file() {
        assert_eq!(coords("t/1.0").unwrap_err(), "file_name is invalid");
    }
}
