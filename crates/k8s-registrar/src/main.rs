//! `k8s-workload-registrar [-config <file>]`, and `k8s-workload-registrar generate-config [flags]`.

use std::process::ExitCode;

use spire_cli::flags::{FlagError, FlagSet};
use spire_k8s_registrar::config::{Config, DEFAULT_CONFIG_PATH};
use spire_k8s_registrar::generate_config::{self, GenerateError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("generate-config") {
        return match generate_config::run(&args[1..], &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(GenerateError::Help(usage)) => {
                eprint!("{usage}");
                ExitCode::SUCCESS
            }
            Err(e @ GenerateError::Usage(_)) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    let mut flags = FlagSet::new("k8s-workload-registrar");
    flags.string("config", DEFAULT_CONFIG_PATH, "configuration file");
    let parsed = match flags.parse(&args) {
        Ok(parsed) => parsed,
        Err(FlagError::Help) => {
            eprint!("Usage of k8s-workload-registrar:\n{}", flags.usage());
            return ExitCode::SUCCESS;
        }
        Err(FlagError::Invalid(message)) => {
            eprint!("{message}\nUsage of k8s-workload-registrar:\n{}", flags.usage());
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(parsed.string("config").as_ref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error parsing common config: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(spire_k8s_registrar::run::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}
