//! SPIRE's pretty layout of an attested agent (`printAgents`).

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use spire_proto::spire::api::types::Agent;

use crate::gotime::unix_in;
use crate::server::common::id_string;

/// One agent's block, ending with a blank line. SPIRE prints the expiry in local time.
pub(crate) fn agent_block(agent: &Agent, zone: &TimeZone) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "SPIFFE ID         : {}", id_string(agent.id.as_ref()));
    let _ = writeln!(out, "Attestation type  : {}", agent.attestation_type);
    let _ = writeln!(out, "Expiration time   : {}", unix_in(agent.x509svid_expires_at, zone));
    // Banned agents have no serial number.
    if agent.banned {
        let _ = writeln!(out, "Banned            : true");
    } else {
        let _ = writeln!(out, "Serial number     : {}", agent.x509svid_serial_number);
    }
    let _ = writeln!(out, "Can re-attest     : {}", agent.can_reattest);
    if !agent.agent_version.is_empty() {
        let _ = writeln!(out, "Agent version     : {}", agent.agent_version);
    }
    out.push('\n');
    out
}

/// `agent list`: a count line and each agent, or `No attested agents found`.
pub(crate) fn agents_listing(agents: &[Agent], zone: &TimeZone) -> String {
    if agents.is_empty() {
        return "No attested agents found\n".to_owned();
    }
    let n = agents.len();
    let mut out = format!("Found {n} attested {}:\n\n", if n == 1 { "agent" } else { "agents" });
    for agent in agents {
        out.push_str(&agent_block(agent, zone));
    }
    out
}

/// `agent show`: a header, the agent's block and its selectors.
pub(crate) fn agent_details(agent: &Agent, zone: &TimeZone) -> String {
    let mut out = String::from("Found an attested agent given its SPIFFE ID\n\n");
    out.push_str(&agent_block(agent, zone));
    for s in &agent.selectors {
        let _ = writeln!(out, "Selectors         : {}:{}", s.r#type, s.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_proto::spire::api::types::{Selector, Spiffeid};

    fn agent(path: &str) -> Agent {
        Agent { id: Some(Spiffeid { trust_domain: "example.org".into(), path: path.into() }), ..Default::default() }
    }

    #[test]
    fn list_layout() {
        let a = Agent {
            attestation_type: "join_token".into(),
            x509svid_serial_number: "215111834690286360396282484243455094291".into(),
            x509svid_expires_at: 1_778_736_159,
            can_reattest: false,
            ..agent("/spire/agent/join_token/6eeefc10")
        };
        assert_eq!(
            agents_listing(&[a], &TimeZone::UTC),
            "Found 1 attested agent:

SPIFFE ID         : spiffe://example.org/spire/agent/join_token/6eeefc10
Attestation type  : join_token
Expiration time   : 2026-05-14 05:22:39 +0000 UTC
Serial number     : 215111834690286360396282484243455094291
Can re-attest     : false

"
        );
        assert_eq!(agents_listing(&[], &TimeZone::UTC), "No attested agents found\n");
        let two = agents_listing(&[agent("/a"), agent("/b")], &TimeZone::UTC);
        assert!(two.starts_with("Found 2 attested agents:\n\nSPIFFE ID         : spiffe://example.org/a\n"));
    }

    #[test]
    fn show_layout_with_banned_version_and_selectors() {
        let a = Agent {
            banned: true,
            agent_version: "1.16.0".into(),
            selectors: vec![
                Selector { r#type: "k8s_psat".into(), value: "agent_ns:spire".into() },
                Selector { r#type: "k8s_psat".into(), value: "cluster:demo-cluster".into() },
            ],
            ..agent("/spire/agent/banned")
        };
        assert_eq!(
            agent_details(&a, &TimeZone::UTC),
            "Found an attested agent given its SPIFFE ID

SPIFFE ID         : spiffe://example.org/spire/agent/banned
Attestation type  : 
Expiration time   : 1970-01-01 00:00:00 +0000 UTC
Banned            : true
Can re-attest     : false
Agent version     : 1.16.0

Selectors         : k8s_psat:agent_ns:spire
Selectors         : k8s_psat:cluster:demo-cluster
"
        );
    }
}
