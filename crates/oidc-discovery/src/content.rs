//! Go's `http.ServeContent` for the JWKS: `Last-Modified`, the conditional request headers
//! (`If-Range` included) and byte ranges (several in a `multipart/byteranges` body, with Go's
//! random 60-hex-digit boundary), so that caching clients and proxies see what SPIRE's provider
//! sends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::http::response::Builder;
use hyper::{Response, StatusCode};

use crate::handler::{Body, header_str, text_error};

/// Finishes `response` with `body` last modified at `modified`, honouring the request's
/// preconditions and `Range`.
pub fn serve(response: &mut Builder, request: &HeaderMap, modified: SystemTime, body: Bytes) -> Response<Body> {
    let builder = std::mem::take(response);
    let modified = truncate_to_seconds(modified);
    let builder = if modified > UNIX_EPOCH {
        builder.header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified))
    } else {
        builder
    };
    if let Some(status) = precondition(request, modified) {
        return not_modified_or_failed(builder, status);
    }
    let size = body.len();
    let range = header_str(request, "range").filter(|_| if_range_holds(request, modified));
    let ranges = match range.map(|r| parse_range(r, size)).transpose() {
        Ok(ranges) => ranges.unwrap_or_default(),
        Err(RangeError::NotSatisfiable) if size == 0 => Vec::new(),
        Err(RangeError::NotSatisfiable) => {
            let builder = builder.header(header::CONTENT_RANGE, format!("bytes */{size}"));
            return serve_error(builder, "invalid range: failed to overlap");
        }
        Err(RangeError::Invalid) => return serve_error(builder, "invalid range"),
    };
    // More bytes asked for than there are: Go ignores the ranges.
    let ranges = if ranges.iter().map(|r| r.1).sum::<usize>() > size { Vec::new() } else { ranges };
    let builder = builder.header(header::ACCEPT_RANGES, "bytes");
    match ranges.as_slice() {
        [] => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size)
            .body(Full::new(body))
            .expect("valid response"),
        [(start, length)] => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, content_range(*start, *length, size))
            .header(header::CONTENT_LENGTH, *length)
            .body(Full::new(body.slice(*start..start + length)))
            .expect("valid response"),
        several => {
            let content_type = builder
                .headers_ref()
                .and_then(|h| h.get(header::CONTENT_TYPE))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let boundary = random_boundary();
            let multipart = multipart(&body, several, size, &content_type, &boundary);
            let mut r = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_LENGTH, multipart.len())
                .body(Full::new(Bytes::from(multipart)))
                .expect("valid response");
            let value = format!("multipart/byteranges; boundary={boundary}").parse().expect("header value");
            r.headers_mut().insert(header::CONTENT_TYPE, value);
            r
        }
    }
}

/// `bytes <first>-<last>/<size>`.
fn content_range(start: usize, length: usize, size: usize) -> String {
    format!("bytes {start}-{}/{size}", (start + length).wrapping_sub(1) as isize)
}

/// Go's `checkIfRange`: without an ETag, only an `If-Range` date equal to the modification time
/// (to the second) keeps the `Range`.
fn if_range_holds(request: &HeaderMap, modified: SystemTime) -> bool {
    match header_str(request, "if-range") {
        None => true,
        Some(v) if v.starts_with('"') || v.starts_with("W/") => false,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|t| t == modified),
    }
}

