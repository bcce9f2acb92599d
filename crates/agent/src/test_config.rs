//! The agent configuration text unit tests start from, once for every module's tests.

/// A minimal valid `agent.conf`: trust domain `example.org`, the server at `127.0.0.1:8081`,
/// insecure bootstrap, `agent_extra` lines in the `agent` block and `plugins` as the plugins block's
/// body.
pub(crate) fn agent_conf(agent_extra: &str, plugins: &str) -> String {
    format!(
        r#"agent {{
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = 8081
    insecure_bootstrap = true
    {agent_extra}
}}
plugins {{
{plugins}
}}
"#
    )
}
