//! When a trust domain's bundle is fetched next (SPIRE's `calculateNextUpdate` and
//! `bundleutil.CalculateRefreshHint`): four attempts per refresh hint, the hint being the bundle's
//! `spiffe_refresh_hint`, or a tenth of its shortest-lived X.509 authority when it has none, and
//! never under a minute.

use std::time::Duration;

use spire_datastore::StoredBundle;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Attempts per refresh hint, so that a short outage of the endpoint does not let the bundle go
/// stale for a whole hint.
const ATTEMPTS_PER_REFRESH_HINT: u32 = 4;

/// The share of an authority's lifetime used as the hint when the bundle gives none.
const LIFETIME_FRACTION: u32 = 10;

/// SPIRE's smallest refresh hint (`bundleutil.MinimumRefreshHint`); also the retry period when
/// there is no bundle at all to take a hint from.
pub const MINIMUM_REFRESH_HINT: Duration = Duration::from_secs(60);

/// The longest wait scheduled, so that an absurd hint cannot overflow a timer.
const MAXIMUM_REFRESH_HINT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The refresh hint of `bundle`, at least `minimum`.
pub fn refresh_hint(bundle: &StoredBundle, minimum: Duration) -> Duration {
    let hint = if bundle.refresh_hint > 0 {
        Duration::from_secs(bundle.refresh_hint.unsigned_abs())
    } else {
        bundle
            .x509_authorities
            .iter()
            .filter_map(|a| lifetime(&a.der))
            .min()
            .map(|shortest| shortest / LIFETIME_FRACTION)
            .unwrap_or_default()
    };
    hint.clamp(minimum, MAXIMUM_REFRESH_HINT.max(minimum))
}

/// How long to wait before the next fetch, given the bundle we now hold.
pub fn next_update(bundle: &StoredBundle, minimum: Duration) -> Duration {
    refresh_hint(bundle, minimum) / ATTEMPTS_PER_REFRESH_HINT
}

fn lifetime(der: &[u8]) -> Option<Duration> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let v = cert.validity();
    let secs = v.not_after.timestamp().checked_sub(v.not_before.timestamp())?;
    Some(Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_datastore::X509Authority;
    use spire_identity::TrustDomain;

    fn bundle(refresh_hint: i64, lifetimes_days: &[i64]) -> StoredBundle {
        let x509_authorities = lifetimes_days
            .iter()
            .map(|&days| {
                let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
                params.not_before = rcgen::date_time_ymd(2026, 1, 1);
                params.not_after = params.not_before + time_days(days);
                let key = rcgen::KeyPair::generate().unwrap();
                X509Authority { der: params.self_signed(&key).unwrap().der().to_vec(), tainted: false }
            })
            .collect();
        StoredBundle { x509_authorities, refresh_hint, ..StoredBundle::new(TrustDomain::parse("example.org").unwrap()) }
    }

    fn time_days(days: i64) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(days).unwrap() * 86400)
    }

    #[test]
    fn hint_then_lifetime_then_minimum() {
        let min = MINIMUM_REFRESH_HINT;
        // The published hint, quartered.
        assert_eq!(next_update(&bundle(300, &[10]), min), Duration::from_secs(75));
        // Under the minimum: the minimum, quartered (SPIRE polls every 15 s at most).
        assert_eq!(next_update(&bundle(5, &[]), min), Duration::from_secs(15));
        // No hint: a tenth of the shortest CA lifetime (1 day / 10), quartered.
        assert_eq!(next_update(&bundle(0, &[10, 1]), min), Duration::from_secs(86400 / 10 / 4));
        // Nothing to go by: the minimum.
        assert_eq!(next_update(&bundle(0, &[]), min), Duration::from_secs(15));
        // Absurd hints are capped.
        assert_eq!(refresh_hint(&bundle(i64::MAX, &[]), min), MAXIMUM_REFRESH_HINT);
    }
}
