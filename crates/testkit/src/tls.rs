//! TLS clients for tests of the server's TCP endpoint.

use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use spire_tls::{ServerCertCheck, provider, server_verifier};
use tonic::transport::{Channel, Endpoint, Uri};

/// Accepts any server certificate but records the chain, so the test can validate it itself.
#[derive(Debug)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl ServerCertCheck for Recorder {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: UnixTime,
    ) -> Result<(), rustls::Error> {
        let mut chain = vec![end_entity.as_ref().to_vec()];
        chain.extend(intermediates.iter().map(|c| c.as_ref().to_vec()));
        *self.0.lock().expect("lock") = chain;
        Ok(())
    }
}

/// A gRPC channel to `127.0.0.1:port` over TLS without a client certificate, recording the server's
/// chain into `presented`.
pub async fn tcp_channel_recording_server_chain(port: u16, presented: Arc<Mutex<Vec<Vec<u8>>>>) -> Channel {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(server_verifier(Recorder(presented)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::try_from(format!("http://127.0.0.1:{port}"))
        .expect("URI")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = ServerName::try_from("localhost").expect("name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("TLS connection")
}
