//! Certificates made by `openssl`, as an operator's PKI makes them, for the node attestor tests:
//! CAs, leaves with keys of their own, and certificates for keys held elsewhere (a TPM's).

use std::path::Path;
use std::process::Command;

/// `openssl` with `args` in `dir`; panics with its stderr if it fails.
pub fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed CA `name` in `dir` (`<name>.pem`, `<name>.key`), made by `openssl`.
pub fn ca(dir: &Path, name: &str) {
    run(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate for the public key in `public_pem` (CN `cn`), signed by CA `ca` of `dir`, valid
/// `days` (`"0"`: it expires within the second), written as PEM to `out`.
pub fn issue_for_key(dir: &Path, ca: &str, public_pem: &Path, cn: &str, days: &str, out: &Path) {
    // openssl needs a request to sign; its key is thrown away and replaced by the TPM's.
    run(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "throwaway.key",
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            "throwaway.csr",
        ],
    );
    std::fs::write(
        dir.join("tpm-leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    .expect("ext file");
    run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "throwaway.csr",
            "-force_pubkey",
            &public_pem.display().to_string(),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            days,
            "-extfile",
            "tpm-leaf.ext",
            "-out",
            &out.display().to_string(),
        ],
    );
}

/// Which key a DevID is.
/// A leaf `name` (CN `name`, digitalSignature, clientAuth) with a key of `alg` (`ec` or `rsa`)
/// signed by CA `ca` of `dir`, valid `days` (`"0"`: it expires within the second): `<name>.pem`
/// and `<name>.key`.
pub fn leaf(dir: &Path, ca: &str, name: &str, alg: &str, days: &str) {
    leaf_with(dir, ca, name, alg, days, "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n");
}

/// [`leaf`] with the X.509v3 `extensions` given in openssl's extension-file syntax.
pub fn leaf_with(dir: &Path, ca: &str, name: &str, alg: &str, days: &str, extensions: &str) {
    let key_args: &[&str] =
        if alg == "rsa" { &["-newkey", "rsa:2048"] } else { &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] };
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let subject = format!("/CN={name}");
    let mut args = vec!["req", "-nodes", "-keyout", key.as_str(), "-out", csr.as_str(), "-subj", subject.as_str()];
    args.extend(key_args);
    run(dir, &args);
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), extensions).expect("ext file");
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            days,
            "-extfile",
            &ext_file,
        ],
    );
}

/// The SHA-1 of a PEM certificate's DER, lowercase hex: the fingerprint agent IDs are made of.
pub fn sha1_fingerprint(pem: &Path) -> String {
    let out = run(
        pem.parent().expect("a certificate in a directory"),
        &["x509", "-in", &pem.display().to_string(), "-noout", "-fingerprint", "-sha1"],
    );
    out.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_lowercase()
}

/// `ssh-keygen` with `args` in `dir`; panics with its stderr if it fails.
pub fn ssh_keygen(dir: &Path, args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).current_dir(dir).output().expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
