//! The judgement of a `k8s_psat` attestation, without any I/O: from what the API server said about
//! the token (the TokenReview status), the pod and the node, to an agent ID and selectors, or the
//! reason for refusing. [`super::K8sPsatAttestor`] fetches; these functions decide.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::authentication::v1::TokenReviewStatus;
use k8s_openapi::api::core::v1::{Node, Pod};
use spire_identity::TrustDomain;

use super::agent_id;
use super::config::ClusterConfig;
use super::error::{AttestError, q_list};
use crate::catalog::nodeattestor::AttestResult;

/// The TokenReview `user.extra` key naming the pod a projected token is bound to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The TokenReview `user.extra` key with that pod's UID.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// Who the API server says presented the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The service account's namespace (also the pod's).
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
    /// The pod the token is bound to.
    pub pod_name: String,
    /// That pod's UID.
    pub pod_uid: String,
}

/// The checks SPIRE makes on the TokenReview response itself: no `error`, and, when the token is
/// authenticated and audiences were requested, at least one of them among those it was validated
/// for. An authenticator that ignores audiences would otherwise accept a token minted for another
/// service.
pub fn check_review(status: &TokenReviewStatus, requested: &[String]) -> Result<(), AttestError> {
    if let Some(error) = status.error.as_deref().filter(|e| !e.is_empty()) {
        return Err(AttestError::TokenReview(format!("token review API response contains an error: {error}")));
    }
    let returned = status.audiences.as_deref().unwrap_or_default();
    if authenticated(status) && !requested.is_empty() && !requested.iter().any(|a| returned.contains(a)) {
        return Err(AttestError::TokenReview(format!(
            "token review API did not validate audience: wanted one of {} but got {}",
            q_list(requested),
            q_list(returned)
        )));
    }
    Ok(())
}

fn authenticated(status: &TokenReviewStatus) -> bool {
    status.authenticated == Some(true)
}

/// Who the (already [checked](check_review)) review says the token belongs to, if it is an allowed
/// service account's token bound to one pod.
pub fn identify(status: &TokenReviewStatus, allow_list: &BTreeSet<String>) -> Result<TokenIdentity, AttestError> {
    if !authenticated(status) {
        return Err(AttestError::NotAuthenticated);
    }
    let user = status.user.clone().unwrap_or_default();
    let (namespace, service_account) =
        service_account_names(user.username.as_deref().unwrap_or_default()).map_err(AttestError::Username)?;
    let full_name = format!("{namespace}:{service_account}");
    if !allow_list.contains(&full_name) {
        return Err(AttestError::ServiceAccountNotAllowed(full_name));
    }
    let extra = user.extra.unwrap_or_default();
    let pod_name = single_extra(&extra, POD_NAME_EXTRA, "name").map_err(AttestError::PodName)?;
    let pod_uid = single_extra(&extra, POD_UID_EXTRA, "UID").map_err(AttestError::PodUid)?;
    Ok(TokenIdentity { namespace, service_account, pod_name, pod_uid })
}

/// `system:serviceaccount:<namespace>:<name>` split into namespace and name.
///
/// SPIRE only counts the parts; the prefix is checked here too, so that a user of another kind
/// whose name happens to have four parts is never taken for a service account.
pub fn service_account_names(username: &str) -> Result<(String, String), String> {
    if username.is_empty() {
        return Err("empty username".to_owned());
    }
    let parts: Vec<&str> = username.split(':').collect();
    let [system, kind, namespace, name] = parts.as_slice() else {
        return Err(format!("unexpected username format: {username}"));
    };
    if (*system, *kind) != ("system", "serviceaccount") {
        return Err(format!("unexpected username format: {username}"));
    }
    if namespace.is_empty() {
        return Err("missing namespace".to_owned());
    }
    if name.is_empty() {
        return Err("missing service account name".to_owned());
    }
    Ok(((*namespace).to_owned(), (*name).to_owned()))
}

/// The one non-empty value of `extra[key]`; `what` is `name` or `UID` in SPIRE's messages.
fn single_extra(extra: &BTreeMap<String, Vec<String>>, key: &str, what: &str) -> Result<String, String> {
    let Some(values) = extra.get(key) else {
        return Err(format!("missing pod {what}"));
    };
    match values.as_slice() {
        [value] if value.is_empty() => Err(format!("pod {what} is empty")),
        [value] => Ok(value.clone()),
        _ => Err(format!("expected 1 {what} but got: {}", values.len())),
    }
}

