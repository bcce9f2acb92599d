//! SSH signatures with aws-lc-rs: the agent signing with its host key, the server checking a
//! signature against a host key or a CA key, with the formats and checks of Go's `x/crypto/ssh`.
//!
//! Keys are Ed25519, ECDSA on P-256/384/521 and RSA. RSA signatures are read as `ssh-rsa`
//! (SHA-1, what SPIRE's agent sends), `rsa-sha2-256` or `rsa-sha2-512`, and made as
//! `rsa-sha2-512`. DSA and security-key (`sk-*`) keys are refused: aws-lc-rs has no DSA, and a
//! host key on a security key cannot sign unattended. Private keys are read in OpenSSH's own
//! format (unencrypted, as `ssh-keygen` writes host keys) and in PEM PKCS#1, SEC1 and PKCS#8.

use super::ssh::{self, PublicKey};
use super::wire::SshSignature;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use aws_lc_rs::{digest, rand};

/// A host private key that answers challenges.
#[derive(Debug)]
pub enum HostKey {
    /// Ed25519.
    Ed25519(sig::Ed25519KeyPair),
    /// ECDSA; the curve (`nistp256`, `nistp384`, `nistp521`) decides the SSH format and the hash.
    Ecdsa(sig::EcdsaKeyPair, &'static str),
    /// RSA, 2048 to 8192 bits.
    Rsa(aws_lc_rs::rsa::KeyPair),
}

/// Why a private key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No PEM block at all (Go's wording).
    #[error("ssh: no key found")]
    NoKey,
    /// An encrypted key (Go's wording).
    #[error("ssh: this private key is passphrase protected")]
    Passphrase,
    /// A PEM block of a type Go does not read either.
    #[error("ssh: unsupported key type {0:?}")]
    UnsupportedPem(String),
    /// A key type this build cannot sign with.
    #[error("ssh: unsupported key type {0}")]
    Unsupported(String),
    /// The key does not parse.
    #[error("{0}")]
    Malformed(String),
}

impl HostKey {
    /// Reads a private key file: OpenSSH's own format (`ssh-keygen`'s default), or PEM PKCS#1,
    /// SEC1 or PKCS#8 as Go's `ssh.ParsePrivateKey` also reads.
    pub fn from_pem(text: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(text).map_err(|_| KeyError::NoKey)?;
        let begin = text.find("-----BEGIN ").ok_or(KeyError::NoKey)?;
        let label = text[begin + 11..].split("-----").next().unwrap_or_default().to_owned();
        if text[begin..].lines().take(3).any(|l| l.starts_with("Proc-Type:") && l.contains("ENCRYPTED")) {
            return Err(KeyError::Passphrase);
        }
        match label.as_str() {
            "OPENSSH PRIVATE KEY" => Self::from_openssh(&pem_body(&text[begin..]).ok_or(KeyError::NoKey)?),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "PRIVATE KEY" => {
                let der = pem_body(&text[begin..]).ok_or(KeyError::NoKey)?;
                Self::from_der(&label, &der)
            }
            other => Err(KeyError::UnsupportedPem(other.to_owned())),
        }
    }

