//! SSH public keys and certificates in wire format (RFC 4253, OpenSSH's PROTOCOL.certkeys), read
//! and re-written as Go's `x/crypto/ssh` does, since SPIRE hashes Go's re-encoding.
//!
//! Parsed here rather than with the `ssh-key` crate: its release (0.6) refuses a `ValidBefore` of
//! "forever" (`ssh-keygen -s` without `-V`) and OpenSSH P-521 keys whose scalar has a leading zero
//! byte, and reads edge cases (a time past 2^63, an unknown certificate type) differently from
//! Go, which would make our verdicts differ from SPIRE's. The format is small: strings, integers
//! and mpints.

use aws_lc_rs::signature as sig;

/// A public key as SPIRE's checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// `ssh-rsa`: the exponent and modulus, big-endian without leading zeros.
    Rsa {
        /// The exponent.
        e: Vec<u8>,
        /// The modulus.
        n: Vec<u8>,
    },
    /// `ecdsa-sha2-<curve>`: the curve name and the uncompressed point.
    Ecdsa {
        /// `nistp256`, `nistp384` or `nistp521`.
        curve: String,
        /// The point.
        point: Vec<u8>,
    },
    /// `ssh-ed25519`.
    Ed25519(Vec<u8>),
    /// A type Go reads but this build cannot verify with (DSA, security keys): the type and the
    /// wire encoding.
    Other(String, Vec<u8>),
}

/// A certificate's fields, as Go's `ssh.Certificate` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The CA's nonce.
    pub nonce: Vec<u8>,
    /// The certified key.
    pub key: PublicKey,
    /// `serial`.
    pub serial: u64,
    /// 1 user, 2 host (any value is read).
    pub cert_type: u32,
    /// `key id` (Go strings are bytes).
    pub key_id: Vec<u8>,
    /// `valid principals`.
    pub valid_principals: Vec<Vec<u8>>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds; `u64::MAX` is forever.
    pub valid_before: u64,
    /// Critical options, sorted by name.
    pub critical_options: Tuples,
    /// Extensions, sorted by name.
    pub extensions: Tuples,
    /// `reserved`.
    pub reserved: Vec<u8>,
    /// The CA's key.
    pub signature_key: PublicKey,
    /// The CA's signature: format, blob, and the security-key trailer if any.
    pub signature: (String, Vec<u8>, Vec<u8>),
}

/// Options or extensions: `(name, value)` byte strings (Go's strings are bytes).
pub type Tuples = Vec<(Vec<u8>, Vec<u8>)>;

/// A wire-format error, in Go's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn short() -> WireError {
    WireError("ssh: short read".into())
}

/// Whether `algo` names a certificate type.
pub fn is_cert_algo(algo: &str) -> bool {
    cert_key_algo(algo).is_some()
}

/// The key type of a certificate type.
fn cert_key_algo(algo: &str) -> Option<&'static str> {
    Some(match algo {
        "ssh-rsa-cert-v01@openssh.com" => "ssh-rsa",
        "ssh-dss-cert-v01@openssh.com" => "ssh-dss",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com" => "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com" => "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com" => "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com" => "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com" => "ssh-ed25519",
        "sk-ssh-ed25519-cert-v01@openssh.com" => "sk-ssh-ed25519@openssh.com",
        _ => return None,
    })
}

/// Reads SSH wire values off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<&'a [u8], WireError> {
        let len = u32::from_be_bytes(self.0.get(..4).ok_or_else(short)?.try_into().map_err(|_| short())?);
        let len = usize::try_from(len).map_err(|_| short())?;
        let value = self.0.get(4..4 + len).ok_or_else(short)?;
        self.0 = &self.0[4 + len..];
        Ok(value)
    }

    fn text(&mut self) -> Result<String, WireError> {
        self.string().map(|s| String::from_utf8_lossy(s).into_owned())
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let v = u32::from_be_bytes(self.0.get(..4).ok_or_else(short)?.try_into().map_err(|_| short())?);
        self.0 = &self.0[4..];
        Ok(v)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let v = u64::from_be_bytes(self.0.get(..8).ok_or_else(short)?.try_into().map_err(|_| short())?);
        self.0 = &self.0[8..];
        Ok(v)
    }

    /// An `mpint` as Go's `parseInt` reads it: `(negative, magnitude without leading zeros)`.
    fn mpint(&mut self) -> Result<(bool, Vec<u8>), WireError> {
        let raw = self.string()?;
        let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
        let magnitude = if negative {
            // Two's complement to magnitude.
            let mut m: Vec<u8> = raw.iter().map(|b| !b).collect();
            for b in m.iter_mut().rev() {
                let (v, carry) = b.overflowing_add(1);
                *b = v;
                if !carry {
                    break;
                }
            }
            m
        } else {
            raw.to_vec()
        };
        Ok((negative, strip_zeros(&magnitude).to_vec()))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    &v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..]
}

