//! Per-IP rate limits, as SPIRE applies them on the TCP endpoint (`ratelimit { attestation, signing }`):
//! node attestation 1/s per IP, signing RPCs 500/s per IP, PostStatus 10/s. Local callers are never
//! limited. Token buckets with a burst equal to the rate, like Go's `rate.Limiter`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use tonic::Status;

/// A class of limited RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// AttestAgent.
    Attestation,
    /// BatchNewX509SVID, NewJWTSVID, RenewAgent, NewDownstreamX509CA.
    Signing,
    /// PublishJWTAuthority.
    PublishJwtKey,
    /// PostStatus.
    PostStatus,
}

impl Limit {
    /// Events per second.
    pub fn per_second(self) -> f64 {
        match self {
            Self::Attestation => 1.0,
            Self::Signing | Self::PublishJwtKey => 500.0,
            Self::PostStatus => 10.0,
        }
    }

    /// The class of a gRPC method path, if it is limited.
    pub fn for_path(path: &str) -> Option<Self> {
        let method = path.rsplit('/').next()?;
        Some(match method {
            "AttestAgent" => Self::Attestation,
            "BatchNewX509SVID" | "NewJWTSVID" | "RenewAgent" | "NewDownstreamX509CA" => Self::Signing,
            "PublishJWTAuthority" => Self::PublishJwtKey,
            "PostStatus" => Self::PostStatus,
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter state: one bucket per (class, IP).
#[derive(Debug)]
pub struct RateLimiter {
    attestation: bool,
    signing: bool,
    buckets: Mutex<HashMap<(Limit, IpAddr), Bucket>>,
}

/// Buckets kept before idle ones are dropped, so a scan from many addresses cannot grow memory.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// A limiter; `attestation` and `signing` switch those classes (SPIRE's config keys).
    pub fn new(attestation: bool, signing: bool) -> Self {
        Self { attestation, signing, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `n` events of `limit` for `ip`, or answers ResourceExhausted.
    pub fn check(&self, limit: Limit, ip: IpAddr, n: u32) -> Result<(), Status> {
        let enabled = match limit {
            Limit::Attestation => self.attestation,
            Limit::Signing | Limit::PublishJwtKey => self.signing,
            Limit::PostStatus => true,
        };
        if !enabled {
            return Ok(());
        }
        let rate = limit.per_second();
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < 60.0);
        }
        let bucket = buckets.entry((limit, ip)).or_insert(Bucket { tokens: rate, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if f64::from(n) > rate {
            return Err(Status::resource_exhausted(format!("rate ({n}) exceeds burst size ({rate})")));
        }
        if bucket.tokens < f64::from(n) {
            return Err(Status::resource_exhausted(format!(
                "rate limit exceeded for {limit:?} from {ip}: at most {rate} per second"
            )));
        }
        bucket.tokens -= f64::from(n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestation_is_one_per_second_per_ip() {
        let l = RateLimiter::new(true, true);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.check(Limit::Attestation, a, 1).unwrap();
        assert_eq!(l.check(Limit::Attestation, a, 1).unwrap_err().code(), tonic::Code::ResourceExhausted);
        l.check(Limit::Attestation, b, 1).unwrap();
        let off = RateLimiter::new(false, true);
        for _ in 0..5 {
            off.check(Limit::Attestation, a, 1).unwrap();
        }
    }

    #[test]
    fn signing_allows_bursts_up_to_the_rate() {
        let l = RateLimiter::new(true, true);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        l.check(Limit::Signing, ip, 400).unwrap();
        assert!(l.check(Limit::Signing, ip, 200).is_err());
        assert!(l.check(Limit::Signing, ip, 501).is_err());
        assert_eq!(Limit::for_path("/spire.api.server.svid.v1.SVID/BatchNewX509SVID"), Some(Limit::Signing));
        assert_eq!(Limit::for_path("/spire.api.server.entry.v1.Entry/ListEntries"), None);
    }
}
