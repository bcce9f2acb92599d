//! Error text as SPIRE's Go code prints it, shared by `spire-server`, `spire-agent` and the CLI:
//! an OS error as Go's `syscall.Errno` words it, and an error followed by its causes as Go's wrapped
//! errors (`fmt.Errorf("...: %w", err)`) read.

use std::error::Error;
use std::io;

/// An OS error as Go's `syscall.Errno` prints it: the C library's text without Rust's
/// ` (os error N)` suffix, its first letter in lower case (`no such file or directory`) unless the
/// first word is an acronym (`RFS specific error`, as Go's table keeps it). Any other I/O error is
/// its text unchanged.
pub fn errno_text(err: &io::Error) -> String {
    let text = err.to_string();
    let Some(code) = err.raw_os_error() else { return text };
    let text = text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text);
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), second) if !second.is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(text[first.len_utf8()..].chars()).collect()
        }
        _ => text.to_owned(),
    }
}

/// `err` and its sources, `: `-separated as Go's wrapped errors read. A source whose text the text
/// so far already ends with is left out: Rust errors often print their source after a colon and
/// return it from `source()` too (`failed to read kubeconfig: <io error>`), where Go would print it
/// once. Only a repeat at the end is dropped, so a short cause that merely occurs inside the message
/// (`EOF`, `timed out`) is never lost.
pub fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_reads_like_go() {
        let text = |code| errno_text(&io::Error::from_raw_os_error(code));
        assert_eq!(text(2), "no such file or directory");
        assert_eq!(text(13), "permission denied");
        assert_eq!(text(111), "connection refused");
        // Go: "input/output error", "remote I/O error": only the first letter changes.
        assert_eq!(text(5), "input/output error");
        assert_eq!(text(121), "remote I/O error");
        // An acronym keeps its case, as in Go's table.
        assert_eq!(text(73), "RFS specific error");
    }

    #[test]
    fn errno_text_leaves_other_errors_alone() {
        assert_eq!(errno_text(&io::Error::other("Refused by policy")), "Refused by policy");
        assert_eq!(errno_text(&io::ErrorKind::NotFound.into()), "entity not found");
        // Only the real suffix goes.
        let err = io::Error::other("a (os error 2)");
        assert_eq!(errno_text(&err), "a (os error 2)");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("read failed")]
    struct Plain(#[source] io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("unexpected EOF while reading the header")]
    struct Mentions(#[source] Eof);

    #[derive(Debug, thiserror::Error)]
    #[error("EOF")]
    struct Eof;

    #[test]
    fn chain_joins_sources_once() {
        // The message already ends with its source: printed once.
        let e = Outer(Inner(io::Error::other("refused")));
        assert_eq!(chain(&e), "outer: inner: refused");
        // A source the message does not print is appended.
        assert_eq!(chain(&Plain(io::Error::other("refused"))), "read failed: refused");
        // A source that only occurs inside the message is still appended.
        assert_eq!(chain(&Mentions(Eof)), "unexpected EOF while reading the header: EOF");
        // No sources: the message alone.
        assert_eq!(chain(&Eof), "EOF");
    }
}
