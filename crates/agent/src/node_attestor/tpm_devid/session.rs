//! SPIRE's TPM session for `tpm_devid` (`tpmutil.Session`): the DevID key loaded under the owner's
//! storage root key, a fresh attestation key (AK), and the endorsement key regenerated from the
//! default RSA template; then the operations the payload and the challenges need.
//!
//! Handles are flushed as soon as they are not needed and on drop, so at most three objects are
//! loaded at once (what the smallest TPMs and swtpm offer).

use std::path::Path;

use aws_lc_rs::digest;
use spire_attestation::tpm_devid::tpm::{HashAlg, KeyMaterial, Public, Signature, parse_signature};

use super::commands::{CommandError, Handle, Tpm};
use super::transport::Transport;

/// The RSA EK certificate's NV index (TCG EK Credential Profile).
pub const EK_CERT_INDEX: u32 = 0x01c0_0002;
const OWNER: u32 = 0x4000_0001;
const ENDORSEMENT: u32 = 0x4000_000b;
const RANDOM_PASSWORD_LEN: usize = 32;

/// The default EK policy: TPM2_PolicySecret(TPM_RH_ENDORSEMENT).
const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7,
    0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];
/// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | restricted | decrypt.
const SRK_ATTRIBUTES: u32 = 0x0003_0472;
/// fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt.
const EK_ATTRIBUTES: u32 = 0x0003_00b2;
/// sign | restricted | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA.
const AK_ATTRIBUTES: u32 = 0x0005_0472;
/// AES-128-CFB, the storage keys' symmetric algorithm.
const AES_128_CFB: [u8; 6] = [0x00, 0x06, 0x00, 0x80, 0x00, 0x43];

fn header(kind: u16, attributes: u32, policy: &[u8]) -> Vec<u8> {
    let mut v = kind.to_be_bytes().to_vec();
    v.extend(0x000bu16.to_be_bytes()); // nameAlg SHA-256
    v.extend(attributes.to_be_bytes());
    v.extend(u16::try_from(policy.len()).unwrap_or_default().to_be_bytes());
    v.extend(policy);
    v
}

/// The high-range RSA SRK template (go-tpm-tools' `SRKTemplateRSA` with an empty unique).
pub fn srk_template_rsa() -> Vec<u8> {
    let mut v = header(0x0001, SRK_ATTRIBUTES, &[]);
    v.extend(AES_128_CFB);
    v.extend([0x00, 0x10, 0x08, 0x00, 0, 0, 0, 0, 0, 0]); // scheme NULL, 2048 bits, exponent 0, unique empty
    v
}

/// The high-range ECC SRK template (go-tpm-tools' `SRKTemplateECC` with an empty unique).
pub fn srk_template_ecc() -> Vec<u8> {
    let mut v = header(0x0023, SRK_ATTRIBUTES, &[]);
    v.extend(AES_128_CFB);
    v.extend([0x00, 0x10, 0x00, 0x03, 0x00, 0x10, 0, 0, 0, 0]); // scheme NULL, P-256, KDF NULL, empty point
    v
}

/// The default RSA EK template (TCG template L-1, go-tpm-tools' `DefaultEKTemplateRSA`).
pub fn ek_template_rsa() -> Vec<u8> {
    let mut v = header(0x0001, EK_ATTRIBUTES, &EK_POLICY);
    v.extend(AES_128_CFB);
    v.extend([0x00, 0x10, 0x08, 0x00, 0, 0, 0, 0, 0x01, 0x00]); // scheme NULL, 2048 bits, exponent 0, 256-byte unique
    v.extend([0u8; 256]);
    v
}

/// The RSA attestation key template (go-tpm-tools' `AKTemplateRSA`: RSASSA with SHA-256).
pub fn ak_template_rsa() -> Vec<u8> {
    let mut v = header(0x0001, AK_ATTRIBUTES, &[]);
    v.extend([0x00, 0x10, 0x00, 0x14, 0x00, 0x0b, 0x08, 0x00, 0, 0, 0, 0, 0, 0]);
    v
}

/// The passwords of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwords {
    /// `endorsement_hierarchy_password`.
    pub endorsement_hierarchy: String,
    /// `owner_hierarchy_password`.
    pub owner_hierarchy: String,
    /// `devid_password`.
    pub devid_key: String,
}

/// Why the session failed (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The TPM could not be opened.
    #[error("cannot open TPM at {path:?}: {source}")]
    Open {
        /// The configured path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The DevID key could not be loaded.
    #[error("cannot load DevID key on TPM: {0}")]
    LoadDevId(String),
    /// The AK could not be created.
    #[error("cannot create attestation key: {0}")]
    CreateAk(String),
    /// The AK could not be loaded.
    #[error("cannot load attestation key: {0}")]
    LoadAk(String),
    /// The EK could not be regenerated.
    #[error("cannot create endorsement key: {0}")]
    CreateEk(String),
    /// No random bytes.
    #[error("cannot generate random password")]
    Random,
}

