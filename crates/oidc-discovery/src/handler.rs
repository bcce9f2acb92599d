//! The two public endpoints, answering as SPIRE's handler (Go's `net/http` mux, `http.Error`,
//! `http.ServeContent` and gorilla's `ProxyHeaders`) does:
//!
//! - `<prefix>/.well-known/openid-configuration`: built from the request's host and scheme, which
//!   a proxy may override with `X-Forwarded-Host` and `X-Forwarded-Proto` / `X-Forwarded-Scheme`
//!   / `Forwarded: proto=`; the host must be one of `domains`;
//! - `<prefix>/keys`: the JWKS, with `Last-Modified` and conditional requests, no caching; a 500
//!   until the source has answered once. SPIRE does not check the host here, neither do we.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::document;
use crate::domain::DomainPolicy;
use crate::keyset::KeySet;
use crate::urlpath;

/// A response body.
pub type Body = Full<Bytes>;

/// The handler's settings and the shared key set.
#[derive(Debug)]
pub struct Handler {
    keys: Arc<KeySet>,
    domains: DomainPolicy,
    allow_insecure_scheme: bool,
    set_key_use: bool,
    jwt_issuer: Option<String>,
    jwks_uri: Option<String>,
    prefix: String,
    well_known_path: String,
    keys_path: String,
}

/// What the handler needs to know about a request besides its headers.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Whether it came over TLS.
    pub tls: bool,
}

impl Handler {
    /// A handler serving `keys` under `server_path_prefix`.
    pub fn new(
        keys: Arc<KeySet>,
        domains: DomainPolicy,
        allow_insecure_scheme: bool,
        set_key_use: bool,
        jwt_issuer: Option<String>,
        jwks_uri: Option<String>,
        server_path_prefix: &str,
    ) -> Self {
        let prefix = if server_path_prefix.is_empty() { "/".to_owned() } else { server_path_prefix.to_owned() };
        Self {
            keys,
            domains,
            allow_insecure_scheme,
            set_key_use,
            jwt_issuer,
            jwks_uri,
            well_known_path: urlpath::join(&prefix, "/.well-known/openid-configuration"),
            keys_path: urlpath::join(&prefix, "/keys"),
            prefix,
        }
    }

    /// Answers one request.
    pub fn handle<B>(&self, req: &Request<B>, conn: Conn) -> Response<Body> {
        if let Some(redirect) = clean_path_redirect(req) {
            return redirect;
        }
        let path = urlpath::unescape(req.uri().path()).unwrap_or_default();
        if path == self.well_known_path {
            self.well_known(req, conn)
        } else if path == self.keys_path {
            self.serve_keys(req)
        } else {
            text_error(StatusCode::NOT_FOUND, "404 page not found")
        }
    }

    fn well_known<B>(&self, req: &Request<B>, conn: Conn) -> Response<Body> {
        if req.method() != Method::GET {
            return text_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let headers = req.headers();
        let forwarded_scheme = forwarded_scheme(headers);
        let host = match header_str(headers, "x-forwarded-host") {
            Some(h) => h.to_owned(),
            None => request_host(req),
        };
        let scheme = if self.allow_insecure_scheme && !conn.tls && forwarded_scheme.as_deref() != Some("https") {
            "http"
        } else {
            "https"
        };
        let issuer = match &self.jwt_issuer {
            Some(issuer) => issuer.clone(),
            None => {
                let path = if self.prefix != "/" { self.prefix.as_str() } else { "" };
                urlpath::url_string(scheme, &host, path)
            }
        };
        let jwks_uri = match (&self.jwks_uri, &self.jwt_issuer) {
            (Some(uri), _) => uri.clone(),
            // SPIRE 1.11's behaviour, kept by 1.13.3: the keys live under the issuer.
            (None, Some(issuer)) => {
                let (issuer_scheme, issuer_host) = crate::config::split_url(issuer).unwrap_or_default();
                let path = urlpath::join(urlpath::url_path(issuer), "keys");
                urlpath::url_string(issuer_scheme, issuer_host, &path)
            }
            (None, None) => urlpath::url_string(scheme, &host, &urlpath::join(&self.prefix, "keys")),
        };
        if let Err(e) = self.domains.verify_host(&host) {
            return text_error(StatusCode::BAD_REQUEST, &e.to_string());
        }
        let body = document::discovery(&issuer, &jwks_uri);
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    }

    fn serve_keys<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.method() != Method::GET {
            return text_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let Some((keys, modified)) = self.keys.fetch() else {
            return text_error(StatusCode::INTERNAL_SERVER_ERROR, "document not available");
        };
        for key in keys.iter() {
            if let Err(e) = document::algorithm(key) {
                tracing::error!(kid = key.kid.as_deref().unwrap_or(""), error = %e, "Failed to get public key algorithm");
            }
        }
        let body = document::jwks(&keys, self.set_key_use);
        let mut response = Response::builder()
            .header(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")
            .header(header::PRAGMA, "no-cache")
            .header(header::EXPIRES, "0")
            .header(header::CONTENT_TYPE, "application/json");
        crate::content::serve(&mut response, req.headers(), modified, Bytes::from(body))
    }
}

/// The request's host: the absolute-form URI's authority, else the `Host` header (as Go's `r.Host`).
fn request_host<B>(req: &Request<B>) -> String {
    if let Some(authority) = req.uri().authority() {
        return authority.to_string();
    }
    header_str(req.headers(), "host").unwrap_or("").to_owned()
}

/// The first value of a header, if it is text and not empty.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

/// gorilla's `getScheme`: `X-Forwarded-Proto`, else `X-Forwarded-Scheme`, else `proto=` of
/// `Forwarded`; lower-cased.
fn forwarded_scheme(headers: &HeaderMap) -> Option<String> {
    if let Some(p) = header_str(headers, "x-forwarded-proto").or_else(|| header_str(headers, "x-forwarded-scheme")) {
        return Some(p.to_ascii_lowercase());
    }
    let forwarded = header_str(headers, "forwarded")?.to_ascii_lowercase();
    let at = forwarded.find("proto=")?;
    let value = &forwarded[at + "proto=".len()..];
    ["https", "http"].into_iter().find(|s| value.starts_with(s)).map(str::to_owned)
}

/// Go's mux: a path that is not clean is redirected (307) to its clean form.
fn clean_path_redirect<B>(req: &Request<B>) -> Option<Response<Body>> {
    let path = req.uri().path();
    let mut clean = urlpath::clean(path);
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    if clean == path {
        return None;
    }
    let location = match req.uri().query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    };
    let mut builder = Response::builder().status(StatusCode::TEMPORARY_REDIRECT).header(header::LOCATION, &location);
    let body = if matches!(*req.method(), Method::GET | Method::HEAD) {
        builder = builder.header(header::CONTENT_TYPE, "text/html; charset=utf-8");
        format!("<a href=\"{}\">Temporary Redirect</a>.\n\n", html_escape(&location))
    } else {
        String::new()
    };
    Some(builder.body(Full::new(Bytes::from(body))).expect("valid response"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;").replace('\'', "&#39;")
}

/// Go's `http.Error`: the message and a newline, as plain text that must not be sniffed.
pub(crate) fn text_error(status: StatusCode, message: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", HeaderValue::from_static("nosniff"))
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .expect("valid response")
}

/// A bare status with an empty body (the health checks' answers).
pub(crate) fn status_only(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(Full::new(Bytes::new())).expect("valid response")
}

#[cfg(test)]
mod tests;
