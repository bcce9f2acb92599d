//! GetAuthorizedEntries for an agent with 100 entries among 100,000: the handler's work (index
//! lookup and conversion to API messages) measured in-process, beside the conversion alone of the same
//! 100 entries as the baseline. Run: `cargo bench -p spire-server --bench authorized_entries`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spire_datastore::RegistrationEntry;
use spire_identity::{Selector, SpiffeId, TrustDomain};
use spire_server::api::convert::entry_proto;
use spire_server::authorized::EntryIndex;

const TOTAL: usize = 100_000;
const AGENTS: usize = 1_000;
const ROUNDS: usize = 2_000;

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn median_and_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn main() {
    let td = TrustDomain::parse("example.org").unwrap();
    let mut index = EntryIndex::new(td);
    // 1,000 agents with 100 workload entries each; every tenth entry has a child, to exercise recursion.
    for i in 0..TOTAL {
        let agent = i % AGENTS;
        let parent = if i % 10 == 9 {
            format!("spiffe://example.org/agent{agent}/w{}", i - 1)
        } else {
            format!("spiffe://example.org/spire/agent/join_token/t{agent}")
        };
        let mut e = RegistrationEntry::new(
            id(&format!("spiffe://example.org/agent{agent}/w{i}")),
            id(&parent),
            [Selector::new("unix", format!("uid:{i}")).unwrap()],
        );
        e.id = format!("entry-{i:06}");
        e.dns_names = vec![format!("w{i}.example.org")];
        index.upsert(e);
    }
    let agent = id("spiffe://example.org/spire/agent/join_token/t42");
    let found = index.authorized_entries(&agent, &[]);
    assert_eq!(found.len(), 100, "the agent sees exactly its 100 entries");

    let mut handler = Vec::with_capacity(ROUNDS);
    let mut baseline = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let entries = index.authorized_entries(black_box(&agent), &[]);
        let protos: Vec<_> = entries.iter().map(|e| entry_proto(e, None)).collect();
        black_box(protos);
        handler.push(t.elapsed());

        let t = Instant::now();
        let protos: Vec<_> = found.iter().map(|e: &Arc<RegistrationEntry>| entry_proto(e, None)).collect();
        black_box(protos);
        baseline.push(t.elapsed());
    }
    let (h50, h99) = median_and_p99(handler);
    let (b50, b99) = median_and_p99(baseline);
    println!("GetAuthorizedEntries, 100 of {TOTAL} entries, {ROUNDS} rounds");
    println!("  handler (index lookup + conversion): median {h50:?}, p99 {h99:?}");
    println!("  baseline (conversion of the same 100): median {b50:?}, p99 {b99:?}");
    println!("  lookup overhead: {:.2}x the conversion alone", h50.as_secs_f64() / b50.as_secs_f64());
}
