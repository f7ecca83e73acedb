//! Spin variables turned into typed configuration, read once per request.

use genreg_token::Secrets;
use std::time::Duration;

use crate::error::ApiError;

/// S3 refuses multipart parts smaller than this (except the last one).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
pub const DEFAULT_MAX_FILE_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// GitLab's default maximum lifetime of an access token.
pub const DEFAULT_MAX_TOKEN_LIFETIME_DAYS: u64 = 365;

/// How long the component waits on object storage before answering 504.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Timeouts {
    /// To open a connection (TCP and TLS).
    pub connect: Duration,
    /// From the end of a request to the first byte of S3's answer.
    pub first_byte: Duration,
    /// Between two bytes of an answer, and while S3 accepts no more of a body.
    pub between_bytes: Duration,
}

pub const DEFAULT_S3_TIMEOUTS: S3Timeouts = S3Timeouts {
    connect: Duration::from_secs(10),
    first_byte: Duration::from_secs(60),
    between_bytes: Duration::from_secs(30),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadMode {
    /// Stream the bytes through the component.
    Proxy,
    /// Answer 302 to a short-lived presigned URL of the object.
    Redirect,
    /// Proxy files the host can send, redirect those larger than its
    /// response limit ([`HostLimits::max_response_body`]).
    Auto,
}

/// What the platform running the component accepts and sends, as its
/// operator declares them in the `max_request_body` and `max_response_body`
/// variables (hosted Spin platforms cap both at 10 MiB; `genreg up` sets
/// them from its own limits). `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostLimits {
    pub max_request_body: Option<u64>,
    pub max_response_body: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub s3: S3Settings,
    /// The first signs, all verify.
    pub token_secrets: Secrets,
    /// `None` means unlimited.
    pub max_file_size: Option<u64>,
    pub download_mode: DownloadMode,
    /// Base URL clients reach the registry at, without a trailing slash.
    pub public_url: String,
    /// Bodies larger than this go up as multipart uploads of parts this size.
    pub part_size: u64,
    /// The longest an access token issued through the API may live, in
    /// days; `None` means no limit.
    pub max_token_lifetime_days: Option<u64>,
    pub s3_timeouts: S3Timeouts,
    pub host_limits: HostLimits,
}

impl Config {
    /// Builds the configuration from a variable lookup (Spin's
    /// `variables::get`, or a map in tests). Missing optional variables take
    /// their defaults; missing required ones are a server error.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Config, ApiError> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| ApiError::internal(format!("variable {name} is not set")))
        };
        let optional = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let bytes = |name: &str, default: u64| -> Result<u64, ApiError> {
            match optional(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::internal(format!("variable {name} is not a number"))),
            }
        };
        // Milliseconds; 0 would fail every request, so it means the default.
        let millis = |name: &str, default: Duration| -> Result<Duration, ApiError> {
            Ok(match bytes(name, 0)? {
                0 => default,
                ms => Duration::from_millis(ms),
            })
        };
        let token_secrets = Secrets::parse(&required("token_secret")?)
            .map_err(|_| ApiError::internal("variable token_secret holds no secret"))?;
        let download_mode = match optional("download_mode").as_deref().map(str::trim) {
            None | Some("proxy") => DownloadMode::Proxy,
            Some("redirect") => DownloadMode::Redirect,
            Some("auto") => DownloadMode::Auto,
            Some(other) => {
                return Err(ApiError::internal(format!(
                    "variable download_mode is {other:?}, expected proxy, redirect or auto"
                )))
            }
        };
        let max_file_size = match bytes("max_file_size", DEFAULT_MAX_FILE_SIZE)? {
            0 => None,
            n => Some(n),
        };
        // Bytes; 0 (or unset) means the host sets no limit.
        let host_limit = |name: &str| -> Result<Option<u64>, ApiError> {
            Ok(Some(bytes(name, 0)?).filter(|&n| n > 0))
        };
        let host_limits = HostLimits {
            max_request_body: host_limit("max_request_body")?,
            max_response_body: host_limit("max_response_body")?,
        };
        Ok(Config {
            s3: S3Settings {
                endpoint: required("s3_endpoint")?.trim_end_matches('/').to_string(),
                bucket: required("s3_bucket")?,
                region: optional("s3_region").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: required("s3_access_key_id")?,
                secret_access_key: required("s3_secret_access_key")?,
            },
            token_secrets,
            max_file_size,
            download_mode,
            public_url: optional("public_url")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            part_size: bytes("s3_part_size", DEFAULT_PART_SIZE)?.max(MIN_PART_SIZE),
            max_token_lifetime_days: match bytes(
                "max_token_lifetime_days",
                DEFAULT_MAX_TOKEN_LIFETIME_DAYS,
            )? {
                0 => None,
                days => Some(days),
            },
            s3_timeouts: S3Timeouts {
                connect: millis("s3_connect_timeout_ms", DEFAULT_S3_TIMEOUTS.connect)?,
                first_byte: millis("s3_first_byte_timeout_ms", DEFAULT_S3_TIMEOUTS.first_byte)?,
                between_bytes: millis(
                    "s3_between_bytes_timeout_ms",
                    DEFAULT_S3_TIMEOUTS.between_bytes,
                )?,
            },
            host_limits,
        })
    }
}

