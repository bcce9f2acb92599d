//! When an X509-SVID, the agent's own or a workload's, is renewed (SPIRE's `rotationutil`): once half
//! its life is gone, or, with `availability_target`, once no more than that target is left, so that a
//! server outage starting at renewal time can last that long before the SVID expires.

use std::time::Duration;

/// The availability target only applies to SVIDs that live at least this much longer than it.
const TARGET_MARGIN: i64 = 12 * 3600;

/// The renewal rule, from the agent's `availability_target`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationPolicy {
    availability_target: Option<i64>,
}

/// Random spread of renewal times, so that many agents do not renew at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    /// −10..=10: percent of the half-life added to it.
    pub half_life_percent: i64,
    /// 0..600: seconds added to the availability target.
    pub target_seconds: i64,
}

impl Jitter {
    /// No spread (workload SVIDs, tests).
    pub const NONE: Jitter = Jitter { half_life_percent: 0, target_seconds: 0 };

    /// A new draw from a small linear congruential generator held by the caller.
    pub fn draw(state: &mut u64) -> Self {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let bits = *state >> 33;
        Jitter { half_life_percent: (bits % 21) as i64 - 10, target_seconds: ((bits >> 5) % 600) as i64 }
    }
}

impl RotationPolicy {
    /// The rule for an agent configured with `availability_target` (SPIRE requires at least 24h).
    pub fn new(availability_target: Option<Duration>) -> Self {
        Self { availability_target: availability_target.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)) }
    }

    /// Whether an SVID valid from `issued` to `expires` (Unix seconds) is due for renewal at `now`.
    pub fn due(&self, issued: i64, expires: i64, now: i64, jitter: Jitter) -> bool {
        let lifetime = expires - issued;
        let half = lifetime / 2;
        if now >= issued + half + half * jitter.half_life_percent / 100 {
            return true;
        }
        match self.availability_target {
            Some(target) if lifetime - target > TARGET_MARGIN => expires - now <= target + jitter.target_seconds,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    #[test]
    fn half_life_without_a_target() {
        let p = RotationPolicy::default();
        assert!(!p.due(0, 10 * H, 5 * H - 1, Jitter::NONE));
        assert!(p.due(0, 10 * H, 5 * H, Jitter::NONE));
        // Jitter moves the half-life by at most 10%.
        assert!(p.due(0, 10 * H, 4 * H + 30 * 60, Jitter { half_life_percent: -10, target_seconds: 0 }));
        assert!(!p.due(0, 10 * H, 5 * H, Jitter { half_life_percent: 10, target_seconds: 0 }));
    }

    #[test]
    fn the_target_renews_earlier_when_the_half_life_would_leave_less() {
        // 40h SVIDs, 24h target: renewed with 24h left (at 16h), not at the half-life (20h).
        let p = RotationPolicy::new(Some(Duration::from_secs(24 * 3600)));
        assert!(!p.due(0, 40 * H, 16 * H - 1, Jitter::NONE));
        assert!(p.due(0, 40 * H, 16 * H, Jitter::NONE));
        // Its jitter only brings renewal forward, by up to 10 minutes.
        assert!(p.due(0, 40 * H, 16 * H - 599, Jitter { half_life_percent: 0, target_seconds: 599 }));
    }

    #[test]
    fn the_target_is_ignored_for_svids_not_12h_longer_than_it() {
        let p = RotationPolicy::new(Some(Duration::from_secs(24 * 3600)));
        // 36h: 36 − 24 = 12h, not more: the half-life (18h) rules.
        assert!(!p.due(0, 36 * H, 12 * H, Jitter::NONE));
        assert!(p.due(0, 36 * H, 18 * H, Jitter::NONE));
        // Short-lived SVIDs keep renewing at half-life.
        assert!(p.due(0, H, H / 2, Jitter::NONE));
        // Long ones too: at 7 days the half-life comes first.
        assert!(p.due(0, 168 * H, 84 * H, Jitter::NONE));
    }

    #[test]
    fn jitter_draws_stay_in_range() {
        let mut state = 42;
        for _ in 0..1000 {
            let j = Jitter::draw(&mut state);
            assert!((-10..=10).contains(&j.half_life_percent));
            assert!((0..600).contains(&j.target_seconds));
        }
    }
}
