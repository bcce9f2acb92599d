//! Why a `tpm_devid` attestation is refused, with SPIRE v1.13.3's messages and status codes (every
//! refusal of untrusted evidence is InvalidArgument there).

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// The payload is not an `AttestationRequest`.
    #[error("unable to unmarshall attestation data: {0}")]
    BadPayload(String),
    /// No DevID certificate.
    #[error("no DevID certificate to attest")]
    NoCertificate,
    /// The DevID leaf is not X.509 DER.
    #[error("unable to parse DevID certificate: {0}")]
    BadLeaf(String),
    /// A DevID intermediate is not X.509 DER.
    #[error("unable to parse DevID intermediate certificate {0}: {1}")]
    BadIntermediate(usize, String),
    /// The DevID chain does not lead to a DevID root, or a certificate is out of its validity.
    #[error("unable to verify DevID signature: verification failed: {0}")]
    DevIdChain(String),
    /// A piece of residency evidence is absent (SPIRE's whole message).
    #[error("{0}")]
    Missing(&'static str),
    /// The EK certificate is not X.509 DER.
    #[error("cannot parse endorsement certificate: {0}")]
    BadEkCert(String),
    /// The DevID public blob is not a `TPMT_PUBLIC`.
    #[error("cannot decode DevID key public blob: {0}")]
    BadDevIdPub(String),
    /// The AK public blob is not a `TPMT_PUBLIC`.
    #[error("cannot decode attestation key public blob: {0}")]
    BadAkPub(String),
    /// The EK public blob is not a `TPMT_PUBLIC`.
    #[error("cannot decode endorsement key public blob")]
    BadEkPub,
    /// The EK certificate's key is not the EK the TPM regenerated.
    #[error("public key in EK certificate differs from public key created via EK template: {0}")]
    EkMismatch(String),
    /// The EK certificate does not lead to a manufacturer root.
    #[error("cannot verify EK signature: endorsement certificate verification failed: {0}")]
    EkChain(String),
    /// The AK's attributes do not make its TPM2_Certify trustworthy (not checked by SPIRE v1.13.3).
    #[error(
        "attestation key is not a restricted signing key resident in its TPM (attributes 0x{0:08x}; needs sign, restricted, fixedTPM, fixedParent, sensitiveDataOrigin and not decrypt)"
    )]
    AkAttributes(u32),
    /// The certified DevID key could leave its TPM (not checked by SPIRE v1.13.3).
    #[error("DevID key is not a signing key fixed to its TPM (attributes 0x{0:08x}; needs sign and fixedTPM)")]
    DevIdAttributes(u32),
    /// The AK did not certify this DevID key.
    #[error("cannot verify that DevID is in the same TPM than AK: {0}")]
    Certification(String),
    /// No credential could be made for this EK.
    #[error("cannot generate credential activation challenge: {0}")]
    CredentialChallenge(String),
    /// The response is not a `ChallengeResponse`.
    #[error("unable to unmarshall challenges response: {0}")]
    BadResponse(String),
    /// The nonce was not signed by the DevID key.
    #[error("devID challenge verification failed: {0}")]
    DevIdChallenge(String),
    /// The credential came back wrong: the AK is not in the EK's TPM.
    #[error("credential activation failed: nonces are different")]
    CredentialActivation,
    /// No random bytes.
    #[error("unable to generate challenge: {0}")]
    Random(String),
    /// The agent ID is not a valid SPIFFE ID.
    #[error("failed to create agent ID: {0}")]
    AgentId(String),
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::CredentialChallenge(_) | Self::Random(_) | Self::AgentId(_) => Code::Internal,
            _ => Code::InvalidArgument,
        }
    }
}

impl From<AttestError> for Status {
    fn from(e: AttestError) -> Self {
        plugin_status(NAME, e.code(), e)
    }
}
