//! The registrar's one dependency on SPIRE: the server's Entry API, over the admin Unix socket or
//! over mTLS with an X509-SVID from the local agent (SPIRE's `server_address` + `agent_socket_path`).
//!
//! The modes speak in whole entries; this module turns batch results and pagination into plain
//! results, so that "already exists" and "already gone" are answers, not errors.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use spire_cli::goerror::chain;
use spire_identity::x509::split_der_chain;
use spire_identity::{Bundle, BundleSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchDeleteEntryRequest, BatchUpdateEntryRequest, GetEntryRequest, ListEntriesRequest,
    list_entries_request,
};
use spire_proto::spire::api::types::{Entry, Selector, SelectorMatch, Spiffeid, selector_match};
use spire_proto::workload::X509svidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_tls::{ServerCertCheck, provider, server_verifier, verify_peer_svid};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::config::ServerAddress;

/// A failed call to the SPIRE server.
#[derive(Debug, thiserror::Error)]
pub enum SpireError {
    /// The server could not be reached.
    #[error("cannot connect to the SPIRE server at {address}: {reason}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        reason: String,
    },
    /// The call failed as a whole.
    #[error("SPIRE server call failed: {0}")]
    Call(#[from] Status),
    /// One entry of a batch was refused.
    #[error("SPIRE server refused the entry: {code:?}: {message}")]
    Refused {
        /// The gRPC code of the result.
        code: Code,
        /// The server's message.
        message: String,
    },
}

/// The Entry API of one server.
#[derive(Debug, Clone)]
pub struct Entries {
    client: EntryClient<Channel>,
}

/// The outcome of [`Entries::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The new entry or, if an identical one existed, that one.
    pub entry: Entry,
    /// Whether it existed already.
    pub existed: bool,
}

/// `spiffe://<td><path>` as the API's type.
pub fn api_id(id: &SpiffeId) -> Spiffeid {
    Spiffeid { trust_domain: id.trust_domain().as_str().to_owned(), path: id.path().to_owned() }
}

/// The API's SPIFFE ID as a URI string.
pub fn id_string(id: &Option<Spiffeid>) -> String {
    match id {
        Some(id) => format!("spiffe://{}{}", id.trust_domain, id.path),
        None => String::new(),
    }
}