    /// OpenSSH's `openssh-key-v1` format, unencrypted, one key (as Go's
    /// `parseOpenSSHPrivateKey`).
    fn from_openssh(body: &[u8]) -> Result<Self, KeyError> {
        let malformed = || KeyError::Malformed("ssh: malformed OpenSSH key".into());
        let mut r = body
            .strip_prefix(b"openssh-key-v1\0")
            .ok_or_else(|| KeyError::Malformed("ssh: invalid openssh private key format".into()))?;
        let cipher = ssh::take_string(&mut r).ok_or_else(malformed)?;
        let kdf = ssh::take_string(&mut r).ok_or_else(malformed)?;
        let _kdf_options = ssh::take_string(&mut r).ok_or_else(malformed)?;
        if cipher != b"none" || kdf != b"none" {
            return Err(KeyError::Passphrase);
        }
        let count = r.get(..4).ok_or_else(malformed)?;
        if count != [0, 0, 0, 1] {
            return Err(KeyError::Malformed("ssh: multi-key files are not supported".into()));
        }
        r = &r[4..];
        let _public = ssh::take_string(&mut r).ok_or_else(malformed)?;
        let mut p = ssh::take_string(&mut r).ok_or_else(malformed)?;
        let (check1, check2) = (p.get(..4).ok_or_else(malformed)?, p.get(4..8).ok_or_else(malformed)?);
        if check1 != check2 {
            return Err(KeyError::Malformed("ssh: malformed OpenSSH key".into()));
        }
        p = &p[8..];
        let key_type = ssh::take_string(&mut p).ok_or_else(malformed)?;
        let bad = |e: aws_lc_rs::error::KeyRejected| KeyError::Malformed(format!("ssh: {e}"));
        let mpint = |p: &mut &[u8]| ssh::take_mpint(p).filter(|(neg, _)| !neg).map(|(_, m)| m).ok_or_else(malformed);
        let key = match key_type {
            b"ssh-ed25519" => {
                let public = ssh::take_string(&mut p).ok_or_else(malformed)?;
                let private = ssh::take_string(&mut p).ok_or_else(malformed)?;
                if public.len() != 32 || private.len() != 64 {
                    return Err(malformed());
                }
                sig::Ed25519KeyPair::from_seed_and_public_key(&private[..32], public).map(Self::Ed25519).map_err(bad)?
            }
            b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => {
                let curve = ssh::take_string(&mut p).ok_or_else(malformed)?;
                let point = ssh::take_string(&mut p).ok_or_else(malformed)?;
                let scalar = mpint(&mut p)?;
                let (alg, name, len) = match curve {
                    b"nistp256" => (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "nistp256", 32),
                    b"nistp384" => (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "nistp384", 48),
                    b"nistp521" => (&sig::ECDSA_P521_SHA512_FIXED_SIGNING, "nistp521", 66),
                    _ => return Err(KeyError::Unsupported(String::from_utf8_lossy(curve).into_owned())),
                };
                if scalar.len() > len {
                    return Err(malformed());
                }
                // OpenSSH drops leading zeros; aws-lc-rs wants the field's length.
                let mut padded = vec![0; len - scalar.len()];
                padded.extend_from_slice(&scalar);
                sig::EcdsaKeyPair::from_private_key_and_public_key(alg, &padded, point)
                    .map(|k| Self::Ecdsa(k, name))
                    .map_err(bad)?
            }
            b"ssh-rsa" => {
                let [n, e, d, iqmp, pp, q] = [(); 6].map(|()| mpint(&mut p)).map(Result::ok);
                let (Some(n), Some(e), Some(d), Some(iqmp), Some(pp), Some(q)) = (n, e, d, iqmp, pp, q) else {
                    return Err(malformed());
                };
                let der = rsa_private_key_der(&n, &e, &d, &pp, &q, &iqmp).ok_or_else(malformed)?;
                aws_lc_rs::rsa::KeyPair::from_der(&der).map(Self::Rsa).map_err(bad)?
            }
            other => return Err(KeyError::Unsupported(String::from_utf8_lossy(other).into_owned())),
        };
        let _comment = ssh::take_string(&mut p).ok_or_else(malformed)?;
        if p.iter().enumerate().any(|(i, b)| usize::from(*b) != i + 1) {
            return Err(KeyError::Malformed("ssh: padding not as expected".into()));
        }
        Ok(key)
    }

