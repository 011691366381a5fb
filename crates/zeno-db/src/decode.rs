//! Rows to JSON, with the types PDO gives a Laravel app: integers and floats as numbers,
//! NUMERIC/DECIMAL, dates, JSON and UUID as the server's text, PostgreSQL booleans as
//! booleans, NULL as null, binary as base64 (flagged `binary: true` in `columns`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Datelike as _, NaiveDate, NaiveDateTime, NaiveTime, Timelike as _, Utc};
use serde_json::{json, Map, Number, Value};
use sqlx::mysql::types::MySqlTime;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::{PgRow, PgTypeInfo, PgTypeKind};
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
    // JSON has no NaN or infinities: they travel as PostgreSQL prints them, and
    // `Zeno\Db\Rows::asPdo` makes them PHP floats where the driver gives floats.
    Number::from_f64(f).map_or_else(
        || {
            Value::String(
                if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .to_owned(),
            )
        },
        Value::Number,
    )
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

/// PostgreSQL's epoch for dates and timestamps.
fn pg_epoch() -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(2000, 1, 1)?.and_hms_opt(0, 0, 0)
}

/// A binary `date` (days since 2000-01-01), if it is a date this module prints as PostgreSQL
/// does: not `±infinity`, years 1 to 9999 (BC and five-digit years go to the server).
fn pg_date(raw: &[u8]) -> Option<NaiveDate> {
    let days = i32::from_be_bytes(raw.try_into().ok()?);
    if days == i32::MAX || days == i32::MIN {
        return None;
    }
    let date = pg_epoch()?
        .date()
        .checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)?;
    (1..=9999).contains(&date.year()).then_some(date)
}

/// A binary `timestamp`/`timestamptz` (microseconds since 2000-01-01), on the same terms.
fn pg_datetime(raw: &[u8]) -> Option<NaiveDateTime> {
    let micros = i64::from_be_bytes(raw.try_into().ok()?);
    if micros == i64::MAX || micros == i64::MIN {
        return None;
    }
    let t = pg_epoch()?.checked_add_signed(chrono::TimeDelta::microseconds(micros))?;
    (1..=9999).contains(&t.year()).then_some(t)
}

/// A binary `time` (microseconds since midnight); `24:00:00` goes to the server.
fn pg_time_of_day(raw: &[u8]) -> Option<NaiveTime> {
    let micros = i64::from_be_bytes(raw.try_into().ok()?);
    let seconds = u32::try_from(micros.div_euclid(1_000_000)).ok()?;
    let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1000).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)
}

/// One field of a binary record: its type's oid and its bytes (`None`: NULL).
pub(crate) type RecordField<'a> = (u32, Option<&'a [u8]>);

/// The fields of a binary record.
pub(crate) fn pg_record_fields(raw: &[u8]) -> Option<Vec<RecordField<'_>>> {
    let count = usize::try_from(i32::from_be_bytes(raw.get(0..4)?.try_into().ok()?)).ok()?;
    let mut fields = Vec::with_capacity(count.min(1664));
    let mut at = 4;
    for _ in 0..count {
        let oid = u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?);
        let len = i32::from_be_bytes(raw.get(at + 4..at + 8)?.try_into().ok()?);
        at += 8;
        if len < 0 {
            fields.push((oid, None));
        } else {
            let len = usize::try_from(len).ok()?;
            fields.push((oid, Some(raw.get(at..at + len)?)));
            at += len;
        }
    }
    Some(fields)
}

/// A record's text as PostgreSQL's record_out writes it: `(1,"a b",)` — a field is quoted
/// when empty or holding `"`, `\`, `(`, `)`, `,` or white space, with `"` and `\` doubled.
pub(crate) fn pg_record_text<'a>(fields: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut out = String::from("(");
    for (n, field) in fields.enumerate() {
        if n > 0 {
            out.push(',');
        }
        let Some(text) = field else { continue };
        let quote = text.is_empty()
            || text
                .chars()
                .any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_ascii_whitespace());
        if quote {
            out.push('"');
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    out.push(c);
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(text);
        }
    }
    out.push(')');
    out
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
    (out, columns(rows, binary))
}

