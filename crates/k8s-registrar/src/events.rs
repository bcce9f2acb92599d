//! What the modes share to speak to operators through the cluster: Warning Events on the objects
//! they cannot register, and the host name that identifies this replica (in Events and in the
//! leader-election Lease).

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// The API server refuses an Event whose note is longer than this (in bytes).
const NOTE_LIMIT: usize = 1024;

/// This machine's host name (the pod name in a cluster), if it can be read.
pub fn host_name() -> Option<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(host.trim().to_owned()).filter(|h| !h.is_empty())
}

/// Records a Warning Event `reason` on `obj` with the note `note` (cut to what the API accepts).
/// Best effort: failing to record is only logged.
pub async fn warn<K: Resource<DynamicType = ()>>(recorder: &Recorder, obj: &K, reason: &str, note: &str) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(truncate(note, NOTE_LIMIT).to_owned()),
        action: "Register".into(),
        secondary: None,
    };
    let reference = obj.object_ref(&());
    if let Err(e) = recorder.publish(&event, &reference).await {
        tracing::debug!(
            kind = reference.kind.as_deref().unwrap_or_default(),
            namespace = reference.namespace.as_deref().unwrap_or_default(),
            name = reference.name.as_deref().unwrap_or_default(),
            %reason,
            error = %e,
            "Unable to record an Event"
        );
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", NOTE_LIMIT), "short");
        let long = "é".repeat(NOTE_LIMIT);
        let cut = truncate(&long, NOTE_LIMIT);
        assert_eq!(cut.len(), NOTE_LIMIT);
        let odd = format!("a{long}");
        let cut = truncate(&odd, NOTE_LIMIT);
        assert_eq!(cut.len(), NOTE_LIMIT - 1, "a two-byte character is not split");
        assert!(cut.starts_with('a'));
    }

    #[test]
    fn host_name_is_trimmed_or_absent() {
        if let Some(host) = host_name() {
            assert!(!host.is_empty());
            assert_eq!(host, host.trim());
        }
    }
}
