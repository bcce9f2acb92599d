//! The `k8s-workload-registrar` command line: the config flag, its errors, `generate-config`.
//! (Being an integration test also makes `cargo test --workspace` build the binary the end-to-end
//! tests in `spire-interop` run.)

use std::process::Command;

fn registrar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_k8s-workload-registrar"))
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = registrar().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("k8s-workload-registrar.conf"), "{err}");
}

#[test]
fn config_mistakes_stop_it_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("r.conf");
    std::fs::write(
        &conf,
        "trust_domain = \"example.org\"\ncluster = \"c\"\nserver_socket_path = \"/s\"\npod_lable = \"x\"\n",
    )
    .unwrap();
    let out = registrar().arg("-config").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"pod_lable\"") && err.contains("line 4"), "{err}");
}

#[test]
fn unknown_flags_get_go_usage() {
    let out = registrar().arg("-confg").arg("x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flag provided but not defined: -confg") && err.contains("-config string"), "{err}");
}