/// The `columns` list of a result.
fn columns<R: sqlx::Row>(rows: &[R], binary: &[bool]) -> Vec<Value> {
    rows.first().map_or_else(Vec::new, |first| {
        first
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                column(
                    c.name(),
                    c.type_info().name(),
                    binary.get(i).copied().unwrap_or(false),
                )
            })
            .collect()
    })
}

/// Rows of decoded cells as JSON objects keyed by column name, and the `columns` list.
fn objects<R: sqlx::Row>(
    rows: &[R],
    binary: &[bool],
    cells: Vec<Vec<Value>>,
) -> (Vec<Value>, Vec<Value>) {
    let Some(first) = rows.first() else {
        return (Vec::new(), Vec::new());
    };
    let names: Vec<&str> = first.columns().iter().map(|c| c.name()).collect();
    let out = cells
        .into_iter()
        .map(|row| {
            let mut object = Map::new();
            for (name, value) in names.iter().zip(row) {
                object.insert((*name).to_owned(), value);
            }
            Value::Object(object)
        })
        .collect();
    (out, columns(rows, binary))
}

/// PostgreSQL rows decoded as far as the host can: `cells[row][column]`, and the cells it
/// cannot decode itself (`pending`: a type without a decoder here, or a value outside what
/// one handles, such as `infinity` dates), which the server is asked to print as text.
pub(crate) struct PgCells {
    /// Decoded values; `Null` for the pending ones until they are filled in.
    pub(crate) cells: Vec<Vec<Value>>,
    /// `(row, column)` of the values to print with the server.
    pub(crate) pending: Vec<(usize, usize)>,
}

/// Decodes PostgreSQL rows; see [`PgCells`].
pub(crate) fn pg_cells(rows: &[PgRow]) -> PgCells {
    let mut pending = Vec::new();
    let cells = rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            row.columns()
                .iter()
                .enumerate()
                .map(|(i, col)| match pg_value(row, i, col.type_info()) {
                    Some(value) => value,
                    None => {
                        pending.push((r, i));
                        Value::Null
                    }
                })
                .collect()
        })
        .collect();
    PgCells { cells, pending }
}

/// The rows and `columns` of decoded PostgreSQL cells.
pub(crate) fn pg_rows(rows: &[PgRow], cells: Vec<Vec<Value>>) -> (Vec<Value>, Vec<Value>) {
    let binary: Vec<bool> = rows.first().map_or_else(Vec::new, |first| {
        first
            .columns()
            .iter()
            .map(|c| c.type_info().name() == "BYTEA")
            .collect()
    });
    objects(rows, &binary, cells)
}

