//! Go's `http.ServeContent` for the JWKS: `Last-Modified`, the conditional request headers and
//! single byte ranges, so that caching clients and proxies see what SPIRE's provider sends.
//! (A request for several ranges gets the whole document, which HTTP allows; Go would answer
//! with a multipart body.)

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
    let range = header_str(request, "range").map(|r| parse_range(r, size));
    match range {
        Some(Err(RangeError::NotSatisfiable)) if size > 0 => serve_error(
            builder.header(header::CONTENT_RANGE, format!("bytes */{size}")),
            "invalid range: failed to overlap",
        ),
        Some(Err(RangeError::Invalid)) => serve_error(builder, "invalid range"),
        Some(Ok(Some((start, end)))) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1))
            .header(header::CONTENT_LENGTH, end - start)
            .body(Full::new(body.slice(start..end)))
            .expect("valid response"),
        _ => builder
            .status(StatusCode::OK)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_LENGTH, size)
            .body(Full::new(body))
            .expect("valid response"),
    }
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

/// One `bytes=` range as `[start, end)`, `None` when there are several (the whole body is sent).
fn parse_range(value: &str, size: usize) -> Result<Option<(usize, usize)>, RangeError> {
    let spec = value.strip_prefix("bytes=").ok_or(RangeError::Invalid)?;
    let parts: Vec<&str> = spec.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if parts.len() != 1 {
        return if parts.is_empty() { Err(RangeError::Invalid) } else { Ok(None) };
    }
    let (first, last) = parts[0].split_once('-').ok_or(RangeError::Invalid)?;
    let number = |s: &str| s.trim().parse::<usize>().map_err(|_| RangeError::Invalid);
    if first.trim().is_empty() {
        let n = number(last)?;
        if n == 0 {
            return Err(RangeError::NotSatisfiable);
        }
        return Ok(Some((size.saturating_sub(n), size)));
    }
    let start = number(first)?;
    if start >= size {
        return Err(RangeError::NotSatisfiable);
    }
    let end = if last.trim().is_empty() { size } else { (number(last)?.saturating_add(1)).min(size) };
    if end <= start {
        return Err(RangeError::Invalid);
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 100))));
        assert_eq!(parse_range("bytes=-5", 100), Ok(Some((95, 100))));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("bytes=200-", 100), Err(RangeError::NotSatisfiable));
        assert_eq!(parse_range("items=0-1", 100), Err(RangeError::Invalid));
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
