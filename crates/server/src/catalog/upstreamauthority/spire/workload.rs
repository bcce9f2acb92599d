//! The server's own X509-SVID, from the Workload API of the upstream trust domain's agent on this
//! node (go-spiffe's `X509Source`): a stream kept open and re-opened, so that the SVID presented to
//! the upstream server is always the agent's latest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use spire_identity::PrivateKey;
use spire_identity::x509::split_der_chain;
use spire_proto::workload::X509svidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::sync::watch;
use tonic::transport::{Endpoint, Uri};

/// The default X509-SVID and the bundle of its trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WorkloadSvid {
    /// `spiffe://...` of the SVID.
    pub(super) spiffe_id: String,
    /// Leaf first.
    pub(super) chain: Vec<Vec<u8>>,
    /// The SVID's key.
    pub(super) key: PrivateKey,
    /// The X.509 roots of the SVID's trust domain, DER.
    pub(super) bundle: Vec<Vec<u8>>,
}

/// What the source knows: the latest SVID, or why there is none yet.
#[derive(Debug, Clone, Default)]
struct State {
    svid: Option<Arc<WorkloadSvid>>,
    error: Option<String>,
}

/// The Workload API stream, followed in a background task that ends when the source is dropped.
#[derive(Debug)]
pub(super) struct X509Source {
    socket: PathBuf,
    state: watch::Receiver<State>,
    task: tokio::task::AbortHandle,
}

impl Drop for X509Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long to wait between attempts when the agent is unreachable or has no SVID for us.
const RETRY: Duration = Duration::from_secs(1);

impl X509Source {
    /// Starts following the Workload API at `socket`.
    pub(super) fn start(socket: PathBuf) -> Self {
        let (tx, state) = watch::channel(State::default());
        let task = tokio::spawn(follow(socket.clone(), tx)).abort_handle();
        Self { socket, state, task }
    }

    /// The current SVID, waiting up to `timeout` for the first; the error says what the agent said.
    pub(super) async fn current(&self, timeout: Duration) -> Result<Arc<WorkloadSvid>, String> {
        let mut state = self.state.clone();
        let waited = tokio::time::timeout(timeout, state.wait_for(|s| s.svid.is_some()))
            .await
            .map(|r| r.map(|s| s.svid.clone()));
        if let Ok(Ok(Some(svid))) = waited {
            return Ok(svid);
        }
        let why = state.borrow().error.clone().unwrap_or_else(|| "no answer".into());
        Err(format!(
            "unable to create X509Source: no X509-SVID from the Workload API at {} within {timeout:?}: {why}",
            self.socket.display()
        ))
    }
}

async fn follow(socket: PathBuf, tx: watch::Sender<State>) {
    loop {
        let error = match stream_once(&socket, &tx).await {
            Ok(()) => "the Workload API closed the X509-SVID stream".to_owned(),
            Err(e) => e,
        };
        tracing::debug!(socket = %socket.display(), error = %error, "Workload API stream ended; retrying");
        tx.send_modify(|s| s.error = Some(error));
        tokio::time::sleep(RETRY).await;
    }
}

/// Streams X509-SVID updates into `tx` until the stream ends.
async fn stream_once(socket: &Path, tx: &watch::Sender<State>) -> Result<(), String> {
    let path = socket.to_owned();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| format!("cannot connect to the Workload API: {}", causes(&e)))?;
    let mut request = tonic::Request::new(X509svidRequest {});
    request.metadata_mut().insert("workload.spiffe.io", "true".parse().expect("static header"));
    let mut stream = SpiffeWorkloadApiClient::new(channel)
        .fetch_x509svid(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    loop {
        let Some(response) = stream.message().await.map_err(|s| format!("{:?}: {}", s.code(), s.message()))? else {
            return Ok(());
        };
        let svid = response.svids.into_iter().next().ok_or("the Workload API sent no X509-SVID")?;
        let chain = split_der_chain(&svid.x509_svid).map_err(|e| format!("X509-SVID: {e}"))?;
        let bundle = split_der_chain(&svid.bundle).map_err(|e| format!("X509-SVID bundle: {e}"))?;
        let key = PrivateKey::from_pkcs8_der(&svid.x509_svid_key).map_err(|e| format!("X509-SVID key: {e}"))?;
        let svid = WorkloadSvid { spiffe_id: svid.spiffe_id, chain, key, bundle };
        tx.send_modify(|s| {
            s.svid = Some(Arc::new(svid));
            s.error = None;
        });
    }
}

/// An error and its causes, "a: b: c" (tonic's transport error alone says "transport error").
pub(super) fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        cause = e.source();
    }
    text
}
