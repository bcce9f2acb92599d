//! Stand-ins for the AWS side of the `aws_iid` attestor: an instance identity document signer
//! playing AWS (an RSA-2048 certificate whose key signs documents as PKCS#7, streamed BER as AWS
//! serves `instance-identity/rsa2048`, and as raw PKCS#1 for `signature`), an IMDSv2 server
//! serving them, and moto (AWS's APIs, from the `moto` peer) to hold the instances.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Plays AWS's document signing: a self-signed RSA-2048 CA certificate and its key.
pub struct IidSigner {
    pair: RsaKeyPair,
    cert_der: Vec<u8>,
    cert_pem: String,
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

impl std::fmt::Debug for IidSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IidSigner").finish_non_exhaustive()
    }
}

impl IidSigner {
    /// A fresh key and certificate named like AWS's.
    pub fn generate() -> Self {
        Self::with_serial(&rand_serial())
    }

    /// A different key under the same issuer name and serial number as `other`: what a forger
    /// copying AWS's certificate's identity, but without its key, would sign with.
    pub fn impostor_of(other: &IidSigner) -> Self {
        let s = Self::with_serial(&other.serial);
        assert_eq!(s.issuer, other.issuer);
        s
    }

    fn with_serial(serial: &[u8]) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("PKCS#8").as_ref().to_vec();
        let key = rcgen::KeyPair::try_from(pkcs8.as_slice()).expect("rcgen reads the key");
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Amazon Web Services LLC (test stand-in)");
        params.distinguished_name = dn;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("self-signed certificate");
        let cert_der = cert.der().to_vec();
        let (issuer, serial) = issuer_and_serial(&cert_der);
        Self { pair, cert_pem: cert.pem(), cert_der, issuer, serial }
    }

    /// The certificate, PEM (for `test_only_ca_certificates_path`).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// `instance-identity/rsa2048` for `document`: base64 (64-character lines, no PEM armour) of a
    /// PKCS#7 SignedData holding the document, with signed attributes, in OpenSSL's streamed BER.
    pub fn sign_rsa2048(&self, document: &str) -> String {
        let alg = |oid: &[u8]| tlv(0x30, &[tlv(0x06, oid), tlv(0x05, &[])].concat());
        let digest = digest::digest(&digest::SHA256, document.as_bytes());
        let mut attributes = [
            attribute(OID_CONTENT_TYPE, &tlv(0x06, OID_DATA)),
            attribute(OID_SIGNING_TIME, &tlv(0x17, b"260101000000Z")),
            attribute(OID_MESSAGE_DIGEST, &tlv(0x04, digest.as_ref())),
        ];
        attributes.sort();
        let signed = tlv(0x31, &attributes.concat());
        let signature = self.sign(&signed);
        let signer = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                tlv(0x30, &[self.issuer.clone(), tlv(0x02, &self.serial)].concat()),
                alg(OID_SHA256),
                tlv(0xa0, &attributes.concat()),
                alg(OID_RSA),
                tlv(0x04, &signature),
            ]
            .concat(),
        );
        let content = indefinite(0x24, &[tlv(0x04, document.as_bytes())]);
        let encapsulated = indefinite(0x30, &[tlv(0x06, OID_DATA), indefinite(0xa0, &[content])]);
        let signed_data =
            indefinite(0x30, &[tlv(0x02, &[1]), tlv(0x31, &alg(OID_SHA256)), encapsulated, tlv(0x31, &signer)]);
        let info = indefinite(0x30, &[tlv(0x06, OID_SIGNED_DATA), indefinite(0xa0, &[signed_data])]);
        let b64 = STANDARD.encode(info);
        b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect::<Vec<_>>().join("\n")
    }

    /// `instance-identity/signature` for `document`: base64 PKCS#1 v1.5 SHA-256.
    pub fn sign_rsa1024(&self, document: &str) -> String {
        STANDARD.encode(self.sign(document.as_bytes()))
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig).expect("RSA signature");
        sig
    }
}

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const OID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const OID_SIGNING_TIME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn rand_serial() -> Vec<u8> {
    let mut serial = [0u8; 9];
    aws_lc_rs::rand::fill(&mut serial).expect("random");
    serial[0] = 0x01 + (serial[0] & 0x3f);
    serial.to_vec()
}