    fn from_der(label: &str, der: &[u8]) -> Result<Self, KeyError> {
        let curves = [
            (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "nistp256"),
            (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "nistp384"),
            (&sig::ECDSA_P521_SHA512_FIXED_SIGNING, "nistp521"),
        ];
        let found = match label {
            "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(der).ok().map(Self::Rsa),
            "EC PRIVATE KEY" => curves
                .iter()
                .find_map(|(alg, c)| sig::EcdsaKeyPair::from_private_key_der(alg, der).ok().map(|k| Self::Ecdsa(k, c))),
            _ => aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                .ok()
                .map(Self::Rsa)
                .or_else(|| sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).ok().map(Self::Ed25519))
                .or_else(|| {
                    curves
                        .iter()
                        .find_map(|(alg, c)| sig::EcdsaKeyPair::from_pkcs8(alg, der).ok().map(|k| Self::Ecdsa(k, c)))
                }),
        };
        found.ok_or_else(|| KeyError::Malformed(format!("ssh: cannot read the {label}")))
    }

    /// Signs `data` as Go's `ssh.Signer.Sign` does for this key (RSA: `rsa-sha2-512`).
    pub fn sign(&self, data: &[u8]) -> Result<SshSignature, SignError> {
        let rng = rand::SystemRandom::new();
        let (format, blob) = match self {
            Self::Ed25519(k) => ("ssh-ed25519".to_owned(), k.sign(data).as_ref().to_vec()),
            Self::Ecdsa(k, curve) => {
                let fixed = k.sign(&rng, data).map_err(|_| SignError)?;
                let (r, s) = fixed.as_ref().split_at(fixed.as_ref().len() / 2);
                let mut blob = Vec::new();
                ssh::put_mpint(&mut blob, r);
                ssh::put_mpint(&mut blob, s);
                (format!("ecdsa-sha2-{curve}"), blob)
            }
            Self::Rsa(k) => {
                let mut blob = vec![0; k.public_modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA512, &rng, data, &mut blob).map_err(|_| SignError)?;
                ("rsa-sha2-512".to_owned(), blob)
            }
        };
        Ok(SshSignature { format, blob, rest: None })
    }

    /// The public key, as a certificate holds it.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => PublicKey::Ed25519(k.public_key().as_ref().to_vec()),
            Self::Ecdsa(k, curve) => {
                PublicKey::Ecdsa { curve: (*curve).to_owned(), point: k.public_key().as_ref().to_vec() }
            }
            Self::Rsa(k) => {
                let c: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = k.public_key().into();
                PublicKey::Rsa { e: c.e, n: c.n }
            }
        }
    }
}

/// The signing itself failed (never for a key that loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("failed to sign data")]
pub struct SignError;

/// Why a signature does not verify, in the words of Go's `ssh.PublicKey.Verify`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature's format is not one for the key.
    #[error("ssh: signature type {format} for key type {key}")]
    Format {
        /// The signature's format.
        format: String,
        /// The key's type.
        key: String,
    },
    /// Ed25519 or ECDSA: the signature is wrong.
    #[error("ssh: signature did not verify")]
    Bad,
    /// RSA: the signature is wrong.
    #[error("crypto/rsa: verification error")]
    Rsa,
    /// The ECDSA blob is not two mpints.
    #[error("ssh: short read")]
    ShortRead,
    /// An ECDSA signature blob that is not exactly two mpints (Go's unmarshal error).
    #[error("ssh: parse error in message type 0")]
    MalformedEcdsa,
    /// No signature at all.
    #[error("ssh: signature missing")]
    Missing,
    /// A key this build cannot check signatures with.
    #[error("ssh: unsupported key type {0}")]
    Unsupported(String),
}

/// Checks `signature` over `data` against `key` as Go's `key.Verify(data, signature)` does.
pub fn verify(key: &PublicKey, data: &[u8], signature: &SshSignature) -> Result<(), VerifyError> {
    let key_type = key.key_type();
    let format_error = || VerifyError::Format { format: signature.format.clone(), key: key_type.clone() };
    match key {
        PublicKey::Ed25519(k) => {
            if signature.format != "ssh-ed25519" {
                return Err(format_error());
            }
            sig::UnparsedPublicKey::new(&sig::ED25519, k).verify(data, &signature.blob).map_err(|_| VerifyError::Bad)
        }
        PublicKey::Ecdsa { curve, point } => {
            if signature.format != key_type {
                return Err(format_error());
            }
            let (alg, field): (&sig::EcdsaVerificationAlgorithm, usize) = match curve.as_str() {
                "nistp256" => (&sig::ECDSA_P256_SHA256_FIXED, 32),
                "nistp384" => (&sig::ECDSA_P384_SHA384_FIXED, 48),
                _ => (&sig::ECDSA_P521_SHA512_FIXED, 66),
            };
            let fixed = ecdsa_fixed(&signature.blob, field)?.ok_or(VerifyError::Bad)?;
            sig::UnparsedPublicKey::new(alg, point).verify(data, &fixed).map_err(|_| VerifyError::Bad)
        }
        PublicKey::Rsa { e, n } => {
            let params = match signature.format.as_str() {
                "rsa-sha2-256" => &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                "rsa-sha2-512" => &sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
                "ssh-rsa" => &sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                _ => return Err(format_error()),
            };
            // Short signatures are padded to the modulus length, as Go and OpenSSH accept them.
            let mut blob = signature.blob.clone();
            if blob.len() < n.len() {
                let mut padded = vec![0; n.len() - blob.len()];
                padded.extend_from_slice(&blob);
                blob = padded;
            }
            sig::RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                .verify(params, data, &blob)
                .map_err(|_| VerifyError::Rsa)
        }
        PublicKey::Other(..) => Err(VerifyError::Unsupported(key_type)),
    }
}

