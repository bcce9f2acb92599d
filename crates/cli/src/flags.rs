//! Go `flag`-package command lines: `-flag value`, `-flag=value`, `--flag value`, Go booleans, repeatable
//! list flags, and Go's error wording and usage layout.
//!
//! This is a small hand parser rather than clap: SPIRE scripts depend on details clap cannot be bent to
//! without rewriting most of what it does. Go takes the next argument as a value even when it starts with
//! a dash (`-spiffeID -x`), never lets a bare boolean consume the next argument, stops at the first
//! non-flag argument, prints `flag provided but not defined: -foo` followed by a usage block whose layout
//! (`  -name type\n    \tusage (default ...)`, sorted by name) scripts and tests compare byte for byte,
//! and parses integers with base prefixes. Reproducing Go's behaviour directly is shorter than
//! reshaping clap's.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::gotime::GoDuration;
use crate::output::OutputFormat;

/// How a flag's value is read, and what `PrintDefaults` calls its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`.
    String,
    /// `int` (Go's `IntVar`/`Int64Var`; both print as `int`).
    Int,
    /// A Go boolean: present alone means true; `-flag=false` sets it false.
    Bool,
    /// `duration` (Go's `time.ParseDuration` syntax).
    Duration,
    /// A repeatable list flag (SPIRE's `StringsFlag`, printed as `value`).
    Strings,
    /// The `-output` flag of `cliprinter` (printed as `value`).
    Output,
}

/// One declared flag.
#[derive(Debug, Clone)]
struct FlagSpec {
    name: &'static str,
    kind: Kind,
    /// Go's `DefValue`: the default as text.
    default: String,
    usage: String,
}

/// A parse that did not produce flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help` was given.
    Help,
    /// A malformed command line; the message is Go's, without the usage block.
    Invalid(String),
}

/// The flags of one command, in the order they were declared.
#[derive(Debug, Clone)]
pub struct FlagSet {
    name: String,
    specs: Vec<FlagSpec>,
}

