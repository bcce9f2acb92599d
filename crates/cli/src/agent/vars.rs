//! Go `flag.Var` flags of the agent commands: SPIRE's `DurationFlag` (`-timeout`), `CommaStringsFlag`
//! (`fetch jwt -audience`) and cliprinter's `FormatterFlag` (`-output`, and its deprecated alias
//! `-format`, which share one state).
//!
//! Go prints these as `-name value` in usage and calls their `Set` method, with its own error text, at
//! the moment the flag is met. The shared [`FlagSet`] knows only the plain kinds, so each Var flag is
//! declared there as a repeatable `value` flag and its `Set` is replayed here, in command-line order:
//! the command line is re-parsed one argument longer each time and every newly collected value is
//! set as Go would have set it at that point. That keeps Go's ordering exact (a bad `-timeout` before
//! an unknown flag is the error reported) without a second parser.

use crate::flags::{FlagError, FlagSet, Parsed, go_quote};
use crate::gotime::GoDuration;
use crate::output::OutputFormat;

/// How a Var flag's `Set` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarKind {
    /// `time.ParseDuration`; the last value wins.
    Duration,
    /// A comma-separated list; the last value replaces the list.
    CommaStrings,
    /// cliprinter's format flag; every name of this kind shares one format.
    Output,
}

/// The Var flags of one command.
#[derive(Debug, Clone, Default)]
pub(crate) struct VarFlags {
    flags: Vec<(&'static str, VarKind)>,
}

/// What the Var flags were set to.
#[derive(Debug, Clone, Default)]
pub(crate) struct VarValues {
    durations: Vec<(&'static str, GoDuration)>,
    lists: Vec<(&'static str, Vec<String>)>,
    output: Option<OutputFormat>,
}

impl VarValues {
    /// A duration flag's value, or `default` when it was not given.
    pub(crate) fn duration(&self, name: &str, default: GoDuration) -> GoDuration {
        self.durations.iter().rev().find(|(n, _)| *n == name).map_or(default, |(_, d)| *d)
    }

    /// A comma-list flag's values (empty when not given).
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.lists.iter().rev().find(|(n, _)| *n == name).map(|(_, l)| l.clone()).unwrap_or_default()
    }

    /// The output format (pretty unless set).
    pub(crate) fn output(&self) -> OutputFormat {
        self.output.unwrap_or_default()
    }
}

impl VarFlags {
    /// Declares a Var flag. `usage` is printed as is: Go appends `(default ...)` for Var flags whose
    /// default differs from their zero value, so a caller with such a default writes it into `usage`.
    pub(crate) fn declare(&mut self, fs: &mut FlagSet, name: &'static str, kind: VarKind, usage: &str) {
        fs.strings(name, usage);
        self.flags.push((name, kind));
    }

    /// Declares cliprinter's `-output` flag.
    pub(crate) fn declare_output(&mut self, fs: &mut FlagSet) {
        self.declare(fs, "output", VarKind::Output, "Desired output format (pretty, json); default: pretty.");
    }

