//! Bounds on every number a user gives (settings, environment variables), checked where they
//! are read so that nothing downstream (a `Duration`, a thread count) can overflow or panic.

use std::ops::RangeInclusive;

use crate::error::{Result, StoreError};

/// `lock_wait_secs` / `DVX_LOCK_WAIT`: at most a day.
pub const LOCK_WAIT_SECS: RangeInclusive<f64> = 0.0..=86_400.0;
/// `timeout_secs` of a remote / `DVX_REMOTE_TIMEOUT` / `--timeout`: above 0, at most an hour.
pub const REMOTE_TIMEOUT_SECS: RangeInclusive<f64> = 0.001..=3_600.0;
/// `retries` of a remote / `DVX_REMOTE_RETRIES` / `--retries`.
pub const REMOTE_RETRIES: RangeInclusive<u64> = 0..=100;
/// `jobs` of a remote / `--jobs` of remote commands: transfers at once.
pub const REMOTE_JOBS: RangeInclusive<u64> = 1..=64;
/// `DVX_PACK_SIZE`: bytes of one pack uploaded by push, 1 KiB to 4 GiB.
pub const PACK_SIZE: RangeInclusive<u64> = 1024..=(4 << 30);

/// The number in environment variable `var`, if set (and not empty), checked against `range`.
pub fn env_f64(var: &str, range: RangeInclusive<f64>) -> Result<Option<f64>> {
    f64_from(var, env_text(var), range)
}

fn f64_from(var: &str, text: Option<String>, range: RangeInclusive<f64>) -> Result<Option<f64>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match text.trim().parse::<f64>() {
        Ok(v) if range.contains(&v) => Ok(Some(v)),
        _ => Err(bad_env(var, &text, &format!("{}", Range(&range)))),
    }
}

/// The whole number in environment variable `var`, if set (and not empty), within `range`.
pub fn env_u64(var: &str, range: RangeInclusive<u64>) -> Result<Option<u64>> {
    u64_from(var, env_text(var), range)
}

fn u64_from(var: &str, text: Option<String>, range: RangeInclusive<u64>) -> Result<Option<u64>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(Some(v)),
        _ => Err(bad_env(
            var,
            &text,
            &format!("a whole number from {} to {}", range.start(), range.end()),
        )),
    }
}

fn env_text(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(s) if !s.is_empty() => Some(s),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        // Not UTF-8: certainly not a number; report it instead of ignoring it.
        Err(std::env::VarError::NotUnicode(s)) => Some(s.to_string_lossy().into_owned()),
    }
}

fn bad_env(var: &str, text: &str, expected: &str) -> StoreError {
    StoreError::Setting {
        source_name: format!("environment variable {var}"),
        message: format!("{text:?} is not {expected}"),
        hint: format!("set {var} to {expected}, or unset it"),
    }
}

/// A range of seconds in words, for error messages.
pub struct Range<'a>(pub &'a RangeInclusive<f64>);

impl std::fmt::Display for Range<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a number of seconds from {} to {}",
            self.0.start(),
            self.0.end()
        )
    }
}

/// `bytes` as text, or the 1-based line and column of the first byte that is not UTF-8.
pub fn utf8(bytes: &[u8]) -> std::result::Result<&str, (usize, usize)> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let before = std::str::from_utf8(good).unwrap_or_default();
        crate::config::line_col(before, before.len())
    })
}

// Parsers of the same bounds for command-line options (clap value parsers), so that a mistake
// is a usage error before anything starts.

/// `--timeout`: seconds within [`REMOTE_TIMEOUT_SECS`].
pub fn parse_remote_timeout(s: &str) -> std::result::Result<f64, String> {
    let range = REMOTE_TIMEOUT_SECS;
    match s.trim().parse::<f64>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!("expected {}", Range(&range))),
    }
}

/// `--jobs` of remote commands, within [`REMOTE_JOBS`].
pub fn parse_remote_jobs(s: &str) -> std::result::Result<usize, String> {
    parse_whole(s, REMOTE_JOBS)
}

/// `--retries`, within [`REMOTE_RETRIES`].
pub fn parse_remote_retries(s: &str) -> std::result::Result<usize, String> {
    parse_whole(s, REMOTE_RETRIES)
}

/// A whole number within `range`.
pub fn parse_whole(s: &str, range: RangeInclusive<u64>) -> std::result::Result<usize, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(v as usize),
        _ => Err(format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_errors_point_at_the_first_bad_byte() {
        assert_eq!(utf8(b"ab\ncd"), Ok("ab\ncd"));
        assert_eq!(utf8(b"ab\nc\xffd"), Err((2, 2)));
        assert_eq!(utf8(b"\xc3"), Err((1, 1)));
        // Columns count characters, not bytes.
        assert_eq!(utf8(b"\xc3\xa9\n\n  \xc3\xa9\x80"), Err((3, 4)));
    }

    #[test]
    fn env_numbers_are_range_checked() {
        // The parsing behind env_f64/env_u64, without touching the process's environment.
        let f = |v: &str| f64_from("DVX_X", Some(v.to_string()), LOCK_WAIT_SECS);
        for bad in ["inf", "-inf", "nan", "-1", "1e308", "86400.5", "x", ""] {
            let e = f(bad).unwrap_err().to_string();
            assert!(e.starts_with("environment variable DVX_X: "), "{e}");
        }
        assert_eq!(f(" 2.5 ").unwrap(), Some(2.5));
        assert_eq!(f("0").unwrap(), Some(0.0));
        assert_eq!(f64_from("DVX_X", None, LOCK_WAIT_SECS).unwrap(), None);
        let u = |v: &str| u64_from("DVX_Y", Some(v.to_string()), REMOTE_RETRIES);
        assert_eq!(u("100").unwrap(), Some(100));
        for bad in ["101", "-1", "1.5", "1e3"] {
            assert!(u(bad).is_err(), "{bad}");
        }
        assert_eq!(
            u("101").unwrap_err().to_string(),
            "environment variable DVX_Y: \"101\" is not a whole number from 0 to 100"
        );
    }
}