fn attribute(oid: &[u8], value: &[u8]) -> Vec<u8> {
    tlv(0x30, &[tlv(0x06, oid), tlv(0x31, value)].concat())
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn indefinite(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out.extend_from_slice(&[0, 0]);
    out
}

/// One DER element at the start of `der`: (tag, content, total length).
fn read_tlv(der: &[u8]) -> (u8, &[u8], usize) {
    let tag = der[0];
    let (len, header) = if der[1] < 0x80 {
        (usize::from(der[1]), 2)
    } else {
        let n = usize::from(der[1] & 0x7f);
        (der[2..2 + n].iter().fold(0, |a, b| (a << 8) | usize::from(*b)), 2 + n)
    };
    (tag, &der[header..header + len], header + len)
}

/// The issuer Name (DER) and serial (INTEGER content) of a certificate.
fn issuer_and_serial(cert: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, cert_body, _) = read_tlv(cert);
    let (_, tbs, _) = read_tlv(cert_body);
    let mut at = 0;
    let mut next = || {
        let (tag, content, used) = read_tlv(&tbs[at..]);
        let whole = tbs[at..at + used].to_vec();
        at += used;
        (tag, content.to_vec(), whole)
    };
    let (tag, _, _) = next();
    assert_eq!(tag, 0xa0, "a v3 certificate");
    let (_, serial, _) = next();
    next();
    let (_, _, issuer) = next();
    (issuer, serial)
}

/// An instance identity document as IMDS serves it.
pub fn document(account_id: &str, region: &str, instance_id: &str, image_id: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "accountId": account_id,
        "architecture": "x86_64",
        "availabilityZone": format!("{region}a"),
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": image_id,
        "instanceId": instance_id,
        "instanceType": "t2.micro",
        "kernelId": null,
        "pendingTime": "2026-01-01T00:00:00Z",
        "privateIp": "10.0.0.10",
        "ramdiskId": null,
        "region": region,
        "version": "2017-09-30"
    }))
    .expect("JSON")
}

/// What the stand-in IMDS serves under `/latest/dynamic/instance-identity/`.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `document`.
    pub document: String,
    /// `signature`.
    pub signature: String,
    /// `rsa2048`.
    pub rsa2048: String,
}

impl Identity {
    /// `document` with both of `signer`'s signatures.
    pub fn signed(signer: &IidSigner, document: &str) -> Self {
        Self {
            document: document.to_owned(),
            signature: signer.sign_rsa1024(document),
            rsa2048: signer.sign_rsa2048(document),
        }
    }
}

/// An IMDSv2 stand-in on 127.0.0.1: `PUT /latest/api/token` (needs the TTL header) hands out a
/// session token, and the instance identity paths answer only with it, as IMDS does with
/// `HttpTokens=required`.
#[derive(Debug, Clone)]
pub struct Imds {
    addr: SocketAddr,
    identity: Arc<Mutex<Identity>>,
    requests: Arc<Mutex<Vec<String>>>,
}

const TOKEN: &str = "stand-in-imds-session-token";