/// `r || s` at `field` bytes each from the blob's two mpints; `None` when they cannot be a valid
/// signature (negative or too long), which then fails to verify as in Go.
fn ecdsa_fixed(blob: &[u8], field: usize) -> Result<Option<Vec<u8>>, VerifyError> {
    let mut rest = blob;
    let mut out = Vec::with_capacity(2 * field);
    let mut ok = true;
    for _ in 0..2 {
        let (negative, v) = ssh::take_mpint(&mut rest).ok_or(VerifyError::MalformedEcdsa)?;
        if negative || v.len() > field {
            ok = false;
            continue;
        }
        out.extend(std::iter::repeat_n(0, field - v.len()));
        out.extend_from_slice(&v);
    }
    // Go refuses bytes after `s`; accepting them would let one signature take many forms (and
    // one certificate many fingerprints, hence agent IDs).
    if !rest.is_empty() {
        return Err(VerifyError::MalformedEcdsa);
    }
    Ok(ok.then_some(out))
}

/// `SHA256(challenge || response)`: what the agent signs.
pub fn combined_digest(challenge: &[u8], response: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(challenge);
    ctx.update(response);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The DER body of the first PEM block of `text`.
fn pem_body(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let mut lines = text.lines().skip(1);
    let body: String = lines
        .by_ref()
        .take_while(|l| !l.starts_with("-----END "))
        .filter(|l| !l.contains(':'))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A PKCS#1 `RSAPrivateKey` from OpenSSH's fields; the CRT exponents OpenSSH does not store are
/// computed here (`d mod (p-1)`, `d mod (q-1)`).
fn rsa_private_key_der(n: &[u8], e: &[u8], d: &[u8], p: &[u8], q: &[u8], iqmp: &[u8]) -> Option<Vec<u8>> {
    use num_bigint::BigUint;
    let (dd, pp, qq) = (BigUint::from_bytes_be(d), BigUint::from_bytes_be(p), BigUint::from_bytes_be(q));
    if pp <= BigUint::from(1u8) || qq <= BigUint::from(1u8) {
        return None;
    }
    let one = BigUint::from(1u8);
    let dp = (&dd % (&pp - &one)).to_bytes_be();
    let dq = (&dd % (&qq - &one)).to_bytes_be();
    let mut body = Vec::new();
    der_integer(&mut body, &[0]);
    for v in [n, e, d, p, q, &dp, &dq, iqmp] {
        der_integer(&mut body, v);
    }
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend(body);
    Some(out)
}

fn der_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    let start = magnitude.iter().position(|b| *b != 0).unwrap_or(magnitude.len().saturating_sub(1));
    let v = if magnitude.is_empty() { &[0u8][..] } else { &magnitude[start..] };
    let pad = v.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    der_len(out, v.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519() -> HostKey {
        let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rand::SystemRandom::new()).unwrap();
        HostKey::Ed25519(sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn ecdsa(alg: &'static sig::EcdsaSigningAlgorithm, curve: &'static str) -> HostKey {
        let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rand::SystemRandom::new()).unwrap();
        HostKey::Ecdsa(sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap(), curve)
    }

    fn key_data(k: &HostKey) -> PublicKey {
        PublicKey::parse(&k.public_key().marshal()).unwrap()
    }

    #[test]
    fn every_key_type_signs_and_verifies() {
        let rsa = HostKey::Rsa(aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap());
        for key in [
            ed25519(),
            ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "nistp256"),
            ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "nistp384"),
            ecdsa(&sig::ECDSA_P521_SHA512_FIXED_SIGNING, "nistp521"),
            rsa,
        ] {
            let data = combined_digest(&[1; 32], &[2; 32]);
            let s = key.sign(&data).unwrap();
            let public = key_data(&key);
            assert_eq!(verify(&public, &data, &s), Ok(()), "{}", s.format);
            assert!(verify(&public, b"other", &s).is_err(), "{}", s.format);
            let wrong_format = SshSignature { format: "ssh-dss".into(), ..s.clone() };
            assert!(matches!(verify(&public, &data, &wrong_format), Err(VerifyError::Format { .. })));
        }
    }

    #[test]
    fn spire_messages() {
        let key = ed25519();
        let other = key_data(&ed25519());
        let s = key.sign(b"x").unwrap();
        assert_eq!(verify(&other, b"x", &s).unwrap_err().to_string(), "ssh: signature did not verify");
        let s = SshSignature { format: "ssh-rsa".into(), ..s };
        assert_eq!(
            verify(&other, b"x", &s).unwrap_err().to_string(),
            "ssh: signature type ssh-rsa for key type ssh-ed25519"
        );
        assert_eq!(HostKey::from_pem(b"nothing").unwrap_err(), KeyError::NoKey);
        let encrypted =
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            HostKey::from_pem(encrypted).unwrap_err().to_string(),
            "ssh: this private key is passphrase protected"
        );
        let other_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(HostKey::from_pem(other_pem).unwrap_err().to_string(), "ssh: unsupported key type \"CERTIFICATE\"");
    }

    #[test]
    fn ecdsa_blobs_are_read_as_go_does() {
        assert_eq!(ecdsa_fixed(&[0, 0, 0, 1], 32), Err(VerifyError::MalformedEcdsa));
        assert_eq!(ecdsa_fixed(&[], 32), Err(VerifyError::MalformedEcdsa));
        let mut blob = Vec::new();
        ssh::put_string(&mut blob, &[0x80]);
        ssh::put_string(&mut blob, &[1]);
        assert_eq!(ecdsa_fixed(&blob, 32), Ok(None));
        // A valid r and s, then junk: refused, not read as the same signature.
        let mut blob = Vec::new();
        ssh::put_string(&mut blob, &[1]);
        ssh::put_string(&mut blob, &[2]);
        assert!(ecdsa_fixed(&blob, 32).unwrap().is_some());
        blob.push(0);
        assert_eq!(ecdsa_fixed(&blob, 32), Err(VerifyError::MalformedEcdsa));
    }

    #[test]
    fn rsa_der_from_openssh_fields() {
        // A PKCS#1 key round-trips through its OpenSSH fields.
        let generated = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let key = HostKey::Rsa(generated);
        let blob = key.public_key().marshal();
        assert_eq!(PublicKey::parse(&blob).unwrap(), key.public_key());
        let mut small = Vec::new();
        der_integer(&mut small, &[0x00, 0x80]);
        assert_eq!(small, [0x02, 0x02, 0x00, 0x80]);
    }
}

