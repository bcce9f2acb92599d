//! Builds every fuzz target and runs it once over its seed inputs, so that CI proves the targets
//! build and that the seeds pass; real fuzzing is `cargo fuzz run <target>` (see docs/fuzzing.md).

use std::path::Path;
use std::process::Command;

fn run(target: &str, exe: &str) {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    let inputs: Vec<_> = std::fs::read_dir(&seeds).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!inputs.is_empty(), "no seeds in {}", seeds.display());
    let out = Command::new(exe).args(&inputs).output().unwrap();
    assert!(out.status.success(), "{target}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn spiffe_id_seeds() {
    run("spiffe_id", env!("CARGO_BIN_EXE_spiffe_id"));
}

#[test]
fn selector_seeds() {
    run("selector", env!("CARGO_BIN_EXE_selector"));
}

#[test]
fn bundle_seeds() {
    run("bundle", env!("CARGO_BIN_EXE_bundle"));
}

#[test]
fn jwt_seeds() {
    run("jwt", env!("CARGO_BIN_EXE_jwt"));
}

#[test]
fn h2_authority_seeds() {
    run("h2_authority", env!("CARGO_BIN_EXE_h2_authority"));
}

#[test]
fn k8s_psat_payload_seeds() {
    run("k8s_psat_payload", env!("CARGO_BIN_EXE_k8s_psat_payload"));
}

#[test]
fn k8s_cgroups_seeds() {
    run("k8s_cgroups", env!("CARGO_BIN_EXE_k8s_cgroups"));
}

#[test]
fn kubelet_pod_list_seeds() {
    run("kubelet_pod_list", env!("CARGO_BIN_EXE_kubelet_pod_list"));
}

#[test]
fn admission_review_seeds() {
    run("admission_review", env!("CARGO_BIN_EXE_admission_review"));
}

#[test]
fn spiffeid_review_seeds() {
    run("spiffeid_review", env!("CARGO_BIN_EXE_spiffeid_review"));
}

#[test]
fn x509pop_messages_seeds() {
    run("x509pop_messages", env!("CARGO_BIN_EXE_x509pop_messages"));
}

#[test]
fn sshpop_messages_seeds() {
    run("sshpop_messages", env!("CARGO_BIN_EXE_sshpop_messages"));
}

#[test]
fn tpm_devid_messages_seeds() {
    run("tpm_devid_messages", env!("CARGO_BIN_EXE_tpm_devid_messages"));
}

#[test]
fn oidc_config_seeds() {
    run("oidc_config", env!("CARGO_BIN_EXE_oidc_config"));
}

#[test]
fn oidc_request_seeds() {
    run("oidc_request", env!("CARGO_BIN_EXE_oidc_request"));
}

#[test]
fn acme_certificate_seeds() {
    run("acme_certificate", env!("CARGO_BIN_EXE_acme_certificate"));
}

#[test]
fn http_challenge_payload_seeds() {
    run("http_challenge_payload", env!("CARGO_BIN_EXE_http_challenge_payload"));
}

#[test]
fn gcp_iit_messages_seeds() {
    run("gcp_iit_messages", env!("CARGO_BIN_EXE_gcp_iit_messages"));
}

#[test]
fn azure_msi_messages_seeds() {
    run("azure_msi_messages", env!("CARGO_BIN_EXE_azure_msi_messages"));
}

#[test]
fn aws_iid_payload_seeds() {
    run("aws_iid_payload", env!("CARGO_BIN_EXE_aws_iid_payload"));
}

#[test]
fn key_manager_answers_seeds() {
    run("key_manager_answers", env!("CARGO_BIN_EXE_key_manager_answers"));
}

#[test]
fn plugin_output_seeds() {
    run("plugin_output", env!("CARGO_BIN_EXE_plugin_output"));
}