/// One PostgreSQL value as pdo_pgsql gives it, or `None` when the server must print it: every
/// type without a decoder here (arrays, ranges, intervals, network and geometric types, money,
/// bit strings, tsvector, xml, composites, domains, extension types…) comes back as the text
/// the server's output function writes — what libpq hands pdo_pgsql.
fn pg_value(row: &PgRow, i: usize, type_info: &PgTypeInfo) -> Option<Value> {
    let Ok(raw) = row.try_get_raw(i) else {
        return None;
    };
    if raw.is_null() {
        return Some(Value::Null);
    }
    if matches!(type_info.kind(), PgTypeKind::Enum(_)) {
        // An enum's binary form is its label.
        return raw
            .as_bytes()
            .ok()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(|s| Value::String(s.to_owned()));
    }
    match type_info.name() {
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
        // Decoded from the wire here, not by sqlx: its chrono decoders panic on `infinity`.
        "DATE" => raw
            .as_bytes()
            .ok()
            .and_then(pg_date)
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
        "TIMESTAMP" => raw
            .as_bytes()
            .ok()
            .and_then(pg_datetime)
            .map(|t| Value::String(pg_timestamp(t))),
        "TIMESTAMPTZ" => raw
            .as_bytes()
            .ok()
            .and_then(pg_datetime)
            .map(|t| Value::String(format!("{}+00", pg_timestamp(t)))),
        "TIME" => raw
            .as_bytes()
            .ok()
            .and_then(pg_time_of_day)
            .map(|t| Value::String(pg_time(t))),
        "UUID" => raw.as_bytes().ok().and_then(uuid_text).map(Value::String),
        // jsonb's binary form is a version byte (1) followed by the server's own text.
        "JSONB" => raw
            .as_bytes()
            .ok()
            .filter(|b| b.first() == Some(&1))
            .and_then(|b| std::str::from_utf8(&b[1..]).ok())
            .map(|s| Value::String(s.to_owned())),
        "BYTEA" => raw.as_bytes().ok().map(|b| Value::String(B64.encode(b))),
        // `select pg_sleep(1)`: void prints as nothing (and cannot be sent back to be printed).
        "VOID" => Some(Value::String(String::new())),
        // Their binary form is their text.
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "JSON" | "UNKNOWN" => raw
            .as_bytes()
            .ok()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(|s| Value::String(s.to_owned())),
        _ => None,
    }
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
    let shape = MySqlShape::of(raw.type_info().as_ref());
    let decoded = match type_name {
        // TINYINT(1) is reported as BOOLEAN; PDO gives an int.
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            row.try_get_unchecked::<i64, _>(i).ok().map(Value::from)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" | "YEAR" => row.try_get_unchecked::<u64, _>(i).ok().map(|n| {
            if shape.zerofill {
                // pdo_mysql gives ZEROFILL columns (YEAR is one) as text padded to the width.
                return Value::String(format!("{n:0width$}", width = shape.length));
            }
            // Above PHP_INT_MAX, pdo_mysql gives a string.
            i64::try_from(n).map_or_else(|_| Value::String(n.to_string()), Value::from)
        }),
        // BIT(M) travels as M/8 big-endian bytes; pdo_mysql gives the number.
        "BIT" => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .ok()
            .filter(|b| b.len() <= 8)
            .map(|b| {
                let n = b.iter().fold(0u64, |n, byte| (n << 8) | u64::from(*byte));
                i64::try_from(n).map_or_else(|_| Value::String(n.to_string()), Value::from)
            }),
        "FLOAT" => row.try_get_unchecked::<f32, _>(i).ok().map(float4),
        "DOUBLE" => row.try_get_unchecked::<f64, _>(i).ok().map(float),
        "DATE" => Some(Value::String(row.try_get::<NaiveDate, _>(i).map_or_else(
            |_| "0000-00-00".to_owned(),
            |d| d.format("%Y-%m-%d").to_string(),
        ))),
        "DATETIME" | "TIMESTAMP" => {
            let fsp = shape.length.saturating_sub(20);
            Some(Value::String(
                row.try_get::<NaiveDateTime, _>(i)
                    .or_else(|_| row.try_get::<DateTime<Utc>, _>(i).map(|t| t.naive_utc()))
                    .map_or_else(
                        |_| with_digits("0000-00-00 00:00:00".to_owned(), 0, fsp),
                        |t| {
                            let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
                            with_digits(base, t.nanosecond() / 1000, fsp)
                        },
                    ),
            ))
        }
        // Hours past 23 and negative times included (`-838:59:59`), as mysqlnd prints them.
        "TIME" => row.try_get::<MySqlTime, _>(i).ok().map(|t| {
            let base = format!(
                "{}{:02}:{:02}:{:02}",
                if t.sign().is_negative() { "-" } else { "" },
                t.hours(),
                t.minutes(),
                t.seconds()
            );
            Value::String(with_digits(
                base,
                t.microseconds(),
                shape.length.saturating_sub(11),
            ))
        }),
        _ if base64 => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .ok()
            .map(|b| Value::String(B64.encode(b))),
        // DECIMAL, JSON, SET, ENUM, text and everything else travels as text.
        _ => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .ok()
            .map(|b| Value::String(String::from_utf8_lossy(&b).into_owned())),
    };
    decoded.unwrap_or(Value::Null)
}

/// Appends `fsp` digits of the microseconds, as mysqlnd prints a temporal column with that
/// many fractional digits (`TIME(6)` → `.000000` even when zero).
fn with_digits(mut base: String, micros: u32, fsp: usize) -> String {
    if (1..=6).contains(&fsp) {
        let digits = format!("{micros:06}");
        base.push('.');
        base.push_str(&digits[..fsp]);
    }
    base
}

