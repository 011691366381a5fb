//! Rows to JSON, with the types PDO gives a Laravel app: integers and floats as numbers,
//! NUMERIC/DECIMAL, dates, JSON and UUID as the server's text, PostgreSQL booleans as
//! booleans, NULL as null, binary as base64 (flagged `binary: true` in `columns`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike as _, Utc};
use serde_json::{json, Map, Number, Value};
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

/// The `columns` entry for a column: name, database type, and whether values are base64.
pub(crate) fn column(name: &str, type_name: &str, binary: bool) -> Value {
    if binary {
        json!({"name": name, "type": type_name, "binary": true})
    } else {
        json!({"name": name, "type": type_name})
    }
}

fn float(f: f64) -> Value {
    // JSON has no NaN or infinities; PDO gives PHP floats, the closest is the text form.
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// A single-precision value as the server prints it (0.1, not 0.10000000149011612), which is
/// what the PHP drivers parse into a float.
fn float4(f: f32) -> Value {
    float(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
}

fn pg_timestamp(ts: NaiveDateTime) -> String {
    let base = ts.format("%Y-%m-%d %H:%M:%S").to_string();
    with_fraction(base, ts.nanosecond() / 1000)
}

fn pg_time(t: NaiveTime) -> String {
    with_fraction(t.format("%H:%M:%S").to_string(), t.nanosecond() / 1000)
}

/// Appends microseconds the way PostgreSQL prints them: only when non-zero, trailing zeros cut.
fn with_fraction(mut base: String, micros: u32) -> String {
    if micros > 0 {
        let fraction = format!("{micros:06}");
        base.push('.');
        base.push_str(fraction.trim_end_matches('0'));
    }
    base
}

/// PostgreSQL's binary NUMERIC (base-10000 digits) rendered exactly as its text output.
fn pg_numeric(raw: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i32> {
        let bytes = raw.get(i * 2..i * 2 + 2)?;
        Some(i32::from(i16::from_be_bytes([bytes[0], bytes[1]])))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = word(1)?;
    let sign = u16::try_from(word(2)? & 0xFFFF).ok()?;
    let dscale = usize::try_from(word(3)?).ok()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i32> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    let mut int_part = String::new();
    for position in 0..=weight.max(-1) {
        let digit = usize::try_from(position)
            .ok()
            .and_then(|p| digits.get(p))
            .copied()
            .unwrap_or(0);
        if int_part.is_empty() {
            if digit != 0 {
                int_part.push_str(&digit.to_string());
            }
        } else {
            int_part.push_str(&format!("{digit:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut position = weight + 1;
    while frac.len() < dscale {
        let digit = usize::try_from(position)
            .ok()
            .and_then(|p| digits.get(p))
            .copied()
            .unwrap_or(0);
        frac.push_str(&format!("{digit:04}"));
        position += 1;
    }
    frac.truncate(dscale);
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    out.push_str(&int_part);
    if dscale > 0 {
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

fn uuid_text(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 {
        return None;
    }
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// Rows as JSON objects, columns in order, and the `columns` list. `binary[i]` says column
/// `i` travels as base64; `value` decodes one value.
fn assemble<R: sqlx::Row>(
    rows: &[R],
    binary: &[bool],
    value: impl Fn(&R, usize, &str) -> Value,
) -> (Vec<Value>, Vec<Value>) {
    let Some(first) = rows.first() else {
        return (Vec::new(), Vec::new());
    };
    let columns = first
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| column(c.name(), c.type_info().name(), binary[i]))
        .collect();
    let out = rows
        .iter()
        .map(|row| {
            let mut object = Map::new();
            for (i, col) in row.columns().iter().enumerate() {
                object.insert(col.name().to_owned(), value(row, i, col.type_info().name()));
            }
            Value::Object(object)
        })
        .collect();
    (out, columns)
}

/// Decodes PostgreSQL rows; returns (rows, columns).
pub(crate) fn pg_rows(rows: &[PgRow]) -> (Vec<Value>, Vec<Value>) {
    let binary: Vec<bool> = rows.first().map_or_else(Vec::new, |first| {
        first
            .columns()
            .iter()
            .map(|c| c.type_info().name() == "BYTEA")
            .collect()
    });
    assemble(rows, &binary, pg_value)
}

fn pg_value(row: &PgRow, i: usize, type_name: &str) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let decoded = match type_name {
        "BOOL" => row.try_get::<bool, _>(i).ok().map(Value::Bool),
        "INT2" => row.try_get::<i16, _>(i).ok().map(Value::from),
        "INT4" => row.try_get::<i32, _>(i).ok().map(Value::from),
        "INT8" => row.try_get::<i64, _>(i).ok().map(Value::from),
        "OID" => row
            .try_get::<sqlx::postgres::types::Oid, _>(i)
            .ok()
            .map(|o| Value::from(o.0)),
        "FLOAT4" => row.try_get::<f32, _>(i).ok().map(float4),
        "FLOAT8" => row.try_get::<f64, _>(i).ok().map(float),
        "NUMERIC" => raw.as_bytes().ok().and_then(pg_numeric).map(Value::String),
        "DATE" => row
            .try_get::<NaiveDate, _>(i)
            .ok()
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
        "TIMESTAMP" => row
            .try_get::<NaiveDateTime, _>(i)
            .ok()
            .map(|t| Value::String(pg_timestamp(t))),
        "TIMESTAMPTZ" => row
            .try_get::<DateTime<Utc>, _>(i)
            .ok()
            .map(|t| Value::String(format!("{}+00", pg_timestamp(t.naive_utc())))),
        "TIME" => row
            .try_get::<NaiveTime, _>(i)
            .ok()
            .map(|t| Value::String(pg_time(t))),
        "UUID" => raw.as_bytes().ok().and_then(uuid_text).map(Value::String),
        // jsonb's binary form is a version byte followed by the server's own text.
        "JSONB" => raw
            .as_bytes()
            .ok()
            .and_then(|b| b.get(1..))
            .map(|b| Value::String(String::from_utf8_lossy(b).into_owned())),
        "BYTEA" => raw.as_bytes().ok().map(|b| Value::String(B64.encode(b))),
        // Binary forms not decoded yet: null rather than garbage; cast to text in SQL.
        t if t.ends_with("[]")
            || matches!(
                t,
                "INTERVAL"
                    | "MONEY"
                    | "INET"
                    | "CIDR"
                    | "MACADDR"
                    | "MACADDR8"
                    | "POINT"
                    | "LINE"
                    | "LSEG"
                    | "BOX"
                    | "PATH"
                    | "POLYGON"
                    | "CIRCLE"
                    | "TIMETZ"
                    | "BIT"
                    | "VARBIT"
                    | "TSVECTOR"
                    | "TSQUERY"
                    | "INT4RANGE"
                    | "INT8RANGE"
                    | "NUMRANGE"
                    | "TSRANGE"
                    | "TSTZRANGE"
                    | "DATERANGE"
                    | "RECORD"
            ) =>
        {
            None
        }
        // text, varchar, char, name, json, xml, enums: their binary form is their text.
        _ => raw
            .as_bytes()
            .ok()
            .map(|b| Value::String(String::from_utf8_lossy(b).into_owned())),
    };
    decoded.unwrap_or(Value::Null)
}

/// Decodes MySQL/MariaDB rows as pdo_mysql does. Binary-typed columns (BLOB, VARBINARY —
/// and MariaDB's JSON, which it reports as BLOB) travel as text when every value is valid
/// UTF-8, and as base64 with `binary: true` otherwise: PHP gets the same bytes either way.
pub(crate) fn mysql_rows(rows: &[MySqlRow]) -> (Vec<Value>, Vec<Value>) {
    let Some(first) = rows.first() else {
        return (Vec::new(), Vec::new());
    };
    let binary: Vec<bool> = first
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            is_mysql_binary(c.type_info().name())
                && rows.iter().any(|row| {
                    row.try_get_unchecked::<Option<Vec<u8>>, _>(i)
                        .ok()
                        .flatten()
                        .is_some_and(|b| std::str::from_utf8(&b).is_err())
                })
        })
        .collect();
    assemble(rows, &binary, |row, i, type_name| {
        mysql_value(row, i, type_name, binary[i])
    })
}

fn is_mysql_binary(type_name: &str) -> bool {
    matches!(
        type_name,
        "BINARY"
            | "VARBINARY"
            | "TINYBLOB"
            | "BLOB"
            | "MEDIUMBLOB"
            | "LONGBLOB"
            | "BIT"
            | "GEOMETRY"
    )
}

fn mysql_value(row: &MySqlRow, i: usize, type_name: &str, base64: bool) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let decoded = match type_name {
        // TINYINT(1) is reported as BOOLEAN; PDO gives an int.
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            row.try_get_unchecked::<i64, _>(i).ok().map(Value::from)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" | "YEAR" => row.try_get_unchecked::<u64, _>(i).ok().map(|n| {
            // Above PHP_INT_MAX, pdo_mysql gives a string.
            i64::try_from(n).map_or_else(|_| Value::String(n.to_string()), Value::from)
        }),
        "FLOAT" => row.try_get_unchecked::<f32, _>(i).ok().map(float4),
        "DOUBLE" => row.try_get_unchecked::<f64, _>(i).ok().map(float),
        "DATE" => Some(Value::String(row.try_get::<NaiveDate, _>(i).map_or_else(
            |_| "0000-00-00".to_owned(),
            |d| d.format("%Y-%m-%d").to_string(),
        ))),
        "DATETIME" | "TIMESTAMP" => Some(Value::String(
            row.try_get::<NaiveDateTime, _>(i)
                .or_else(|_| row.try_get::<DateTime<Utc>, _>(i).map(|t| t.naive_utc()))
                .map_or_else(|_| "0000-00-00 00:00:00".to_owned(), mysql_datetime),
        )),
        "TIME" => row.try_get::<NaiveTime, _>(i).ok().map(|t| {
            let base = t.format("%H:%M:%S").to_string();
            let micros = t.nanosecond() / 1000;
            Value::String(if micros > 0 {
                format!("{base}.{micros:06}")
            } else {
                base
            })
        }),
        _ if base64 => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .ok()
            .map(|b| Value::String(B64.encode(b))),
        // DECIMAL, JSON, text and everything else travels as text.
        _ => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .ok()
            .map(|b| Value::String(String::from_utf8_lossy(&b).into_owned())),
    };
    decoded.unwrap_or(Value::Null)
}

fn mysql_datetime(t: NaiveDateTime) -> String {
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.nanosecond() / 1000;
    if micros > 0 {
        format!("{base}.{micros:06}")
    } else {
        base
    }
}

/// Decodes SQLite rows by each value's storage class, as pdo_sqlite does. As on MySQL, a
/// column travels as base64 with `binary: true` only when one of its values is a BLOB that
/// is not valid UTF-8; otherwise PHP gets plain strings, the same bytes either way.
pub(crate) fn sqlite_rows(rows: &[SqliteRow]) -> (Vec<Value>, Vec<Value>) {
    let Some(first) = rows.first() else {
        return (Vec::new(), Vec::new());
    };
    let binary: Vec<bool> = (0..first.columns().len())
        .map(|i| {
            rows.iter().any(|row| {
                row.try_get_raw(i)
                    .is_ok_and(|raw| !raw.is_null() && raw.type_info().name() == "BLOB")
                    && row
                        .try_get_unchecked::<Vec<u8>, _>(i)
                        .is_ok_and(|b| std::str::from_utf8(&b).is_err())
            })
        })
        .collect();
    assemble(rows, &binary, |row, i, _| match row.try_get_raw(i) {
        Ok(raw) if !raw.is_null() => match raw.type_info().name() {
            "INTEGER" => row.try_get_unchecked::<i64, _>(i).ok().map(Value::from),
            "REAL" => row.try_get_unchecked::<f64, _>(i).ok().map(float),
            _ => row.try_get_unchecked::<Vec<u8>, _>(i).ok().map(|b| {
                if binary[i] {
                    Value::String(B64.encode(b))
                } else {
                    Value::String(String::from_utf8_lossy(&b).into_owned())
                }
            }),
        }
        .unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_renders_like_postgres() {
        // 12345.6789: digits 1 2345 6789, weight 1, dscale 4
        assert_eq!(
            pg_numeric(&numeric(3, 1, 0, 4, &[1, 2345, 6789])).as_deref(),
            Some("12345.6789")
        );
        // -0.05 with dscale 2: digit 500 at weight -1
        assert_eq!(
            pg_numeric(&numeric(1, -1, 0x4000, 2, &[500])).as_deref(),
            Some("-0.05")
        );
        // 10.50 (scale 2): digits 10, 5000
        assert_eq!(
            pg_numeric(&numeric(2, 0, 0, 2, &[10, 5000])).as_deref(),
            Some("10.50")
        );
        // 0 with scale 3
        assert_eq!(
            pg_numeric(&numeric(0, 0, 0, 3, &[])).as_deref(),
            Some("0.000")
        );
        // 100000000 = 1 0000 0000, ndigits 1 weight 2
        assert_eq!(
            pg_numeric(&numeric(1, 2, 0, 0, &[1])).as_deref(),
            Some("100000000")
        );
        assert_eq!(
            pg_numeric(&numeric(0, 0, 0xC000, 0, &[])).as_deref(),
            Some("NaN")
        );
        assert_eq!(pg_numeric(&[1, 2]), None);
    }

    #[test]
    fn timestamps_print_like_postgres() {
        let t = NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_micro_opt(3, 4, 5, 500_000))
            .expect("valid");
        assert_eq!(pg_timestamp(t), "2024-01-02 03:04:05.5");
        assert_eq!(
            pg_timestamp(t.with_nanosecond(0).expect("valid")),
            "2024-01-02 03:04:05"
        );
    }

    #[test]
    fn uuid_is_hyphenated() {
        let raw: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            uuid_text(&raw).as_deref(),
            Some("00010203-0405-0607-0809-0a0b0c0d0e0f")
        );
        assert_eq!(uuid_text(&raw[..3]), None);
    }
}
