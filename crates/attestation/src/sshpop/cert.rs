//! Host certificates: reading them (from the agent's file, from the payload), the trusted CA keys
//! in `authorized_keys` lines, and the checks of Go's `ssh.CertChecker.CheckHostKey` that SPIRE's
//! server runs with the certificate's first principal as the host name.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::key::{self, VerifyError};
use super::ssh::{Certificate, PublicKey};
use super::wire::SshSignature;

/// `ValidBefore` of a certificate that never expires.
const FOREVER: u64 = u64::MAX;

/// A parsed OpenSSH certificate and its wire bytes as Go re-marshals them.
#[derive(Debug, Clone)]
pub struct HostCertificate {
    cert: Certificate,
    bytes: Vec<u8>,
}

/// Why bytes or a file are not a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not an SSH public key or certificate at all.
    #[error("ssh: {0}")]
    Malformed(String),
    /// A plain public key where a certificate is needed.
    #[error("not a certificate")]
    NotCertificate,
    /// No key line in the text (Go's wording).
    #[error("ssh: no key found")]
    NoKey,
}

/// Why a host certificate is refused, in the words of Go's `CertChecker`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A user certificate, or any type but host.
    #[error("ssh: certificate presented as a host key has type {0}")]
    NotHost(u32),
    /// The signing CA is not one of the configured ones.
    #[error("ssh: no authorities for hostname: {0}")]
    UnknownAuthority(String),
    /// `<principal>:22` is not a host and port (Go's `net.SplitHostPort`).
    #[error("address {addr}: {why}")]
    Address {
        /// The address.
        addr: String,
        /// Go's reason.
        why: &'static str,
    },
    /// A critical option host certificates may not carry.
    #[error("ssh: unsupported critical option {0:?} in certificate")]
    CriticalOption(String),
    /// The host name is not among the principals.
    #[error("ssh: principal {principal:?} not in the set of valid principals for given certificate: {principals}")]
    Principal {
        /// The host name.
        principal: String,
        /// The principals, as Go's `%q` prints a `[]string`.
        principals: String,
    },
    /// Before `ValidAfter`.
    #[error("ssh: cert is not yet valid")]
    NotYetValid,
    /// At or after `ValidBefore`.
    #[error("ssh: cert has expired")]
    Expired,
    /// The CA's signature is wrong.
    #[error("ssh: certificate signature does not verify")]
    Signature,
}

