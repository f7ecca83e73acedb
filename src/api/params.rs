//! The one reader of request parameters, wherever a GitLab client puts
//! them: a JSON object body (python-gitlab), a form body (`curl --data`),
//! or the query string. A list (`scopes`) is a JSON array, repeated
//! `scopes[]=` form fields, or one comma-separated value. GitLab's messages
//! for missing and invalid parameters are written here once.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::http::Request;

/// The largest body a JSON or form endpoint reads (every endpoint but the
/// generic file upload); more answers 413.
pub const MAX_BODY: usize = 64 * 1024;

/// `<name> is missing`
pub fn missing(name: &str) -> ApiError {
    ApiError::InvalidParams(missing_message(name))
}

pub fn missing_message(name: &str) -> String {
    format!("{name} is missing")
}

/// `<name> does not have a valid value`
pub fn invalid_value(name: &str) -> ApiError {
    ApiError::InvalidParams(invalid_value_message(name))
}

pub fn invalid_value_message(name: &str) -> String {
    format!("{name} does not have a valid value")
}

/// `<name> is invalid`
pub fn invalid(name: &str) -> ApiError {
    ApiError::InvalidParams(format!("{name} is invalid"))
}

/// GitLab's 400 for a JSON body that is not a JSON object.
fn invalid_json() -> ApiError {
    ApiError::BadRequest("the JSON body is invalid".into())
}

pub struct Params {
    json: Map<String, Value>,
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The query string alone (`GET` and `DELETE`).
    pub fn query(request: &Request) -> Params {
        Params {
            json: Map::new(),
            pairs: request.query.clone(),
        }
    }

    /// The body (JSON or form, by `Content-Type`), then the query string.
    pub fn parse(request: &Request, body: &[u8]) -> ApiResult<Params> {
        let is_json = request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        let mut fields = Params {
            json: Map::new(),
            pairs: Vec::new(),
        };
        if is_json && !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice(body) {
                Ok(Value::Object(map)) => fields.json = map,
                _ => return Err(invalid_json()),
            }
        } else if !is_json {
            fields.pairs = form_urlencoded::parse(body).into_owned().collect();
        }
        fields.pairs.extend(request.query.iter().cloned());
        Ok(fields)
    }

    /// The fields of a JSON body, for unit tests.
    #[cfg(test)]
    pub fn from_json(body: &str) -> Params {
        let request = Request::new(
            crate::http::Method::Post,
            "/x",
            vec![("content-type".into(), b"application/json".to_vec())],
        );
        Params::parse(&request, body.as_bytes()).expect("valid JSON")
    }

    /// A single value; numbers and booleans as their text. Empty counts as
    /// absent.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw_text(name).filter(|v| !v.trim().is_empty())
    }

    /// A single value as given, empty included (to clear a setting).
    pub fn raw_text(&self, name: &str) -> Option<String> {
        let value = match self.json.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        value.or_else(|| {
            self.pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// A required single value: `<name> is missing` without one.
    pub fn required(&self, name: &str) -> ApiResult<String> {
        self.text(name).ok_or_else(|| missing(name))
    }

    /// A value given, possibly as null or empty (to clear it): `None` when
    /// absent, `Some(None)` when null or empty.
    pub fn nullable_text(&self, name: &str) -> Option<Option<String>> {
        if self.json.get(name).is_some_and(Value::is_null) {
            return Some(None);
        }
        self.raw_text(name)
            .map(|v| Some(v).filter(|v| !v.is_empty()))
    }

    /// One of `allowed`, or `default` when absent; anything else adds
    /// `<name> does not have a valid value` to `problems` (GitLab reports
    /// every invalid parameter at once) and gives `default`.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
        default: &'static str,
        problems: &mut Vec<String>,
    ) -> &'static str {
        let Some(value) = self.raw_text(name) else {
            return default;
        };
        match allowed.iter().find(|a| **a == value) {
            Some(found) => found,
            None => {
                problems.push(invalid_value_message(name));
                default
            }
        }
    }

    /// A list of values, `None` when the field is absent.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        if let Some(value) = self.json.get(name) {
            return match value {
                Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                ),
                Value::String(s) => Some(split_list(s)),
                Value::Null => None,
                other => Some(vec![other.to_string()]),
            };
        }
        let bracketed = format!("{name}[]");
        let values: Vec<String> = self
            .pairs
            .iter()
            .filter(|(n, _)| *n == bracketed || n == name)
            .flat_map(|(_, v)| split_list(v))
            .collect();
        (!values.is_empty()).then_some(values)
    }

    /// A field of a JSON body as it came (objects and arrays of objects,
    /// which form fields cannot carry).
    pub fn json_value(&self, name: &str) -> Option<&Value> {
        self.json.get(name).filter(|v| !v.is_null())
    }

    /// Whether a form field or query parameter with this name, or an array
    /// or hash form of it (`name[]`, `name[][key]`), came.
    pub fn has_form_field(&self, name: &str) -> bool {
        self.pairs
            .iter()
            .any(|(n, _)| n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('[')))
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn request(path: &str, json: bool) -> Request {
        let headers = if json {
            vec![("content-type".to_string(), b"application/json".to_vec())]
        } else {
            vec![]
        };
        Request::new(Method::Post, path, headers)
    }

    #[test]
    fn json_bodies_give_texts_and_lists() {
        let f = Params::parse(
            &request("/x", true),
            br#"{"name":"ci","scopes":["api","read_api"],"access_level":30,"expires_at":null}"#,
        )
        .unwrap();
        assert_eq!(f.text("name").as_deref(), Some("ci"));
        assert_eq!(f.text("access_level").as_deref(), Some("30"));
        assert_eq!(f.text("expires_at"), None);
        assert_eq!(f.list("scopes").unwrap(), vec!["api", "read_api"]);
        assert_eq!(f.list("other"), None);
    }

    #[test]
    fn form_bodies_and_queries_give_texts_and_lists() {
        let f = Params::parse(
            &request("/x?expires_in=60", false),
            b"name=ci&scopes[]=api&scopes[]=read_api&username=",
        )
        .unwrap();
        assert_eq!(f.text("name").as_deref(), Some("ci"));
        assert_eq!(f.text("expires_in").as_deref(), Some("60"));
        assert_eq!(f.text("username"), None);
        assert_eq!(f.list("scopes").unwrap(), vec!["api", "read_api"]);
        let f = Params::parse(&request("/x", false), b"scopes=api,read_api").unwrap();
        assert_eq!(f.list("scopes").unwrap(), vec!["api", "read_api"]);
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        assert!(Params::parse(&request("/x", true), b"{nope").is_err());
        assert!(Params::parse(&request("/x", true), b"[1]").is_err());
        assert!(Params::parse(&request("/x", true), b"").is_ok());
    }
}

