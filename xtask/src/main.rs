//! `cargo xtask <task>`: see the library docs.

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  gen-proto    regenerate crates/proto/src/gen from crates/proto/proto
  check-proto  fail if crates/proto/src/gen differs from what gen-proto writes";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = xtask::workspace_root();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["gen-proto"] => xtask::gen_proto(&root).map(|written| {
            println!("wrote {} files to {}", written.len(), xtask::gen_dir(&root).display());
            ExitCode::SUCCESS
        }),
        ["check-proto"] => xtask::check_proto(&root).map(|drift| {
            if drift.is_empty() {
                println!("generated protobuf code is up to date");
                ExitCode::SUCCESS
            } else {
                eprintln!("{drift}");
                ExitCode::FAILURE
            }
        }),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}