/// Checks that `pod` is the very pod the token was issued to (a pod deleted and recreated under the
/// same name has a new UID) and returns the name of its node.
pub fn check_pod(pod: &Pod, cluster: &str, token: &TokenIdentity) -> Result<String, AttestError> {
    if pod.metadata.uid.as_deref().unwrap_or_default() != token.pod_uid {
        return Err(AttestError::PodUidMismatch {
            pod: token.pod_name.clone(),
            cluster: cluster.to_owned(),
            token_pod_uid: token.pod_uid.clone(),
        });
    }
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
        Some(node) => Ok(node.to_owned()),
        None => Err(AttestError::GetNode("empty node name".to_owned())),
    }
}

/// The attestation of the agent in `pod`, on `node`, of cluster `cluster_name`: agent ID
/// `spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node UID>`, so that an agent pod replaced on the
/// same node keeps its ID, and SPIRE's selectors in SPIRE's order (labels sorted by key).
pub fn attest_result(
    trust_domain: &TrustDomain,
    cluster_name: &str,
    cluster: &ClusterConfig,
    token: &TokenIdentity,
    pod: &Pod,
    node: &Node,
) -> Result<AttestResult, AttestError> {
    let node_uid = node.metadata.uid.as_deref().unwrap_or_default();
    if node_uid.is_empty() {
        return Err(AttestError::EmptyNodeUid);
    }
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default();
    let host_ip = pod.status.as_ref().and_then(|s| s.host_ip.as_deref()).unwrap_or_default();
    let mut selector_values = vec![
        format!("cluster:{cluster_name}"),
        format!("agent_ns:{}", token.namespace),
        format!("agent_sa:{}", token.service_account),
        format!("agent_pod_name:{}", token.pod_name),
        format!("agent_pod_uid:{}", token.pod_uid),
        format!("agent_node_ip:{host_ip}"),
        format!("agent_node_name:{node_name}"),
        format!("agent_node_uid:{node_uid}"),
    ];
    selector_values.extend(label_selectors(
        "agent_node_label",
        &node.metadata.labels,
        &cluster.allowed_node_label_keys,
    ));
    selector_values.extend(label_selectors("agent_pod_label", &pod.metadata.labels, &cluster.allowed_pod_label_keys));
    let agent_id = agent_id(trust_domain, cluster_name, node_uid).map_err(AttestError::AgentId)?;
    Ok(AttestResult { agent_id, selector_values, can_reattest: true })
}

