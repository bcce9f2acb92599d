//! Go `time.Duration` syntax: SPIRE's TTLs and intervals are written as Go durations (`"24h"`,
//! `"1h30m"`, `"1.5h"`, `"500ms"`), and its messages print durations the way Go does (`24h0m0s`).
//!
//! We parse exactly what `time.ParseDuration` accepts and print exactly what `Duration.String`
//! prints, including the error texts, so that configs and logs read the same as with SPIRE.
//! Negative durations parse in Go but make no sense for any configuration value, so they are
//! refused here.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused; the message is Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a duration at all, or out of range.
    #[error("time: invalid duration {}", go_quote(.0))]
    Invalid(String),
    /// A number without a unit (`"10"`).
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    /// A unit Go does not know (`"1d"`).
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A valid Go duration below zero.
    #[error("negative duration {} is not allowed", go_quote(.0))]
    Negative(String),
}

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
/// Go durations are int64 nanoseconds.
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NS,
        "us" | "\u{b5}s" | "\u{3bc}s" => US,
        "ms" => MS,
        "s" => SEC,
        "m" => MIN,
        "h" => HOUR,
        _ => return None,
    })
}

/// Parses a Go duration string (`"1h30m"`, `"1.5h"`, `"300ms"`, `"0"`).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &s[..int_len] {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        // Fraction: digits past the point where they would overflow are read but ignored.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            frac_len = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..frac_len] {
                if overflow {
                    continue;
                }
                if frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = frac * 10 + u64::from(c - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        // Unit: everything up to the next number.
        let unit_len = s.iter().take_while(|&&c| c != b'.' && !c.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let unit_text = String::from_utf8_lossy(&s[..unit_len]).into_owned();
        s = &s[unit_len..];
        let unit = unit_nanos(&unit_text)
            .ok_or_else(|| DurationError::UnknownUnit { unit: unit_text, input: input.to_owned() })?;
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if frac > 0 {
            // Go computes this in float64 too; truncation matches.
            let extra = (frac as f64 * (unit as f64 / scale)) as u64;
            value += extra;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return if total == 0 { Ok(Duration::ZERO) } else { Err(DurationError::Negative(input.to_owned())) };
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Prints a duration as Go's `Duration.String` does: `0s`, `1.5µs`, `500ms`, `1m30s`, `24h0m0s`.
///
/// Durations beyond Go's range (about 292 years) are clamped to it.
pub fn format_duration(d: Duration) -> String {
    let mut u = u64::try_from(d.as_nanos()).unwrap_or(LIMIT - 1).min(LIMIT - 1);
    if u < SEC {
        let (prec, unit) = match u {
            0 => return "0s".to_owned(),
            _ if u < US => (0, "ns"),
            _ if u < MS => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let (int, frac) = split_frac(u, prec);
        return format!("{int}{frac}{unit}");
    }
    let (secs, frac) = split_frac(u, 9);
    u = secs;
    let mut out = format!("{}{frac}s", u % 60);
    u /= 60;
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    out
}

/// SPIRE's shorter form for its TTL advice messages: Go's string without a trailing `0s` or `0m`
/// (`24h`, `1h30m`, `4m`), truncated to whole seconds.
pub fn format_duration_short(d: Duration) -> String {
    let mut s = format_duration(Duration::from_secs(d.as_secs()));
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if s.ends_with("h0m") {
        s.truncate(s.len() - 2);
    }
    s
}

/// Splits `v` into its integer part and a `.fraction` string of `prec` decimal places without
/// trailing zeros (empty when the fraction is zero).
fn split_frac(v: u64, prec: u32) -> (u64, String) {
    let div = 10u64.pow(prec);
    let frac = v % div;
    if frac == 0 {
        return (v / div, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / div, format!(".{}", digits.trim_end_matches('0')))
}

/// Go's `time` package quoting: `"` and `\` escaped, control and non-ASCII bytes as `\xNN`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

/// A [`Duration`] that prints the Go way; handy in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    #[test]
    fn parses_what_go_parses() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1478s", Duration::from_secs(1478)),
            ("+5s", Duration::from_secs(5)),
            ("5.0s", Duration::from_secs(5)),
            ("5.6s", Duration::from_millis(5600)),
            ("5.s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
            ("1.0s", Duration::from_secs(1)),
            ("1.00s", Duration::from_secs(1)),
            ("1.004s", Duration::from_millis(1004)),
            ("1.0040s", Duration::from_millis(1004)),
            ("100.00100s", Duration::from_millis(100_001)),
            ("10ns", ns(10)),
            ("11us", ns(11_000)),
            ("12\u{b5}s", ns(12_000)),
            ("12\u{3bc}s", ns(12_000)),
            ("13ms", ns(13_000_000)),
            ("500ms", Duration::from_millis(500)),
            ("14s", Duration::from_secs(14)),
            ("15m", Duration::from_secs(900)),
            ("16h", Duration::from_secs(16 * 3600)),
            ("24h", Duration::from_secs(86_400)),
            ("720h", Duration::from_secs(720 * 3600)),
            ("3h30m", Duration::from_secs(3 * 3600 + 1800)),
            ("1h30m", Duration::from_secs(5400)),
            ("10.5s4m", Duration::from_secs(4 * 60) + Duration::from_millis(10_500)),
            ("1h2m3s4ms5us6ns", ns(3_723_004_005_006)),
            ("39h9m14.425s", Duration::from_millis(140_954_425)),
            ("52763797000ns", ns(52_763_797_000)),
            ("0.3333333333333333333h", ns(20 * 60 * SEC)),
            ("9007199254740993ns", ns(9_007_199_254_740_993)),
            ("9223372036854775807ns", ns(9_223_372_036_854_775_807)),
            ("9223372036854775.807us", ns(9_223_372_036_854_775_807)),
            ("9223372036s854ms775us807ns", ns(9_223_372_036_854_775_807)),
            ("0.100000000000000000000h", ns(6 * 60 * SEC)),
            ("0.830103483285477580700h", ns(49 * 60 * SEC + 48_372_539_827)),
            ("1.5h", Duration::from_secs(5400)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).as_ref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_with_go_messages() {
        let cases: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("10", r#"time: missing unit in duration "10""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("1x", r#"time: unknown unit "x" in duration "1x""#),
            ("1.5 h", r#"time: unknown unit " h" in duration "1.5 h""#),
            ("abc", r#"time: invalid duration "abc""#),
            ("9223372036854775808ns", r#"time: invalid duration "9223372036854775808ns""#),
            ("9223372036854775.808us", r#"time: invalid duration "9223372036854775.808us""#),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            ("-5s", r#"negative duration "-5s" is not allowed"#),
            ("1\u{e9}", r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).unwrap_err().to_string(), *want, "{input:?}");
        }
    }

    #[test]
    fn prints_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (ns(1), "1ns"),
            (ns(1100), "1.1\u{b5}s"),
            (ns(2_200_000), "2.2ms"),
            (Duration::from_millis(500), "500ms"),
            (ns(3_300_000_000), "3.3s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(4 * 60 + 5), "4m5s"),
            (ns(4 * 60 * SEC + 5_001_000_000), "4m5.001s"),
            (Duration::from_secs(5 * 3600 + 6 * 60 + 7) + Duration::from_millis(1), "5h6m7.001s"),
            (ns(8 * 60 * SEC + 1), "8m0.000000001s"),
            (Duration::from_secs(86_400), "24h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(720 * 3600), "720h0m0s"),
            (ns(9_223_372_036_854_775_807), "2562047h47m16.854775807s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want);
            assert_eq!(GoDuration(*d).to_string(), *want);
        }
    }

    #[test]
    fn short_form_drops_zero_tails_like_spire() {
        assert_eq!(format_duration_short(Duration::from_secs(86_400)), "24h");
        assert_eq!(format_duration_short(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration_short(Duration::from_secs(240)), "4m");
        assert_eq!(format_duration_short(Duration::from_millis(4500)), "4s");
        assert_eq!(format_duration_short(Duration::from_secs(3 * 3600 + 1)), "3h0m1s");
    }

    #[test]
    fn round_trips() {
        for s in ["1h0m0s", "1m30s", "1.5s", "250ms", "10\u{b5}s", "7ns", "168h0m0s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