impl FlagSet {
    /// An empty set for the command called `name` (`entry show`), as usage headers name it.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), specs: Vec::new() }
    }

    fn add(&mut self, name: &'static str, kind: Kind, default: String, usage: impl Into<String>) -> &mut Self {
        debug_assert!(self.spec(name).is_none(), "flag -{name} declared twice");
        self.specs.push(FlagSpec { name, kind, default, usage: usage.into() });
        self
    }

    /// A string flag.
    pub fn string(&mut self, name: &'static str, default: &str, usage: impl Into<String>) -> &mut Self {
        self.add(name, Kind::String, default.to_owned(), usage)
    }

    /// An integer flag.
    pub fn int(&mut self, name: &'static str, default: i64, usage: impl Into<String>) -> &mut Self {
        self.add(name, Kind::Int, default.to_string(), usage)
    }

    /// A boolean flag.
    pub fn bool(&mut self, name: &'static str, default: bool, usage: impl Into<String>) -> &mut Self {
        self.add(name, Kind::Bool, default.to_string(), usage)
    }

    /// A duration flag.
    pub fn duration(&mut self, name: &'static str, default: GoDuration, usage: impl Into<String>) -> &mut Self {
        self.add(name, Kind::Duration, default.to_string(), usage)
    }

    /// A repeatable flag collecting every value given.
    pub fn strings(&mut self, name: &'static str, usage: impl Into<String>) -> &mut Self {
        self.add(name, Kind::Strings, "[]".to_owned(), usage)
    }

    /// SPIRE's `-output pretty|json` flag.
    pub fn output(&mut self) -> &mut Self {
        self.add("output", Kind::Output, "pretty".to_owned(), "Desired output format (pretty, json); default: pretty.")
    }

    fn spec(&self, name: &str) -> Option<&FlagSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// Go's `FlagSet.Usage`: `Usage of <name>:` and then `PrintDefaults`.
    pub fn usage(&self) -> String {
        let mut out = format!("Usage of {}:\n", self.name);
        let mut specs: Vec<&FlagSpec> = self.specs.iter().collect();
        specs.sort_by(|a, b| a.name.cmp(b.name));
        for spec in specs {
            let mut line = format!("  -{}", spec.name);
            let type_name = match spec.kind {
                Kind::String => "string",
                Kind::Int => "int",
                Kind::Bool => "",
                Kind::Duration => "duration",
                Kind::Strings | Kind::Output => "value",
            };
            if !type_name.is_empty() {
                line.push(' ');
                line.push_str(type_name);
            }
            // Go keeps the usage of one-letter boolean flags on the same line.
            line.push_str(if line.len() <= 4 { "\t" } else { "\n    \t" });
            line.push_str(&spec.usage.replace('\n', "\n    \t"));
            if !is_zero_value(spec) {
                if spec.kind == Kind::String {
                    let _ = write!(line, " (default {})", go_quote(&spec.default));
                } else {
                    let _ = write!(line, " (default {})", spec.default);
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Parses `args` the way Go's `FlagSet.Parse` does. Parsing stops at `--` (which is dropped) or at the
    /// first argument that is not a flag; the rest is returned as [`Parsed::args`].
    pub fn parse(&self, args: &[String]) -> Result<Parsed, FlagError> {
        let mut values: HashMap<&'static str, Vec<String>> = HashMap::new();
        let mut index = 0;
        while index < args.len() {
            let arg = &args[index];
            if arg.len() < 2 || !arg.starts_with('-') {
                break;
            }
            let dashes = if arg.as_bytes()[1] == b'-' {
                if arg.len() == 2 {
                    index += 1;
                    break;
                }
                2
            } else {
                1
            };
            let body = &arg[dashes..];
            if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
                return Err(FlagError::Invalid(format!("bad flag syntax: {arg}")));
            }
            index += 1;
            // As in Go, a leading `=` is not a separator (it was refused above).
            let (name, inline_value) = match body.char_indices().skip(1).find(|&(_, c)| c == '=') {
                Some((at, _)) => (&body[..at], Some(&body[at + 1..])),
                None => (body, None),
            };
            let Some(spec) = self.spec(name) else {
                if name == "help" || name == "h" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Invalid(format!("flag provided but not defined: -{name}")));
            };
            let value = if spec.kind == Kind::Bool {
                match inline_value {
                    Some(text) => match parse_go_bool(text) {
                        Some(b) => b.to_string(),
                        None => {
                            return Err(FlagError::Invalid(format!(
                                "invalid boolean value {} for -{name}: parse error",
                                go_quote(text)
                            )));
                        }
                    },
                    None => "true".to_owned(),
                }
            } else {
                let text = match inline_value {
                    Some(text) => text.to_owned(),
                    None if index < args.len() => {
                        index += 1;
                        args[index - 1].clone()
                    }
                    None => return Err(FlagError::Invalid(format!("flag needs an argument: -{name}"))),
                };
                if let Err(why) = check_value(spec, &text, values.get(spec.name)) {
                    return Err(FlagError::Invalid(format!(
                        "invalid value {} for flag -{name}: {why}",
                        go_quote(&text)
                    )));
                }
                text
            };
            values.entry(spec.name).or_default().push(value);
        }
        Ok(Parsed { specs: self.specs.clone(), values, args: args[index..].to_vec() })
    }
}

/// Go's `isZeroValue`: whether `PrintDefaults` leaves out `(default ...)`.
fn is_zero_value(spec: &FlagSpec) -> bool {
    match spec.kind {
        Kind::String => spec.default.is_empty(),
        Kind::Int => spec.default == "0",
        Kind::Bool => spec.default == "false",
        Kind::Duration => spec.default == "0s",
        // The zero value of these Var types prints the same text as their default.
        Kind::Strings | Kind::Output => true,
    }
}

/// Checks a value as the flag's Go `Set` would; the error is the text after `for flag -x: `.
fn check_value(spec: &FlagSpec, text: &str, previous: Option<&Vec<String>>) -> Result<(), String> {
    match spec.kind {
        Kind::String | Kind::Strings | Kind::Bool => Ok(()),
        Kind::Int => parse_go_int(text).map(|_| ()),
        Kind::Duration => GoDuration::parse(text).map(|_| ()).map_err(|_| "parse error".to_owned()),
        Kind::Output => {
            if let Some(prev) = previous.and_then(|p| p.last())
                && prev != text
            {
                let prev = OutputFormat::parse(prev).map(OutputFormat::name).unwrap_or("unknown");
                return Err(format!("the output format has already been set to {}", go_quote(prev)));
            }
            OutputFormat::parse(text).map(|_| ()).map_err(|e| format!("bad formatter flag: {e}"))
        }
    }
}

/// `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `strconv.ParseInt(s, 0, 64)` with the `flag` package's error texts (`parse error`,
/// `value out of range`).
pub fn parse_go_int(text: &str) -> Result<i64, String> {
    let parse_error = || "parse error".to_owned();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body, prefixed) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_owned(), true)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_owned(), true)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_owned(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned(), true)
    } else {
        (10, lower.clone(), false)
    };
    // Underscores are allowed between digits only with a base prefix.
    let body = if prefixed { body.trim_start_matches('_').replace('_', "") } else { body };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return Err(parse_error());
    }
    let magnitude = u64::from_str_radix(&body, radix).map_err(|_| "value out of range".to_owned())?;
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            return Err("value out of range".to_owned());
        }
        Ok((magnitude as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(magnitude).map_err(|_| "value out of range".to_owned())
    }
}

