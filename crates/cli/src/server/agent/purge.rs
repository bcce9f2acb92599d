//! `agent purge`: deletes re-attestable agents whose SVID expired more than `-expiredFor` ago
//! (`Agent/ListAgents` then `Agent/DeleteAgent` each), or only lists them with `-dryRun`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use spire_proto::spire::api::server::agent::v1::{DeleteAgentRequest, ListAgentsRequest, list_agents_request};
use spire_proto::spire::api::types::AgentMask;

use super::client;
use crate::error::{CliError, go_status};
use crate::flags::{FlagSet, Parsed};
use crate::gotime::GoDuration;
use crate::output::JsonValue;
use crate::server::common::{id_string, pluralize};
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str =
    "Purge expired agents that were attested using a non-TOFU security model based on a given time";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.bool(
        "dryRun",
        false,
        "Indicates that the command will not perform any action, but will print the agents that would be purged.",
    )
    .duration(
        "expiredFor",
        GoDuration::from_secs(720 * 3600),
        "Amount of time that has passed since the agent's SVID has expired. It is used to determine which agents to purge.",
    );
}

/// The JSON SPIRE prints (a Go struct, so `error` is left out when empty).
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct PurgeResult {
    pub(crate) expired_agents: Vec<ExpiredAgent>,
}

#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct ExpiredAgent {
    pub(crate) agent_id: String,
    pub(crate) deleted: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) error: String,
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let expired_for = f.duration("expiredFor");
    let dry_run = f.bool("dryRun");
    let mut client = client(ctx).await?;
    let agents = client
        .list_agents(ListAgentsRequest {
            filter: Some(list_agents_request::Filter { by_can_reattest: Some(true), ..Default::default() }),
            output_mask: Some(AgentMask { x509svid_expires_at: true, ..Default::default() }),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .map_err(|s| CliError::from(s).context("failed to list agents"))?
        .into_inner()
        .agents;

    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
    let mut result = PurgeResult { expired_agents: Vec::new() };
    for agent in agents {
        let deadline = i128::from(agent.x509svid_expires_at) * 1_000_000_000 + i128::from(expired_for.0);
        if deadline >= now {
            continue;
        }
        let mut expired = ExpiredAgent { agent_id: id_string(agent.id.as_ref()), deleted: false, error: String::new() };
        if !dry_run {
            match client.delete_agent(DeleteAgentRequest { id: agent.id.clone() }).await {
                Ok(_) => expired.deleted = true,
                Err(status) => expired.error = go_status(&status),
            }
        }
        result.expired_agents.push(expired);
    }
    if ctx.json() {
        // SPIRE prints this struct through its struct printer, which wraps it in an array.
        return ctx.print_json(&[JsonValue::of_struct(&[&result])]);
    }
    ctx.out(&pretty(&result, dry_run))
}

/// The pretty report.
pub(crate) fn pretty(result: &PurgeResult, dry_run: bool) -> String {
    let agents = &result.expired_agents;
    if agents.is_empty() {
        return "No agents to purge.\n".to_owned();
    }
    let mut out =
        format!("{}\n\n", pluralize(&format!("Found {} expired ", agents.len()), "agent", "agents", agents.len()));
    if dry_run {
        out.push_str("\nAgents that can be purged:\n");
        for a in agents {
            out.push_str(&format!("SPIFFE ID         : {}\n", a.agent_id));
        }
        return out;
    }
    let (purged, failed): (Vec<_>, Vec<_>) = agents.iter().partition(|a| a.deleted);
    if !purged.is_empty() {
        out.push_str("Agents purged:\n");
        for a in &purged {
            out.push_str(&format!("SPIFFE ID         : {}\n", a.agent_id));
        }
    }
    if !failed.is_empty() {
        out.push_str("Agents not purged:\n");
        for a in &failed {
            out.push_str(&format!("SPIFFE ID         : {}\nError             : {}\n", a.agent_id, a.error));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::JsonValue;

    fn agent(path: &str, deleted: bool, error: &str) -> ExpiredAgent {
        ExpiredAgent { agent_id: format!("spiffe://example.org{path}"), deleted, error: error.into() }
    }

    #[test]
    fn reports() {
        let none = PurgeResult { expired_agents: vec![] };
        assert_eq!(pretty(&none, false), "No agents to purge.\n");
        let purged = PurgeResult {
            expired_agents: vec![agent("/spire/agent/agent2", true, ""), agent("/spire/agent/agent3", true, "")],
        };
        assert_eq!(
            pretty(&purged, false),
            "Found 2 expired agents

Agents purged:
SPIFFE ID         : spiffe://example.org/spire/agent/agent2
SPIFFE ID         : spiffe://example.org/spire/agent/agent3
"
        );
        let dry = PurgeResult {
            expired_agents: vec![agent("/spire/agent/agent2", false, ""), agent("/spire/agent/agent3", false, "")],
        };
        assert_eq!(
            pretty(&dry, true),
            "Found 2 expired agents


Agents that can be purged:
SPIFFE ID         : spiffe://example.org/spire/agent/agent2
SPIFFE ID         : spiffe://example.org/spire/agent/agent3
"
        );
        let err = "rpc error: code = Internal desc = some error when deleting agent";
        let failed = PurgeResult { expired_agents: vec![agent("/spire/agent/agent2", false, err)] };
        assert_eq!(
            pretty(&failed, false),
            "Found 1 expired agent

Agents not purged:
SPIFFE ID         : spiffe://example.org/spire/agent/agent2
Error             : rpc error: code = Internal desc = some error when deleting agent
"
        );
    }

    #[test]
    fn json_is_a_struct_array() {
        let r = PurgeResult {
            expired_agents: vec![agent("/a", true, ""), agent("/b", false, "rpc error: code = Internal desc = x")],
        };
        assert_eq!(
            JsonValue::of_struct(&[&r]).as_str(),
            r#"[{"expired_agents":[{"agent_id":"spiffe://example.org/a","deleted":true},{"agent_id":"spiffe://example.org/b","deleted":false,"error":"rpc error: code = Internal desc = x"}]}]"#
        );
    }
}