impl Imds {
    /// Starts serving `identity` (on the current Tokio runtime).
    pub async fn start(identity: Identity) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the IMDS stand-in");
        let imds = Self {
            addr: listener.local_addr().unwrap(),
            identity: Arc::new(Mutex::new(identity)),
            requests: Arc::default(),
        };
        let served = imds.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let imds = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let imds = imds.clone();
                        async move { Ok::<_, std::convert::Infallible>(imds.handle(&req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        imds
    }

    /// `http://127.0.0.1:<port>`: the `ec2_metadata_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves another identity from now on.
    pub fn set_identity(&self, identity: Identity) {
        *self.identity.lock().unwrap() = identity;
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn handle(&self, req: &hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        self.requests.lock().unwrap().push(format!("{} {path}", req.method()));
        let reply = |status: u16, body: String| {
            hyper::Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap()
        };
        if req.method() == hyper::Method::PUT && path == "/latest/api/token" {
            if !req.headers().contains_key("x-aws-ec2-metadata-token-ttl-seconds") {
                return reply(400, "missing TTL".into());
            }
            return hyper::Response::builder()
                .status(200)
                .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
                .body(Full::new(Bytes::from(TOKEN)))
                .unwrap();
        }
        if req.headers().get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
            return reply(401, String::new());
        }
        let identity = self.identity.lock().unwrap().clone();
        match path.strip_prefix("/latest/dynamic/instance-identity/") {
            Some("document") => reply(200, identity.document),
            Some("signature") => reply(200, identity.signature),
            Some("rsa2048") => reply(200, identity.rsa2048),
            _ => reply(404, String::new()),
        }
    }
}

/// moto in server mode (the `moto` peer), on a free port of 127.0.0.1; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
    aws_setup: std::path::PathBuf,
}

/// The access key moto is given (any works; moto maps it to its default account 123456789012).
pub const MOTO_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// The secret key moto is given.
pub const MOTO_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// moto's default account.
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

/// An instance moto launched.
#[derive(Debug, Clone)]
pub struct LaunchedInstance {
    /// `i-...`.
    pub instance_id: String,
    /// `ami-...`.
    pub image_id: String,
    /// The security group's ID.
    pub security_group_id: String,
    /// The security group's name.
    pub security_group_name: String,
    /// The role ARN of the instance profile.
    pub role_arn: String,
}

impl Moto {
    /// Starts moto, or `None` when the peer is missing (the test skips, unless peers are required).
    pub fn start() -> Option<Self> {
        let [server, aws_setup] = crate::peers::require_all(["moto-server", "moto-aws-setup"])?;
        Some(Self::start_with(&server, aws_setup))
    }

    fn start_with(server: &Path, aws_setup: std::path::PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port, aws_setup }
    }

    /// `http://127.0.0.1:<port>`: for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment an AWS SDK client needs to talk to this moto.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_ACCESS_KEY.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Launches an instance in `region` with `tags`, a new security group `sg_name`, and an
    /// instance profile `profile` holding a role of the same name (boto3 against this moto).
    pub fn launch_instance(
        &self,
        region: &str,
        tags: &[(&str, &str)],
        sg_name: &str,
        profile: &str,
    ) -> LaunchedInstance {
        let tags = serde_json::to_string(&tags.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>()).unwrap();
        let out = Command::new(&self.aws_setup)
            .args(["launch", "--region", region, "--tags", &tags, "--sg", sg_name, "--profile", profile])
            .envs(self.env())
            .output()
            .expect("run moto-aws-setup");
        assert!(out.status.success(), "moto-aws-setup launch: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("moto-aws-setup prints JSON");
        let field =
            |name: &str| v[name].as_str().unwrap_or_else(|| panic!("moto-aws-setup: no {name} in {v}")).to_owned();
        LaunchedInstance {
            instance_id: field("instance_id"),
            image_id: field("image_id"),
            security_group_id: field("security_group_id"),
            security_group_name: field("security_group_name"),
            role_arn: field("role_arn"),
        }
    }

    /// Stops an instance (it is then neither pending nor running).
    pub fn stop_instance(&self, region: &str, instance_id: &str) {
        let out = Command::new(&self.aws_setup)
            .args(["stop", "--region", region, "--instance", instance_id])
            .envs(self.env())
            .output()
            .expect("run moto-aws-setup");
        assert!(out.status.success(), "moto-aws-setup stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impostors_share_the_identity_not_the_key() {
        let aws = IidSigner::generate();
        let forger = IidSigner::impostor_of(&aws);
        assert_eq!(aws.serial, forger.serial);
        assert_ne!(aws.certificate_der(), forger.certificate_der());
        let doc = document("1", "us-east-1", "i-1", "ami-1");
        assert_ne!(aws.sign_rsa2048(&doc), forger.sign_rsa2048(&doc));
    }
}