/// Go's `%q` for the plain strings flags carry.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The flags given on one command line.
#[derive(Debug, Clone)]
pub struct Parsed {
    specs: Vec<FlagSpec>,
    values: HashMap<&'static str, Vec<String>>,
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "SPIRE ignores positional arguments; tests check where parsing stopped")
    )]
    args: Vec<String>,
}

impl Parsed {
    fn spec(&self, name: &str) -> &FlagSpec {
        self.specs.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("flag -{name} was never declared"))
    }

    fn last(&self, name: &str) -> String {
        let spec = self.spec(name);
        self.values.get(spec.name).and_then(|v| v.last().cloned()).unwrap_or_else(|| spec.default.clone())
    }

    /// Whether the flag appeared on the command line.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(self.spec(name).name)
    }

    /// A string flag's value (the last one given wins, as in Go).
    pub fn string(&self, name: &str) -> String {
        self.last(name)
    }

    /// An integer flag's value.
    pub fn int(&self, name: &str) -> i64 {
        parse_go_int(&self.last(name)).expect("checked while parsing")
    }

    /// A boolean flag's value.
    pub fn bool(&self, name: &str) -> bool {
        self.last(name) == "true"
    }

    /// A boolean flag's value, or `None` when it was not given.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.is_set(name).then(|| self.bool(name))
    }

    /// A duration flag's value.
    pub fn duration(&self, name: &str) -> GoDuration {
        GoDuration::parse(&self.last(name)).expect("checked while parsing")
    }

    /// Every value of a repeatable flag, in order.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(self.spec(name).name).cloned().unwrap_or_default()
    }

    /// The `-output` format.
    pub fn output(&self) -> OutputFormat {
        OutputFormat::parse(&self.last("output")).expect("checked while parsing")
    }

    /// Arguments left after the flags.
    #[cfg(test)]
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sample() -> FlagSet {
        let mut fs = FlagSet::new("entry create");
        fs.string("spiffeID", "", "The SPIFFE ID that this record represents")
            .string("parentID", "", "The SPIFFE ID of this record's parent")
            .int("x509SVIDTTL", 0, "The lifetime, in seconds, for x509-SVIDs issued based on this registration entry.")
            .bool("node", false, "If set, this entry will be applied to matching nodes rather than workloads")
            .strings("selector", "A colon-delimited type:value selector. Can be used more than once")
            .duration("expiredFor", GoDuration::from_secs(720 * 3600), "Amount of time")
            .string("socketPath", "/tmp/spire-server/private/api.sock", "Path to the SPIRE Server API socket")
            .output();
        fs
    }

    #[test]
    fn value_forms() {
        let fs = sample();
        let p =
            fs.parse(&args(&["-spiffeID", "spiffe://a/b", "-parentID=spiffe://a/p", "--x509SVIDTTL", "60"])).unwrap();
        assert_eq!(p.string("spiffeID"), "spiffe://a/b");
        assert_eq!(p.string("parentID"), "spiffe://a/p");
        assert_eq!(p.int("x509SVIDTTL"), 60);
        assert!(p.args().is_empty());
    }

    #[test]
    fn value_may_start_with_a_dash() {
        let p = sample().parse(&args(&["-spiffeID", "-node"])).unwrap();
        assert_eq!(p.string("spiffeID"), "-node");
        assert!(!p.bool("node"));
    }

    #[test]
    fn flags_are_case_sensitive() {
        let err = sample().parse(&args(&["-spiffeid", "x"])).unwrap_err();
        assert_eq!(err, FlagError::Invalid("flag provided but not defined: -spiffeid".into()));
    }

    #[test]
    fn repeated_flags_accumulate_and_last_string_wins() {
        let p = sample()
            .parse(&args(&["-selector", "a:b", "-selector=c:d", "-spiffeID", "one", "-spiffeID", "two"]))
            .unwrap();
        assert_eq!(p.strings("selector"), vec!["a:b", "c:d"]);
        assert_eq!(p.string("spiffeID"), "two");
    }

    #[test]
    fn go_booleans() {
        let fs = sample();
        assert!(fs.parse(&args(&["-node"])).unwrap().bool("node"));
        assert!(fs.parse(&args(&["-node=true"])).unwrap().bool("node"));
        assert!(fs.parse(&args(&["-node=T"])).unwrap().bool("node"));
        assert!(!fs.parse(&args(&["-node=false"])).unwrap().bool("node"));
        assert_eq!(fs.parse(&args(&["-node=0"])).unwrap().opt_bool("node"), Some(false));
        assert_eq!(fs.parse(&args(&[])).unwrap().opt_bool("node"), None);
        // A bare boolean never takes the next argument: "false" is the first positional argument.
        let p = fs.parse(&args(&["-node", "false", "-spiffeID", "x"])).unwrap();
        assert!(p.bool("node"));
        assert_eq!(p.args(), ["false", "-spiffeID", "x"]);
        assert_eq!(
            fs.parse(&args(&["-node=maybe"])).unwrap_err(),
            FlagError::Invalid("invalid boolean value \"maybe\" for -node: parse error".into())
        );
    }

    #[test]
    fn parsing_stops_at_double_dash_and_first_non_flag() {
        let fs = sample();
        let p = fs.parse(&args(&["-node", "--", "-spiffeID", "x"])).unwrap();
        assert_eq!(p.args(), ["-spiffeID", "x"]);
        assert!(!p.is_set("spiffeID"));
        let p = fs.parse(&args(&["positional", "-node"])).unwrap();
        assert_eq!(p.args(), ["positional", "-node"]);
        assert!(!p.bool("node"));
        let p = fs.parse(&args(&["-", "-node"])).unwrap();
        assert_eq!(p.args(), ["-", "-node"]);
    }

    #[test]
    fn go_error_messages() {
        let fs = sample();
        let invalid = |list: &[&str]| match fs.parse(&args(list)).unwrap_err() {
            FlagError::Invalid(msg) => msg,
            FlagError::Help => panic!("help"),
        };
        assert_eq!(invalid(&["-foo"]), "flag provided but not defined: -foo");
        assert_eq!(invalid(&["-spiffeID"]), "flag needs an argument: -spiffeID");
        assert_eq!(invalid(&["-x509SVIDTTL", "ten"]), "invalid value \"ten\" for flag -x509SVIDTTL: parse error");
        assert_eq!(
            invalid(&["-x509SVIDTTL", "99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -x509SVIDTTL: value out of range"
        );
        assert_eq!(invalid(&["-expiredFor", "5d"]), "invalid value \"5d\" for flag -expiredFor: parse error");
        assert_eq!(invalid(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(invalid(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            invalid(&["-output", "xml"]),
            "invalid value \"xml\" for flag -output: bad formatter flag: unknown format option: \"xml\""
        );
        assert_eq!(
            invalid(&["-output", "json", "-output", "pretty"]),
            "invalid value \"pretty\" for flag -output: the output format has already been set to \"json\""
        );
    }

    #[test]
    fn help_flags() {
        let fs = sample();
        assert_eq!(fs.parse(&args(&["-h"])).unwrap_err(), FlagError::Help);
        assert_eq!(fs.parse(&args(&["-help"])).unwrap_err(), FlagError::Help);
        assert_eq!(fs.parse(&args(&["--help"])).unwrap_err(), FlagError::Help);
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_go_int("0x10"), Ok(16));
        assert_eq!(parse_go_int("010"), Ok(8));
        assert_eq!(parse_go_int("-5"), Ok(-5));
        assert_eq!(parse_go_int("1_000"), Err("parse error".into()));
        assert_eq!(parse_go_int("0x1_0"), Ok(16));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
    }

    #[test]
    fn usage_matches_go_print_defaults() {
        let mut fs = FlagSet::new("agent purge");
        fs.bool(
            "dryRun",
            false,
            "Indicates that the command will not perform any action, but will print the agents that would be purged.",
        )
        .duration(
            "expiredFor",
            GoDuration::from_secs(720 * 3600),
            "Amount of time that has passed since the agent's SVID has expired. It is used to determine which agents to purge.",
        )
        .output()
        .string("socketPath", "/tmp/spire-server/private/api.sock", "Path to the SPIRE Server API socket");
        assert_eq!(
            fs.usage(),
            "Usage of agent purge:
  -dryRun
    \tIndicates that the command will not perform any action, but will print the agents that would be purged.
  -expiredFor duration
    \tAmount of time that has passed since the agent's SVID has expired. It is used to determine which agents to purge. (default 720h0m0s)
  -output value
    \tDesired output format (pretty, json); default: pretty.
  -socketPath string
    \tPath to the SPIRE Server API socket (default \"/tmp/spire-server/private/api.sock\")
"
        );
    }

    #[test]
    fn one_letter_booleans_keep_usage_on_their_line() {
        let mut fs = FlagSet::new("x");
        fs.bool("a", false, "admin").int("n", 5, "count");
        assert_eq!(fs.usage(), "Usage of x:\n  -a\tadmin\n  -n int\n    \tcount (default 5)\n");
    }
}
