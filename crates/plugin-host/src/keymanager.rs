//! The KeyManager facade, for both daemons: SPIRE's server and agent KeyManager services
//! (`spire.plugin.{server,agent}.keymanager.v1.KeyManager`, the same messages in two packages)
//! behind [`spire_keymanager::KeyManager`]. Keys stay in the plugin: it answers their public keys
//! (`GenerateKey`, `GetPublicKey`) and signs digests with them (`SignData`), so every key is a
//! [`SigningKey::Remote`] whose signer calls the plugin.
//!
//! Signing is synchronous (certificates, CSRs, TLS); the signer bridges to the async RPC with
//! `tokio::task::block_in_place` on a multi-thread runtime.

use std::sync::Arc;

use spire_identity::{HashAlgorithm, KeyType, RemoteSignError, RemoteSigner, SignerOpts, SigningKey};
use spire_keymanager::{KeyManager, KeyManagerError};
use tonic::Status;
use tonic::transport::Channel;

use crate::{facade_status, go_status};

/// The SDK service of the server's KeyManager.
pub const SERVER_SERVICE: &str = "spire.plugin.server.keymanager.v1.KeyManager";
/// The SDK service of the agent's KeyManager.
pub const AGENT_SERVICE: &str = "spire.plugin.agent.keymanager.v1.KeyManager";

/// A public key as a plugin answers it: its type and SubjectPublicKeyInfo DER (empty: no such key).
#[derive(Debug, Clone)]
pub struct PluginPublicKey {
    key_type: Option<KeyType>,
    pkix_data: Vec<u8>,
}

/// The calls of either package's generated client.
#[tonic::async_trait]
pub trait KeyManagerClient: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// `GenerateKey`.
    async fn generate(&mut self, id: &str, key_type: KeyType) -> Result<Option<PluginPublicKey>, Status>;
    /// `GetPublicKey`.
    async fn get(&mut self, id: &str) -> Result<Option<PluginPublicKey>, Status>;
    /// `SignData`.
    async fn sign(&mut self, id: &str, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, Status>;
}

/// Implements [`KeyManagerClient`] for the client of the package `$pb` (both have the same shapes).
macro_rules! impl_client {
    ($pb:path) => {
        const _: () = {
            use $pb as pb;

            fn key_type_to_proto(key_type: KeyType) -> pb::KeyType {
                match key_type {
                    KeyType::EcP256 => pb::KeyType::EcP256,
                    KeyType::EcP384 => pb::KeyType::EcP384,
                    KeyType::Rsa2048 => pb::KeyType::Rsa2048,
                    KeyType::Rsa4096 => pb::KeyType::Rsa4096,
                }
            }

            fn hash_to_proto(hash: HashAlgorithm) -> pb::HashAlgorithm {
                match hash {
                    HashAlgorithm::Sha256 => pb::HashAlgorithm::Sha256,
                    HashAlgorithm::Sha384 => pb::HashAlgorithm::Sha384,
                    HashAlgorithm::Sha512 => pb::HashAlgorithm::Sha512,
                }
            }

            fn public_key(key: Option<pb::PublicKey>) -> Option<PluginPublicKey> {
                let key = key?;
                let key_type = match pb::KeyType::try_from(key.r#type).ok()? {
                    pb::KeyType::EcP256 => Some(KeyType::EcP256),
                    pb::KeyType::EcP384 => Some(KeyType::EcP384),
                    pb::KeyType::Rsa2048 => Some(KeyType::Rsa2048),
                    pb::KeyType::Rsa4096 => Some(KeyType::Rsa4096),
                    pb::KeyType::UnspecifiedKeyType => None,
                };
                Some(PluginPublicKey { key_type, pkix_data: key.pkix_data })
            }

            #[tonic::async_trait]
            impl KeyManagerClient for pb::key_manager_client::KeyManagerClient<Channel> {
                async fn generate(&mut self, id: &str, key_type: KeyType) -> Result<Option<PluginPublicKey>, Status> {
                    let request =
                        pb::GenerateKeyRequest { key_id: id.to_owned(), key_type: key_type_to_proto(key_type).into() };
                    Ok(public_key(self.generate_key(request).await?.into_inner().public_key))
                }

                async fn get(&mut self, id: &str) -> Result<Option<PluginPublicKey>, Status> {
                    let request = pb::GetPublicKeyRequest { key_id: id.to_owned() };
                    Ok(public_key(self.get_public_key(request).await?.into_inner().public_key))
                }

                async fn sign(&mut self, id: &str, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, Status> {
                    use pb::sign_data_request::{PssOptions, SignerOpts as Opts};
                    let signer_opts = match opts {
                        SignerOpts::Hash(hash) => Opts::HashAlgorithm(hash_to_proto(hash).into()),
                        SignerOpts::Pss { hash, salt_length } => Opts::PssOptions(PssOptions {
                            salt_length: i32::try_from(salt_length).unwrap_or(i32::MAX),
                            hash_algorithm: hash_to_proto(hash).into(),
                        }),
                    };
                    let request = pb::SignDataRequest {
                        key_id: id.to_owned(),
                        data: digest.to_vec(),
                        signer_opts: Some(signer_opts),
                    };
                    Ok(self.sign_data(request).await?.into_inner().signature)
                }
            }
        };
    };
}

impl_client!(spire_proto::spire::plugin::server::keymanager::v1);
impl_client!(spire_proto::spire::plugin::agent::keymanager::v1);

/// The server's external KeyManager.
pub type ServerKeyManager = ExternalKeyManager<
    spire_proto::spire::plugin::server::keymanager::v1::key_manager_client::KeyManagerClient<Channel>,
>;
/// The agent's external KeyManager.
pub type AgentKeyManager = ExternalKeyManager<
    spire_proto::spire::plugin::agent::keymanager::v1::key_manager_client::KeyManagerClient<Channel>,
>;

/// A key manager served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalKeyManager<C> {
    name: String,
    client: C,
}

