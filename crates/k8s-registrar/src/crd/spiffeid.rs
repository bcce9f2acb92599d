//! The SpiffeID controller: each SpiffeID's entry is created, kept equal to its spec, recreated if
//! deleted behind its back, and deleted with the object (through the finalizer
//! [`FINALIZER`](super::resource::FINALIZER)).

use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, ResourceExt as _};
use spire_proto::spire::api::types::Entry;

use super::resource::{FINALIZER, SpiffeID};
use super::{Context, RESYNC};
use crate::spire_api::SpireError;

/// Why a SpiffeID could not be reconciled (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum SpiffeIdError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Spire(#[from] SpireError),
    /// The status could not be written.
    #[error("unable to update SPIFFE ID status: {0}")]
    Status(#[source] kube::Error),
    /// Adding or removing the finalizer, or the reconciliation inside it, failed.
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<SpiffeIdError>>),
}

/// Whether `existing` already is what `desired` asks for: selectors as a set, DNS names in order,
/// IDs, `downstream`, and federated trust domains as a set (SPIRE v1.3.6 compares all but the last).
pub fn entry_matches(existing: &Entry, desired: &Entry) -> bool {
    crate::spire_api::same_registration(existing, desired)
}

/// Reconciles one SpiffeID.
pub async fn reconcile(obj: Arc<SpiffeID>, ctx: Arc<Context>) -> Result<Action, SpiffeIdError> {
    let api: Api<SpiffeID> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Event::Apply(s) => apply(&api, &s, &ctx).await,
            Event::Cleanup(s) => cleanup(&s, &ctx).await,
        }
    })
    .await
    .map_err(|e| SpiffeIdError::Finalizer(Box::new(e)))
}

async fn apply(api: &Api<SpiffeID>, s: &SpiffeID, ctx: &Context) -> Result<Action, SpiffeIdError> {
    let (namespace, name) = (s.namespace().unwrap_or_default(), s.name_any());
    let desired = match s.spec.entry() {
        Ok(entry) => entry,
        Err(e) => {
            // Retrying cannot help: the object must change first.
            tracing::error!(%namespace, %name, error = %e, "Unable to update or create registration entry");
            return Ok(Action::await_change());
        }
    };
    let recorded = s.status.as_ref().and_then(|st| st.entry_id.clone());
    let existing = match &recorded {
        Some(id) => ctx.entries.get(id).await?,
        None => None,
    };
    let entry_id = match existing {
        Some(existing) => {
            if !entry_matches(&existing, &desired) {
                ctx.entries.update(Entry { id: existing.id.clone(), ..desired }).await?;
                tracing::info!(entry_id = %existing.id, spiffe_id = %s.spec.spiffe_id, %namespace, %name, "Updated entry");
            }
            existing.id
        }
        None => {
            if let Some(gone) = &recorded {
                tracing::warn!(entry_id = %gone, %namespace, %name, "Entry not found on the server; recreating it");
            }
            let created = ctx.entries.create(desired.clone()).await?;
            let id = created.entry.id.clone();
            if created.existed && !entry_matches(&created.entry, &desired) {
                ctx.entries.update(Entry { id: id.clone(), ..desired }).await?;
            }
            tracing::info!(entry_id = %id, spiffe_id = %s.spec.spiffe_id, %namespace, %name, existed = created.existed, "Created entry");
            id
        }
    };
    if recorded.as_deref() != Some(entry_id.as_str()) {
        // A merge patch of the status subresource: no resourceVersion, so no conflict to retry.
        let patch = serde_json::json!({ "status": { "entryId": entry_id } });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(SpiffeIdError::Status)?;
    }
    Ok(Action::requeue(RESYNC))
}

async fn cleanup(s: &SpiffeID, ctx: &Context) -> Result<Action, SpiffeIdError> {
    if let Some(id) = s.status.as_ref().and_then(|st| st.entry_id.clone()) {
        ctx.entries.delete(vec![id.clone()]).await?;
        tracing::info!(entry_id = %id, spiffe_id = %s.spec.spiffe_id, "Deleted entry");
    }
    tracing::info!(namespace = s.namespace().unwrap_or_default(), name = s.name_any(), "Finalized SPIFFE ID Resource");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use spire_proto::spire::api::types::Spiffeid;

    use super::*;
    use crate::workload_id::selector;

    fn entry() -> Entry {
        Entry {
            id: "e".into(),
            spiffe_id: Some(Spiffeid { trust_domain: "example.org".into(), path: "/w".into() }),
            parent_id: Some(Spiffeid { trust_domain: "example.org".into(), path: "/p".into() }),
            selectors: vec![selector("k8s", "ns:a"), selector("k8s", "pod-uid:u")],
            dns_names: vec!["a".into(), "b".into()],
            ..Default::default()
        }
    }

    #[test]
    fn selectors_compare_as_a_set() {
        let mut other = entry();
        other.selectors.reverse();
        other.id = "x".into();
        assert!(entry_matches(&entry(), &other));
    }

    #[test]
    fn any_difference_is_seen() {
        type Change = Box<dyn Fn(&mut Entry)>;
        let changes: Vec<Change> = vec![
            Box::new(|e| e.dns_names.reverse()),
            Box::new(|e| e.dns_names.push("c".into())),
            Box::new(|e| e.selectors.push(selector("k8s", "sa:x"))),
            Box::new(|e| e.selectors[0].value = "ns:b".into()),
            Box::new(|e| e.spiffe_id.as_mut().unwrap().path = "/v".into()),
            Box::new(|e| e.parent_id = None),
            Box::new(|e| e.downstream = true),
            Box::new(|e| e.federates_with = vec!["other.org".into()]),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = entry();
            change(&mut changed);
            assert!(!entry_matches(&changed, &entry()), "change {i} unseen");
        }
        let mut dup = entry();
        dup.selectors.push(selector("k8s", "ns:a"));
        assert!(!entry_matches(&dup, &entry()), "a repeated selector is a difference");
    }
}
