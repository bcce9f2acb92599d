//! An external agent KeyManager (`KeyManager "<name>" { plugin_cmd = ... }`): the agent's SVID keys
//! (`agent-svid-A`, `agent-svid-B`) live in the plugin, which hands out their public keys
//! (`GenerateKey`, `GetPublicKey`) and signs digests with them (`SignData`). The agent signs its
//! CSRs and its TLS client authentication through [`SigningKey::Remote`].
//!
//! Signing is synchronous (certificate and CSR signing, rustls's `Signer`): [`PluginSigner`] bridges
//! to the plugin's async RPC with `tokio::task::block_in_place` on the agent's multi-thread runtime.

use std::sync::Arc;

use async_trait::async_trait;
use spire_identity::{HashAlgorithm, KeyType, RemoteSignError, RemoteSigner, SignerOpts, SigningKey};
use spire_keymanager::{KeyManager, KeyManagerError};
use spire_plugin_host::go_status;
use spire_proto::spire::plugin::agent::keymanager::v1 as kmv1;
use tonic::transport::Channel;

use kmv1::key_manager_client::KeyManagerClient;

/// The plugin type, in the facade's prefix.
const PLUGIN_TYPE: &str = "KeyManager";

/// A key manager served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalKeyManager {
    name: String,
    client: KeyManagerClient<Channel>,
}

impl ExternalKeyManager {
    /// The facade of the plugin `name` reached over `channel` (from [`super::ExternalPlugins::start`]).
    pub fn new(name: impl Into<String>, channel: Channel) -> Self {
        Self { name: name.into(), client: KeyManagerClient::new(channel) }
    }

    /// A plugin failure as a key manager error, with SPIRE's facade prefix.
    fn error(&self, status: &tonic::Status) -> KeyManagerError {
        self.failure(go_status(&super::wrap_status(PLUGIN_TYPE, &self.name, status)))
    }

    fn failure(&self, reason: String) -> KeyManagerError {
        // `spire_keymanager` has no variant for a plugin's failure yet: its `Storage` carries the
        // plugin's name where a disk manager's carries its file.
        KeyManagerError::Storage { path: format!("KeyManager {:?}", self.name), reason }
    }

    /// The public key the plugin answered, as a key that signs through the plugin.
    fn key(&self, id: &str, public_key: kmv1::PublicKey) -> Result<SigningKey, KeyManagerError> {
        let key_type = key_type_from_proto(public_key.r#type).ok_or_else(|| {
            self.failure(format!(
                "{}: plugin returned unsupported key type {} for key {id:?}",
                prefix(&self.name),
                public_key.r#type
            ))
        })?;
        let signer = Arc::new(PluginSigner {
            name: self.name.clone(),
            key_id: id.to_owned(),
            client: self.client.clone(),
            handle: tokio::runtime::Handle::current(),
        });
        SigningKey::remote(key_type, public_key.pkix_data, signer)
            .map_err(|source| KeyManagerError::Generate { id: id.to_owned(), source })
    }
}

fn prefix(name: &str) -> String {
    format!("keymanager({name})")
}

fn key_type_to_proto(key_type: KeyType) -> kmv1::KeyType {
    match key_type {
        KeyType::EcP256 => kmv1::KeyType::EcP256,
        KeyType::EcP384 => kmv1::KeyType::EcP384,
        KeyType::Rsa2048 => kmv1::KeyType::Rsa2048,
        KeyType::Rsa4096 => kmv1::KeyType::Rsa4096,
    }
}

fn key_type_from_proto(value: i32) -> Option<KeyType> {
    match kmv1::KeyType::try_from(value).ok()? {
        kmv1::KeyType::EcP256 => Some(KeyType::EcP256),
        kmv1::KeyType::EcP384 => Some(KeyType::EcP384),
        kmv1::KeyType::Rsa2048 => Some(KeyType::Rsa2048),
        kmv1::KeyType::Rsa4096 => Some(KeyType::Rsa4096),
        kmv1::KeyType::UnspecifiedKeyType => None,
    }
}

fn hash_to_proto(hash: HashAlgorithm) -> kmv1::HashAlgorithm {
    match hash {
        HashAlgorithm::Sha256 => kmv1::HashAlgorithm::Sha256,
        HashAlgorithm::Sha384 => kmv1::HashAlgorithm::Sha384,
        HashAlgorithm::Sha512 => kmv1::HashAlgorithm::Sha512,
    }
}

#[async_trait]
impl KeyManager for ExternalKeyManager {
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<SigningKey, KeyManagerError> {
        let request = kmv1::GenerateKeyRequest { key_id: id.to_owned(), key_type: key_type_to_proto(key_type).into() };
        let response = self.client.clone().generate_key(request).await.map_err(|s| self.error(&s))?.into_inner();
        let public_key = response
            .public_key
            .ok_or_else(|| self.failure(format!("{}: plugin response missing public key", prefix(&self.name))))?;
        let key = self.key(id, public_key)?;
        if key.key_type() != key_type {
            return Err(self.failure(format!(
                "{}: plugin returned a {} key for a {key_type} key request",
                prefix(&self.name),
                key.key_type()
            )));
        }
        Ok(key)
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, KeyManagerError> {
        let request = kmv1::GetPublicKeyRequest { key_id: id.to_owned() };
        let response = self.client.clone().get_public_key(request).await.map_err(|s| self.error(&s))?.into_inner();
        // SPIRE's key managers answer an unknown key with an empty response.
        match response.public_key {
            Some(public_key) if !public_key.pkix_data.is_empty() => self.key(id, public_key).map(Some),
            _ => Ok(None),
        }
    }
}

/// Signs digests with one of the plugin's keys (`SignData`).
#[derive(Debug)]
pub struct PluginSigner {
    name: String,
    key_id: String,
    client: KeyManagerClient<Channel>,
    /// The agent's runtime, for a signature asked for outside it.
    handle: tokio::runtime::Handle,
}

impl RemoteSigner for PluginSigner {
    fn sign_digest(&self, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, RemoteSignError> {
        use kmv1::sign_data_request::{PssOptions, SignerOpts as Opts};
        let signer_opts = match opts {
            SignerOpts::Hash(hash) => Opts::HashAlgorithm(hash_to_proto(hash).into()),
            SignerOpts::Pss { hash, salt_length } => Opts::PssOptions(PssOptions {
                salt_length: i32::try_from(salt_length).map_err(RemoteSignError::new)?,
                hash_algorithm: hash_to_proto(hash).into(),
            }),
        };
        let request = kmv1::SignDataRequest {
            key_id: self.key_id.clone(),
            data: digest.to_vec(),
            signer_opts: Some(signer_opts),
        };
        let mut client = self.client.clone();
        let call = async move { client.sign_data(request).await };
        let answer = block_on(&self.handle, call).map_err(RemoteSignError::new)?;
        match answer {
            Ok(response) => Ok(response.into_inner().signature),
            Err(status) => Err(RemoteSignError::new(go_status(&super::wrap_status(PLUGIN_TYPE, &self.name, &status)))),
        }
    }
}

/// Runs `future` to completion from synchronous code: on a multi-thread runtime's worker with
/// `block_in_place` (the worker's other tasks move elsewhere meanwhile), or on `handle` from a thread
/// outside any runtime. A current-thread runtime cannot wait for its own task: refused.
fn block_on<F: std::future::Future>(handle: &tokio::runtime::Handle, future: F) -> Result<F::Output, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(current) if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| current.block_on(future)))
        }
        Ok(_) => Err("an external KeyManager cannot sign from a single-threaded runtime".into()),
        Err(_) => Ok(handle.block_on(future)),
    }
}
