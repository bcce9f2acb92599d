//! Command-line level tests that need no server: dispatch, help and listings as mitchellh/cli prints
//! them, flag errors, validation before any connection, and the errors for a missing socket.

use super::*;

async fn run_args(args: &[&str]) -> (i32, String, String) {
    run_settings(args, &Settings::isolated()).await
}

async fn run_settings(args: &[&str], settings: &Settings) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(args.iter().map(|s| (*s).to_owned()).collect(), &mut out, &mut err, settings).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

const MISSING: &str = "/does-not-exist.sock";
const DIAL_ERROR: &str = "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /does-not-exist.sock: connect: no such file or directory\"";

// SPIRE's api_posix_test.go usage strings, with the `-instance` flag newer SPIRE adds.
const FETCH_X509_USAGE: &str = "Usage of fetch x509:
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).
  -output value
    \tDesired output format (pretty, json); default: pretty.
  -silent
    \tSuppress stdout
  -socketPath string
    \tPath to the SPIRE Agent API Unix domain socket (default \"/tmp/spire-agent/public/api.sock\")
  -timeout value
    \tTime to wait for a response (default 5s)
  -write string
    \tWrite SVID data to the specified path (optional; only available for pretty output format)
";

const FETCH_JWT_USAGE: &str = "Usage of fetch jwt:
  -audience value
    \tcomma separated list of audience values
  -format value
    \tdeprecated; use -output
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).
  -output value
    \tDesired output format (pretty, json); default: pretty.
  -socketPath string
    \tPath to the SPIRE Agent API Unix domain socket (default \"/tmp/spire-agent/public/api.sock\")
  -spiffeID string
    \tSPIFFE ID subject (optional)
  -timeout value
    \tTime to wait for a response (default 5s)
";

const VALIDATE_JWT_USAGE: &str = "Usage of validate jwt:
  -audience string
    \texpected audience value
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).
  -output value
    \tDesired output format (pretty, json); default: pretty.
  -socketPath string
    \tPath to the SPIRE Agent API Unix domain socket (default \"/tmp/spire-agent/public/api.sock\")
  -svid string
    \tJWT SVID
  -timeout value
    \tTime to wait for a response (default 5s)
";

const HEALTH_USAGE: &str = "Usage of health:
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).
  -shallow
    \tPerform a less stringent health check
  -socketPath string
    \tPath to the SPIRE Agent API socket (default \"/tmp/spire-agent/public/api.sock\")
  -verbose
    \tPrint verbose information
";

const LISTING: &str = "Usage: spire-agent [--version] [--help] <command> [<args>]

Available commands are:
    api            
    healthcheck    Determines agent health status
    run            Runs the agent
    validate       Validates a SPIRE agent configuration file

";

#[tokio::test]
async fn listing_like_mitchellh_cli() {
    assert_eq!(run_args(&[]).await, (127, String::new(), LISTING.to_owned()));
    assert_eq!(run_args(&["-h"]).await, (0, String::new(), LISTING.to_owned()));
    assert_eq!(run_args(&["nope", "x"]).await, (127, String::new(), LISTING.to_owned()));
    assert_eq!(run_args(&["healthcheckx"]).await.0, 127);
    // run and validate belong to the binary.
    assert_eq!(run_args(&["run"]).await.0, 127);
}

#[tokio::test]
async fn command_help_is_usage_then_template() {
    // The adapter's Help() prints usage and returns "", which the template turns into a newline.
    assert_eq!(run_args(&["api", "fetch", "x509", "-h"]).await, (0, String::new(), format!("{FETCH_X509_USAGE}\n")));
    assert_eq!(run_args(&["api", "fetch", "jwt", "--help"]).await.2, format!("{FETCH_JWT_USAGE}\n"));
    assert_eq!(
        run_args(&["api", "validate", "jwt", "-audience", "x", "-help"]).await.2,
        format!("{VALIDATE_JWT_USAGE}\n")
    );
    assert_eq!(run_args(&["healthcheck", "-h"]).await.2, format!("{HEALTH_USAGE}\n"));
    // watch's Help() returns the flag package's error text.
    let (code, _, err) = run_args(&["api", "watch", "-h"]).await;
    assert_eq!(code, 0);
    assert!(err.ends_with("(default \"/tmp/spire-agent/public/api.sock\")\nflag: help requested\n"), "{err}");
    // After `--` a help flag is an argument like any other.
    assert_eq!(run_args(&["api", "fetch", "-socketPath", MISSING, "--", "-h"]).await.2, format!("{DIAL_ERROR}\n"));
}

#[tokio::test]
async fn parents_list_their_subcommands() {
    // `api fetch` is a command with subcommands: its usage, each subcommand's usage (printed while the
    // list is built), then the list.
    let (code, _, err) = run_args(&["api", "fetch", "-h"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        err,
        format!(
            "{FETCH_X509_USAGE}{FETCH_JWT_USAGE}{FETCH_X509_USAGE}\n\nSubcommands:\n    jwt     Fetches a JWT SVID from the Workload API\n    x509    Fetches X509 SVIDs from the Workload API\n"
        )
    );
    // `api` exists only as a parent: running it shows its help and fails.
    let (code, out, err) = run_args(&["api"]).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with(FETCH_X509_USAGE), "{err}");
    assert!(
        err.ends_with(
            "This command is accessed by using one of the subcommands below.\n\nSubcommands:\n    fetch       Fetches X509 SVIDs from the Workload API\n    validate    \n    watch       Attaches to the Workload API and prints updates as they're received\n"
        ),
        "{err}"
    );
    let (code, _, err) = run_args(&["api", "validate"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "{VALIDATE_JWT_USAGE}This command is accessed by using one of the subcommands below.\n\nSubcommands:\n    jwt    Validates a JWT SVID\n"
        )
    );
    assert_eq!(run_args(&["api", "nope"]).await.0, 1);
}

#[tokio::test]
async fn flags_before_the_command_are_refused() {
    let (code, _, err) = run_args(&["-verbose", "healthcheck"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "Invalid flags before the subcommand. If these flags are for\nthe subcommand, please put them after the subcommand.\n\n{HEALTH_USAGE}\n"
        )
    );
    // mitchellh/cli cannot tell a flag's value from a command: here `x` is the (unknown) command.
    assert_eq!(run_args(&["-socketPath", "x", "healthcheck"]).await.0, 127);
}

#[tokio::test]
async fn flag_errors_are_printed_twice_by_api_commands() {
    let (code, out, err) = run_args(&["api", "fetch", "x509", "-foo"]).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!("flag provided but not defined: -foo\n{FETCH_X509_USAGE}flag provided but not defined: -foo\n")
    );
    let (code, _, err) = run_args(&["api", "fetch", "jwt", "-timeout", "5d"]).await;
    let msg = "invalid value \"5d\" for flag -timeout: time: unknown unit \"d\" in duration \"5d\"";
    assert_eq!((code, err), (1, format!("{msg}\n{FETCH_JWT_USAGE}{msg}\n")));
    let (_, _, err) = run_args(&["api", "watch", "-bogus"]).await;
    assert!(err.starts_with("flag provided but not defined: -bogus\nUsage of watch:\n"), "{err}");
    assert!(err.ends_with("\nflag provided but not defined: -bogus\n"), "{err}");
    // healthcheck leaves the printing to the flag package.
    let (code, _, err) = run_args(&["healthcheck", "-badflag"]).await;
    assert_eq!((code, err), (1, format!("flag provided but not defined: -badflag\n{HEALTH_USAGE}")));
}