impl HostCertificate {
    /// Reads a certificate in SSH wire format (the payload), as Go's `ssh.ParsePublicKey`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        match Certificate::parse(bytes) {
            Ok(Some(cert)) => Ok(Self { bytes: cert.marshal(), cert }),
            Ok(None) => Err(ParseError::NotCertificate),
            Err(e) => Err(ParseError::Malformed(e.0)),
        }
    }

    /// Reads the first key line of an `authorized_keys`-style text (a `-cert.pub` file), as Go's
    /// `ssh.ParseAuthorizedKey`; it must be a certificate.
    pub fn from_text(text: &[u8]) -> Result<Self, ParseError> {
        let blob = first_key_blob(text)?;
        Self::from_bytes(&blob)
    }

    /// The wire bytes (what the agent sends and the fingerprint hashes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SPIRE's fingerprint: unpadded URL-safe base64 of the SHA-256 of the wire bytes.
    pub fn fingerprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.bytes))
    }

    /// `ValidPrincipals` (as text; Go's are bytes, compared as such by [`Self::check_host`]).
    pub fn principals(&self) -> Vec<String> {
        self.cert.valid_principals.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
    }

    /// The first of `ValidPrincipals`, as text, without reading the others (a crafted certificate
    /// may carry a million of them before any signature is checked).
    pub fn first_principal(&self) -> Option<String> {
        self.cert.valid_principals.first().map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// `KeyId`, as text.
    pub fn key_id(&self) -> String {
        String::from_utf8_lossy(&self.cert.key_id).into_owned()
    }

    /// `Serial`.
    pub fn serial(&self) -> u64 {
        self.cert.serial
    }

    /// `CertType`: 1 user, 2 host.
    pub fn cert_type(&self) -> u32 {
        self.cert.cert_type
    }

    /// `ValidAfter`, Unix seconds.
    pub fn valid_after(&self) -> u64 {
        self.cert.valid_after
    }

    /// `ValidBefore`, Unix seconds (`u64::MAX`: forever).
    pub fn valid_before(&self) -> u64 {
        self.cert.valid_before
    }

    /// The certified host key.
    pub fn public_key(&self) -> &PublicKey {
        &self.cert.key
    }

    /// Checks a signature made with the certified key (Go's `cert.Verify`).
    pub fn verify(&self, data: &[u8], signature: &SshSignature) -> Result<(), VerifyError> {
        key::verify(&self.cert.key, data, signature)
    }

    /// SPIRE's host check: a host certificate, signed by one of `authorities`, valid for its first
    /// principal (`<principal>:22` split as Go splits it), with no critical option but
    /// `source-address`, valid at `now` (Unix seconds), and the CA's signature right.
    pub fn check_host(&self, authorities: &Authorities, now: u64) -> Result<(), CheckError> {
        if self.cert_type() != 2 {
            return Err(CheckError::NotHost(self.cert_type()));
        }
        let principals = &self.cert.valid_principals;
        let first = principals.first().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
        let addr = format!("{first}:22");
        if !authorities.contains(&self.cert.signature_key) {
            return Err(CheckError::UnknownAuthority(addr));
        }
        let host = split_host(&addr)?;
        if let Some((opt, _)) = self.cert.critical_options.iter().find(|(k, _)| k != b"source-address") {
            return Err(CheckError::CriticalOption(String::from_utf8_lossy(opt).into_owned()));
        }
        if !principals.is_empty() && !principals.iter().any(|p| p == host.as_bytes()) {
            // At most 16 in the message: it is logged and sent back before any signature is checked.
            let mut quoted: Vec<String> =
                principals.iter().take(16).map(|p| format!("{:?}", String::from_utf8_lossy(p))).collect();
            if principals.len() > 16 {
                quoted.push(format!("... ({} more)", principals.len() - 16));
            }
            return Err(CheckError::Principal { principal: host, principals: format!("[{}]", quoted.join(" ")) });
        }
        // Go compares as int64: a time past 2^63 is "negative".
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let after = self.valid_after() as i64;
        if after < 0 || now < after {
            return Err(CheckError::NotYetValid);
        }
        let before = self.valid_before() as i64;
        if self.valid_before() != FOREVER && (now >= before || before < 0) {
            return Err(CheckError::Expired);
        }
        let (format, blob, rest) = &self.cert.signature;
        let ca_signature = SshSignature { format: format.clone(), blob: blob.clone(), rest: Some(rest.clone()) };
        key::verify(&self.cert.signature_key, &self.cert.signed_bytes(), &ca_signature)
            .map_err(|_| CheckError::Signature)
    }
}

/// The trusted CA keys, by their wire encoding (Go compares SHA-256 fingerprints; the same thing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorities(Vec<Vec<u8>>);

