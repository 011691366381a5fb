//! Which request headers reach PHP, and under which names.
//!
//! PHP sees a header as `$_SERVER['HTTP_<NAME>']`, with `-` turned into `_` — so `X-Zeno-User-Id`
//! and `X_Zeno_User_Id` land on the same key, and a client that may send the second can forge
//! the first. nginx and Apache drop names with `_` for that reason; so does the host, unless
//! `server.underscores_in_headers` keeps them. Even then, a kept name never shares a `$_SERVER`
//! key with another header of the request and never lands on `HTTP_X_ZENO_*`: scope headers
//! are the host's alone.

use http::HeaderMap as HttpHeaders;
use serde_json::{Map, Value};
use zeno_protocol::HeaderMap;

/// The prefix of the headers that carry scope, in the lower case hyper gives names.
const SCOPE_PREFIX: &str = "x-zeno-";

/// The header a scope key travels in: `user_id` → `X-Zeno-User-Id`.
pub fn scope_header_name(key: &str) -> String {
    let mut name = String::from("X-Zeno");
    for part in key.split(['_', '-']).filter(|p| !p.is_empty()) {
        name.push('-');
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(&chars.as_str().to_lowercase());
        }
    }
    name
}

/// The `$_SERVER` key PHP files a header under (`x-forwarded-for` → `HTTP_X_FORWARDED_FOR`):
/// what the tests hold the filter to.
#[cfg(test)]
pub(crate) fn server_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len() + 5);
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    key
}

/// Whether two lower-case names land on the same `$_SERVER` key, where `-` and `_` are one.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| if c == b'_' { b'-' } else { c };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// The client's headers PHP may see, in the protocol's shape: client-sent scope headers (in
/// any case or spelling), names with characters outside letters, digits and `-` (and `_` when
/// `underscores` is set), and kept underscore names that would collide with another header are
/// dropped. Values that are not UTF-8 are passed lossily, as PHP-FPM passes bytes.
pub(crate) fn forwarded(headers: &HttpHeaders, underscores: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if !allowed(name, underscores, headers) {
            tracing::debug!(header = name, "dropping a client header PHP must not see");
            continue;
        }
        out.entry(name.to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

fn allowed(name: &str, underscores: bool, all: &HttpHeaders) -> bool {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscores && b == b'_'));
    if !valid {
        return false;
    }
    let prefix = SCOPE_PREFIX.as_bytes();
    if name.len() >= prefix.len() && same_key(&name.as_bytes()[..prefix.len()], prefix) {
        return false;
    }
    // Only the host says whether it serves X-Sendfile (Symfony's BinaryFileResponse trusts
    // this request header): a client saying so would get empty downloads.
    if same_key(name.as_bytes(), b"x-sendfile-type") {
        return false;
    }
    if !name.contains('_') {
        return true;
    }
    // Kept only when no other header of this request files under the same `$_SERVER` key.
    !all.keys()
        .any(|other| other.as_str() != name && same_key(other.as_str().as_bytes(), name.as_bytes()))
}