/// Whether `a` and `b` register the same thing in every field a registrar sets: SPIFFE ID, parent,
/// selectors (as a set, with no repeats on either side), DNS names (in order: the first becomes the
/// certificate's common name), federated trust domains (as a set, `spiffe://` or not, as the server
/// stores them) and `downstream`. Both modes decide "update in place" with it, so that they agree.
pub fn same_registration(a: &Entry, b: &Entry) -> bool {
    let selectors = |e: &Entry| -> std::collections::BTreeSet<(String, String)> {
        e.selectors.iter().map(|s| (s.r#type.clone(), s.value.clone())).collect()
    };
    let federated = |e: &Entry| -> std::collections::BTreeSet<String> {
        crate::workload_id::normalize_trust_domains(e.federates_with.iter().map(String::as_str)).into_iter().collect()
    };
    id_string(&a.spiffe_id) == id_string(&b.spiffe_id)
        && id_string(&a.parent_id) == id_string(&b.parent_id)
        && a.selectors.len() == b.selectors.len()
        && selectors(a) == selectors(b)
        && a.dns_names == b.dns_names
        && federated(a) == federated(b)
        && a.downstream == b.downstream
}

fn check(status: Option<spire_proto::spire::api::types::Status>) -> Result<(), SpireError> {
    match status {
        Some(s) if s.code == 0 => Ok(()),
        Some(s) => Err(SpireError::Refused { code: Code::from_i32(s.code), message: s.message }),
        None => Err(SpireError::Refused { code: Code::Internal, message: "result without a status".into() }),
    }
}

impl Entries {
    /// Connects to the server at `address`.
    pub async fn connect(address: &ServerAddress) -> Result<Self, SpireError> {
        let channel = match address {
            ServerAddress::Unix(path) => unix_channel(path).await?,
            ServerAddress::Tcp { address, agent_socket } => mtls_channel(address, agent_socket).await?,
        };
        Ok(Self { client: EntryClient::new(channel) })
    }

    /// Creates `entry`; an identical entry already there is returned as such (SPIRE answers
    /// AlreadyExists with the existing entry).
    pub async fn create(&self, entry: Entry) -> Result<Created, SpireError> {
        let mut client = self.client.clone();
        let response =
            client.batch_create_entry(BatchCreateEntryRequest { entries: vec![entry], output_mask: None }).await?;
        let result = response.into_inner().results.into_iter().next().ok_or(SpireError::Refused {
            code: Code::Internal,
            message: "batch create response result empty".into(),
        })?;
        let existed = result.status.as_ref().is_some_and(|s| s.code == Code::AlreadyExists as i32);
        if !existed {
            check(result.status)?;
        }
        let entry = result.entry.ok_or(SpireError::Refused {
            code: Code::Internal,
            message: "batch create result without its entry".into(),
        })?;
        Ok(Created { entry, existed })
    }

    /// Replaces the entry with `entry.id` by `entry` (every field).
    pub async fn update(&self, entry: Entry) -> Result<Entry, SpireError> {
        let mut client = self.client.clone();
        let response = client
            .batch_update_entry(BatchUpdateEntryRequest { entries: vec![entry], input_mask: None, output_mask: None })
            .await?;
        let result = response.into_inner().results.into_iter().next().ok_or(SpireError::Refused {
            code: Code::Internal,
            message: "batch update response result empty".into(),
        })?;
        check(result.status)?;
        result.entry.ok_or(SpireError::Refused { code: Code::Internal, message: "update result without entry".into() })
    }

    /// Deletes the entries `ids`; those already gone count as deleted.
    pub async fn delete(&self, ids: Vec<String>) -> Result<(), SpireError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut client = self.client.clone();
        let response = client.batch_delete_entry(BatchDeleteEntryRequest { ids }).await?;
        for result in response.into_inner().results {
            if result.status.as_ref().is_some_and(|s| s.code == Code::NotFound as i32) {
                continue;
            }
            check(result.status)?;
        }
        Ok(())
    }

    /// The entry `id`, or `None` if it does not exist.
    pub async fn get(&self, id: &str) -> Result<Option<Entry>, SpireError> {
        let mut client = self.client.clone();
        match client.get_entry(GetEntryRequest { id: id.to_owned(), output_mask: None }).await {
            Ok(entry) => Ok(Some(entry.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    /// Every entry whose parent is `parent`.
    pub async fn list_by_parent(&self, parent: &SpiffeId) -> Result<Vec<Entry>, SpireError> {
        self.list(list_entries_request::Filter { by_parent_id: Some(api_id(parent)), ..Default::default() }).await
    }

    /// Every entry with exactly `selectors`.
    pub async fn list_by_selectors(&self, selectors: Vec<Selector>) -> Result<Vec<Entry>, SpireError> {
        let by_selectors = SelectorMatch { selectors, r#match: selector_match::MatchBehavior::MatchExact as i32 };
        self.list(list_entries_request::Filter { by_selectors: Some(by_selectors), ..Default::default() }).await
    }

    /// Every entry matching `filter`, all pages.
    pub async fn list(&self, filter: list_entries_request::Filter) -> Result<Vec<Entry>, SpireError> {
        let mut client = self.client.clone();
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_entries(ListEntriesRequest {
                    filter: Some(filter.clone()),
                    output_mask: None,
                    page_size: 1000,
                    page_token: page_token.clone(),
                })
                .await?
                .into_inner();
            all.extend(page.entries);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }
}

/// Bounds on every call and connection to the server: a call that gets no answer in 30 s fails (and
/// is retried by the controllers) instead of holding a worker forever, and HTTP/2 pings find a
/// connection that died without a FIN.
fn patient(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// A channel to the server's admin socket; reconnections dial the path again.
async fn unix_channel(path: &str) -> Result<Channel, SpireError> {
    let path = path.to_owned();
    let address = format!("unix://{path}");
    patient(Endpoint::from_static("http://localhost"))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| SpireError::Connect { address, reason: chain(&e) })
}

/// A channel to `address` over mTLS: each connection fetches the registrar's current X509-SVID from
/// the agent (so rotation needs no watcher) and accepts any server SVID of the registrar's trust
/// domain chaining to its bundle, as go-spiffe's `AuthorizeAny` does for SPIRE's registrar.
async fn mtls_channel(address: &str, agent_socket: &str) -> Result<Channel, SpireError> {
    wait_for_svid(agent_socket).await;
    let agent_socket = agent_socket.to_owned();
    let target = address.to_owned();
    let endpoint = Endpoint::try_from(format!("http://{address}"))
        .map_err(|e| SpireError::Connect { address: target.clone(), reason: e.to_string() })?;
    patient(endpoint)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (agent_socket, target) = (agent_socket.clone(), target.clone());
            async move {
                let config = svid_tls_config(&agent_socket).await.map_err(std::io::Error::other)?;
                let tcp = tokio::net::TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("spire-server").expect("static name");
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| SpireError::Connect { address: address.to_owned(), reason: chain(&e) })
}

/// Waits until the agent gives the registrar an X509-SVID, as go-spiffe's X509Source does for
/// SPIRE's registrar: at a cluster's start the registrar's entry often reaches the agent after the
/// registrar itself starts.
async fn wait_for_svid(agent_socket: &str) {
    let mut delay = Duration::from_millis(200);
    loop {
        match svid_tls_config(agent_socket).await {
            Ok(_) => return,
            Err(e) => tracing::warn!(agent_socket, error = %e, "waiting for an X509-SVID from the agent"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// TLS with the default X509-SVID the agent gives us, trusting its bundle.
async fn svid_tls_config(agent_socket: &str) -> Result<rustls::ClientConfig, String> {
    let path = agent_socket.to_owned();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| format!("cannot reach the agent at {agent_socket}: {}", chain(&e)))?;
    let mut request = tonic::Request::new(X509svidRequest {});
    request.metadata_mut().insert("workload.spiffe.io", "true".parse().expect("static header"));
    let mut stream = SpiffeWorkloadApiClient::new(channel)
        .fetch_x509svid(request)
        .await
        .map_err(|e| format!("agent refused an X509-SVID: {}", e.message()))?
        .into_inner();
    let response = stream
        .message()
        .await
        .map_err(|e| format!("agent refused an X509-SVID: {}", e.message()))?
        .ok_or("the agent closed the X509-SVID stream")?;
    let svid = response.svids.into_iter().next().ok_or("the agent gave no X509-SVID")?;
    let id = SpiffeId::parse(&svid.spiffe_id).map_err(|e| format!("agent SVID ID: {e}"))?;
    let mut bundle = Bundle::new(TrustDomain::parse(id.trust_domain().as_str()).map_err(|e| e.to_string())?);
    for der in split_der_chain(&svid.bundle).map_err(|e| format!("agent bundle: {e}"))? {
        bundle.add_x509_authority(der).map_err(|e| format!("agent bundle: {e}"))?;
    }
    let mut bundles = BundleSet::new();
    bundles.insert(bundle);
    let chain = split_der_chain(&svid.x509_svid).map_err(|e| format!("agent SVID: {e}"))?;
    let certs = chain.into_iter().map(CertificateDer::from).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.x509_svid_key));
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier(AnySvid { bundles }))
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts any X509-SVID chaining to the bundle.
#[derive(Debug)]
struct AnySvid {
    bundles: BundleSet,
}

impl ServerCertCheck for AnySvid {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        verify_peer_svid(end_entity, intermediates, &self.bundles, now)
            .map(|_| ())
            .map_err(|e| rustls::Error::General(format!("server certificate rejected: {e}")))
    }
}
