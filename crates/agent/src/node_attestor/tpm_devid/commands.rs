//! The TPM 2.0 commands the attestation needs, marshaled and unmarshaled with `tpm2-protocol`, over
//! a [`Transport`]. Each returns the TPM's structures as raw bytes where they travel on (a key's
//! `TPMT_PUBLIC`, a `TPMS_ATTEST`), exactly as the TPM wrote them.

use std::time::Duration;

use spire_attestation::tpm_devid::tpm2_protocol::basic::TpmHandle;
use spire_attestation::tpm_devid::tpm2_protocol::data::{
    Tpm2bAttest, Tpm2bData, Tpm2bDigest, Tpm2bEncryptedSecret, Tpm2bIdObject, Tpm2bNonce, Tpm2bPrivate, Tpm2bPublic,
    Tpm2bSensitiveCreate, TpmAlgId, TpmRc, TpmRcBase, TpmRh, TpmSe, TpmSt, TpmaSession, TpmlPcrSelection,
    TpmsAuthCommand, TpmsSensitiveCreate, TpmtPublic, TpmtSigScheme, TpmtSymDef, TpmtTkHashcheck,
};
use spire_attestation::tpm_devid::tpm2_protocol::frame::{
    TpmActivateCredentialCommand, TpmActivateCredentialResponse, TpmCertifyCommand, TpmCertifyResponse,
    TpmCreateCommand, TpmCreatePrimaryCommand, TpmCreatePrimaryResponse, TpmCreateResponse, TpmFlushContextCommand,
    TpmFlushContextResponse, TpmFrame, TpmLoadCommand, TpmLoadResponse, TpmNvReadCommand, TpmNvReadPublicCommand,
    TpmNvReadPublicResponse, TpmNvReadResponse, TpmPolicySecretCommand, TpmPolicySecretResponse, TpmReadPublicCommand,
    TpmReadPublicResponse, TpmResponse, TpmSignCommand, TpmSignResponse, TpmStartAuthSessionCommand,
    TpmStartAuthSessionResponse, TpmUnmarshalBody, tpm_marshal_command,
};
use spire_attestation::tpm_devid::tpm2_protocol::{TpmMarshal, TpmUnmarshal, TpmWriter};

use super::transport::Transport;

/// A TPM handle.
pub type Handle = u32;

/// The password session (`TPM_RS_PW`).
const RS_PW: u32 = 0x4000_0009;
/// Retries of a command the TPM asks to run again (SPIRE retries Sign and Certify 10 times).
const MAX_ATTEMPTS: u32 = 10;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The channel to the TPM failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TPM refused the command.
    #[error("TPM error 0x{code:03x}: {text}")]
    Tpm {
        /// The response code.
        code: u32,
        /// Its name.
        text: String,
    },
    /// Bytes that do not marshal or unmarshal.
    #[error("{0}")]
    Encoding(String),
}

impl CommandError {
    fn encoding(e: impl std::fmt::Display) -> Self {
        Self::Encoding(e.to_string())
    }
}

/// An authorization for one handle of a command.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A password (possibly empty).
    Password(Vec<u8>),
    /// A policy session whose policy is already satisfied.
    Policy(Handle),
}

impl Auth {
    fn command(&self) -> Result<TpmsAuthCommand, CommandError> {
        let (handle, hmac) = match self {
            Self::Password(p) => (RS_PW, p.as_slice()),
            Self::Policy(h) => (*h, &[][..]),
        };
        Ok(TpmsAuthCommand {
            session_handle: TpmHandle::new(handle),
            nonce: Tpm2bNonce::default(),
            session_attributes: TpmaSession::default(),
            hmac: hmac.try_into().map_err(CommandError::encoding)?,
        })
    }
}

/// An open TPM.
#[derive(Debug)]
pub struct Tpm {
    transport: Transport,
}

/// The results of TPM2_Create.
#[derive(Debug)]
pub struct Created {
    /// `TPM2B_PRIVATE` contents.
    pub private: Vec<u8>,
    /// `TPMT_PUBLIC`.
    pub public: Vec<u8>,
}

/// The sensitive part of a new key: its authorization value, no data (the TPM makes the key).
fn sensitive(user_auth: &[u8]) -> Result<Tpm2bSensitiveCreate, CommandError> {
    Ok(Tpm2bSensitiveCreate {
        inner: TpmsSensitiveCreate {
            user_auth: user_auth.try_into().map_err(CommandError::encoding)?,
            data: Default::default(),
        },
    })
}

fn public_of(bytes: &[u8]) -> Result<Tpm2bPublic, CommandError> {
    let (inner, rest) = TpmtPublic::unmarshal(bytes).map_err(CommandError::encoding)?;
    if !rest.is_empty() {
        return Err(CommandError::Encoding("trailing bytes after TPMT_PUBLIC".into()));
    }
    Ok(Tpm2bPublic { inner })
}