/// Adds the request's scope as `X-Zeno-<Key>` headers (strings, numbers and booleans; other
/// values are only in `$_ZENO`), replacing anything of the same name.
pub(crate) fn add_scope(headers: &mut HeaderMap, scope: &Map<String, Value>) {
    for (key, value) in scope {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            _ => continue,
        };
        headers.insert(scope_header_name(key).to_lowercase(), vec![value]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    fn client(pairs: &[(&str, &str)]) -> HttpHeaders {
        let mut headers = HttpHeaders::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn scope_keys_become_header_names() {
        assert_eq!(scope_header_name("user_id"), "X-Zeno-User-Id");
        assert_eq!(scope_header_name("request_id"), "X-Zeno-Request-Id");
        assert_eq!(scope_header_name("tenant"), "X-Zeno-Tenant");
        assert_eq!(scope_header_name("TRACE-ID"), "X-Zeno-Trace-Id");
    }

    #[test]
    fn underscore_names_are_dropped_by_default() {
        let out = forwarded(
            &client(&[
                ("x_zeno_user_id", "666"),
                ("x_forwarded_for", "6.6.6.6"),
                ("accept", "*/*"),
            ]),
            false,
        );
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["accept"]);
    }

    #[test]
    fn client_scope_headers_never_pass_in_any_spelling() {
        for underscores in [false, true] {
            let out = forwarded(
                &client(&[
                    ("x-zeno-user-id", "1"),
                    ("X-ZENO-USER-ID", "2"),
                    ("x-zeno-user-id", "3"),
                    ("x_zeno_user_id", "4"),
                    ("x-zeno_user-id", "5"),
                    ("x-zeno-", "6"),
                ]),
                underscores,
            );
            assert!(out.is_empty(), "{out:?}");
        }
    }

    #[test]
    fn kept_underscore_names_never_share_a_key_with_a_dash_name() {
        let out = forwarded(
            &client(&[
                ("x_forwarded_for", "6.6.6.6"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x_custom", "kept"),
                ("a_b-c", "both"),
                ("a-b_c", "dropped"),
            ]),
            true,
        );
        assert_eq!(out["x-forwarded-for"], vec!["10.0.0.1"]);
        assert_eq!(out["x_custom"], vec!["kept"]);
        assert!(!out.contains_key("x_forwarded_for"));
        assert!(!out.contains_key("a_b-c") && !out.contains_key("a-b_c"));
    }

    #[test]
    fn names_outside_the_allowed_characters_are_dropped() {
        let out = forwarded(
            &client(&[("x.zeno.user.id", "1"), ("x+a", "2"), ("ok-1", "3")]),
            true,
        );
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["ok-1"]);
    }

    #[test]
    fn scope_replaces_and_formats_values() {
        let mut headers = HeaderMap::new();
        let scope: Map<String, Value> = serde_json::from_str(
            r#"{"user_id": 42, "admin": true, "name": "Ada", "roles": ["a"]}"#,
        )
        .expect("json");
        add_scope(&mut headers, &scope);
        assert_eq!(headers["x-zeno-user-id"], vec!["42"]);
        assert_eq!(headers["x-zeno-admin"], vec!["1"]);
        assert_eq!(headers["x-zeno-name"], vec!["Ada"]);
        assert!(!headers.contains_key("x-zeno-roles"));
    }

    /// Header names as a hostile client would choose them: tokens mixing case, `-`, `_`, dots
    /// and digits, often starting like a scope header.
    pub(crate) fn header_name() -> impl Strategy<Value = String> {
        let prefix = prop_oneof![
            Just(String::new()),
            Just("x-zeno-".to_owned()),
            Just("X_Zeno_".to_owned()),
            Just("x-ZENO_".to_owned()),
            Just("x_forwarded_".to_owned()),
        ];
        (prefix, "[A-Za-z0-9_.!#$%&'*+^`|~-]{0,12}")
            .prop_map(|(p, s)| format!("{p}{s}"))
            .prop_filter("a valid HTTP token", |n| {
                HeaderName::from_bytes(n.as_bytes()).is_ok()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No client header surfaces as scope or as an `X-Zeno-*` header, no two headers share
        /// a `$_SERVER` key, and nothing panics.
        #[test]
        fn no_client_value_becomes_scope(
            pairs in proptest::collection::vec((header_name(), proptest::collection::vec(32u8..=255, 0..24)), 0..16),
            user in any::<u32>(),
            underscores in any::<bool>(),
        ) {
            let mut headers = HttpHeaders::new();
            for (name, value) in &pairs {
                let name = HeaderName::from_bytes(name.as_bytes()).expect("filtered");
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.append(name, value);
                }
            }
            let mut out = forwarded(&headers, underscores);
            for name in out.keys() {
                prop_assert!(!server_key(name).starts_with("HTTP_X_ZENO_"), "{name} passed");
                prop_assert!(underscores || !name.contains('_'), "{name} passed");
            }
            let mut keys: Vec<String> = out.keys().map(|n| server_key(n)).collect();
            let count = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), count, "two headers share a $_SERVER key");

            let mut scope = Map::new();
            scope.insert("user_id".into(), Value::from(user));
            scope.insert("request_id".into(), Value::from("r-1"));
            add_scope(&mut out, &scope);
            let zeno: Vec<(String, Vec<String>)> = out
                .iter()
                .filter(|(name, _)| server_key(name).starts_with("HTTP_X_ZENO_"))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            prop_assert_eq!(zeno, vec![
                ("x-zeno-request-id".to_owned(), vec!["r-1".to_owned()]),
                ("x-zeno-user-id".to_owned(), vec![user.to_string()]),
            ]);
        }
    }
}
