//! `k8s-workload-registrar generate-config`: the key material and Kubernetes YAML that wire webhook
//! mode into a cluster, as SPIRE's `generate-config.go` prints them: a CA, the registrar's serving
//! certificate for `<service>.<namespace>.svc`, a client certificate for the API server, and the
//! ConfigMap, Secret, kubeconfig and ValidatingWebhookConfiguration that use them; plus the
//! AdmissionConfiguration that points the API server at that kubeconfig (the document's
//! `--admission-control-config-file`), which SPIRE's tool left to the operator.
//!
//! Flags as SPIRE's: `-namespace`, `-service`, `-ca-key-alg`, `-server-key-alg`, `-client-key-alg`,
//! `-ttl`; and `-kubeconfig-path`, where the API server will find the kubeconfig.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use spire_cli::flags::{FlagError, FlagSet};
use spire_cli::gotime::GoDuration;
use spire_identity::{KeyType, PrivateKey};

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A bad command line (Go's message and usage).
    #[error("{0}")]
    Usage(String),
    /// `-h`.
    #[error("{0}")]
    Help(String),
    /// A key algorithm we cannot generate.
    #[error("unsupported key algorithm {0:?}: use ec-p256, ec-p384, rsa-2048 or rsa-4096")]
    KeyAlgorithm(String),
    /// Key or certificate generation failed.
    #[error("{what} failed: {reason}")]
    Crypto {
        /// The step.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Writing the output failed.
    #[error("writing to stdout: {0}")]
    Write(#[from] std::io::Error),
}

/// RFC 5280's "no well-defined expiration date", for `-ttl 0`.
const NEVER_EXPIRES: &str = "9999-12-31T23:59:59Z";

/// Runs the command with `args` (after `generate-config`), writing the YAML to `out`.
pub fn run(args: &[String], out: &mut dyn std::io::Write) -> Result<(), GenerateError> {
    let mut flags = FlagSet::new("generate-config");
    flags
        .string("namespace", "spire", "Kubernetes namespace to put objects under")
        .string("service", "k8s-workload-registrar", "K8S service for the registrar")
        .string("ca-key-alg", "ec-p256", "key algorithm to use for the CA key")
        .string("server-key-alg", "ec-p256", "key algorithm to use for the registrar server key")
        .string("client-key-alg", "ec-p256", "key algorithm to use for the registrar client key")
        .duration("ttl", GoDuration::from_secs(365 * 24 * 3600), "time to live for certificates (0 for never)")
        .string(
            "kubeconfig-path",
            "/etc/kubernetes/k8s-workload-registrar-kubeconfig.yaml",
            "where the API server reads the kubeconfig with its client certificate (for the AdmissionConfiguration)",
        );
    let parsed = match flags.parse(args) {
        Ok(parsed) => parsed,
        Err(FlagError::Help) => {
            return Err(GenerateError::Help(format!("Usage of generate-config:\n{}", flags.usage())));
        }
        Err(FlagError::Invalid(m)) => {
            return Err(GenerateError::Usage(format!("{m}\nUsage of generate-config:\n{}", flags.usage())));
        }
    };
    let request = Request {
        namespace: parsed.string("namespace"),
        service: parsed.string("service"),
        ca_key: key_type(&parsed.string("ca-key-alg"))?,
        server_key: key_type(&parsed.string("server-key-alg"))?,
        client_key: key_type(&parsed.string("client-key-alg"))?,
        ttl: Duration::from_nanos(parsed.duration("ttl").0.max(0) as u64),
        kubeconfig_path: parsed.string("kubeconfig-path"),
    };
    out.write_all(generate(&request)?.as_bytes())?;
    Ok(())
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    /// `-namespace`.
    pub namespace: String,
    /// `-service`.
    pub service: String,
    /// `-ca-key-alg`.
    pub ca_key: KeyType,
    /// `-server-key-alg`.
    pub server_key: KeyType,
    /// `-client-key-alg`.
    pub client_key: KeyType,
    /// `-ttl` (zero: never expires).
    pub ttl: Duration,
    /// `-kubeconfig-path`.
    pub kubeconfig_path: String,
}

fn key_type(name: &str) -> Result<KeyType, GenerateError> {
    KeyType::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(name))
        .ok_or_else(|| GenerateError::KeyAlgorithm(name.to_owned()))
}

fn key_pair(key_type: KeyType) -> Result<(KeyPair, String), GenerateError> {
    let crypto = |what| move |e: String| GenerateError::Crypto { what, reason: e };
    let key = PrivateKey::generate(key_type).map_err(|e| crypto("generating a key")(e.to_string()))?;
    let pair = KeyPair::try_from(key.pkcs8_der()).map_err(|e| crypto("loading a key")(e.to_string()))?;
    Ok((pair, key.to_pem()))
}

fn params(common_name: &str, ttl: Duration) -> Result<CertificateParams, GenerateError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| GenerateError::Crypto { what: "certificate parameters", reason: e.to_string() })?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = if ttl.is_zero() {
        time::OffsetDateTime::parse(NEVER_EXPIRES, &time::format_description::well_known::Rfc3339)
            .expect("a valid date")
    } else {
        now + ttl
    };
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&spire_identity::x509::random_serial()));
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The YAML documents for `request`.
pub fn generate(request: &Request) -> Result<String, GenerateError> {
    let sign_error = |e: rcgen::Error| GenerateError::Crypto { what: "creating certificate", reason: e.to_string() };
    let service_dns = format!("{}.{}.svc", request.service, request.namespace);

    let (ca_key, _) = key_pair(request.ca_key)?;
    let mut ca = params("K8S WORKLOAD REGISTRAR CA", request.ttl)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.use_authority_key_identifier_extension = false;
    let ca_cert = ca.self_signed(&ca_key).map_err(sign_error)?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let (server_key, server_key_pem) = key_pair(request.server_key)?;
    let mut server = params("K8S WORKLOAD REGISTRAR SERVER", request.ttl)?;
    server.subject_alt_names =
        vec![rcgen::SanType::DnsName(service_dns.clone().try_into().map_err(|e: rcgen::Error| sign_error(e))?)];
    server.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyAgreement];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).map_err(sign_error)?;

    let (client_key, client_key_pem) = key_pair(request.client_key)?;
    let mut client = params("K8S WORKLOAD REGISTRAR CLIENT", request.ttl)?;
    client.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyAgreement];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).map_err(sign_error)?;

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (ca_pem, server_pem, client_pem) = (ca_cert.pem(), server_cert.pem(), client_cert.pem());
    let mut yaml = String::new();
    let ns = &request.namespace;
    let _ = write!(
        yaml,
        r#"---

# ConfigMap containing the K8S Workload Registrar server certificate and
# CA bundle used to verify the client certificate presented by the API server.
#
apiVersion: v1
kind: ConfigMap
metadata:
  name: k8s-workload-registrar-certs
  namespace: {ns}
data:
  server-cert.pem: |
{server_inline}  cacert.pem: |
{ca_inline}
---

# Kubernetes Secret containing the K8S Workload Registrar server key
apiVersion: v1
kind: Secret
metadata:
  name: k8s-workload-registrar-secret
  namespace: {ns}
type: Opaque
data:
  server-key.pem: {server_key_b64}

---

# KubeConfig with client credentials for the API Server to use to call the
# K8S Workload Registrar service
apiVersion: v1
kind: Config
users:
- name: {service_dns}
  user:
    client-certificate-data: {client_cert_b64}
    client-key-data: {client_key_b64}

---

# AdmissionConfiguration for the API server (--admission-control-config-file),
# pointing at the kubeconfig above saved as {kubeconfig_path}
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: {kubeconfig_path}

---

# Validating Webhook Configuration for the K8S Workload Registrar
#
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: k8s-workload-registrar-webhook
webhooks:
  - name: {service_dns}
    clientConfig:
      service:
        name: {service}
        namespace: {ns}
        path: "/validate"
      caBundle: {ca_b64}
    admissionReviewVersions:
    - v1
    - v1beta1
    sideEffects: NoneOnDryRun
    rules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "DELETE"]
      resources: ["pods"]
      scope: "Namespaced"
"#,
        server_inline = indent(&server_pem, 4),
        ca_inline = indent(&ca_pem, 4),
        server_key_b64 = b64(&server_key_pem),
        client_cert_b64 = b64(&client_pem),
        client_key_b64 = b64(&client_key_pem),
        kubeconfig_path = request.kubeconfig_path,
        service = request.service,
        ca_b64 = b64(&ca_pem),
    );
    Ok(yaml)
}

/// `text` indented by `level` spaces, empty lines left empty (YAML block scalars).
fn indent(text: &str, level: usize) -> String {
    let pad = " ".repeat(level);
    text.lines().map(|l| if l.is_empty() { "\n".to_owned() } else { format!("{pad}{l}\n") }).collect()
}

#[cfg(test)]
mod tests;
