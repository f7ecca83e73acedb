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

/// Whether a decoded path has an empty segment (`a//b`, `a/`): two
/// spellings of one stored name, and no file path a client means.
pub fn has_empty_segment(path: &str) -> bool {
    path.split('/').any(str::is_empty)
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

/// Upper bound on the compiled size of a duplicate-exception regex: far
/// above what a 255-character pattern of ordinary classes needs, far below
/// what would let one pattern use up an instance's memory.
pub const EXCEPTION_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a namespace's `generic_duplicate_exception_regex`, anchored as
/// `\A(?:<pattern>)\z`. RE2 syntax as users write it, Perl classes (`\d`,
/// `\w`, `\s`, their negations, `\b`) included; matching stays linear in
/// the input. Names and versions are ASCII, so the Unicode classes used here
/// match exactly what RE2's ASCII ones do.
pub fn compile_exception_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .size_limit(EXCEPTION_REGEX_SIZE_LIMIT)
        .build()
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
    // Joined after decoding, so `a%2F%2Fb` and `a//b` are judged alike.
    let path: Option<String> = path_segments
        .iter()
        .cloned()
        .collect::<Option<Vec<_>>>()
        .map(|segments| segments.join("/"));
    if !path_segments.is_empty() {
        match &path {
            Some(p) if is_traversal(p) || has_empty_segment(p) => invalid.push(InvalidParam {
                param: "path",
                traversal: true,
            }),
            Some(_) => {}
            None => invalid.push(InvalidParam {
                param: "path",
                traversal: false,
            }),
        }
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
    fn empty_path_segments_are_invalid_however_spelled() {
        for path in [
            "t/1.0//a",
            "t/1.0/x//a",
            "t/1.0/a%2F%2Fb/f.bin",
            "t/1.0/a%2F/f.bin",
            "t/1.0/%2Fa/f.bin",
            "t/1.0/a/%2F/f.bin",
        ] {
            assert_eq!(
                coords(path).unwrap_err(),
                "path should be a valid file path",
                "{path}"
            );
        }
        assert_eq!(
            coords("t/1.0/a%2Fb/f.bin").unwrap().stored_file_name,
            "a%2Fb%2Ff.bin"
        );
    }

    #[test]
    fn exception_regexes_take_perl_classes_and_stay_anchored() {
        for (pattern, matching, other) in [
            (r"\d+\.\d+\.\d+", "1.22.333", "1.2"),
            (r"\w+-SNAPSHOT", "tool_2-SNAPSHOT", "tool.2-SNAPSHOT"),
            (r"\s*release", "release", "prerelease"),
            (r"\D+", "abc", "a1"),
            (r"\S+\W\S+", "a-b", "a_b"),
            (r".*\bnightly\b.*", "x-nightly-1", "xnightly"),
            (r"(?i)snapshot", "SnapShot", "snapshots"),
        ] {
            let regex = compile_exception_regex(pattern).unwrap();
            assert!(regex.is_match(matching), "{pattern} ~ {matching}");
            assert!(!regex.is_match(other), "{pattern} !~ {other}");
        }
        assert!(compile_exception_regex("(unclosed").is_err());
        assert!(
            compile_exception_regex(r"(a)\1").is_err(),
            "no backreferences"
        );
        assert!(
            compile_exception_regex(&r"\w{1000}".repeat(25)).is_err(),
            "over the size limit"
        );
    }

    #[test]
    fn too_few_segments_name_no_file() {
        assert_eq!(coords("t/1.0").unwrap_err(), "file_name is invalid");
    }
}

/// Hostile paths: whatever the segments, validation answers without a panic,
/// and what it accepts is always safe to store.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// What hostile segments are made of: name characters, dots, percent
    /// escapes (encoded slashes, dots, percent signs, backslashes, bytes that
    /// are not UTF-8), a lone `%`, and any character at all.
    fn segment() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[A-Za-z0-9._+~@-]{1,4}",
            prop::sample::select(vec![
                "%2F", "%2f", "%2E", "%2e", "%25", "%5C", "%00", "%0A", "%FF", "%C3%A9", "..", ".",
                "%", "~", "@",
            ])
            .prop_map(String::from),
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn accepted_coordinates_are_always_safe(raw in prop::collection::vec(segment(), 0..8)) {
            let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
            match file_coordinates(&raw) {
                Ok(c) => {
                    prop_assert!(is_valid_package_name(&c.package_name));
                    prop_assert!(is_valid_package_version(&c.package_version));
                    prop_assert!(is_valid_file_name(&c.file_name));
                    prop_assert!(c.stored_file_name.len() <= MAX_STORED_NAME_LEN);
                    let stored = decode_segment(&c.stored_file_name).unwrap();
                    prop_assert!(!is_traversal(&stored), "{stored}");
                    prop_assert!(!has_empty_segment(&stored), "{stored}");
                    prop_assert!(stored.ends_with(&c.file_name));
                }
                Err(invalid) => prop_assert!(!invalid.is_empty()),
            }
        }

        #[test]
        fn any_exception_pattern_compiles_or_is_refused(
            pieces in prop::collection::vec(
                prop::sample::select(vec![
                    r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", r"\b", r"\B", "(", ")", "(?:", "(?i)",
                    "*", "+", "?", "{2,5}", "{1000}", "[a-z]", "[^", "]", "|", ".", "^", "$", r"\",
                    "a", "-SNAPSHOT", r"\pL", r"\Q", r"\1", "(?=",
                ]),
                0..24,
            ),
            free in "\\PC{0,20}",
            name in "[A-Za-z0-9._+-]{0,64}",
        ) {
            for pattern in [pieces.concat(), free] {
                if let Ok(regex) = compile_exception_regex(&pattern) {
                    let _ = regex.is_match(&name);
                }
            }
        }
    }
}
