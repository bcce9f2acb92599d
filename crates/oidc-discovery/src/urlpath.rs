//! The few pieces of Go's `path` and `net/url` that decide the provider's routes and URLs, so that
//! a `server_path_prefix` or `jwt_issuer` gives the same endpoints and document as SPIRE's.

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `url.JoinPath(base, elem)` for a base that is a bare path: joined and cleaned, relative
/// bases stay relative, and a trailing slash of `elem` is kept.
pub fn join(base: &str, elem: &str) -> String {
    let mut p = if base.starts_with('/') {
        clean(&format!("{base}/{elem}"))
    } else {
        clean(&format!("/{base}/{elem}"))[1..].to_owned()
    };
    if elem.ends_with('/') && !p.ends_with('/') {
        p.push('/');
    }
    p
}

/// The path of a URL (`https://host/a/b?q` gives `/a/b`).
pub fn url_path(raw: &str) -> &str {
    let after_scheme = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let start = after_scheme.find('/').unwrap_or(after_scheme.len());
    let rest = &after_scheme[start..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// Go's `url.URL{Scheme, Host, Path}.String()`.
pub fn url_string(scheme: &str, host: &str, path: &str) -> String {
    let sep = if !path.is_empty() && !path.starts_with('/') && !host.is_empty() { "/" } else { "" };
    format!("{scheme}://{}{sep}{}", escape_host(host), escape_path(path))
}

/// A request path with its `%XX` escapes decoded, as Go's mux matches it; `None` if an escape is
/// malformed or the result is not UTF-8.
pub fn unescape(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Go's host escaping: the characters a host (with its port, or a bracketed IPv6 literal) may
/// hold stay, anything else (a `/`, `?`, `#`, `@` or `%` smuggled into a Host header) is
/// percent-encoded, so it cannot change the meaning of the URL built from it.
fn escape_host(host: &str) -> String {
    escape(host, b"-_.~!$&'()*+,;=:[]<>\"")
}

/// Go's path escaping: unreserved characters and the sub-delimiters a path may hold stay as they
/// are, anything else is percent-encoded.
fn escape_path(path: &str) -> String {
    escape(path, b"-_.~$&+,/:;=@!()*'")
}

/// Percent-encodes every byte that is neither alphanumeric nor in `keep`.
fn escape(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_as_go() {
        assert_eq!(join("/", "/.well-known/openid-configuration"), "/.well-known/openid-configuration");
        assert_eq!(join("/", "keys"), "/keys");
        assert_eq!(join("/instance/1", "keys"), "/instance/1/keys");
        assert_eq!(join("/instance/1/", "/keys"), "/instance/1/keys");
        assert_eq!(join("", "keys"), "keys");
        assert_eq!(join("/a/../b", "keys"), "/b/keys");
    }

    #[test]
    fn clean_as_go() {
        assert_eq!(clean("//keys"), "/keys");
        assert_eq!(clean("/a/./b/../keys"), "/a/keys");
        assert_eq!(clean("/.."), "/");
        assert_eq!(clean("a/"), "a");
    }

    #[test]
    fn unescape_as_go_mux() {
        assert_eq!(unescape("/%6beys").as_deref(), Some("/keys"));
        assert_eq!(unescape("/%zz"), None);
        assert_eq!(unescape("/%4"), None);
        assert_eq!(unescape("/%E2%82%AC").as_deref(), Some("/€"));
    }

    #[test]
    fn urls_as_go() {
        assert_eq!(url_string("https", "h.example", "keys"), "https://h.example/keys");
        assert_eq!(url_string("https", "h.example", ""), "https://h.example");
        assert_eq!(url_string("http", "h:8080", "/p q/keys"), "http://h:8080/p%20q/keys");
        assert_eq!(url_string("https", "[::1]:443", "/keys"), "https://[::1]:443/keys");
        assert_eq!(url_path("https://h.example/a/b?x#y"), "/a/b");
        assert_eq!(url_path("https://h.example"), "");
    }

    #[test]
    fn hosts_escaped_as_go() {
        // What Go's url.URL{Scheme: "https", Host: h, Path: "/keys"}.String() prints.
        assert_eq!(url_string("https", "h:1@evil/x", "/keys"), "https://h:1%40evil%2Fx/keys");
        assert_eq!(url_string("https", "h:1#f?q", "/keys"), "https://h:1%23f%3Fq/keys");
        assert_eq!(url_string("https", "h%2F", "/keys"), "https://h%252F/keys");
        assert_eq!(url_string("https", "a!$&'()*+,;=<>\"", "/keys"), "https://a!$&'()*+,;=<>\"/keys");
        assert_eq!(url_string("https", "h\u{e9} x", "/keys"), "https://h%C3%A9%20x/keys");
    }
}