    /// Parses `args` with Go semantics, Var flags included.
    pub(crate) fn parse(&self, fs: &FlagSet, args: &[String]) -> Result<(Parsed, VarValues), FlagError> {
        let mut values = VarValues::default();
        let mut seen = vec![0usize; self.flags.len()];
        for end in 1..=args.len() {
            let parsed = match fs.parse(&args[..end]) {
                Ok(parsed) => parsed,
                // The prefix cut a flag from its value; the next prefix has it.
                Err(FlagError::Invalid(msg)) if end < args.len() && msg.starts_with("flag needs an argument") => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (i, (name, kind)) in self.flags.iter().enumerate() {
                let given = parsed.strings(name);
                for text in &given[seen[i]..] {
                    set(&mut values, name, *kind, text).map_err(|why| {
                        FlagError::Invalid(format!("invalid value {} for flag -{name}: {why}", go_quote(text)))
                    })?;
                }
                seen[i] = given.len();
            }
        }
        Ok((fs.parse(args)?, values))
    }
}

/// The Var flag's `Set`.
fn set(values: &mut VarValues, name: &'static str, kind: VarKind, text: &str) -> Result<(), String> {
    match kind {
        VarKind::Duration => values.durations.push((name, go_parse_duration(text)?)),
        VarKind::CommaStrings => values.lists.push((name, text.split(',').map(str::to_owned).collect())),
        VarKind::Output => {
            // `FormatterFlag.Set` compares the canonical name of the format already set with the raw text.
            if let Some(current) = values.output
                && current.name() != text
            {
                return Err(format!("the output format has already been set to {}", go_quote(current.name())));
            }
            values.output = Some(OutputFormat::parse(text).map_err(|e| format!("bad formatter flag: {e}"))?);
        }
    }
    Ok(())
}

/// `time.ParseDuration`, with its error texts (`time: unknown unit "d" in duration "5d"`).
pub(crate) fn go_parse_duration(orig: &str) -> Result<GoDuration, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let mut s = orig.strip_prefix(['-', '+']).unwrap_or(orig);
    if s == "0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        // Go's leadingInt gives up above 2^63, before the unit is even looked at.
        let whole = s[..int_len].bytes().try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')));
        if whole.is_none_or(|w| w > 1 << 63) {
            return Err(invalid());
        }
        s = &s[int_len..];
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            s = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = s.bytes().take_while(|&c| c != b'.' && !c.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", time_quote(orig)));
        }
        let unit = &s[..unit_len];
        if !matches!(unit, "ns" | "us" | "\u{b5}s" | "\u{3bc}s" | "ms" | "s" | "m" | "h") {
            return Err(format!("time: unknown unit {} in duration {}", time_quote(unit), time_quote(orig)));
        }
        s = &s[unit_len..];
    }
    // The syntax is right; what is left to fail is overflow, which Go also calls invalid.
    GoDuration::parse(orig).map_err(|_| invalid())
}

/// The `time` package's `quote`: double quotes, with `"` and `\` escaped and every byte outside
/// printable ASCII written as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if (c as u32) < 0x20 || !c.is_ascii() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sample() -> (FlagSet, VarFlags) {
        let mut fs = FlagSet::new("fetch jwt");
        let mut vars = VarFlags::default();
        vars.declare(&mut fs, "timeout", VarKind::Duration, "Time to wait for a response (default 5s)");
        vars.declare(&mut fs, "audience", VarKind::CommaStrings, "comma separated list of audience values");
        vars.declare_output(&mut fs);
        vars.declare(&mut fs, "format", VarKind::Output, "deprecated; use -output");
        fs.string("spiffeID", "", "SPIFFE ID subject (optional)").bool("silent", false, "Suppress stdout");
        (fs, vars)
    }

    fn invalid(list: &[&str]) -> String {
        let (fs, vars) = sample();
        match vars.parse(&fs, &args(list)).unwrap_err() {
            FlagError::Invalid(msg) => msg,
            FlagError::Help => panic!("help"),
        }
    }

    #[test]
    fn var_values_are_set_in_order() {
        let (fs, vars) = sample();
        let (parsed, values) = vars
            .parse(
                &fs,
                &args(&["-timeout", "1m30s", "-audience=a,b", "-spiffeID", "x", "-audience", "c", "-format", "json"]),
            )
            .unwrap();
        assert_eq!(values.duration("timeout", GoDuration::from_secs(5)), GoDuration::from_secs(90));
        assert_eq!(values.list("audience"), ["c"]);
        assert_eq!(values.output(), OutputFormat::Json);
        assert_eq!(parsed.string("spiffeID"), "x");
        let (_, values) = vars.parse(&fs, &args(&[])).unwrap();
        assert_eq!(values.duration("timeout", GoDuration::from_secs(5)), GoDuration::from_secs(5));
        assert!(values.list("audience").is_empty());
        assert_eq!(values.output(), OutputFormat::Pretty);
        // An empty audience is one empty value, as strings.Split gives.
        let (_, values) = vars.parse(&fs, &args(&["-audience", ""])).unwrap();
        assert_eq!(values.list("audience"), [""]);
    }

    #[test]
    fn go_set_errors() {
        assert_eq!(
            invalid(&["-timeout", "5d"]),
            "invalid value \"5d\" for flag -timeout: time: unknown unit \"d\" in duration \"5d\""
        );
        assert_eq!(
            invalid(&["-timeout=10"]),
            "invalid value \"10\" for flag -timeout: time: missing unit in duration \"10\""
        );
        assert_eq!(invalid(&["-timeout", "x"]), "invalid value \"x\" for flag -timeout: time: invalid duration \"x\"");
        assert_eq!(
            invalid(&["-output", "xml"]),
            "invalid value \"xml\" for flag -output: bad formatter flag: unknown format option: \"xml\""
        );
        // -output and -format are one flag value; its canonical name is compared with the raw text.
        assert_eq!(
            invalid(&["-output", "json", "-format", "pretty"]),
            "invalid value \"pretty\" for flag -format: the output format has already been set to \"json\""
        );
        assert_eq!(
            invalid(&["-output", "JSON", "-output", "JSON"]),
            "invalid value \"JSON\" for flag -output: the output format has already been set to \"json\""
        );
        assert!(sample().1.parse(&sample().0, &args(&["-output", "json", "-output", "json"])).is_ok());
    }

    #[test]
    fn errors_are_reported_in_command_line_order() {
        assert_eq!(
            invalid(&["-timeout", "bad", "-nope"]),
            "invalid value \"bad\" for flag -timeout: time: invalid duration \"bad\""
        );
        assert_eq!(invalid(&["-nope", "-timeout", "bad"]), "flag provided but not defined: -nope");
        assert_eq!(invalid(&["-timeout"]), "flag needs an argument: -timeout");
        // Parsing stops at the first positional argument, Var flags after it are never set.
        let (fs, vars) = sample();
        assert!(vars.parse(&fs, &args(&["positional", "-timeout", "bad"])).is_ok());
    }

    #[test]
    fn durations_like_go() {
        let d = |s: &str| go_parse_duration(s).map(|d| d.0);
        assert_eq!(d("0"), Ok(0));
        assert_eq!(d("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(d("300ms"), Ok(300_000_000));
        assert_eq!(d(""), Err("time: invalid duration \"\"".into()));
        assert_eq!(d(".s"), Err("time: invalid duration \".s\"".into()));
        assert_eq!(d("1xs"), Err("time: unknown unit \"xs\" in duration \"1xs\"".into()));
        assert_eq!(d("1é"), Err("time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\"".into()));
        assert_eq!(d("9999999999999h"), Err("time: invalid duration \"9999999999999h\"".into()));
        assert_eq!(d("99999999999999999999xs"), Err("time: invalid duration \"99999999999999999999xs\"".into()));
    }
}