/// What the session did not manage (SPIRE's wording, which the plugin prefixes).
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The EK certificate index could not be read.
    #[error("failed to read NV index {EK_CERT_INDEX:08x}: {0}")]
    ReadEkCert(CommandError),
    /// The index does not start with a DER certificate.
    #[error("failed to unmarshall certificate read from {EK_CERT_INDEX:08x}: {0}")]
    EkCertDer(String),
    /// TPM2_Certify failed.
    #[error("tpm2.Certify failed: {0}")]
    Certify(CommandError),
    /// TPM2_Sign failed.
    #[error("failed to sign nonce: tpm2.Sign failed: {0}")]
    Sign(String),
    /// TPM2_ActivateCredential (or its policy session) failed.
    #[error("failed to activate credential: {0}")]
    Activate(CommandError),
}

/// A loaded key and its password.
#[derive(Debug)]
struct LoadedKey {
    handle: Handle,
    password: Vec<u8>,
}

/// An open TPM with the DevID key, an AK and the EK loaded.
#[derive(Debug)]
pub struct Session {
    tpm: Tpm,
    devid: Option<LoadedKey>,
    devid_public: Public,
    ak: Option<LoadedKey>,
    ak_public: Vec<u8>,
    ek: Option<Handle>,
    ek_public: Vec<u8>,
    endorsement_password: Vec<u8>,
}

fn random_password() -> Result<Vec<u8>, SessionError> {
    let mut p = vec![0u8; RANDOM_PASSWORD_LEN];
    aws_lc_rs::rand::fill(&mut p).map_err(|_| SessionError::Random)?;
    Ok(p)
}

impl Session {
    /// Opens the TPM at `path` and loads the DevID key (`TPMT_PUBLIC` and `TPM2B_PRIVATE`
    /// contents), a new AK and the EK, as SPIRE's `NewSession`.
    pub fn open(path: &Path, devid_pub: &[u8], devid_priv: &[u8], passwords: &Passwords) -> Result<Self, SessionError> {
        let transport =
            Transport::open(path).map_err(|source| SessionError::Open { path: path.display().to_string(), source })?;
        let devid_public =
            Public::parse(devid_pub).map_err(|e| SessionError::LoadDevId(format!("tpm2.DecodePublic failed: {e}")))?;
        let mut session = Self {
            tpm: Tpm::new(transport),
            devid: None,
            devid_public,
            ak: None,
            ak_public: Vec::new(),
            ek: None,
            ek_public: Vec::new(),
            endorsement_password: passwords.endorsement_hierarchy.as_bytes().to_vec(),
        };
        let owner = passwords.owner_hierarchy.as_bytes();
        let srk_password = random_password()?;

        if !session.devid_public.can_sign() {
            return Err(SessionError::LoadDevId("not a signing key".into()));
        }
        if session.devid_public.scheme_hash.is_none() {
            return Err(SessionError::LoadDevId("signature hash algorithm is NULL".into()));
        }
        let srk_template = match session.devid_public.key {
            KeyMaterial::Rsa { .. } => srk_template_rsa(),
            KeyMaterial::Ecc { .. } => srk_template_ecc(),
        };
        let handle = session
            .load_key(owner, &srk_template, &srk_password, devid_priv, devid_pub)
            .map_err(SessionError::LoadDevId)?;
        session.devid = Some(LoadedKey { handle, password: passwords.devid_key.as_bytes().to_vec() });

        let ak_password = random_password()?;
        let created = session
            .with_srk(owner, &srk_template_rsa(), &srk_password, |tpm, srk| {
                tpm.create(srk, &srk_password, &ak_template_rsa(), &ak_password)
            })
            .map_err(|e| SessionError::CreateAk(e.to_string()))?;
        session.ak_public = created.public.clone();
        let handle = session
            .load_key(owner, &srk_template_rsa(), &srk_password, &created.private, &created.public)
            .map_err(SessionError::LoadAk)?;
        session.ak = Some(LoadedKey { handle, password: ak_password });

        let (ek, ek_public) = session
            .tpm
            .create_primary(ENDORSEMENT, &session.endorsement_password, &ek_template_rsa(), &[])
            .map_err(|e| SessionError::CreateEk(e.to_string()))?;
        session.ek = Some(ek);
        session.ek_public = ek_public;
        Ok(session)
    }

    /// Runs `f` with a storage root key made from `template`, flushed after.
    fn with_srk<T>(
        &mut self,
        owner: &[u8],
        template: &[u8],
        srk_password: &[u8],
        f: impl FnOnce(&mut Tpm, Handle) -> Result<T, CommandError>,
    ) -> Result<T, String> {
        let (srk, _) = self
            .tpm
            .create_primary(OWNER, owner, template, srk_password)
            .map_err(|e| format!("tpm2.CreatePrimaryEx failed: {e}"))?;
        let result = f(&mut self.tpm, srk);
        let _ = self.tpm.flush(srk);
        result.map_err(|e| e.to_string())
    }