/// What pdo_mysql's formatting depends on beyond the type: the column's display length (the
/// `M` of `BIT(M)`, the width of a ZEROFILL integer, the fractional digits of `TIME(n)` —
/// 10 + 1 + n — and `DATETIME(n)` — 19 + 1 + n) and its ZEROFILL flag.
#[derive(Debug, Default, PartialEq)]
struct MySqlShape {
    length: usize,
    zerofill: bool,
}

impl MySqlShape {
    /// sqlx keeps the column's length and flags in its type info without an accessor; its
    /// `Debug` form (`max_size: Some(26)`, `flags: … ZEROFILL …`) is where they are read.
    /// `mysql_shape_is_read_from_sqlx` pins the form, so a change in sqlx fails a test.
    fn of(type_info: &sqlx::mysql::MySqlTypeInfo) -> MySqlShape {
        Self::parse(&format!("{type_info:?}"))
    }

    fn parse(debug: &str) -> MySqlShape {
        let length = debug
            .split_once("max_size: Some(")
            .and_then(|(_, rest)| rest.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let zerofill = debug.split_once("flags:").is_some_and(|(_, rest)| {
            rest.split("max_size")
                .next()
                .is_some_and(|f| f.contains("ZEROFILL"))
        });
        MySqlShape { length, zerofill }
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
    fn mysql_digits_follow_the_column() {
        assert_eq!(with_digits("12:00:00".into(), 0, 6), "12:00:00.000000");
        assert_eq!(with_digits("12:00:00".into(), 100_000, 3), "12:00:00.100");
        assert_eq!(with_digits("12:00:00".into(), 5, 0), "12:00:00");
        assert_eq!(
            MySqlShape::parse("MySqlTypeInfo { type: Year, flags: ColumnFlags(UNSIGNED | ZEROFILL), max_size: Some(4) }"),
            MySqlShape { length: 4, zerofill: true }
        );
        assert_eq!(
            MySqlShape::parse(
                "MySqlTypeInfo { type: Time, flags: ColumnFlags(BINARY), max_size: Some(17) }"
            ),
            MySqlShape {
                length: 17,
                zerofill: false
            }
        );
    }

    #[test]
    fn mysql_shape_is_read_from_sqlx() {
        // The Debug form of sqlx's type info, which MySqlShape::of parses.
        let info = <u64 as sqlx::Type<sqlx::MySql>>::type_info();
        let debug = format!("{info:?}");
        assert!(
            debug.contains("flags:") && debug.contains("max_size:"),
            "{debug}"
        );
    }

    #[test]
    fn pg_dates_outside_what_is_printed_here_go_to_the_server() {
        assert_eq!(pg_date(&i32::MAX.to_be_bytes()), None);
        assert_eq!(pg_date(&i32::MIN.to_be_bytes()), None);
        assert_eq!(pg_date(&(-800_000i32).to_be_bytes()), None, "BC");
        assert_eq!(
            pg_date(&0i32.to_be_bytes()),
            NaiveDate::from_ymd_opt(2000, 1, 1)
        );
        assert_eq!(pg_datetime(&i64::MAX.to_be_bytes()), None);
        assert_eq!(pg_datetime(&[1, 2]), None);
        assert_eq!(
            pg_time_of_day(&86_400_000_000i64.to_be_bytes()),
            None,
            "24:00:00"
        );
        assert_eq!(
            pg_time_of_day(&1_500_000i64.to_be_bytes()),
            NaiveTime::from_hms_micro_opt(0, 0, 1, 500_000)
        );
    }

    #[test]
    fn records_print_like_postgres() {
        let fields = [Some("1"), Some("a b"), None, Some(""), Some("q\"x")];
        assert_eq!(
            pg_record_text(fields.into_iter()),
            r#"(1,"a b",,"","q""x")"#
        );
        let mut raw = 2i32.to_be_bytes().to_vec();
        raw.extend(23u32.to_be_bytes());
        raw.extend(4i32.to_be_bytes());
        raw.extend(7i32.to_be_bytes());
        raw.extend(25u32.to_be_bytes());
        raw.extend((-1i32).to_be_bytes());
        assert_eq!(
            pg_record_fields(&raw),
            Some(vec![(23, Some(&[0, 0, 0, 7][..])), (25, None)])
        );
        assert_eq!(pg_record_fields(&raw[..10]), None);
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