#[tokio::test]
async fn validation_happens_before_connecting() {
    for (args, message) in [
        (&["api", "fetch", "jwt"][..], "audience must be specified"),
        (&["api", "fetch", "jwt", "-spiffeID", "spiffe://example.org/a"][..], "audience must be specified"),
        (&["api", "validate", "jwt"][..], "audience must be specified"),
        (&["api", "validate", "jwt", "-audience", "foo"][..], "svid must be specified"),
        (
            &["api", "fetch", "-instance", "a"][..],
            "You must define SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE to use the instance flag",
        ),
    ] {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["-socketPath", MISSING]);
        let (code, out, err) = run_args(&full).await;
        assert_eq!((code, out.as_str()), (1, ""), "{args:?}");
        assert_eq!(err, format!("{message}\n"), "{args:?}");
    }
    let bad = Settings::isolated().with_var("SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE", "/run/static.sock");
    let (_, _, err) = run_settings(&["api", "watch", "-instance", "a"], &bad).await;
    assert_eq!(err, "Failed to find %i in SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE\n");
}

#[tokio::test]
async fn missing_socket_errors_like_spire() {
    let (code, out, err) = run_args(&["api", "fetch", "-socketPath", MISSING]).await;
    assert_eq!((code, out.as_str(), err), (1, "", format!("{DIAL_ERROR}\n")));
    let (_, _, err) = run_args(&["api", "fetch", "jwt", "-audience", "a", "-socketPath", MISSING]).await;
    assert_eq!(err, format!("failed to receive JWT bundles: {DIAL_ERROR}\n"));
    let (_, _, err) =
        run_args(&["api", "validate", "jwt", "-audience", "a", "-svid", "x", "-socketPath", MISSING]).await;
    assert_eq!(err, format!("unable to validate JWT SVID: {DIAL_ERROR}\n"));
    // SPIRE's healthcheck tests: quiet, then verbose.
    let (code, out, err) = run_args(&["healthcheck", "--socketPath", MISSING]).await;
    assert_eq!((code, out.as_str(), err.as_str()), (1, "", "Agent is unhealthy: unable to determine health\n"));
    let (code, out, err) = run_args(&["healthcheck", "--socketPath", MISSING, "--verbose"]).await;
    assert_eq!((code, out.as_str()), (1, "Checking agent health...\n"));
    assert_eq!(err, format!("Failed to check health: {DIAL_ERROR}\nAgent is unhealthy: unable to determine health\n"));
    // The environment's socket is used when -socketPath is left at its default.
    let env = Settings::isolated().with_var("SPIRE_AGENT_PUBLIC_SOCKET", MISSING);
    let (_, _, err) = run_settings(&["api", "fetch"], &env).await;
    assert_eq!(err, format!("{DIAL_ERROR}\n"));
    let tpl = Settings::isolated().with_var("SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE", "/does-not-exist-%i.sock");
    let (_, _, err) = run_settings(&["healthcheck", "-instance", "main"], &tpl).await;
    assert_eq!(err, "Agent is unhealthy: unable to determine health\n");
}
