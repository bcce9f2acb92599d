//! Wire compatibility of the generated Workload API code with an independent
//! client (the `spiffe` crate): a tiny server built from
//! `spire_proto::workload` is served on a Unix socket and queried by
//! `spiffe::WorkloadApiClient`. If method paths or field numbers were wrong,
//! the client would fail to call or to parse the responses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse, WitsvidRequest, WitsvidResponse,
    X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest, X509svidResponse,
};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Code, Request, Response, Status};

const TRUST_DOMAIN_ID: &str = "spiffe://example.org";
const WORKLOAD_ID: &str = "spiffe://example.org/workload";
const JWT_KEY_ID: &str = "jwt-key-1";

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn once<T: Send + 'static>(item: T) -> BoxStream<T> {
    Box::pin(tokio_stream::once(Ok(item)))
}

/// Static identity material served by the test server.
#[derive(Clone)]
struct Fixture {
    ca_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key_pkcs8: Vec<u8>,
    jwks: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.subject_alt_names = vec![SanType::URI(TRUST_DOMAIN_ID.try_into().unwrap())];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::default();
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        leaf_params.subject_alt_names = vec![SanType::URI(WORKLOAD_ID.try_into().unwrap())];
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        // An EC P-256 public key as a JWK: the raw key is 0x04 || X || Y.
        let jwt_key = KeyPair::generate().unwrap();
        let point = jwt_key.public_key_raw();
        assert_eq!(point.len(), 65);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{JWT_KEY_ID}","x":"{}","y":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65]),
        );

        Self {
            ca_der: ca_cert.der().to_vec(),
            leaf_der: leaf_cert.der().to_vec(),
            leaf_key_pkcs8: leaf_key.serialize_der(),
            jwks: jwks.into_bytes(),
        }
    }
}

struct TestWorkloadApi(Fixture);

/// The SPIFFE Workload Endpoint rule: every call carries exactly one
/// `workload.spiffe.io: true` header, otherwise InvalidArgument.
fn check_security_header<T>(request: &Request<T>) -> Result<(), Status> {
    let values: Vec<_> = request.metadata().get_all("workload.spiffe.io").iter().collect();
    if values.len() == 1 && values[0] == "true" {
        Ok(())
    } else {
        Err(Status::invalid_argument("security header missing from request"))
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for TestWorkloadApi {
    type FetchX509SVIDStream = BoxStream<X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<JwtBundlesResponse>;
    type FetchWITSVIDStream = BoxStream<WitsvidResponse>;
    type FetchWITBundlesStream = BoxStream<WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        check_security_header(&request)?;
        let svid = X509svid {
            spiffe_id: WORKLOAD_ID.to_owned(),
            x509_svid: self.0.leaf_der.clone(),
            x509_svid_key: self.0.leaf_key_pkcs8.clone(),
            bundle: self.0.ca_der.clone(),
            hint: "internal".to_owned(),
        };
        Ok(Response::new(once(X509svidResponse {
            svids: vec![svid],
            crl: Vec::new(),
            federated_bundles: HashMap::new(),
        })))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        check_security_header(&request)?;
        Ok(Response::new(once(X509BundlesResponse {
            crl: Vec::new(),
            bundles: HashMap::from([(TRUST_DOMAIN_ID.to_owned(), self.0.ca_der.clone())]),
        })))
    }

    async fn fetch_jwtsvid(&self, request: Request<JwtsvidRequest>) -> Result<Response<JwtsvidResponse>, Status> {
        check_security_header(&request)?;
        Err(Status::permission_denied("no identity issued"))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        check_security_header(&request)?;
        Ok(Response::new(once(JwtBundlesResponse {
            bundles: HashMap::from([(TRUST_DOMAIN_ID.to_owned(), self.0.jwks.clone())]),
        })))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        check_security_header(&request)?;
        Err(Status::invalid_argument("not implemented by the test server"))
    }

    async fn fetch_witsvid(
        &self,
        request: Request<WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        check_security_header(&request)?;
        Err(Status::unimplemented("WIT-SVID profile not supported"))
    }

    async fn fetch_wit_bundles(
        &self,
        request: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        check_security_header(&request)?;
        Err(Status::unimplemented("WIT-SVID profile not supported"))
    }
}

/// Serves the test Workload API on a fresh Unix socket; returns its path
/// (the temp dir must outlive the test).
async fn serve(fixture: Fixture, dir: &Path) -> PathBuf {
    let path = dir.join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(TestWorkloadApi(fixture)))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
    path
}

/// A raw tonic channel over the Unix socket, for calls made with the
/// generated client.
async fn uds_channel(path: PathBuf) -> Channel {
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(hyper_util::rt::TokioIo::new) }
        }))
        .await
        .unwrap()
}

#[tokio::test]
async fn spiffe_crate_client_talks_to_generated_server() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = serve(fixture.clone(), dir.path()).await;

    let client = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", socket.display())).await.unwrap();
    let trust_domain = spiffe::TrustDomain::new("example.org").unwrap();

    // X509-SVID: the client parses the chain and key and checks the SVID rules.
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(svid.spiffe_id().to_string(), WORKLOAD_ID);
    assert_eq!(svid.leaf().as_ref(), fixture.leaf_der.as_slice());
    assert_eq!(svid.private_key().as_ref(), fixture.leaf_key_pkcs8.as_slice());
    assert_eq!(svid.hint(), Some("internal"));

    // X.509 bundles, keyed by trust domain ID.
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let bundle = bundles.get(&trust_domain).expect("example.org X.509 bundle");
    assert_eq!(bundle.authorities().len(), 1);
    assert_eq!(bundle.authorities()[0].as_ref(), fixture.ca_der.as_slice());

    // JWT bundles (JWKS JSON).
    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    let jwt_bundle = jwt_bundles.get(&trust_domain).expect("example.org JWT bundle");
    assert!(jwt_bundle.find_jwt_authority(JWT_KEY_ID).is_some());
}

#[tokio::test]
async fn generated_client_without_security_header_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let socket = serve(Fixture::new(), dir.path()).await;
    let mut client = SpiffeWorkloadApiClient::new(uds_channel(socket).await);

    let err = client.fetch_x509svid(X509svidRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let err = client.fetch_jwt_bundles(JwtBundlesRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // With the header the same generated client gets through.
    let mut request = Request::new(WitsvidRequest::default());
    request.metadata_mut().insert("workload.spiffe.io", "true".parse().unwrap());
    let err = client.fetch_witsvid(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    let mut request = Request::new(X509svidRequest {});
    request.metadata_mut().insert("workload.spiffe.io", "true".parse().unwrap());
    let mut stream = client.fetch_x509svid(request).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().expect("one response");
    assert_eq!(response.svids[0].spiffe_id, WORKLOAD_ID);
}