#[cfg(test)]
mod openssh_tests {
    use super::*;

    /// Keys made by `ssh-keygen` in OpenSSH's format and in PEM, several of each type since
    /// scalars with leading zeros are encoded shorter.
    #[test]
    fn ssh_keygen_keys_of_every_type_sign() {
        let dir = std::env::temp_dir().join(format!("sshpop-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (kind, bits, format) in [
            ("ed25519", "", "RFC4716"),
            ("ecdsa", "256", "RFC4716"),
            ("ecdsa", "384", "RFC4716"),
            ("ecdsa", "521", "RFC4716"),
            ("rsa", "2048", "RFC4716"),
            ("ecdsa", "256", "PEM"),
            ("rsa", "2048", "PEM"),
            ("ecdsa", "384", "PKCS8"),
        ] {
            let rounds = if kind == "rsa" { 2 } else { 12 };
            for i in 0..rounds {
                let file = dir.join(format!("{kind}{bits}-{format}-{i}"));
                let _ = std::fs::remove_file(&file);
                let mut args = vec!["-q", "-N", "", "-t", kind, "-m", format, "-f"];
                let path = file.display().to_string();
                args.push(&path);
                if !bits.is_empty() {
                    args.extend(["-b", bits]);
                }
                let out = std::process::Command::new("ssh-keygen").args(&args).output().expect("ssh-keygen");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let key = HostKey::from_pem(&std::fs::read(&file).unwrap())
                    .unwrap_or_else(|e| panic!("{kind}{bits} {format} #{i}: {e}"));
                let pub_line = std::fs::read_to_string(format!("{path}.pub")).unwrap();
                let blob = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    pub_line.split_whitespace().nth(1).unwrap(),
                )
                .unwrap();
                let public = PublicKey::parse(&blob).unwrap();
                assert_eq!(public, key.public_key(), "{kind}{bits} {format}");
                let s = key.sign(b"data").unwrap();
                verify(&public, b"data", &s).unwrap();
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
