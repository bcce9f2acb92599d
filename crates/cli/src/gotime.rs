//! Go's renderings of time that SPIRE prints: `time.Duration` (`720h0m0s`) for duration flags, and
//! `time.Time.String()` (`2024-01-02 15:04:05 +0000 UTC`) for expiry times.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A Go `time.Duration`: signed nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub i64);

/// `time.ParseDuration` refused the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration {0:?}")]
pub struct DurationError(String);

impl GoDuration {
    /// Whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs * NANOS_PER_SEC as i64)
    }

    /// Parses Go duration syntax: `300ms`, `-1.5h`, `2h45m`; units ns, us (µs, μs), ms, s, m, h.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let err = || DurationError(text.to_owned());
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(Self(0));
        }
        if rest.is_empty() {
            return Err(err());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let int_part = &rest[..int_len];
            rest = &rest[int_len..];
            let mut frac_part = "";
            if let Some(after_dot) = rest.strip_prefix('.') {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                frac_part = &after_dot[..frac_len];
                rest = &after_dot[frac_len..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(err());
            }
            let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
            let unit: u128 = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO as u128,
                "ms" => NANOS_PER_MILLI as u128,
                "s" => NANOS_PER_SEC as u128,
                "m" => 60 * NANOS_PER_SEC as u128,
                "h" => 3600 * NANOS_PER_SEC as u128,
                _ => return Err(err()),
            };
            rest = &rest[unit_len..];
            let whole: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| err())? };
            let mut value = whole.checked_mul(unit).ok_or_else(err)?;
            if !frac_part.is_empty() {
                // Go keeps fractional precision up to the nanosecond and truncates the rest.
                let mut scale: u128 = 1;
                let mut frac: u128 = 0;
                for digit in frac_part.bytes().take(30) {
                    frac = frac * 10 + u128::from(digit - b'0');
                    scale *= 10;
                }
                value += frac * unit / scale;
            }
            total = total.checked_add(value).ok_or_else(err)?;
            if total > i64::MAX as u128 + u128::from(negative) {
                return Err(err());
            }
        }
        let signed = if negative { -(total as i128) } else { total as i128 };
        Ok(Self(signed as i64))
    }
}

/// `time.Duration.String()`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let negative = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        let mut out = String::new();
        if u < NANOS_PER_SEC {
            let (unit, digits) = if u < NANOS_PER_MICRO {
                ("ns", 0)
            } else if u < NANOS_PER_MILLI {
                ("µs", 3)
            } else {
                ("ms", 6)
            };
            out.push_str(&frac(u, digits));
            out.push_str(unit);
        } else {
            let total_secs = u / NANOS_PER_SEC;
            let nanos = u % NANOS_PER_SEC;
            u = total_secs / 60;
            if u > 0 {
                if u / 60 > 0 {
                    out.push_str(&format!("{}h", u / 60));
                }
                out.push_str(&format!("{}m", u % 60));
            }
            out.push_str(&(total_secs % 60).to_string());
            if nanos > 0 {
                out.push('.');
                out.push_str(format!("{nanos:09}").trim_end_matches('0'));
            }
            out.push('s');
        }
        if negative {
            f.write_str("-")?;
        }
        f.write_str(&out)
    }
}

/// `value / 10^digits` with the fractional part's trailing zeros (and a bare dot) dropped, as Go's
/// `fmtFrac` followed by `fmtInt` prints it.
fn frac(value: u64, digits: u32) -> String {
    if digits == 0 {
        return value.to_string();
    }
    let scale = 10u64.pow(digits);
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let text = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}", text.trim_end_matches('0'))
}

/// Go's `time.Unix(secs, 0).UTC().String()`: `2006-01-02 15:04:05 +0000 UTC`.
pub fn unix_utc(secs: i64) -> String {
    unix_in(secs, &TimeZone::UTC)
}

/// Go's `time.Unix(secs, 0).In(zone).String()`; with [`TimeZone::system`] this is `time.Unix(secs, 0)`,
/// which Go prints in the local zone (`TZ`, else `/etc/localtime`, else UTC), e.g.
/// `2024-01-02 10:04:05 -0500 EST`.
pub fn unix_in(secs: i64, zone: &TimeZone) -> String {
    match Timestamp::from_second(secs) {
        Ok(ts) => ts.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %z %Z").to_string(),
        // Outside jiff's range (beyond year 9999): fall back to the raw number rather than fail a listing.
        Err(_) => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_go_durations() {
        let d = |s: &str| GoDuration::parse(s).map(|d| d.0);
        assert_eq!(d("0"), Ok(0));
        assert_eq!(d("1h"), Ok(3_600_000_000_000));
        assert_eq!(d("2h30m30s"), Ok((2 * 3600 + 30 * 60 + 30) * 1_000_000_000));
        assert_eq!(d("1.5s"), Ok(1_500_000_000));
        assert_eq!(d("-1m"), Ok(-60_000_000_000));
        assert_eq!(d("300ms"), Ok(300_000_000));
        assert_eq!(d("10µs"), Ok(10_000));
        assert_eq!(d(".5h"), Ok(1_800_000_000_000));
        assert!(d("5d").is_err());
        assert!(d("").is_err());
        assert!(d("10").is_err());
        assert!(d("h").is_err());
        assert!(d("99999999999h").is_err());
    }

    #[test]
    fn format_like_go() {
        let s = |text: &str| GoDuration::parse(text).unwrap().to_string();
        assert_eq!(s("720h"), "720h0m0s");
        assert_eq!(s("0s"), "0s");
        assert_eq!(s("1h30m"), "1h30m0s");
        assert_eq!(s("90s"), "1m30s");
        assert_eq!(s("1.5s"), "1.5s");
        assert_eq!(s("2m30.25s"), "2m30.25s");
        assert_eq!(s("1.2ms"), "1.2ms");
        assert_eq!(s("15µs"), "15µs");
        assert_eq!(s("42ns"), "42ns");
        assert_eq!(s("-5m"), "-5m0s");
    }

    #[test]
    fn go_time_string() {
        assert_eq!(unix_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(unix_utc(1_700_000_000), "2023-11-14 22:13:20 +0000 UTC");
        let fixed = TimeZone::fixed(jiff::tz::offset(-5));
        assert!(unix_in(1_700_000_000, &fixed).starts_with("2023-11-14 17:13:20 -0500"));
    }
}