impl PublicKey {
    /// Go's `ssh.ParsePublicKey` for a plain key (certificates are [`Certificate::parse`]'s).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader(bytes);
        let algo = r.text()?;
        let (key, rest) = Self::parse_fields(&algo, r.rest())?;
        if !rest.is_empty() {
            return Err(WireError("ssh: trailing junk in public key".into()));
        }
        Ok(key)
    }

    /// The key fields after the type name (Go's `parsePubKey`); returns what follows them.
    fn parse_fields<'a>(algo: &str, input: &'a [u8]) -> Result<(Self, &'a [u8]), WireError> {
        let mut r = Reader(input);
        let key = match algo {
            "ssh-rsa" => {
                let (e_neg, e) = r.mpint()?;
                let (n_neg, n) = r.mpint()?;
                if n_neg {
                    // Go reads it and then fails every signature check with it; reading its
                    // magnitude instead would accept a re-encoding of a genuine key.
                    return Err(WireError("ssh: negative RSA modulus".into()));
                }
                if e.len() > 3 {
                    return Err(WireError("ssh: exponent too large".into()));
                }
                let value = e.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
                if e_neg || value < 3 || value & 1 == 0 {
                    return Err(WireError("ssh: incorrect exponent".into()));
                }
                Self::Rsa { e, n }
            }
            "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
                let curve = r.text()?;
                let point = r.string()?.to_vec();
                let alg: &sig::EcdsaVerificationAlgorithm = match curve.as_str() {
                    "nistp256" => &sig::ECDSA_P256_SHA256_FIXED,
                    "nistp384" => &sig::ECDSA_P384_SHA384_FIXED,
                    "nistp521" => &sig::ECDSA_P521_SHA512_FIXED,
                    _ => return Err(WireError("ssh: unsupported curve".into())),
                };
                // Go's `elliptic.Unmarshal`: an uncompressed point on the curve.
                if point.first() != Some(&4) || sig::ParsedPublicKey::new(alg, &point).is_err() {
                    return Err(WireError("ssh: invalid curve point".into()));
                }
                Self::Ecdsa { curve, point }
            }
            "ssh-ed25519" => {
                let key = r.string()?;
                if key.len() != 32 {
                    return Err(WireError(format!("invalid size {} for Ed25519 public key", key.len())));
                }
                Self::Ed25519(key.to_vec())
            }
            "ssh-dss" => {
                for _ in 0..4 {
                    r.mpint()?;
                }
                Self::other(algo, input, r.0)
            }
            "sk-ecdsa-sha2-nistp256@openssh.com" => {
                r.string()?;
                r.string()?;
                r.string()?;
                Self::other(algo, input, r.0)
            }
            "sk-ssh-ed25519@openssh.com" => {
                r.string()?;
                r.string()?;
                Self::other(algo, input, r.0)
            }
            other if is_cert_algo(other) => return Err(WireError("ssh: certificate where a key is needed".into())),
            other => return Err(WireError(format!("ssh: unknown key algorithm: {other}"))),
        };
        Ok((key, r.0))
    }

    fn other(algo: &str, input: &[u8], rest: &[u8]) -> Self {
        let mut wire = Vec::new();
        put_string(&mut wire, algo.as_bytes());
        wire.extend_from_slice(&input[..input.len() - rest.len()]);
        Self::Other(algo.to_owned(), wire)
    }

    /// The key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...).
    pub fn key_type(&self) -> String {
        match self {
            Self::Rsa { .. } => "ssh-rsa".into(),
            Self::Ecdsa { curve, .. } => format!("ecdsa-sha2-{curve}"),
            Self::Ed25519(_) => "ssh-ed25519".into(),
            Self::Other(t, _) => t.clone(),
        }
    }

    /// Go's `Marshal`: the type name, then the fields.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Other(_, wire) => return wire.clone(),
            _ => put_string(&mut out, self.key_type().as_bytes()),
        }
        self.marshal_fields(&mut out);
        out
    }

    fn marshal_fields(&self, out: &mut Vec<u8>) {
        match self {
            Self::Rsa { e, n } => {
                put_mpint(out, e);
                put_mpint(out, n);
            }
            Self::Ecdsa { curve, point } => {
                put_string(out, curve.as_bytes());
                put_string(out, point);
            }
            Self::Ed25519(k) => put_string(out, k),
            Self::Other(_, wire) => {
                let mut r = Reader(wire);
                let _ = r.string();
                out.extend_from_slice(r.0);
            }
        }
    }
}

