//! `-expandEnv`: environment variable expansion of the configuration text before parsing.
//!
//! SPIRE runs Go's `os.Expand` over the whole file with a mapping that turns `$$` into `$` and
//! everything else into `os.Getenv`. We reproduce its exact syntax so that a file expands to the
//! same text under both implementations: `$NAME` (letters, digits, `_`), `${NAME}` (anything up to
//! the first `}`), the one-character shell specials (`$1`, `$@`, `${*}`...), unset variables
//! becoming empty, a `$` followed by nothing name-like kept as is, and malformed `${` / `${}`
//! swallowed.

/// Expands `$VAR` and `${VAR}` from the process environment.
pub fn expand_env(text: &str) -> String {
    expand_with(text, |name| std::env::var(name).unwrap_or_default())
}

/// Expands with a custom lookup (for tests and embedding); `$$` always yields `$`.
pub fn expand_with(text: &str, mut lookup: impl FnMut(&str) -> String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&text[copied..j]);
            let (name, width) = shell_name(&text[j + 1..]);
            match name {
                None if width > 0 => {} // malformed `${` or `${}`: eaten, as Go does
                None => out.push('$'),
                Some("$") => out.push('$'),
                Some(name) => out.push_str(&lookup(name)),
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(&text[copied.min(text.len())..]);
    out
}

fn is_shell_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9')
}

fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// The variable name after a `$` and how many bytes it spans (Go's `getShellName`).
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_shell_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match s[1..].find('}') {
            Some(0) => (None, 2),
            Some(i) => (Some(&s[1..=i]), i + 2),
            None => (None, 1),
        };
    }
    if is_shell_special(b[0]) {
        return (Some(&s[..1]), 1);
    }
    let n = b.iter().take_while(|&&c| is_name_char(c)).count();
    if n == 0 { (None, 0) } else { (Some(&s[..n]), n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str) -> String {
        expand_with(text, |name| match name {
            "HOME" => "/home/me".to_owned(),
            "PORT" => "8081".to_owned(),
            "1" => "one".to_owned(),
            _ => String::new(),
        })
    }

    #[test]
    fn expands_like_go_os_expand() {
        assert_eq!(expand("dir = \"$HOME/x\""), "dir = \"/home/me/x\"");
        assert_eq!(expand("port = ${PORT}"), "port = 8081");
        assert_eq!(expand("$UNSET-${UNSET}|"), "-|");
        assert_eq!(expand("cost $$5"), "cost $5");
        assert_eq!(expand("a $ b"), "a $ b");
        assert_eq!(expand("end$"), "end$");
        assert_eq!(expand("${}x"), "x");
        assert_eq!(expand("${HOME"), "HOME");
        assert_eq!(expand("$1st ${1}"), "onest one");
        assert_eq!(expand("$HOME.conf"), "/home/me.conf");
        assert_eq!(expand("naïve $HOME é"), "naïve /home/me é");
        assert_eq!(expand("no dollars"), "no dollars");
    }
}
