//! The three Kubernetes API calls `k8s_psat` makes, behind [`ClusterApi`] so that the attestation
//! flow can be tested without an API server, and their implementation with kube-rs.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use spire_cli::goerror::chain;

/// How long one request to an API server may take. Attestation makes three in a row inside the
/// Agent service's overall deadline; a hung API server should fail one of them with a message naming
/// it rather than use up the whole deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A cluster's API server, as `k8s_psat` uses it. Errors are messages in SPIRE's words
/// (`unable to query pods API: pods "x" not found`), which the attestor wraps.
#[async_trait::async_trait]
pub trait ClusterApi: Send + Sync + std::fmt::Debug {
    /// Creates a TokenReview of `token` for `audiences` (none: the API server's own audience) and
    /// returns its status.
    async fn review_token(&self, token: &str, audiences: &[String]) -> Result<TokenReviewStatus, String>;

    /// Reads pod `name` in `namespace`.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, String>;

    /// Reads node `name`.
    async fn get_node(&self, name: &str) -> Result<Node, String>;
}

/// Why a cluster's client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `kube_config_file` is empty and the server does not run in a pod (or lacks its token).
    #[error("kube_config_file is empty and the in-cluster configuration cannot be loaded: {}", chain(.0))]
    InCluster(#[source] kube::config::InClusterError),
    /// `kube_config_file` cannot be read or used.
    #[error("cannot use kube_config_file {}: {}", .path.display(), chain(.source))]
    KubeConfig {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The configuration was read but no client can be built from it (a bad proxy, say).
    #[error("cannot create a Kubernetes client: {}", chain(.0))]
    Client(#[source] kube::Error),
}

/// A [`ClusterApi`] over a kube-rs client. The client connects on first use and keeps its
/// connections.
///
/// Its configuration is read once, by [`connect`](Self::connect). Of the credentials, kube-rs renews
/// only bearer tokens: a token file (the in-cluster service account token, a kubeconfig `tokenFile`)
/// is read again as it ages, and an exec plugin is run again when its token expires. A client
/// certificate, key or CA in `kube_config_file` (or in files it names) is loaded into the TLS
/// configuration once: if it is rotated, the server keeps using the old one until it restarts.
/// SPIRE reads `kube_config_file` again for each call, so it picks up such a rotation at once.
#[derive(Clone)]
pub struct KubeClusterApi {
    client: Client,
}

impl std::fmt::Debug for KubeClusterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClusterApi").field("default_namespace", &self.client.default_namespace()).finish()
    }
}

impl KubeClusterApi {
    /// A client for the API server `kube_config_file` describes (its current context), or, when
    /// `None`, for the cluster the server runs in. Needs a Tokio runtime: the client spawns its
    /// request buffer.
    pub async fn connect(kube_config_file: Option<&Path>) -> Result<Self, ConnectError> {
        let mut config = match kube_config_file {
            None => Config::incluster().map_err(ConnectError::InCluster)?,
            Some(path) => {
                let kube_config = |source| ConnectError::KubeConfig { path: path.to_owned(), source };
                let file = Kubeconfig::read_from(path).map_err(kube_config)?;
                Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await.map_err(kube_config)?
            }
        };
        config.read_timeout = Some(REQUEST_TIMEOUT);
        Ok(Self::from_client(Client::try_from(config).map_err(ConnectError::Client)?))
    }

    /// Uses `client` as is.
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl ClusterApi for KubeClusterApi {
    async fn review_token(&self, token: &str, audiences: &[String]) -> Result<TokenReviewStatus, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                // Go's `omitempty`: no audiences means the API server's own.
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            ..TokenReview::default()
        };
        let created = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("unable to query token review API: {}", api_error(&e)))?;
        Ok(created.status.unwrap_or_default())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, String> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| format!("unable to query pods API: {}", api_error(&e)))
    }

    async fn get_node(&self, name: &str) -> Result<Node, String> {
        Api::<Node>::all(self.client.clone())
            .get(name)
            .await
            .map_err(|e| format!("unable to query nodes API: {}", api_error(&e)))
    }
}

/// A kube-rs error as client-go words it: the API server's own message for a refused request
/// (`pods "x" not found`), otherwise the error and its causes.
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        // Its text already shows the status, which is also its source.
        kube::Error::Api(_) => e.to_string(),
        other => chain(other),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn api_errors_read_like_client_go() {
        let status = kube::core::Status::failure("pods \"agent-x\" not found", "NotFound").with_code(404);
        assert_eq!(api_error(&kube::Error::Api(status.boxed())), "pods \"agent-x\" not found");
        // Without a message: kube-rs's text, which shows the status once (it is also the source).
        let err = kube::Error::Api(kube::core::Status::failure("", "NotFound").with_code(404).boxed());
        let text = api_error(&err);
        assert_eq!(text, err.to_string());
        assert_eq!(text.matches("NotFound").count(), 2, "{text}"); // reason, then the Debug form's
    }

    #[tokio::test]
    async fn a_missing_kube_config_file_is_named() {
        let err = KubeClusterApi::connect(Some(Path::new("/nonexistent/kubeconfig"))).await.unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot use kube_config_file /nonexistent/kubeconfig: "), "{text}");
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }

    /// A kubeconfig file in `dir` for an API server at `https://127.0.0.1:1`, where nothing listens.
    pub(crate) fn write_kubeconfig(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\n\
             users: [{name: u, user: {token: abc}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\n",
        )
        .unwrap();
        path
    }

    #[tokio::test]
    async fn a_kube_config_file_gives_a_client_without_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_kubeconfig(dir.path());
        let api = KubeClusterApi::connect(Some(&path)).await.unwrap();
        // Nothing listens on port 1: the failure comes with the call, with its cause.
        let err = api.get_node("n").await.unwrap_err();
        assert!(err.starts_with("unable to query nodes API: "), "{err}");
    }
}
