//! Tests of `cache.rs`.

use super::*;

fn plan(cache: &ResponseCache, text: &str, control: &CacheControl) -> CachePlan {
    let mut body = Map::new();
    body.insert("input".to_owned(), Value::String(text.to_owned()));
    cache
        .plan(CallType::Embedding, "g", 1, &body, control)
        .expect("cached")
}

#[test]
fn bounded_by_entries_oldest_first() {
    let cache = ResponseCache::with_store(
        &CacheConfig {
            max_entries: Some(SHARDS),
            ..CacheConfig::default()
        },
        None,
    );
    let control = CacheControl::default();
    for i in 0..SHARDS * 20 {
        cache.put(&plan(&cache, &i.to_string(), &control), vec![0; 10]);
    }
    let stats = cache.stats();
    assert!(stats.entries <= SHARDS as u64, "{stats:?}");
    assert_eq!(stats.stores, (SHARDS * 20) as u64);
    assert_eq!(stats.evictions + stats.entries, stats.stores);
    // The newest answer is still there.
    let last = plan(&cache, &(SHARDS * 20 - 1).to_string(), &control);
    assert!(cache.get_local(&last).is_some());
}

#[test]
fn bounded_by_bytes() {
    let cache = ResponseCache::with_store(
        &CacheConfig {
            max_bytes: Some(SHARDS as u64 * 100),
            ..CacheConfig::default()
        },
        None,
    );
    let control = CacheControl::default();
    for i in 0..1000 {
        cache.put(&plan(&cache, &i.to_string(), &control), vec![0; 40]);
    }
    assert!(cache.stats().bytes <= SHARDS as u64 * 100);
    // An answer bigger than a shard is not stored at all.
    cache.put(&plan(&cache, "big", &control), vec![0; 1000]);
    assert!(cache.get_local(&plan(&cache, "big", &control)).is_none());
}

#[test]
fn controls_are_read_by_litellm_names_and_bad_ones_named() {
    let control = CacheControl::parse(&serde_json::json!(
        {"no-cache": true, "no-store": true, "ttl": 5, "s-maxage": 2, "namespace": "n"}
    ))
    .expect("valid");
    assert!(control.no_cache && control.no_store);
    assert_eq!(control.ttl, Some(Duration::from_secs(5)));
    assert_eq!(control.max_age, Some(Duration::from_secs(2)));
    let error = CacheControl::parse(&serde_json::json!({"no_cache": true})).unwrap_err();
    assert!(error.contains("cache.no_cache"), "{error}");
    let error = CacheControl::parse(&serde_json::json!({"ttl": "x"})).unwrap_err();
    assert!(error.contains("cache.ttl"), "{error}");
}

#[test]
fn namespaces_and_groups_separate_keys() {
    let cache = ResponseCache::with_store(&CacheConfig::default(), None);
    let body = Map::new();
    let control = CacheControl::default();
    let a = cache.plan(CallType::Completion, "a", 1, &body, &control);
    let b = cache.plan(CallType::Completion, "b", 1, &body, &control);
    assert_ne!(a.map(|p| p.key), b.map(|p| p.key));
    let spaced = CacheControl {
        namespace: Some("team".to_owned()),
        ..CacheControl::default()
    };
    let key = cache
        .plan(CallType::Completion, "a", 1, &body, &spaced)
        .map(|p| p.key)
        .unwrap_or_default();
    assert!(key.starts_with("team:"), "{key}");
    // More messages than `max_messages` (4) skip the cache, as in LiteLLM.
    assert!(cache
        .plan(CallType::Completion, "a", 5, &body, &control)
        .is_none());
}
