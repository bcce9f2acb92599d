//! `k8s-workload-registrar generate-config`: the key material and YAML to wire webhook mode into a
//! cluster (filled in next).

/// Runs the command.
pub fn run(_args: &[String], _out: &mut dyn std::io::Write) -> Result<(), String> {
    Err("generate-config is not implemented yet".into())
}
