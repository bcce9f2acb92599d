//! A software TPM (`swtpm`) for the `tpm_devid` tests, provisioned with `tpm2-tools` and `openssl`
//! as a manufacturer and an owner would: an endorsement key whose certificate, signed by a test
//! manufacturer CA, sits in the EK certificate NV index; DevID keys made under the storage root key
//! template SPIRE loads them with, saved as blobs in SPIRE's format (no `TPM2B` size prefix); DevID
//! certificates signed by a test DevID CA.
//!
//! swtpm listens on a Unix socket (`--server type=unixio`), which the agents open as their
//! `tpm_device_path`; tpm2-tools reach it through the `swtpm` TCTI, whose control channel is the
//! same path with `.ctrl` appended. Without `swtpm` or `tpm2-tools`, [`Swtpm::start`] says the test
//! is skipped, or fails it under `SPIRE_REQUIRE_PEERS=1` (Debian: `swtpm swtpm-tools tpm2-tools`).

use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::openssl::{issue_for_key, run as openssl};

/// The RSA EK certificate's NV index.
pub const EK_CERT_INDEX: &str = "0x01c00002";

/// A running software TPM and its state directory.
#[derive(Debug)]
pub struct Swtpm {
    _dir: tempfile::TempDir,
    child: Child,
    /// The socket to give agents as `tpm_device_path`.
    pub socket: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevIdKind {
    /// ECDSA P-256 with SHA-256.
    Ecc,
    /// RSA-2048, RSASSA with SHA-256.
    Rsa,
}

/// A DevID key's files as SPIRE's agent reads them.
#[derive(Debug, Clone)]
pub struct DevIdFiles {
    /// `devid_pub_path`: the `TPMT_PUBLIC`.
    pub public_blob: PathBuf,
    /// `devid_priv_path`: the `TPM2B_PRIVATE` contents.
    pub private_blob: PathBuf,
    /// The public key as PEM, to certify.
    pub public_pem: PathBuf,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Swtpm {
    /// Starts a fresh TPM, or returns `None` (having said why) when swtpm or tpm2-tools are missing.
    pub fn start() -> Option<Self> {
        for tool in ["swtpm", "tpm2_createek", "openssl"] {
            if !have(tool) {
                assert!(
                    !crate::peers::required(),
                    "{tool} is missing and SPIRE_REQUIRE_PEERS=1: install Debian's swtpm swtpm-tools tpm2-tools"
                );
                eprintln!("skipped: {tool} is not installed (Debian: swtpm swtpm-tools tpm2-tools)");
                return None;
            }
        }
        let dir = tempfile::Builder::new().prefix("swtpm").tempdir_in("/tmp").expect("tempdir");
        let socket = dir.path().join("tpm.sock");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear", "--server"])
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}.ctrl", socket.display()))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start swtpm");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "swtpm did not create {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { _dir: dir, child, socket })
    }

    /// `tpm2_<tool>` with `args` in `dir` against this TPM; panics with its stderr if it fails.
    /// Transient objects are flushed after each call: nothing stands between tpm2-tools and the TPM
    /// to do it, and the TPM holds three at most.
    pub fn tpm2(&self, dir: &Path, tool: &str, args: &[&str]) -> String {
        let tcti = format!("swtpm:path={}", self.socket.display());
        let run = |tool: &str, args: &[&str]| {
            Command::new(format!("tpm2_{tool}"))
                .args(args)
                .current_dir(dir)
                .env("TPM2TOOLS_TCTI", &tcti)
                .output()
                .expect("run tpm2-tools")
        };
        let out = run(tool, args);
        let _ = run("flushcontext", &["-t"]);
        assert!(out.status.success(), "tpm2_{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates the RSA EK (default template), certifies it with CA `manufacturer` of `dir` and
    /// stores the DER certificate in the EK certificate index.
    pub fn provision_ek(&self, dir: &Path, manufacturer: &str) {
        self.tpm2(dir, "createek", &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"]);
        self.tpm2(dir, "readpublic", &["-c", "ek.ctx", "-f", "pem", "-o", "ek.pem"]);
        issue_for_key(dir, manufacturer, &dir.join("ek.pem"), "test-ek", "1", &dir.join("ek-cert.pem"));
        openssl(dir, &["x509", "-in", "ek-cert.pem", "-outform", "DER", "-out", "ek-cert.der"]);
        let size = std::fs::metadata(dir.join("ek-cert.der")).expect("ek cert").len().to_string();
        self.tpm2(
            dir,
            "nvdefine",
            &[EK_CERT_INDEX, "-C", "o", "-s", &size, "-a", "ownerwrite|ownerread|authread|authwrite|no_da"],
        );
        self.tpm2(dir, "nvwrite", &[EK_CERT_INDEX, "-C", "o", "-i", "ek-cert.der"]);
    }

    /// Creates a DevID key `name` under the storage root key SPIRE's agent regenerates (the
    /// high-range SRK template of the key's type), with `password`, and writes its blobs in
    /// SPIRE's format and its public key as PEM.
    pub fn create_devid(&self, dir: &Path, name: &str, kind: DevIdKind, password: &str) -> DevIdFiles {
        let (srk, alg) = match kind {
            DevIdKind::Ecc => ("ecc256:null:aes128cfb", "ecc256:ecdsa-sha256"),
            DevIdKind::Rsa => ("rsa2048:null:aes128cfb", "rsa2048:rsassa-sha256"),
        };
        let srk_ctx = format!("{name}-srk.ctx");
        self.tpm2(
            dir,
            "createprimary",
            &[
                "-C",
                "o",
                "-g",
                "sha256",
                "-G",
                srk,
                "-a",
                "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda",
                "-c",
                &srk_ctx,
            ],
        );
        let (public, private) = (format!("{name}.pub.tpm2b"), format!("{name}.priv.tpm2b"));
        let mut args = vec![
            "-C",
            srk_ctx.as_str(),
            "-G",
            alg,
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
            "-u",
            public.as_str(),
            "-r",
            private.as_str(),
        ];
        if !password.is_empty() {
            args.extend(["-p", password]);
        }
        self.tpm2(dir, "create", &args);
        let key_ctx = format!("{name}.ctx");
        self.tpm2(dir, "load", &["-C", &srk_ctx, "-u", &public, "-r", &private, "-c", &key_ctx]);
        let pem = dir.join(format!("{name}.pub.pem"));
        self.tpm2(dir, "readpublic", &["-c", &key_ctx, "-f", "pem", "-o", &pem.display().to_string()]);
        let strip = |from: &str, to: PathBuf| {
            let blob = std::fs::read(dir.join(from)).expect("blob");
            std::fs::write(&to, &blob[2..]).expect("write blob");
            to
        };
        DevIdFiles {
            public_blob: strip(&public, dir.join(format!("{name}.pub.blob"))),
            private_blob: strip(&private, dir.join(format!("{name}.priv.blob"))),
            public_pem: pem,
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