impl Certificate {
    /// Go's `ssh.ParsePublicKey` for a certificate: `Ok(None)` if `bytes` is a plain key.
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, WireError> {
        let mut r = Reader(bytes);
        let algo = r.text()?;
        let Some(key_algo) = cert_key_algo(&algo) else {
            return PublicKey::parse(bytes).map(|_| None);
        };
        let nonce = r.string()?.to_vec();
        let (key, rest) = PublicKey::parse_fields(key_algo, r.rest())?;
        let mut r = Reader(rest);
        let serial = r.u64()?;
        let cert_type = r.u32()?;
        let key_id = r.string()?.to_vec();
        let mut principals = Reader(r.string()?);
        let valid_after = r.u64()?;
        let valid_before = r.u64()?;
        let critical_options = parse_tuples(r.string()?)?;
        let extensions = parse_tuples(r.string()?)?;
        let reserved = r.string()?.to_vec();
        let signature_key_bytes = r.string()?;
        let signature_bytes = r.string()?;
        if !r.0.is_empty() {
            return Err(WireError("ssh: parse error in message type 0".into()));
        }
        let mut valid_principals = Vec::new();
        while !principals.0.is_empty() {
            valid_principals.push(principals.string()?.to_vec());
        }
        let mut sk = Reader(signature_key_bytes);
        let sk_algo = sk.text()?;
        if is_cert_algo(&sk_algo) {
            return Err(WireError(format!("ssh: the signature key type {sk_algo:?} is invalid for certificates")));
        }
        let signature_key = PublicKey::parse(signature_key_bytes)?;
        let mut s = Reader(signature_bytes);
        let parse_error = || WireError("ssh: signature parse error".into());
        let format = s.text().map_err(|_| parse_error())?;
        let blob = s.string().map_err(|_| parse_error())?.to_vec();
        let trailer = s.rest().to_vec();
        let sk_format = matches!(
            format.as_str(),
            "sk-ecdsa-sha2-nistp256@openssh.com"
                | "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"
                | "sk-ssh-ed25519@openssh.com"
                | "sk-ssh-ed25519-cert-v01@openssh.com"
        );
        if !trailer.is_empty() && !sk_format {
            return Err(parse_error());
        }
        Ok(Some(Self {
            nonce,
            key,
            serial,
            cert_type,
            key_id,
            valid_principals,
            valid_after,
            valid_before,
            critical_options,
            extensions,
            reserved,
            signature_key,
            signature: (format, blob, trailer),
        }))
    }

    /// The certificate type name for the certified key (Go's `Certificate.Type`).
    pub fn cert_algo(&self) -> String {
        match &self.key {
            PublicKey::Other(t, _) if t.starts_with("sk-") => t.replace("@openssh.com", "-cert-v01@openssh.com"),
            other => format!("{}-cert-v01@openssh.com", other.key_type()),
        }
    }

    /// Go's `Certificate.Marshal`.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        let mut sig = Vec::new();
        put_string(&mut sig, self.signature.0.as_bytes());
        put_string(&mut sig, &self.signature.1);
        sig.extend_from_slice(&self.signature.2);
        put_string(&mut out, &sig);
        out
    }

    /// What the CA signed: the encoding up to, not including, the signature (Go's
    /// `bytesForSigning`).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, self.cert_algo().as_bytes());
        put_string(&mut out, &self.nonce);
        self.key.marshal_fields(&mut out);
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.cert_type.to_be_bytes());
        put_string(&mut out, &self.key_id);
        let mut principals = Vec::new();
        for p in &self.valid_principals {
            put_string(&mut principals, p);
        }
        put_string(&mut out, &principals);
        out.extend_from_slice(&self.valid_after.to_be_bytes());
        out.extend_from_slice(&self.valid_before.to_be_bytes());
        put_string(&mut out, &marshal_tuples(&self.critical_options));
        put_string(&mut out, &marshal_tuples(&self.extensions));
        put_string(&mut out, &self.reserved);
        put_string(&mut out, &self.signature_key.marshal());
        out
    }
}