fn marshal<T: TpmMarshal>(value: &T, capacity: usize) -> Result<Vec<u8>, CommandError> {
    let mut buf = vec![0u8; capacity];
    let mut writer = TpmWriter::new(&mut buf);
    value.marshal(&mut writer).map_err(CommandError::encoding)?;
    let len = writer.len();
    buf.truncate(len);
    Ok(buf)
}

impl Tpm {
    /// A TPM over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    fn execute<C: TpmFrame, R: TpmUnmarshalBody>(&mut self, command: &C, auths: &[Auth]) -> Result<R, CommandError> {
        let sessions = auths.iter().map(Auth::command).collect::<Result<Vec<_>, _>>()?;
        let tag = if sessions.is_empty() { TpmSt::NoSessions } else { TpmSt::Sessions };
        let mut buf = vec![0u8; 4096];
        let mut writer = TpmWriter::new(&mut buf);
        tpm_marshal_command(command, tag, &sessions, &mut writer).map_err(CommandError::encoding)?;
        let len = writer.len();
        buf.truncate(len);
        for attempt in 1..=MAX_ATTEMPTS {
            let raw = self.transport.transmit(&buf)?;
            let response = TpmResponse::cast(&raw).map_err(CommandError::encoding)?;
            let rc = response.rc().map_err(CommandError::encoding)?;
            match rc {
                TpmRc::Fmt0(TpmRcBase::Success) => return response.unmarshal::<R>().map_err(CommandError::encoding),
                TpmRc::Warn(TpmRcBase::Retry | TpmRcBase::Yielded | TpmRcBase::Testing) if attempt < MAX_ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return Err(CommandError::Tpm { code: other.value(), text: other.to_string() }),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// TPM2_CreatePrimary under `hierarchy` from `template` (a `TPMT_PUBLIC`), with `user_auth` as
    /// the new key's password; returns its handle and `TPMT_PUBLIC`.
    pub fn create_primary(
        &mut self,
        hierarchy: Handle,
        hierarchy_auth: &[u8],
        template: &[u8],
        user_auth: &[u8],
    ) -> Result<(Handle, Vec<u8>), CommandError> {
        let command = TpmCreatePrimaryCommand {
            handles: [TpmHandle::new(hierarchy)],
            in_sensitive: sensitive(user_auth)?,
            in_public: public_of(template)?,
            outside_info: Tpm2bData::default(),
            creation_pcr: TpmlPcrSelection::default(),
        };
        let r: TpmCreatePrimaryResponse = self.execute(&command, &[Auth::Password(hierarchy_auth.to_vec())])?;
        Ok((r.handles[0].value(), marshal(&r.out_public.inner, 1024)?))
    }

    /// TPM2_Create of a key under `parent` from `template`.
    pub fn create(
        &mut self,
        parent: Handle,
        parent_auth: &[u8],
        template: &[u8],
        user_auth: &[u8],
    ) -> Result<Created, CommandError> {
        let command = TpmCreateCommand {
            handles: [TpmHandle::new(parent)],
            in_sensitive: sensitive(user_auth)?,
            in_public: public_of(template)?,
            outside_info: Tpm2bData::default(),
            creation_pcr: TpmlPcrSelection::default(),
        };
        let r: TpmCreateResponse = self.execute(&command, &[Auth::Password(parent_auth.to_vec())])?;
        Ok(Created { private: r.out_private.to_vec(), public: marshal(&r.out_public.inner, 1024)? })
    }

    /// TPM2_Load of a key (`TPM2B_PRIVATE` contents, `TPMT_PUBLIC`) under `parent`.
    pub fn load(
        &mut self,
        parent: Handle,
        parent_auth: &[u8],
        private: &[u8],
        public: &[u8],
    ) -> Result<Handle, CommandError> {
        let command = TpmLoadCommand {
            handles: [TpmHandle::new(parent)],
            in_private: Tpm2bPrivate::try_from(private).map_err(CommandError::encoding)?,
            in_public: public_of(public)?,
        };
        let r: TpmLoadResponse = self.execute(&command, &[Auth::Password(parent_auth.to_vec())])?;
        Ok(r.handles[0].value())
    }

    /// TPM2_ReadPublic: the object's `TPMT_PUBLIC`.
    pub fn read_public(&mut self, object: Handle) -> Result<Vec<u8>, CommandError> {
        let r: TpmReadPublicResponse =
            self.execute(&TpmReadPublicCommand { handles: [TpmHandle::new(object)] }, &[])?;
        marshal(&r.out_public.inner, 1024)
    }

    /// TPM2_Certify of `object` by `signer` with the signer's scheme: the `TPMS_ATTEST` and the
    /// `TPMT_SIGNATURE`.
    pub fn certify(
        &mut self,
        object: Handle,
        object_auth: &[u8],
        signer: Handle,
        signer_auth: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), CommandError> {
        let command = TpmCertifyCommand {
            handles: [TpmHandle::new(object), TpmHandle::new(signer)],
            qualifying_data: Tpm2bData::default(),
            in_scheme: TpmtSigScheme::default(),
        };
        let auths = [Auth::Password(object_auth.to_vec()), Auth::Password(signer_auth.to_vec())];
        let r: TpmCertifyResponse = self.execute(&command, &auths)?;
        let attest: &Tpm2bAttest = &r.certify_info;
        Ok((marshal(&attest.inner, 2048)?, marshal(&r.signature, 1024)?))
    }

    /// TPM2_Sign of `digest` with the key's own scheme (an unrestricted key: no hash ticket).
    pub fn sign(&mut self, key: Handle, key_auth: &[u8], digest: &[u8]) -> Result<Vec<u8>, CommandError> {
        let command = TpmSignCommand {
            handles: [TpmHandle::new(key)],
            digest: Tpm2bDigest::try_from(digest).map_err(CommandError::encoding)?,
            in_scheme: TpmtSigScheme::default(),
            validation: TpmtTkHashcheck {
                tag: TpmSt::HashCheck,
                hierarchy: TpmRh::Null,
                digest: Tpm2bDigest::default(),
            },
        };
        let r: TpmSignResponse = self.execute(&command, &[Auth::Password(key_auth.to_vec())])?;
        marshal(&r.signature, 1024)
    }

    /// The size of an NV index's data.
    pub fn nv_size(&mut self, index: Handle) -> Result<usize, CommandError> {
        let r: TpmNvReadPublicResponse =
            self.execute(&TpmNvReadPublicCommand { handles: [TpmHandle::new(index)] }, &[])?;
        Ok(usize::from(r.nv_public.inner.data_size.value()))
    }

    /// TPM2_NV_Read of a whole index, authorized by the index itself with an empty password (as
    /// go-tpm's `NVRead`), in chunks the TPM accepts.
    pub fn nv_read(&mut self, index: Handle) -> Result<Vec<u8>, CommandError> {
        const CHUNK: usize = 512;
        let size = self.nv_size(index)?;
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let n = (size - out.len()).min(CHUNK);
            let command = TpmNvReadCommand {
                handles: [TpmHandle::new(index), TpmHandle::new(index)],
                size: u16::try_from(n).map_err(CommandError::encoding)?.into(),
                offset: u16::try_from(out.len()).map_err(CommandError::encoding)?.into(),
            };
            let r: TpmNvReadResponse = self.execute(&command, &[Auth::Password(Vec::new())])?;
            if r.data.is_empty() {
                break;
            }
            out.extend_from_slice(&r.data);
        }
        Ok(out)
    }

    /// An unbound, unsalted SHA-256 policy session, satisfied by TPM2_PolicySecret on the
    /// endorsement hierarchy (what the default EK's policy asks for).
    pub fn endorsement_policy_session(&mut self, endorsement_auth: &[u8]) -> Result<Handle, CommandError> {
        let start = TpmStartAuthSessionCommand {
            handles: [TpmHandle::new(TpmRh::Null.value()), TpmHandle::new(TpmRh::Null.value())],
            nonce_caller: Tpm2bNonce::try_from(&[0u8; 16][..]).map_err(CommandError::encoding)?,
            encrypted_salt: Tpm2bEncryptedSecret::default(),
            session_type: TpmSe::Policy,
            symmetric: TpmtSymDef::default(),
            auth_hash: TpmAlgId::Sha256,
        };
        let r: TpmStartAuthSessionResponse = self.execute(&start, &[])?;
        let session = r.handles[0].value();
        let secret = TpmPolicySecretCommand {
            handles: [TpmHandle::new(TpmRh::Endorsement.value()), TpmHandle::new(session)],
            nonce_tpm: Tpm2bNonce::default(),
            cp_hash_a: Tpm2bDigest::default(),
            policy_ref: Tpm2bNonce::default(),
            expiration: 0i32.into(),
        };
        match self.execute::<_, TpmPolicySecretResponse>(&secret, &[Auth::Password(endorsement_auth.to_vec())]) {
            Ok(_) => Ok(session),
            Err(e) => {
                let _ = self.flush(session);
                Err(e)
            }
        }
    }

    /// TPM2_ActivateCredential: `key` (the EK, under `key_session`) opens the credential made for
    /// `object` (the AK).
    pub fn activate_credential(
        &mut self,
        object: Handle,
        object_auth: &[u8],
        key: Handle,
        key_session: Handle,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, CommandError> {
        let command = TpmActivateCredentialCommand {
            handles: [TpmHandle::new(object), TpmHandle::new(key)],
            credential_blob: Tpm2bIdObject::try_from(credential_blob).map_err(CommandError::encoding)?,
            secret: Tpm2bEncryptedSecret::try_from(secret).map_err(CommandError::encoding)?,
        };
        let auths = [Auth::Password(object_auth.to_vec()), Auth::Policy(key_session)];
        let r: TpmActivateCredentialResponse = self.execute(&command, &auths)?;
        Ok(r.cert_info.to_vec())
    }

    /// TPM2_FlushContext.
    pub fn flush(&mut self, handle: Handle) -> Result<(), CommandError> {
        let _: TpmFlushContextResponse =
            self.execute(&TpmFlushContextCommand { flush_handle: TpmHandle::new(handle), handles: [] }, &[])?;
        Ok(())
    }
}
