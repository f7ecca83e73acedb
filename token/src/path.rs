//! The one rule for "this path lies in that group": namespaces compare
//! case-insensitively (GitLab paths do) and only at segment boundaries, so
//! `acme` holds `acme/tools` and `Acme/Platform/x` but not `acmeinc/tools`.

/// Whether `path` is `group` itself or lies below it (`acme/tools` and
/// `acme` are both within `acme`).
pub fn is_within(path: &str, group: &str) -> bool {
    path.eq_ignore_ascii_case(group) || is_below(path, group)
}

/// Whether `path` lies strictly below `ancestor`: `ancestor`, a `/`, then at
/// least one more character (`acme/platform` is below `acme`; `acme` and
/// `acme/` are not). A `/` byte is always a character boundary, so slicing
/// there is safe whatever the text.
pub fn is_below(path: &str, ancestor: &str) -> bool {
    path.len() > ancestor.len() + 1
        && path.as_bytes()[ancestor.len()] == b'/'
        && path[..ancestor.len()].eq_ignore_ascii_case(ancestor)
}
