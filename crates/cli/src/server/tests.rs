//! Command-line level tests that need no server: dispatch, help, flag errors, validation before any
//! connection, and the connection error for a missing socket.

use super::*;

async fn run_args(args: &[&str]) -> (i32, String, String) {
    let mut stdin: &[u8] = b"";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code =
        run_with(args.iter().map(|s| (*s).to_owned()).collect(), &mut stdin, &mut out, &mut err, &Settings::isolated())
            .await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

const MISSING: &str = "/does-not-exist.sock";

#[tokio::test]
async fn missing_socket_gives_grpc_go_error() {
    let (code, out, err) = run_args(&["agent", "count", "-socketPath", MISSING]).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error: connection error: desc = \"transport: error while dialing: dial unix /does-not-exist.sock: connect: no such file or directory\"\n"
    );
}

#[tokio::test]
async fn unknown_flag_prints_go_error_and_usage() {
    let (code, _, err) = run_args(&["agent", "ban", "-foo"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "flag provided but not defined: -foo
Usage of agent ban:
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE).
  -output value
    \tDesired output format (pretty, json); default: pretty.
  -socketPath string
    \tPath to the SPIRE Server API socket (default \"/tmp/spire-server/private/api.sock\")
  -spiffeID string
    \tThe SPIFFE ID of the agent to ban (agent identity)
"
    );
}

#[tokio::test]
async fn help_prints_usage_and_exits_zero() {
    let (code, out, err) = run_args(&["healthcheck", "-h"]).await;
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(
        err,
        "Usage of healthcheck:
  -instance string
    \tInstance name to substitute into socket templates (env SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE).
  -shallow
    \tPerform a less stringent health check
  -socketPath string
    \tPath to the SPIRE Server API socket (default \"/tmp/spire-server/private/api.sock\")
  -verbose
    \tPrint verbose information
flag: help requested
"
    );
}

#[tokio::test]
async fn validation_happens_before_connecting() {
    for (args, message) in [
        (
            &["entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/p"][..],
            "at least one selector is required",
        ),
        (
            &["entry", "create", "-selector", "unix:uid:1", "-parentID", "spiffe://example.org/p"][..],
            "a SPIFFE ID is required",
        ),
        (
            &["entry", "create", "-selector", "unix:uid:1", "-spiffeID", "spiffe://example.org/a"][..],
            "a parent ID is required if the node flag is not set",
        ),
        (
            &[
                "entry",
                "create",
                "-node",
                "-selector",
                "unix:uid:1",
                "-spiffeID",
                "spiffe://example.org/a",
                "-federatesWith",
                "spiffe://b",
            ][..],
            "node entries can not federate",
        ),
        (
            &[
                "entry",
                "create",
                "-selector",
                "unix:uid:1",
                "-spiffeID",
                "spiffe://example.org/a",
                "-parentID",
                "spiffe://example.org/p",
                "-x509SVIDTTL",
                "-1",
            ][..],
            "a positive x509-SVID TTL is required",
        ),
        (
            &[
                "entry",
                "create",
                "-selector",
                "unix:uid:1",
                "-spiffeID",
                "spiffe://example.org/a",
                "-parentID",
                "spiffe://example.org/p",
                "-jwtSVIDTTL",
                "-5",
            ][..],
            "a positive JWT-SVID TTL is required",
        ),
        (
            &[
                "entry",
                "create",
                "-selector",
                "x",
                "-spiffeID",
                "spiffe://example.org/a",
                "-parentID",
                "spiffe://example.org/p",
            ][..],
            "selector \"x\" must be formatted as type:value",
        ),
        (&["entry", "update", "-selector", "unix:uid:1"][..], "entry ID is required"),
        (&["entry", "update", "-entryID", "e1"][..], "at least one selector is required"),
        (&["entry", "update", "-entryID", "e1", "-selector", "a:b"][..], "a parent ID is required"),
        (
            &["entry", "show", "-entryID", "e1", "-spiffeID", "spiffe://example.org/a"][..],
            "the -entryID flag can't be combined with others",
        ),
        (&["entry", "show", "-selector", "a:b", "-matchSelectorsOn", "most"][..], "match behavior \"most\" unknown"),
        (
            &["entry", "show", "-selector", "ab"][..],
            "error parsing selectors: selector \"ab\" must be formatted as type:value",
        ),
        (&["entry", "delete"][..], "an entry ID is required"),
        (&["agent", "show"][..], "a SPIFFE ID is required"),
        (&["agent", "list", "-selector", "a:b", "-matchSelectorsOn", "NO-MATCHER"][..], "unsupported match behavior"),
        (
            &["agent", "list", "-selector", "invalid-selector"][..],
            "error parsing selector \"invalid-selector\": selector \"invalid-selector\" must be formatted as type:value",
        ),
        (&["bundle", "set"][..], "id flag is required"),
        (&["bundle", "show", "-format", "der"][..], "invalid format: \"der\""),
        (&["bundle", "delete", "-id", "spiffe://a", "-mode", "nuke"][..], "unsupported mode \"nuke\""),
        (&["x509", "mint"][..], "spiffeID must be specified"),
        (&["jwt", "mint", "-spiffeID", "spiffe://example.org/a"][..], "at least one audience must be specified"),
        (&["logger", "set"][..], "a value (-level) must be set"),
        (&["logger", "set", "-level", "loud"][..], "the value loud is not a valid setting"),
        (
            &["entry", "count", "-instance", "a"][..],
            "you must define SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE to use the instance flag",
        ),
    ] {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["-socketPath", MISSING]);
        let (code, out, err) = run_args(&full).await;
        assert_eq!((code, out.as_str()), (1, ""), "{args:?}");
        assert_eq!(err, format!("Error: {message}\n"), "{args:?}");
    }
}

#[tokio::test]
async fn data_file_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"entries":[{"spiffe_id":"spiffe://td/a","parent_id":"x"}]}"#).unwrap();
    let (code, _, err) = run_args(&["entry", "create", "-data", path.to_str().unwrap(), "-socketPath", MISSING]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: invalid parent ID: "), "{err}");
    let (_, _, err) = run_args(&["entry", "create", "-data", "/nope.json", "-socketPath", MISSING]).await;
    assert_eq!(err, "Error: open /nope.json: no such file or directory\n");
}

#[tokio::test]
async fn unknown_command_lists_commands() {
    let (code, _, err) = run_args(&["entry"]).await;
    assert_eq!(code, 127);
    assert!(err.contains("    entry create    Creates registration entries\n"), "{err}");
    assert!(!err.contains("agent ban"));
}