/// Options or extensions: names in strictly increasing order, each value empty or one string.
fn parse_tuples(input: &[u8]) -> Result<Tuples, WireError> {
    let mut r = Reader(input);
    let mut out: Tuples = Vec::new();
    while !r.0.is_empty() {
        let key = r.string()?;
        if out.last().is_some_and(|(last, _)| key <= last.as_slice()) {
            return Err(WireError("ssh: certificate options are not in lexical order".into()));
        }
        let data = r.string()?;
        let value = if data.is_empty() {
            Vec::new()
        } else {
            let mut d = Reader(data);
            let v = d.string()?.to_vec();
            if !d.0.is_empty() {
                return Err(WireError("ssh: unexpected trailing data after certificate option value".into()));
            }
            v
        };
        out.push((key.to_vec(), value));
    }
    Ok(out)
}

fn marshal_tuples(tuples: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = tuples.iter().collect();
    sorted.sort();
    let mut out = Vec::new();
    for (k, v) in sorted {
        put_string(&mut out, k);
        if v.is_empty() {
            put_string(&mut out, b"");
        } else {
            let mut inner = Vec::new();
            put_string(&mut inner, v);
            put_string(&mut out, &inner);
        }
    }
    out
}

/// Appends an SSH `string`: a 32-bit big-endian length, then the bytes.
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends a non-negative `mpint` from a big-endian magnitude (minimal, a zero byte before a set
/// high bit, zero as the empty string).
pub fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let m = strip_zeros(magnitude);
    if m.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v = vec![0];
        v.extend_from_slice(m);
        put_string(out, &v);
    } else {
        put_string(out, m);
    }
}

/// Takes an SSH `string` off the front of `input`.
pub fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut r = Reader(input);
    let v = r.string().ok()?;
    *input = r.0;
    Some(v)
}

/// Takes an `mpint` off the front of `input`: `(negative, magnitude)`.
pub fn take_mpint(input: &mut &[u8]) -> Option<(bool, Vec<u8>)> {
    let mut r = Reader(input);
    let v = r.mpint().ok()?;
    *input = r.0;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn plain_keys_round_trip() {
        let ed = b64("AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S");
        let key = PublicKey::parse(&ed).unwrap();
        assert_eq!(key.key_type(), "ssh-ed25519");
        assert_eq!(key.marshal(), ed);
        assert_eq!(Certificate::parse(&ed).unwrap(), None);
        let mut junk = ed.clone();
        junk.push(0);
        assert_eq!(PublicKey::parse(&junk).unwrap_err().0, "ssh: trailing junk in public key");
        let mut unknown = Vec::new();
        put_string(&mut unknown, b"ssh-foo");
        assert_eq!(PublicKey::parse(&unknown).unwrap_err().0, "ssh: unknown key algorithm: ssh-foo");
        assert_eq!(PublicKey::parse(&[0, 0]).unwrap_err().0, "ssh: short read");
    }

    #[test]
    fn rsa_exponents_and_mpints() {
        let key = |e: &[u8]| {
            let mut v = Vec::new();
            put_string(&mut v, b"ssh-rsa");
            put_mpint(&mut v, e);
            put_mpint(&mut v, &[0xc5; 128]);
            PublicKey::parse(&v)
        };
        assert!(key(&[1, 0, 1]).is_ok());
        assert_eq!(key(&[2]).unwrap_err().0, "ssh: incorrect exponent");
        assert_eq!(key(&[1, 0, 0, 1]).unwrap_err().0, "ssh: exponent too large");
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0x80]);
        assert_eq!(out, [0, 0, 0, 2, 0, 0x80]);
        let mut input = &[0u8, 0, 0, 1, 0xff][..];
        assert_eq!(take_mpint(&mut input), Some((true, vec![1])));
    }

    #[test]
    fn tuples_are_ordered_and_nested() {
        let mut t = Vec::new();
        put_string(&mut t, b"force-command");
        let mut inner = Vec::new();
        put_string(&mut inner, b"/bin/true");
        put_string(&mut t, &inner);
        put_string(&mut t, b"permit-pty");
        put_string(&mut t, b"");
        let parsed = parse_tuples(&t).unwrap();
        assert_eq!(parsed, [(b"force-command".to_vec(), b"/bin/true".to_vec()), (b"permit-pty".to_vec(), Vec::new())]);
        assert_eq!(marshal_tuples(&parsed), t);
        let mut unordered = Vec::new();
        put_string(&mut unordered, b"b");
        put_string(&mut unordered, b"");
        put_string(&mut unordered, b"a");
        put_string(&mut unordered, b"");
        assert_eq!(parse_tuples(&unordered).unwrap_err().0, "ssh: certificate options are not in lexical order");
    }
}
