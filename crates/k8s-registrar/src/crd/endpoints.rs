//! The Endpoints controller (`add_svc_dns_name`): every pod a Service's Endpoints target gets
//! `<service>.<namespace>.svc` among its SpiffeID's DNS names; when the Endpoints go, the name is
//! removed from the namespace's SpiffeIDs. (Endpoints rather than EndpointSlices, as SPIRE v1.3.6.)

use std::sync::Arc;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};

use super::resource::{POD_UID_LABEL, SpiffeID};
use super::{Context, RESYNC};

/// How soon to look again when a targeted pod has no SpiffeID yet.
const MISSING_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Why Endpoints could not be reconciled (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// The Kubernetes API failed.
    #[error("service DNS names: {0}")]
    Kube(#[from] kube::Error),
}

/// `<name>.<namespace>.svc`.
pub fn service_dns_name(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc")
}

/// The pods (name, UID) the Endpoints' ready addresses target.
pub fn target_pods(endpoints: &Endpoints) -> Vec<(String, String)> {
    endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.target_ref.as_ref())
        .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
        .filter_map(|r| Some((r.name.clone()?, r.uid.clone()?)))
        .collect()
}

/// Reconciles one Endpoints object.
pub async fn reconcile(endpoints: Arc<Endpoints>, ctx: Arc<Context>) -> Result<Action, EndpointsError> {
    let namespace = endpoints.namespace().unwrap_or_default();
    if ctx.ids.namespace_disabled(&namespace) {
        return Ok(Action::await_change());
    }
    let svc = service_dns_name(&endpoints.name_any(), &namespace);
    let api: Api<SpiffeID> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut missing = false;
    for (pod, uid) in target_pods(&endpoints) {
        let found = api.list(&ListParams::default().labels(&format!("{POD_UID_LABEL}={uid}"))).await?;
        if found.items.is_empty() {
            missing |= will_get_spiffe_id(&ctx, &namespace, &pod).await;
            continue;
        }
        for mut s in found.items {
            if s.spec.dns_names.contains(&svc) {
                continue;
            }
            s.spec.dns_names.push(svc.clone());
            // A replace: a concurrent change conflicts and is retried, rather than overwritten.
            api.replace(&s.name_any(), &PostParams::default(), &s).await?;
            tracing::info!(spiffe_id = s.name_any(), %namespace, dns_name = %svc, "Adding DNS name");
        }
    }
    Ok(Action::requeue(if missing { MISSING_RETRY } else { RESYNC }))
}

/// Whether the pod controller is expected to write a SpiffeID for `namespace/name` (so it is worth
/// waiting for).
async fn will_get_spiffe_id(ctx: &Context, namespace: &str, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    match pods.get_opt(name).await {
        Ok(Some(pod)) => matches!(ctx.ids.for_pod(&pod), Ok(Some(_))),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Removes a deleted Endpoints' service name from its namespace's SpiffeIDs, as SPIRE does when its
/// Endpoints reconciler finds the object gone. Best effort: a deletion missed while the registrar
/// was down leaves the name until the SpiffeID is rewritten.
pub async fn remove_on_delete(ctx: Arc<Context>) {
    let api: Api<Endpoints> = Api::all(ctx.client.clone());
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Delete(endpoints)) = event else { continue };
        let namespace = endpoints.namespace().unwrap_or_default();
        if ctx.ids.namespace_disabled(&namespace) {
            continue;
        }
        let svc = service_dns_name(&endpoints.name_any(), &namespace);
        if let Err(e) = remove_name(&ctx, &namespace, &svc).await {
            tracing::error!(%namespace, dns_name = %svc, error = %e, "Unable to delete DNS names in SpiffeID CRD");
        }
    }
}

async fn remove_name(ctx: &Context, namespace: &str, svc: &str) -> Result<(), kube::Error> {
    let api: Api<SpiffeID> = Api::namespaced(ctx.client.clone(), namespace);
    for mut s in api.list(&ListParams::default()).await?.items {
        if !s.spec.dns_names.iter().any(|n| n == svc) {
            continue;
        }
        s.spec.dns_names.retain(|n| n != svc);
        api.replace(&s.name_any(), &PostParams::default(), &s).await?;
        tracing::info!(spiffe_id = s.name_any(), namespace, dns_name = svc, "Removing DNS name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_pods_of_ready_addresses() {
        let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "subsets": [{
                "addresses": [
                    {"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "web-0", "uid": "u0"}},
                    {"ip": "10.0.0.2"},
                    {"ip": "10.0.0.3", "targetRef": {"kind": "Node", "name": "n", "uid": "n1"}}
                ],
                "notReadyAddresses": [{"ip": "10.0.0.4", "targetRef": {"kind": "Pod", "name": "web-1", "uid": "u1"}}]
            }]
        }))
        .unwrap();
        assert_eq!(target_pods(&endpoints), [("web-0".to_owned(), "u0".to_owned())]);
        assert!(target_pods(&Endpoints::default()).is_empty());
        assert_eq!(service_dns_name("web", "prod"), "web.prod.svc");
    }
}
