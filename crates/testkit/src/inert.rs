//! Checks shared by the daemons' tests of settings accepted without effect: each such setting is
//! reported once at start (a WARN log line) and once by `validate` (a stderr line).

use std::path::Path;
use std::process::Command;

/// The lines of `text` that say `key` has no effect.
fn lines_about<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let needle = format!(" {key} has no effect yet: ");
    text.lines().filter(|l| l.contains(&needle)).collect()
}

/// `log` has exactly one WARN line for each of `keys`, and no other "has no effect" line.
pub fn assert_each_warned_once(log: &str, keys: &[&str]) {
    for key in keys {
        let lines = lines_about(log, key);
        assert_eq!(lines.len(), 1, "{key}: {lines:?}\n{log}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    }
    let all: Vec<&str> = log.lines().filter(|l| l.contains(" has no effect yet: ")).collect();
    assert_eq!(all.len(), keys.len(), "{all:#?}");
}

/// `<binary> validate -config <config>` succeeds, prints `valid` on stdout, and one stderr line per
/// key of `keys`, nothing else.
pub fn assert_validate_lists(binary: &Path, config: &Path, valid: &str, keys: &[&str]) {
    let out = Command::new(binary).arg("validate").arg("-config").arg(config).output().expect("run validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), valid);
    for key in keys {
        assert_eq!(lines_about(&stderr, key).len(), 1, "{key}: {stderr}");
    }
    assert_eq!(stderr.lines().count(), keys.len(), "{stderr}");
}