/// Go's multipart writer: each part's headers sorted by name, CRLF framing.
fn multipart(body: &[u8], ranges: &[(usize, usize)], size: usize, content_type: &str, boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (start, length)) in ranges.iter().enumerate() {
        let sep = if i == 0 { "" } else { "\r\n" };
        let range = content_range(*start, *length, size);
        out.extend_from_slice(
            format!("{sep}--{boundary}\r\nContent-Range: {range}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(&body[*start..start + length]);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// 30 random bytes in hex, as Go's `multipart.Writer` draws its boundary.
fn random_boundary() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 30];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn truncate_to_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 304 or 412 if the request's preconditions say so (the response has no ETag, so only `*`
/// matches an entity tag).
fn precondition(request: &HeaderMap, modified: SystemTime) -> Option<StatusCode> {
    let date = |name: &str| header_str(request, name).and_then(|v| httpdate::parse_http_date(v).ok());
    match header_str(request, "if-match") {
        Some(v) if v.trim() != "*" => return Some(StatusCode::PRECONDITION_FAILED),
        Some(_) => {}
        None => {
            if date("if-unmodified-since").is_some_and(|since| modified > since) {
                return Some(StatusCode::PRECONDITION_FAILED);
            }
        }
    }
    match header_str(request, "if-none-match") {
        Some(v) if v.trim() == "*" => Some(StatusCode::NOT_MODIFIED),
        Some(_) => None,
        None => date("if-modified-since").filter(|since| modified <= *since).map(|_| StatusCode::NOT_MODIFIED),
    }
}

/// Go's `serveError` for a bad `Range`: the headers set so far, less the caching and validator
/// ones, around an `http.Error` text.
fn serve_error(builder: Builder, message: &str) -> Response<Body> {
    let mut r = text_error(StatusCode::RANGE_NOT_SATISFIABLE, message);
    if let Some(set) = builder.headers_ref() {
        for (name, value) in set {
            if ![header::CACHE_CONTROL, header::CONTENT_ENCODING, header::ETAG, header::LAST_MODIFIED].contains(name)
                && !r.headers().contains_key(name)
            {
                r.headers_mut().insert(name, value.clone());
            }
        }
    }
    r
}

/// An empty 304 or 412; a 304 keeps the caching headers but not `Content-Type`.
fn not_modified_or_failed(builder: Builder, status: StatusCode) -> Response<Body> {
    let mut r = builder.status(status).body(Full::new(Bytes::new())).expect("valid response");
    if status == StatusCode::NOT_MODIFIED {
        r.headers_mut().remove(header::CONTENT_TYPE);
    }
    r
}

#[derive(Debug, PartialEq, Eq)]
enum RangeError {
    Invalid,
    NotSatisfiable,
}

/// Go's `parseRange`: the ranges as (start, length); an empty list when none is left (the whole
/// body is sent), `NotSatisfiable` when every range starts past the end.
fn parse_range(value: &str, size: usize) -> Result<Vec<(usize, usize)>, RangeError> {
    let spec = value.strip_prefix("bytes=").ok_or(RangeError::Invalid)?;
    let number = |s: &str| s.parse::<u64>().ok().and_then(|n| usize::try_from(n).ok()).ok_or(RangeError::Invalid);
    let mut ranges = Vec::new();
    let mut no_overlap = false;
    for part in spec.split(',').map(|p| p.trim_matches([' ', '\t'])) {
        if part.is_empty() {
            continue;
        }
        let (first, last) = part.split_once('-').ok_or(RangeError::Invalid)?;
        let (first, last) = (first.trim_matches([' ', '\t']), last.trim_matches([' ', '\t']));
        if first.is_empty() {
            if last.is_empty() || last.starts_with('-') {
                return Err(RangeError::Invalid);
            }
            let n = number(last)?.min(size);
            ranges.push((size - n, n));
            continue;
        }
        let start = number(first)?;
        if start >= size {
            no_overlap = true;
            continue;
        }
        let length = if last.is_empty() {
            size - start
        } else {
            let end = number(last)?;
            if start > end {
                return Err(RangeError::Invalid);
            }
            end.min(size - 1) - start + 1
        };
        ranges.push((start, length));
    }
    if no_overlap && ranges.is_empty() {
        return Err(RangeError::NotSatisfiable);
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(vec![(0, 10)]));
        assert_eq!(parse_range("bytes=90-", 100), Ok(vec![(90, 10)]));
        assert_eq!(parse_range("bytes=-5", 100), Ok(vec![(95, 5)]));
        assert_eq!(parse_range("bytes=0-1, 5-6", 100), Ok(vec![(0, 2), (5, 2)]));
        assert_eq!(parse_range("bytes=0-1,500-", 100), Ok(vec![(0, 2)]));
        assert_eq!(parse_range("bytes=", 100), Ok(vec![]));
        assert_eq!(parse_range("bytes=200-", 100), Err(RangeError::NotSatisfiable));
        assert_eq!(parse_range("bytes=5-1", 100), Err(RangeError::Invalid));
        assert_eq!(parse_range("items=0-1", 100), Err(RangeError::Invalid));
        assert_eq!(parse_range("bytes=--1", 100), Err(RangeError::Invalid));
    }

    #[test]
    fn multipart_as_go() {
        let body = multipart(b"0123456789", &[(0, 2), (5, 1)], 10, "application/json", "B");
        let expected = "--B\r\nContent-Range: bytes 0-1/10\r\nContent-Type: application/json\r\n\r\n01\r\n--B\r\nContent-Range: bytes 5-5/10\r\nContent-Type: application/json\r\n\r\n5\r\n--B--\r\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(random_boundary().len(), 60);
    }

    #[test]
    fn conditional_requests() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("if-modified-since", httpdate::fmt_http_date(t).parse().unwrap());
        assert_eq!(precondition(&h, t), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(precondition(&h, t + Duration::from_secs(1)), None);
        let mut h = HeaderMap::new();
        h.insert("if-none-match", "*".parse().unwrap());
        assert_eq!(precondition(&h, t), Some(StatusCode::NOT_MODIFIED));
        let mut h = HeaderMap::new();
        h.insert("if-match", "\"x\"".parse().unwrap());
        assert_eq!(precondition(&h, t), Some(StatusCode::PRECONDITION_FAILED));
    }
}