/// Any body, JSON or form, with any query string: the fields are read or
/// the request is a 400; reading a field never panics.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::http::Method;
    use proptest::prelude::*;

    const NAMES: [&str; 6] = [
        "name",
        "scopes",
        "expires_at",
        "access_level",
        "projects",
        "",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,8}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,128}".prop_map(String::into_bytes),
            prop::collection::btree_map(prop::sample::select(NAMES.to_vec()), json_value(), 0..6)
                .prop_map(|map| serde_json::to_vec(&map).unwrap()),
            (1usize..5000).prop_map(
                |depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            ),
            "([a-z_\\[\\]]{0,10}=[^&]{0,10}&){0,6}".prop_map(String::into_bytes),
        ]
    }

    fn read_everything(fields: &Params, name: &str) {
        let _ = fields.text(name);
        let _ = fields.raw_text(name);
        let _ = fields.list(name);
        let _ = fields.json_value(name);
        let _ = fields.has_form_field(name);
        let _ = fields.nullable_text(name);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_body_is_read_or_refused_with_400(
            body in body(),
            json in any::<bool>(),
            query in "\\PC{0,40}",
            name in prop_oneof![prop::sample::select(NAMES.to_vec()).prop_map(String::from), "\\PC{0,8}"],
        ) {
            let headers = if json {
                vec![("content-type".to_string(), b"application/json".to_vec())]
            } else {
                vec![]
            };
            let request = Request::new(Method::Post, &format!("/x?{query}"), headers);
            match Params::parse(&request, &body) {
                Ok(fields) => read_everything(&fields, &name),
                Err(e) => prop_assert_eq!(e.status(), 400),
            }
        }
    }
}
