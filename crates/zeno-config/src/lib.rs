//! Human units for settings, as `zeno.toml` and `ZENO_*` variables write them: sizes (`64K`,
//! `256M`, `1G`; a bare number is bytes) and durations (`500ms`, `30s`, `2m`, `1h`; a bare
//! number is seconds). The config types of Zeno's libraries read their fields with the
//! `deserialize_with` functions here, so every setting has one home: the library that uses it.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses a size: `1048576`, `64K`, `256M`, `1G` (K, M and G are powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 1048576, 64K, 256M, 1G)"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => 1024 * 1024,
        "G" | "GB" | "GIB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?} (use K, M or G)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 30s, 2m)"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!(
            "unknown duration unit {other:?} in {s:?} (use ms, s, m or h)"
        )),
    }
}

/// A number or a string, as TOML and the environment give settings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(u64),
    Text(String),
}

impl Raw {
    fn text(self) -> String {
        match self {
            Raw::Number(n) => n.to_string(),
            Raw::Text(s) => s,
        }
    }
}

/// `deserialize_with` for a size in bytes (`u64`).
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_size(&Raw::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

/// `deserialize_with` for a size in bytes (`usize`).
pub fn size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let bytes = size(d)?;
    usize::try_from(bytes)
        .map_err(|_| serde::de::Error::custom(format!("size {bytes} is too large")))
}

/// `deserialize_with` for a duration.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&Raw::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

/// `deserialize_with` for a limit that `0` turns off: `None` for zero.
pub fn duration_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let value = duration(d)?;
    Ok((!value.is_zero()).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("256M"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("fast").is_err());
    }

    #[derive(Deserialize)]
    struct Limits {
        #[serde(deserialize_with = "size")]
        body: u64,
        #[serde(deserialize_with = "duration")]
        grace: Duration,
        #[serde(deserialize_with = "duration_or_off")]
        idle: Option<Duration>,
    }

    #[test]
    fn numbers_or_strings_deserialize() {
        let limits: Limits =
            serde_json::from_str(r#"{"body": "16M", "grace": 5, "idle": "0"}"#).expect("parse");
        assert_eq!(limits.body, 16 * 1024 * 1024);
        assert_eq!(limits.grace, Duration::from_secs(5));
        assert_eq!(limits.idle, None);
        let err = serde_json::from_str::<Limits>(r#"{"body": "1Q", "grace": 5, "idle": 1}"#)
            .err()
            .expect("bad unit");
        assert!(err.to_string().contains("unknown size unit"), "{err}");
    }
}