    fn load_key(
        &mut self,
        owner: &[u8],
        srk_template: &[u8],
        srk_password: &[u8],
        private: &[u8],
        public: &[u8],
    ) -> Result<Handle, String> {
        self.with_srk(owner, srk_template, srk_password, |tpm, srk| tpm.load(srk, srk_password, private, public))
            .map_err(|e| if e.starts_with("tpm2.") { e } else { format!("tpm2.Load failed: {e}") })
    }

    /// The EK certificate from its NV index, without the padding some TPMs keep after it.
    pub fn ek_cert(&mut self) -> Result<Vec<u8>, OperationError> {
        let raw = self.tpm.nv_read(EK_CERT_INDEX).map_err(OperationError::ReadEkCert)?;
        let len =
            der_length(&raw).ok_or_else(|| OperationError::EkCertDer("asn1: syntax error: data truncated".into()))?;
        Ok(raw[..len].to_vec())
    }

    /// The EK's `TPMT_PUBLIC`.
    pub fn ek_public(&self) -> &[u8] {
        &self.ek_public
    }

    /// The AK's `TPMT_PUBLIC`.
    pub fn ak_public(&self) -> &[u8] {
        &self.ak_public
    }

    /// TPM2_Certify of the DevID key by the AK.
    pub fn certify_devid(&mut self) -> Result<(Vec<u8>, Vec<u8>), OperationError> {
        let (Some(devid), Some(ak)) = (&self.devid, &self.ak) else { unreachable!("open loads both") };
        self.tpm.certify(devid.handle, &devid.password, ak.handle, &ak.password).map_err(OperationError::Certify)
    }

    /// The DevID key's signature over `nonce`, as Go's `crypto.Signer` returns it: the PKCS#1 v1.5
    /// signature for RSA, DER `(r, s)` for ECDSA.
    pub fn sign_nonce(&mut self, nonce: &[u8]) -> Result<Vec<u8>, OperationError> {
        let Some(devid) = &self.devid else { unreachable!("open loads the DevID key") };
        let hash = self
            .devid_public
            .scheme_hash
            .and_then(|h| HashAlg::from_tpm(h).ok())
            .ok_or_else(|| OperationError::Sign("unsupported hash".into()))?;
        let digest = digest::digest(hash.digest_alg(), nonce);
        let sig = self
            .tpm
            .sign(devid.handle, &devid.password, digest.as_ref())
            .map_err(|e| OperationError::Sign(e.to_string()))?;
        match parse_signature(&sig).map_err(|e| OperationError::Sign(e.to_string()))? {
            Signature::Rsa(s) => Ok(s),
            Signature::Ecdsa(r, s) => Ok(der_signature(&r, &s)),
        }
    }

    /// TPM2_ActivateCredential of the server's credential with the EK, for the AK.
    pub fn activate_credential(&mut self, credential: &[u8], secret: &[u8]) -> Result<Vec<u8>, OperationError> {
        let (Some(ak), Some(ek)) = (&self.ak, self.ek) else { unreachable!("open loads both") };
        let session =
            self.tpm.endorsement_policy_session(&self.endorsement_password).map_err(OperationError::Activate)?;
        let result = self.tpm.activate_credential(ak.handle, &ak.password, ek, session, credential, secret);
        if result.is_err() {
            // A successful command closes the session (continueSession is clear); a failed one not.
            let _ = self.tpm.flush(session);
        }
        result.map_err(OperationError::Activate)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let handles = [self.devid.take().map(|k| k.handle), self.ak.take().map(|k| k.handle), self.ek.take()];
        for handle in handles.into_iter().flatten() {
            if let Err(e) = self.tpm.flush(handle) {
                tracing::warn!("Failed to flush handle {handle:#x}: {e}");
            }
        }
    }
}

/// The length of the DER element at the start of `bytes`.
fn der_length(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = bytes.get(2..2 + n)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let total = header.checked_add(len)?;
    (total <= bytes.len()).then_some(total)
}

/// ASN.1 `SEQUENCE { INTEGER r, INTEGER s }`.
fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let start = v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1));
        let mut body = v[start..].to_vec();
        if body.first().is_none_or(|b| b & 0x80 != 0) {
            body.insert(0, 0);
        }
        [vec![0x02, body.len() as u8], body].concat()
    }
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() < 0x80 {
        out.push(body.len() as u8);
    } else {
        out.extend([0x81, body.len() as u8]);
    }
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_go_tpm_tools_writes_them() {
        for t in [srk_template_rsa(), srk_template_ecc(), ek_template_rsa(), ak_template_rsa()] {
            Public::parse(&t).unwrap();
        }
        assert!(Public::parse(&ak_template_rsa()).unwrap().can_sign());
        // The server refuses an AK that is not a restricted signer fixed to its TPM.
        assert!(Public::parse(&ak_template_rsa()).unwrap().is_resident_restricted_signer());
    }

    #[test]
    fn der_helpers() {
        assert_eq!(der_length(&[0x30, 0x03, 1, 2, 3, 0xff, 0xff]), Some(5));
        assert_eq!(der_length(&[0x30, 0x82, 0x01, 0x00]), None);
        assert_eq!(der_signature(&[0x80], &[0, 1]), [0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01]);
    }
}
