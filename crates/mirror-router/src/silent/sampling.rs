//! Sampling: whether a request is mirrored, at random or deterministically by a key.

use mirror_core::ChatRequest;

/// Decides whether a request routed to a deployment with rate `rate` is mirrored.
///
/// With a sampling key the decision is deterministic (FNV-1a of the key), so every request of a
/// conversation is decided alike; without one it is random.
pub(crate) fn sampled_in(rate: f64, key: Option<&str>) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    let point = match key {
        Some(key) => {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in key.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            // Mix the high bits down so similar keys spread evenly.
            hash ^= hash >> 33;
            hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
            hash ^= hash >> 33;
            #[allow(clippy::cast_precision_loss)]
            let point = (hash >> 11) as f64 / (1u64 << 53) as f64;
            point
        }
        None => fastrand::f64(),
    };
    point < rate
}

/// The sampling key of a request: its `user`, else the configured metadata key's value.
pub(crate) fn sample_key<'a>(
    request: &'a ChatRequest,
    metadata_key: Option<&str>,
) -> Option<&'a str> {
    request.user.as_deref().or_else(|| {
        let key = metadata_key?;
        request.metadata.as_ref()?.get(key)?.as_str()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_sampling_by_key_holds_rate() {
        let rate = 0.3;
        let total = 20_000;
        let hits = (0..total)
            .filter(|i| sampled_in(rate, Some(&format!("user-{i}"))))
            .count();
        // Binomial standard deviation is about 65 here; allow six of them.
        let expected = 6_000;
        assert!(hits.abs_diff(expected) < 400, "{hits} sampled of {total}");
        // The same key always decides the same way.
        for i in 0..100 {
            let key = format!("conversation-{i}");
            let first = sampled_in(rate, Some(&key));
            assert!((0..10).all(|_| sampled_in(rate, Some(&key)) == first));
        }
    }

    #[test]
    fn random_sampling_holds_rate() {
        let hits = (0..20_000).filter(|_| sampled_in(0.5, None)).count();
        assert!(hits.abs_diff(10_000) < 500, "{hits}");
        assert!(!sampled_in(0.0, None));
        assert!(sampled_in(1.0, Some("anything")));
    }
}