impl Authorities {
    /// Reads each `authorized_keys` line as Go's `ssh.ParseAuthorizedKey`; the error names the
    /// line that failed, as SPIRE does.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, AuthorityError> {
        let mut keys = Vec::new();
        for line in lines {
            let blob = first_key_blob(line.as_bytes())
                .map_err(|e| AuthorityError::Parse { line: line.to_owned(), reason: e.to_string() })?;
            // Go compares the keys' re-encodings.
            keys.push(PublicKey::parse(&blob).map_or(blob, |k| k.marshal()));
        }
        if keys.is_empty() {
            return Err(AuthorityError::None);
        }
        Ok(Self(keys))
    }

    fn contains(&self, key: &PublicKey) -> bool {
        self.0.contains(&key.marshal())
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why the CA keys cannot be read (SPIRE's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// No key configured.
    #[error("must provide at least one cert authority")]
    None,
    /// A line is not a key.
    #[error("failed to parse public key {line:?}: {reason}")]
    Parse {
        /// The line.
        line: String,
        /// Why.
        reason: String,
    },
}

/// The wire bytes of the first key of an `authorized_keys` text: each line is
/// `[options] keytype base64 [comment]`, blank and `#` lines skipped; the key type text itself is
/// not checked (Go reads the base64 field).
fn first_key_blob(text: &[u8]) -> Result<Vec<u8>, ParseError> {
    let text = String::from_utf8_lossy(text);
    let mut last_error = None;
    for raw in text.split('\n') {
        let line = raw.split('\r').next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Without options, the key is the second field; with options, the third (the options
        // field may hold quoted blanks).
        for candidate in [field_after(line, 1), skip_options(line).and_then(|rest| field_after(rest, 1))] {
            let Some(b64) = candidate else { continue };
            match STANDARD.decode(b64).map_err(|e| e.to_string()).and_then(|blob| parse_key(&blob).map(|()| blob)) {
                Ok(blob) => return Ok(blob),
                Err(e) => last_error = Some(e),
            }
        }
    }
    match last_error {
        Some(e) => Err(ParseError::Malformed(format!("no key found; last parsing error for ignored line: {e}"))),
        None => Err(ParseError::NoKey),
    }
}

/// Whether `blob` is a public key or certificate in wire format (Go's `ParsePublicKey`).
fn parse_key(blob: &[u8]) -> Result<(), String> {
    Certificate::parse(blob).map(|_| ()).map_err(|e| e.0)
}

/// The `n`th blank-separated field of `line` (0-based), up to the next blank.
fn field_after(line: &str, n: usize) -> Option<&str> {
    line.split([' ', '\t']).filter(|f| !f.is_empty()).nth(n)
}

/// `line` after its leading options field (quotes may hold blanks), or `None` if unterminated.
fn skip_options(line: &str) -> Option<&str> {
    let mut in_quote = false;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        if !in_quote && (c == ' ' || c == '\t') {
            let rest = line[i..].trim_start();
            return (!rest.is_empty()).then_some(rest);
        }
        if c == '"' && prev != '\\' {
            in_quote = !in_quote;
        }
        prev = c;
    }
    None
}

/// The host of `addr` as Go's `net.SplitHostPort` finds it, with its errors.
fn split_host(addr: &str) -> Result<String, CheckError> {
    let err = |why| CheckError::Address { addr: addr.to_owned(), why };
    let i = addr.rfind(':').ok_or_else(|| err("missing port in address"))?;
    let (host, j, k) = if addr.starts_with('[') {
        let end = addr.find(']').ok_or_else(|| err("missing ']' in address"))?;
        if end + 1 == addr.len() {
            return Err(err("missing port in address"));
        }
        if end + 1 != i {
            return Err(if addr.as_bytes()[end + 1] == b':' {
                err("too many colons in address")
            } else {
                err("missing port in address")
            });
        }
        (addr[1..end].to_owned(), 1, end + 1)
    } else {
        let host = &addr[..i];
        if host.contains(':') {
            return Err(err("too many colons in address"));
        }
        (host.to_owned(), 0, 0)
    };
    if addr[j..].contains('[') {
        return Err(err("unexpected '[' in address"));
    }
    if addr[k..].contains(']') {
        return Err(err("unexpected ']' in address"));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_split_as_go_does() {
        assert_eq!(split_host("host.example.org:22").unwrap(), "host.example.org");
        assert_eq!(split_host("[::1]:22").unwrap(), "::1");
        assert_eq!(split_host("a:b:22").unwrap_err().to_string(), "address a:b:22: too many colons in address");
        assert_eq!(split_host("a]:22").unwrap_err().to_string(), "address a]:22: unexpected ']' in address");
        assert_eq!(split_host("[a:22").unwrap_err().to_string(), "address [a:22: missing ']' in address");
    }

    #[test]
    fn authorized_keys_lines() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S";
        assert_eq!(Authorities::parse([key]).unwrap().len(), 1);
        assert_eq!(Authorities::parse([format!("{key} comment here").as_str()]).unwrap().len(), 1);
        let with_options = format!("cert-authority,principals=\"a b\" {key}");
        assert_eq!(Authorities::parse([with_options.as_str()]).unwrap().len(), 1);
        assert_eq!(Authorities::parse([]).unwrap_err().to_string(), "must provide at least one cert authority");
        let err = Authorities::parse(["# a comment"]).unwrap_err().to_string();
        assert_eq!(err, "failed to parse public key \"# a comment\": ssh: no key found");
        let err = Authorities::parse(["ssh-ed25519 AAAA"]).unwrap_err().to_string();
        assert!(
            err.starts_with("failed to parse public key \"ssh-ed25519 AAAA\": ssh: no key found; last parsing error"),
            "{err}"
        );
    }

    #[test]
    fn plain_keys_are_not_certificates() {
        let blob = STANDARD.decode("AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S").unwrap();
        assert_eq!(HostCertificate::from_bytes(&blob).unwrap_err(), ParseError::NotCertificate);
        assert!(matches!(HostCertificate::from_bytes(b"junk"), Err(ParseError::Malformed(_))));
        assert_eq!(HostCertificate::from_text(b"\n# only a comment\n").unwrap_err(), ParseError::NoKey);
    }
}
