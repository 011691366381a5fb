//! The values PHP binds to `?` placeholders, parsed once from the call's JSON.
//!
//! JSON cannot carry bytes that are not UTF-8, so PHP sends a binary string (a `binary(16)`
//! UUID, a BLOB, anything bound with `PDO::PARAM_LOB`) as `{"$binary": "<base64>"}`; every
//! other value is its JSON self.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

use crate::DbError;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// SQL `NULL`.
    Null,
    /// A PHP bool.
    Bool(bool),
    /// A PHP int.
    Int(i64),
    /// An integer above `i64::MAX` (MySQL `BIGINT UNSIGNED`).
    UInt(u64),
    /// A PHP float.
    Float(f64),
    /// A PHP string that is valid UTF-8.
    Text(String),
    /// Bytes: a PHP string that is not UTF-8, or a LOB.
    Binary(Vec<u8>),
    /// An array or object, bound as its JSON text.
    Json(String),
}

impl Param {
    /// The value as text input, as PDO sends every value to PostgreSQL; `None` for NULL.
    /// Binary values have no text form here: the caller decides by the parameter's type.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Param::Null | Param::Binary(_) => None,
            Param::Bool(b) => Some(if *b { "true" } else { "false" }.to_owned()),
            Param::Int(i) => Some(i.to_string()),
            Param::UInt(u) => Some(u.to_string()),
            Param::Float(f) => Some(
                serde_json::Number::from_f64(*f).map_or_else(|| f.to_string(), |n| n.to_string()),
            ),
            Param::Text(s) | Param::Json(s) => Some(s.clone()),
        }
    }
}

/// Parses the `params` list of a `db_query` call.
pub(crate) fn parse(values: &[Value]) -> Result<Vec<Param>, DbError> {
    values.iter().enumerate().map(|(i, v)| one(i, v)).collect()
}

fn one(index: usize, value: &Value) -> Result<Param, DbError> {
    Ok(match value {
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Param::Int(i),
            (None, Some(u)) => Param::UInt(u),
            _ => Param::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Param::Text(s.clone()),
        Value::Object(map) if map.len() == 1 && map.contains_key("$binary") => {
            let encoded = map.get("$binary").and_then(Value::as_str).ok_or_else(|| {
                DbError::Invalid(format!(
                    "parameter {}: `$binary` must be a base64 string",
                    index + 1
                ))
            })?;
            Param::Binary(B64.decode(encoded).map_err(|e| {
                DbError::Invalid(format!(
                    "parameter {}: `$binary` is not base64: {e}",
                    index + 1
                ))
            })?)
        }
        other => Param::Json(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_parse_by_their_json_type() {
        let parsed = parse(&[
            json!(null),
            json!(true),
            json!(-5),
            json!(18446744073709551615u64),
            json!(1.5),
            json!("x"),
            json!({"$binary": "AP8Q"}),
            json!({"a": 1}),
            json!([1, 2]),
        ])
        .expect("valid");
        assert_eq!(
            parsed,
            vec![
                Param::Null,
                Param::Bool(true),
                Param::Int(-5),
                Param::UInt(u64::MAX),
                Param::Float(1.5),
                Param::Text("x".into()),
                Param::Binary(vec![0, 0xff, 0x10]),
                Param::Json(r#"{"a":1}"#.into()),
                Param::Json("[1,2]".into()),
            ]
        );
    }

    #[test]
    fn bad_binary_is_a_clear_error() {
        let err = parse(&[json!(1), json!({"$binary": "***"})]).expect_err("not base64");
        assert!(err.to_string().contains("parameter 2"), "{err}");
        assert!(parse(&[json!({"$binary": 5})]).is_err());
        // Another key beside it: an ordinary object, bound as JSON.
        assert_eq!(
            parse(&[json!({"$binary": "AA==", "x": 1})]).expect("valid"),
            vec![Param::Json(r#"{"$binary":"AA==","x":1}"#.into())]
        );
    }

    #[test]
    fn text_is_what_pdo_sends() {
        assert_eq!(Param::Bool(false).text().as_deref(), Some("false"));
        assert_eq!(Param::Float(0.1).text().as_deref(), Some("0.1"));
        assert_eq!(Param::Null.text(), None);
        assert_eq!(Param::Binary(vec![1]).text(), None);
    }
}