impl ServerKeyManager {
    /// The server facade of the plugin `name` on `channel`.
    pub fn server(name: &str, channel: Channel) -> Self {
        let client =
            spire_proto::spire::plugin::server::keymanager::v1::key_manager_client::KeyManagerClient::new(channel);
        Self { name: name.to_owned(), client }
    }
}

impl AgentKeyManager {
    /// The agent facade of the plugin `name` on `channel`.
    pub fn agent(name: &str, channel: Channel) -> Self {
        let client =
            spire_proto::spire::plugin::agent::keymanager::v1::key_manager_client::KeyManagerClient::new(channel);
        Self { name: name.to_owned(), client }
    }
}

impl<C: KeyManagerClient> ExternalKeyManager<C> {
    fn failure(&self, reason: String) -> KeyManagerError {
        KeyManagerError::Plugin { name: self.name.clone(), reason }
    }

    fn error(&self, status: &Status) -> KeyManagerError {
        self.failure(go_status(&facade_status("keymanager", &self.name, status)))
    }

    /// `public_key` as a key that signs through the plugin.
    fn key(&self, id: &str, public_key: PluginPublicKey) -> Result<SigningKey, KeyManagerError> {
        let key_type = public_key.key_type.ok_or_else(|| {
            self.failure(format!("keymanager({}): plugin returned an unsupported key type for key {id:?}", self.name))
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

#[tonic::async_trait]
impl<C: KeyManagerClient> KeyManager for ExternalKeyManager<C> {
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<SigningKey, KeyManagerError> {
        let public_key =
            self.client.clone().generate(id, key_type).await.map_err(|s| self.error(&s))?.ok_or_else(|| {
                self.failure(format!("keymanager({}): plugin response missing public key", self.name))
            })?;
        let key = self.key(id, public_key)?;
        if key.key_type() != key_type {
            return Err(self.failure(format!(
                "keymanager({}): plugin returned a {} key for a {key_type} key request",
                self.name,
                key.key_type()
            )));
        }
        Ok(key)
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, KeyManagerError> {
        // SPIRE's key managers answer an unknown key with an empty response.
        match self.client.clone().get(id).await.map_err(|s| self.error(&s))? {
            Some(public_key) if !public_key.pkix_data.is_empty() => self.key(id, public_key).map(Some),
            _ => Ok(None),
        }
    }
}

/// Signs digests with one of the plugin's keys (`SignData`).
#[derive(Debug)]
struct PluginSigner<C> {
    name: String,
    key_id: String,
    client: C,
    /// The daemon's runtime, for a signature asked for from a thread outside it.
    handle: tokio::runtime::Handle,
}

impl<C: KeyManagerClient> RemoteSigner for PluginSigner<C> {
    fn sign_digest(&self, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, RemoteSignError> {
        let mut client = self.client.clone();
        let (id, digest) = (self.key_id.clone(), digest.to_vec());
        let answer = block_on(&self.handle, async move { client.sign(&id, opts, &digest).await })
            .map_err(RemoteSignError::new)?;
        answer.map_err(|s| RemoteSignError::new(go_status(&facade_status("keymanager", &self.name, &s))))
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
