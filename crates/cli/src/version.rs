//! `-v`, `-version` and `--version` before the subcommand print the version on stderr and exit 0,
//! as SPIRE's binaries do (mitchellh/cli); after the subcommand they belong to it.

use std::io::Write;

/// What `--version` prints: this build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether `args` (without the program name) ask for the version before naming a subcommand.
pub fn requested(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| a.starts_with('-') && *a != "--")
        .any(|a| matches!(a.as_str(), "-v" | "-version" | "--version"))
}

/// Prints the version if `args` ask for it; returns the exit code to stop with.
pub fn answer(args: &[String], stderr: &mut dyn Write) -> Option<i32> {
    requested(args).then(|| {
        let _ = writeln!(stderr, "{VERSION}");
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_before_the_subcommand() {
        for a in [&["-v"][..], &["--version"], &["-version"], &["-v", "entry", "show"], &["-h", "-version"]] {
            assert!(requested(&args(a)), "{a:?}");
        }
        for a in [&["entry", "show", "-v"][..], &["version"], &[], &["--", "-v"], &["run", "-version"]] {
            assert!(!requested(&args(a)), "{a:?}");
        }
        let mut err = Vec::new();
        assert_eq!(answer(&args(&["--version"]), &mut err), Some(0));
        assert_eq!(String::from_utf8(err).unwrap(), format!("{VERSION}\n"));
    }
}