/// `<kind>:<key>:<value>` for each label whose key is allowed.
fn label_selectors<'a>(
    kind: &'a str,
    labels: &'a Option<BTreeMap<String, String>>,
    allowed: &'a BTreeSet<String>,
) -> impl Iterator<Item = String> + 'a {
    labels.iter().flatten().filter(|(k, _)| allowed.contains(*k)).map(move |(k, v)| format!("{kind}:{k}:{v}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    pub(crate) const POD_UID: &str = "11111111-2222-3333-4444-555555555555";
    pub(crate) const NODE_UID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

    /// A review of a valid token of `spire:spire-agent`, bound to pod `agent-x`.
    pub(crate) fn review() -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(true),
            audiences: Some(vec!["spire-server".into()]),
            error: None,
            user: Some(UserInfo {
                username: Some("system:serviceaccount:spire:spire-agent".into()),
                uid: Some("sa-uid".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: Some(BTreeMap::from([
                    (POD_NAME_EXTRA.to_owned(), vec!["agent-x".to_owned()]),
                    (POD_UID_EXTRA.to_owned(), vec![POD_UID.to_owned()]),
                ])),
            }),
        }
    }

    pub(crate) fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("agent-x".into()),
                namespace: Some("spire".into()),
                uid: Some(POD_UID.into()),
                labels: Some(BTreeMap::from([
                    ("app".to_owned(), "spire-agent".to_owned()),
                    ("secret".to_owned(), "s".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec { node_name: Some("node-1".into()), ..PodSpec::default() }),
            status: Some(PodStatus { host_ip: Some("10.0.0.7".into()), ..PodStatus::default() }),
        }
    }

    pub(crate) fn node() -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                uid: Some(NODE_UID.into()),
                labels: Some(BTreeMap::from([
                    ("zone".to_owned(), "eu-1".to_owned()),
                    ("kubernetes.io/hostname".to_owned(), "node-1".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    pub(crate) fn cluster() -> ClusterConfig {
        ClusterConfig::allowing(["spire:spire-agent"])
    }

    fn aud(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn identity() -> TokenIdentity {
        identify(&review(), &cluster().service_account_allow_list).unwrap()
    }

    #[test]
    fn review_checks() {
        let requested = aud(&["spire-server"]);
        assert_eq!(check_review(&review(), &requested), Ok(()));

        let mut r = review();
        r.error = Some("webhook timed out".into());
        assert_eq!(
            check_review(&r, &requested).unwrap_err().to_string(),
            "unable to validate token with TokenReview API: token review API response contains an error: webhook timed out"
        );

        let mut r = review();
        r.audiences = Some(aud(&["other", "api"]));
        assert_eq!(
            check_review(&r, &aud(&["spire-server", "x"])).unwrap_err().to_string(),
            "unable to validate token with TokenReview API: token review API did not validate audience: \
             wanted one of [\"spire-server\" \"x\"] but got [\"other\" \"api\"]"
        );
        r.audiences = None;
        assert!(check_review(&r, &requested).unwrap_err().to_string().ends_with("but got []"));
        // Any one requested audience is enough.
        r.audiences = Some(aud(&["x"]));
        assert_eq!(check_review(&r, &aud(&["spire-server", "x"])), Ok(()));
        // No audience requested: the API server's own audience was checked, nothing to compare.
        assert_eq!(check_review(&r, &[]), Ok(()));
        // An unauthenticated review is refused later, as not authenticated.
        r.authenticated = Some(false);
        assert_eq!(check_review(&r, &requested), Ok(()));
    }

    #[test]
    fn identity_of_a_valid_token() {
        assert_eq!(
            identity(),
            TokenIdentity {
                namespace: "spire".into(),
                service_account: "spire-agent".into(),
                pod_name: "agent-x".into(),
                pod_uid: POD_UID.into(),
            }
        );
    }

    fn set_username(r: &mut TokenReviewStatus, name: &str) {
        r.user.as_mut().unwrap().username = Some(name.to_owned());
    }

    fn extras(r: &mut TokenReviewStatus) -> &mut BTreeMap<String, Vec<String>> {
        r.user.as_mut().unwrap().extra.as_mut().unwrap()
    }

    fn set_extra(r: &mut TokenReviewStatus, key: &str, values: &[&str]) {
        extras(r).insert(key.to_owned(), values.iter().map(|v| (*v).to_owned()).collect());
    }

    #[test]
    fn identity_refusals() {
        const UNAUTHENTICATED: &str = "token not authenticated according to TokenReview API";
        const USERNAME: &str = "fail to parse username from token review status: ";
        const NAME_MSG: &str = "fail to get pod name from token review status: ";
        const UID_MSG: &str = "fail to get pod UID from token review status: ";
        type Edit = fn(&mut TokenReviewStatus);
        let cases: &[(&str, Edit, String)] = &[
            ("not authenticated", |r| r.authenticated = Some(false), UNAUTHENTICATED.into()),
            ("authenticated unset", |r| r.authenticated = None, UNAUTHENTICATED.into()),
            ("no user", |r| r.user = None, format!("{USERNAME}empty username")),
            ("empty username", |r| set_username(r, ""), format!("{USERNAME}empty username")),
            (
                "not a service account",
                |r| set_username(r, "alice"),
                format!("{USERNAME}unexpected username format: alice"),
            ),
            (
                "five parts",
                |r| set_username(r, "system:serviceaccount:a:b:c"),
                format!("{USERNAME}unexpected username format: system:serviceaccount:a:b:c"),
            ),
            (
                "four parts of another kind",
                |r| set_username(r, "system:node:spire:spire-agent"),
                format!("{USERNAME}unexpected username format: system:node:spire:spire-agent"),
            ),
            (
                "missing namespace",
                |r| set_username(r, "system:serviceaccount::spire-agent"),
                format!("{USERNAME}missing namespace"),
            ),
            (
                "missing name",
                |r| set_username(r, "system:serviceaccount:spire:"),
                format!("{USERNAME}missing service account name"),
            ),
            (
                "service account not allowed",
                |r| set_username(r, "system:serviceaccount:default:default"),
                "\"default:default\" is not an allowed service account".into(),
            ),
            (
                "same name, other namespace",
                |r| set_username(r, "system:serviceaccount:other:spire-agent"),
                "\"other:spire-agent\" is not an allowed service account".into(),
            ),
            ("no extras", |r| r.user.as_mut().unwrap().extra = None, format!("{NAME_MSG}missing pod name")),
            (
                "two pod names",
                |r| set_extra(r, POD_NAME_EXTRA, &["a", "b"]),
                format!("{NAME_MSG}expected 1 name but got: 2"),
            ),
            (
                "no pod name value",
                |r| set_extra(r, POD_NAME_EXTRA, &[]),
                format!("{NAME_MSG}expected 1 name but got: 0"),
            ),
            ("empty pod name", |r| set_extra(r, POD_NAME_EXTRA, &[""]), format!("{NAME_MSG}pod name is empty")),
            (
                "missing pod UID",
                |r| {
                    extras(r).remove(POD_UID_EXTRA);
                },
                format!("{UID_MSG}missing pod UID"),
            ),
            (
                "two pod UIDs",
                |r| set_extra(r, POD_UID_EXTRA, &["a", "b"]),
                format!("{UID_MSG}expected 1 UID but got: 2"),
            ),
            ("empty pod UID", |r| set_extra(r, POD_UID_EXTRA, &[""]), format!("{UID_MSG}pod UID is empty")),
        ];
        for (name, edit, want) in cases {
            let mut r = review();
            edit(&mut r);
            let err = identify(&r, &cluster().service_account_allow_list).unwrap_err();
            assert_eq!(&err.to_string(), want, "{name}");
        }
    }

    #[test]
    fn pod_must_be_the_tokens_pod_and_scheduled() {
        assert_eq!(check_pod(&pod(), "prod", &identity()), Ok("node-1".to_owned()));

        let mut recreated = pod();
        recreated.metadata.uid = Some("99999999-0000-0000-0000-000000000000".into());
        let err = check_pod(&recreated, "prod", &identity()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("pod UID mismatch for pod \"agent-x\" in cluster \"prod\": token bound to pod UID \"{POD_UID}\"")
        );
        let mut no_uid = pod();
        no_uid.metadata.uid = None;
        assert!(matches!(check_pod(&no_uid, "prod", &identity()), Err(AttestError::PodUidMismatch { .. })));

        for spec in
            [None, Some(PodSpec::default()), Some(PodSpec { node_name: Some(String::new()), ..PodSpec::default() })]
        {
            let mut unscheduled = pod();
            unscheduled.spec = spec;
            assert_eq!(
                check_pod(&unscheduled, "prod", &identity()).unwrap_err().to_string(),
                "fail to get node from k8s API server: empty node name"
            );
        }
    }

    #[test]
    fn result_of_a_valid_attestation() {
        let td = TrustDomain::parse("example.org").unwrap();
        let r = attest_result(&td, "prod", &cluster(), &identity(), &pod(), &node()).unwrap();
        assert_eq!(r.agent_id.to_string(), format!("spiffe://example.org/spire/agent/k8s_psat/prod/{NODE_UID}"));
        assert!(r.can_reattest);
        assert_eq!(
            r.selector_values,
            [
                "cluster:prod".to_owned(),
                "agent_ns:spire".to_owned(),
                "agent_sa:spire-agent".to_owned(),
                "agent_pod_name:agent-x".to_owned(),
                format!("agent_pod_uid:{POD_UID}"),
                "agent_node_ip:10.0.0.7".to_owned(),
                "agent_node_name:node-1".to_owned(),
                format!("agent_node_uid:{NODE_UID}"),
            ]
        );
    }

    #[test]
    fn label_selectors_only_for_allowed_keys_present() {
        let td = TrustDomain::parse("example.org").unwrap();
        let mut c = cluster();
        c.allowed_node_label_keys = ["zone", "kubernetes.io/hostname", "absent"].map(String::from).into();
        c.allowed_pod_label_keys = ["app".to_owned(), "missing".to_owned()].into();
        let r = attest_result(&td, "prod", &c, &identity(), &pod(), &node()).unwrap();
        assert_eq!(
            r.selector_values[8..],
            [
                "agent_node_label:kubernetes.io/hostname:node-1".to_owned(),
                "agent_node_label:zone:eu-1".to_owned(),
                "agent_pod_label:app:spire-agent".to_owned(),
            ]
        );

        // Objects without labels give no label selectors.
        let (mut bare_pod, mut bare_node) = (pod(), node());
        bare_pod.metadata.labels = None;
        bare_node.metadata.labels = None;
        let r = attest_result(&td, "prod", &c, &identity(), &bare_pod, &bare_node).unwrap();
        assert_eq!(r.selector_values.len(), 8);
    }

    #[test]
    fn missing_host_ip_gives_an_empty_node_ip_selector() {
        let td = TrustDomain::parse("example.org").unwrap();
        let mut p = pod();
        p.status = None;
        let r = attest_result(&td, "prod", &cluster(), &identity(), &p, &node()).unwrap();
        assert_eq!(r.selector_values[5], "agent_node_ip:");
    }

    #[test]
    fn empty_node_uid_is_refused() {
        let td = TrustDomain::parse("example.org").unwrap();
        for uid in [None, Some(String::new())] {
            let mut n = node();
            n.metadata.uid = uid;
            let err = attest_result(&td, "prod", &cluster(), &identity(), &pod(), &n).unwrap_err();
            assert_eq!(err, AttestError::EmptyNodeUid);
            assert_eq!(err.to_string(), "node UID is empty");
        }
    }

    #[test]
    fn node_uid_that_cannot_be_in_an_id_is_refused() {
        let td = TrustDomain::parse("example.org").unwrap();
        let mut n = node();
        n.metadata.uid = Some("a b".into());
        let err = attest_result(&td, "prod", &cluster(), &identity(), &pod(), &n).unwrap_err();
        assert!(err.to_string().starts_with("failed to create agent ID: "), "{err}");
    }
}