impl Config {
    /// Without a configured `public_url`, links (pagination, `web_url`)
    /// point at the origin the request was sent to, from `spin-full-url`
    /// (set by Spin and by genreg), so they stay absolute as GitLab's are and
    /// clients such as python-gitlab can follow them.
    pub fn fall_back_to_origin(&mut self, full_url: Option<&str>) {
        if !self.public_url.is_empty() {
            return;
        }
        let origin = full_url
            .and_then(|text| url::Url::parse(text).ok())
            .map(|url| url.origin())
            .filter(url::Origin::is_tuple);
        if let Some(origin) = origin {
            self.public_url = origin.ascii_serialization();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ApiError> {
        let mut vars: HashMap<&str, &str> = HashMap::from([
            ("s3_endpoint", "http://127.0.0.1:9000/"),
            ("s3_bucket", "b"),
            ("s3_access_key_id", "k"),
            ("s3_secret_access_key", "s"),
            ("token_secret", "new,old"),
        ]);
        vars.extend(pairs.iter().copied());
        Config::from_variables(|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_apply_when_optional_variables_are_empty() {
        let c = config(&[("max_file_size", ""), ("download_mode", "")]).unwrap();
        assert_eq!(c.s3.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.s3.region, "us-east-1");
        assert_eq!(c.max_file_size, Some(DEFAULT_MAX_FILE_SIZE));
        assert_eq!(c.download_mode, DownloadMode::Proxy);
        assert_eq!(c.token_secrets, Secrets::parse("new,old").unwrap());
        assert_eq!(c.part_size, DEFAULT_PART_SIZE);
        assert_eq!(c.s3_timeouts, DEFAULT_S3_TIMEOUTS);
    }

    #[test]
    fn s3_timeouts_are_read_in_milliseconds() {
        let c = config(&[
            ("s3_connect_timeout_ms", "1500"),
            ("s3_first_byte_timeout_ms", "250"),
            ("s3_between_bytes_timeout_ms", "0"),
        ])
        .unwrap();
        assert_eq!(c.s3_timeouts.connect, Duration::from_millis(1500));
        assert_eq!(c.s3_timeouts.first_byte, Duration::from_millis(250));
        assert_eq!(
            c.s3_timeouts.between_bytes,
            DEFAULT_S3_TIMEOUTS.between_bytes
        );
        assert!(config(&[("s3_first_byte_timeout_ms", "soon")]).is_err());
    }

    #[test]
    fn zero_max_file_size_means_unlimited_and_parts_have_a_floor() {
        let c = config(&[("max_file_size", "0"), ("s3_part_size", "1024")]).unwrap();
        assert_eq!(c.max_file_size, None);
        assert_eq!(c.part_size, MIN_PART_SIZE);
    }

    #[test]
    fn token_lifetime_defaults_to_a_year_and_zero_lifts_the_limit() {
        assert_eq!(config(&[]).unwrap().max_token_lifetime_days, Some(365));
        let c = config(&[("max_token_lifetime_days", "30")]).unwrap();
        assert_eq!(c.max_token_lifetime_days, Some(30));
        let c = config(&[("max_token_lifetime_days", "0")]).unwrap();
        assert_eq!(c.max_token_lifetime_days, None);
        assert!(config(&[("max_token_lifetime_days", "a year")]).is_err());
    }

    #[test]
    fn host_limits_are_bytes_and_unset_or_zero_means_none() {
        assert_eq!(config(&[]).unwrap().host_limits, HostLimits::default());
        let c = config(&[
            ("max_request_body", "10485760"),
            ("max_response_body", "0"),
            ("download_mode", "auto"),
        ])
        .unwrap();
        assert_eq!(c.host_limits.max_request_body, Some(10 << 20));
        assert_eq!(c.host_limits.max_response_body, None);
        assert_eq!(c.download_mode, DownloadMode::Auto);
        assert!(config(&[("max_response_body", "10MiB")]).is_err());
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(config(&[("download_mode", "teleport")]).is_err());
        assert!(config(&[("max_file_size", "lots")]).is_err());
        assert!(config(&[("token_secret", " , ")]).is_err());
    }

    #[test]
    fn links_fall_back_to_the_origin_the_request_came_to() {
        let mut unset = config(&[]).unwrap();
        unset.fall_back_to_origin(Some("http://127.0.0.1:3000/api/v4/projects?page=2"));
        assert_eq!(unset.public_url, "http://127.0.0.1:3000");
        let mut set = config(&[("public_url", "https://packages.example.com/")]).unwrap();
        set.fall_back_to_origin(Some("http://10.0.0.7:80/api/v4/projects"));
        assert_eq!(set.public_url, "https://packages.example.com");
        for unusable in [None, Some("/api/v4/projects"), Some("not a url")] {
            let mut config = config(&[]).unwrap();
            config.fall_back_to_origin(unusable);
            assert_eq!(config.public_url, "", "{unusable:?}");
        }
    }
}
