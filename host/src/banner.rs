//! The lines `genreg up` prints once it serves, written and read through one
//! definition: tests, benches and scripts take the registry's URL, the
//! embedded S3 server's endpoint and the administrator token from them.

const SERVING: &str = "genreg serving on ";
const S3_ENDPOINT: &str = "S3 endpoint: ";
const ADMIN_TOKEN: &str = "admin token: ";

pub fn serving_line(url: &str) -> String {
    format!("{SERVING}{url}")
}

pub fn s3_endpoint_line(endpoint: &str, bucket: &str) -> String {
    format!("{S3_ENDPOINT}{endpoint} (bucket {bucket})")
}

/// The last of the banner's lines that [`Banner`] reads.
pub fn admin_token_line(token: &str) -> String {
    format!("{ADMIN_TOKEN}{token}")
}

/// What a reader of `genreg up`'s output has found so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Banner {
    pub url: Option<String>,
    pub s3_endpoint: Option<String>,
    pub admin_token: Option<String>,
}

impl Banner {
    /// Takes in one line of output; `true` once the administrator token,
    /// printed last, has been read.
    pub fn read(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix(SERVING) {
            self.url = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix(S3_ENDPOINT) {
            self.s3_endpoint = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix(ADMIN_TOKEN) {
            self.admin_token = Some(rest.trim().to_string());
        }
        self.admin_token.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_lines_read_back() {
        let mut banner = Banner::default();
        assert!(!banner.read(&serving_line("http://127.0.0.1:3000")));
        assert!(!banner.read(&s3_endpoint_line("http://127.0.0.1:9000", "genreg")));
        assert!(!banner.read("  something else"));
        assert!(banner.read(&admin_token_line("glpat-abc")));
        assert_eq!(
            banner,
            Banner {
                url: Some("http://127.0.0.1:3000".into()),
                s3_endpoint: Some("http://127.0.0.1:9000".into()),
                admin_token: Some("glpat-abc".into()),
            }
        );
    }
}
