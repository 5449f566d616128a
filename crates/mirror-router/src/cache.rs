//! The response cache (LiteLLM's `litellm_settings.cache` with `cache_params`): an exact-match
//! cache of whole answers, keyed on the request a model group would send upstream.
//!
//! Only primary calls read or write it: a silent copy always calls its model (a shadow that read
//! the cache would measure nothing). The silent copies of a request answered from the cache are
//! still fired, exactly as on a miss: mirroring measures production traffic, cached or not.
//!
//! With `type: redis` the answers live in Redis, shared by every instance that names it: a lookup
//! is bounded by `REDIS_TIMEOUT` (a slow Redis is a miss), and a store runs in the background,
//! bounded by `REDIS_MAX_PENDING`.
//!
//! The in-memory store is sharded by key, each shard behind its own short lock, and bounded by
//! entries and bytes; the oldest entry of a full shard is evicted first (FIFO, which with one TTL
//! for all entries evicts what would expire first). No cache crate is in the lock file and the
//! store is this one file, so none was added.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mirror_core::{CallType, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// LiteLLM's `max_messages` default: a request with more messages skips the cache.
const DEFAULT_MAX_MESSAGES: usize = 4;
const DEFAULT_MAX_ENTRIES: usize = 10_000;
const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
const SHARDS: usize = 16;

/// `litellm_settings.cache_params`: LiteLLM's keys Mirror implements, plus the in-memory bounds.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CacheConfig {
    /// `local` (in memory) or `redis`. Absent: `local` (LiteLLM's proxy defaults to `redis`; Mirror
    /// does not assume a Redis that was not named).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Redis host.
    #[serde(default)]
    pub host: Option<String>,
    /// Redis port (default 6379).
    #[serde(default)]
    pub port: Option<u16>,
    /// Redis password.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Prefixes every key, so several gateways can share one Redis without sharing answers.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Seconds an answer is kept; none keeps it until evicted.
    #[serde(default)]
    pub ttl: Option<f64>,
    /// LiteLLM's TTL of its in-memory layer; used when `ttl` is not set.
    #[serde(default)]
    pub default_in_memory_ttl: Option<f64>,
    /// LiteLLM's TTL of its Redis layer; used for Redis when `ttl` is not set.
    #[serde(default)]
    pub default_in_redis_ttl: Option<f64>,
    /// `default_on` (default), or `default_off`: only requests with `cache: {"use-cache": true}`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The call types cached (LiteLLM's names; default all). Mirror caches `completion` and
    /// `embedding` (and their `a` forms).
    #[serde(default)]
    pub supported_call_types: Option<Vec<String>>,
    /// A request with more messages than this skips the cache (LiteLLM's default: 4).
    #[serde(default)]
    pub max_messages: Option<usize>,
    /// Ours: at most this many answers in memory (default 10 000).
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// Ours: at most this many bytes of answers in memory (default 64 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Other keys (LiteLLM's backend settings: `s3_*`, `qdrant_*`, `similarity_threshold`, ...):
    /// refused by name in `check`, after `type`, so a backend Mirror lacks is named first.
    #[serde(flatten)]
    other: BTreeMap<String, serde::de::IgnoredAny>,
}

/// The `cache_params` keys Mirror implements.
const CACHE_KEYS: &[&str] = &[
    "type",
    "host",
    "port",
    "password",
    "namespace",
    "ttl",
    "default_in_memory_ttl",
    "default_in_redis_ttl",
    "mode",
    "supported_call_types",
    "max_messages",
    "max_entries",
    "max_bytes",
];

impl CacheConfig {
    /// Checks the values; returns the key at fault and why.
    ///
    /// # Errors
    ///
    /// The `cache_params` key that is wrong, and what is wrong with it.
    pub fn check(&self) -> Result<(), (String, String)> {
        let at = |key: &str| format!("litellm_settings.cache_params.{key}");
        match self.kind.as_deref() {
            None | Some("local" | "redis") => {}
            Some(other) => {
                return Err((
                    at("type"),
                    format!(
                        "cache type `{other}` is not supported (Mirror caches in memory, `local`, \
                         or in Redis, `redis`)"
                    ),
                ))
            }
        }
        if self.kind.as_deref() == Some("redis") {
            self.redis_address()?;
        }
        if let Some(key) = self.other.keys().next() {
            return Err((
                at(key),
                format!(
                    "`{key}` is not supported (Mirror's cache settings: {})",
                    CACHE_KEYS.join(", ")
                ),
            ));
        }
        for (key, value) in [
            ("ttl", self.ttl),
            ("default_in_memory_ttl", self.default_in_memory_ttl),
            ("default_in_redis_ttl", self.default_in_redis_ttl),
        ] {
            if let Some(seconds) = value {
                if !(seconds.is_finite() && seconds > 0.0 && seconds <= 1e9) {
                    return Err((
                        at(key),
                        format!("must be a number of seconds above 0, got {seconds}"),
                    ));
                }
            }
        }
        match self.mode.as_deref() {
            None | Some("default_on" | "default_off") => {}
            Some(other) => {
                return Err((
                    at("mode"),
                    format!("must be `default_on` or `default_off`, got `{other}`"),
                ))
            }
        }
        for name in self.supported_call_types.iter().flatten() {
            if call_type_of(name).is_none() && !KNOWN_UNCACHED.contains(&name.as_str()) {
                return Err((
                    at("supported_call_types"),
                    format!("unknown call type `{name}`"),
                ));
            }
        }
        if self.max_entries == Some(0) || self.max_bytes == Some(0) {
            return Err((
                at("max_entries"),
                "`max_entries` and `max_bytes` must be above 0".to_owned(),
            ));
        }
        Ok(())
    }
}

impl CacheConfig {
    /// The Redis server of `type: redis`: `host`, `port`, `password`, else LiteLLM's `REDIS_HOST`,
    /// `REDIS_PORT`, `REDIS_PASSWORD`.
    fn redis_address(&self) -> Result<redis::ConnectionInfo, (String, String)> {
        use redis::{ConnectionAddr, IntoConnectionInfo};
        let at = |key: &str| format!("litellm_settings.cache_params.{key}");
        let host = match &self.host {
            Some(host) => host.trim().to_owned(),
            None => std::env::var("REDIS_HOST").map_err(|_| {
                (
                    at("host"),
                    "`type: redis` needs `host` (or REDIS_HOST in the environment)".to_owned(),
                )
            })?,
        };
        if host.is_empty() {
            return Err((at("host"), "must not be empty".to_owned()));
        }
        let port = match self.port {
            Some(port) => port,
            None => match std::env::var("REDIS_PORT") {
                Ok(port) => port.trim().parse().map_err(|_| {
                    (
                        at("port"),
                        format!("REDIS_PORT `{port}` is not a port number"),
                    )
                })?,
                Err(_) => 6379,
            },
        };
        let mut info = ConnectionAddr::Tcp(host.clone(), port)
            .into_connection_info()
            .map_err(|_| (at("host"), format!("not a usable Redis host `{host}`")))?;
        let password = self
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .or_else(|| std::env::var("REDIS_PASSWORD").ok());
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        Ok(info)
    }
}

/// LiteLLM call types Mirror serves without caching (or does not serve).
const KNOWN_UNCACHED: &[&str] = &[
    "transcription",
    "atranscription",
    "text_completion",
    "atext_completion",
    "rerank",
    "arerank",
    "responses",
    "aresponses",
    "anthropic_messages",
    "aanthropic_messages",
];

fn call_type_of(name: &str) -> Option<CallType> {
    match name {
        "completion" | "acompletion" => Some(CallType::Completion),
        "embedding" | "aembedding" => Some(CallType::Embedding),
        _ => None,
    }
}

/// Counters of the response cache, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Whether a cache is configured.
    pub enabled: bool,
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests looked up and not found (or found expired).
    pub misses: u64,
    /// Answers stored.
    pub stores: u64,
    /// Answers evicted to stay within `max_entries` / `max_bytes`.
    pub evictions: u64,
    /// Redis exchanges that failed or timed out (the request then went to a provider), and stores
    /// dropped because too many were pending.
    pub errors: u64,
    /// Answers held now.
    pub entries: u64,
    /// Bytes of answers held now.
    pub bytes: u64,
}

/// Whether a routed answer came from the response cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// No cache applies: none is configured, or this request skips it.
    #[default]
    Off,
    /// Looked up (or `no-cache`) and answered by a provider.
    Miss,
    /// Answered from the cache; `key` is the cache key (LiteLLM's `x-litellm-cache-key`).
    Hit {
        /// The cache key.
        key: String,
    },
}

/// What a request's `cache` field asks (LiteLLM's `DynamicCacheControl`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CacheControl {
    /// `no-cache`: do not answer from the cache (the answer is still stored).
    pub(crate) no_cache: bool,
    /// `no-store`: do not store the answer.
    pub(crate) no_store: bool,
    /// `ttl`: seconds to keep this answer.
    pub(crate) ttl: Option<Duration>,
    /// `s-maxage`: only answer from entries younger than this.
    pub(crate) max_age: Option<Duration>,
    /// `namespace`: this request's key space.
    pub(crate) namespace: Option<String>,
    /// `use-cache`: opts in under `mode: default_off`.
    pub(crate) use_cache: bool,
}

impl CacheControl {
    /// Reads a request's `cache` field; names the first value that is not what LiteLLM takes.
    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("`cache` must be an object such as {\"no-cache\": true}".to_owned());
        };
        let mut control = CacheControl::default();
        for (key, value) in map {
            let flag = || {
                value
                    .as_bool()
                    .ok_or_else(|| format!("`cache.{key}` must be true or false"))
            };
            let seconds = || {
                value
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("`cache.{key}` must be a number of seconds"))
            };
            match key.as_str() {
                "no-cache" => control.no_cache = flag()?,
                "no-store" => control.no_store = flag()?,
                "use-cache" => control.use_cache = flag()?,
                "ttl" => control.ttl = Some(seconds()?),
                "s-maxage" | "s-max-age" => control.max_age = Some(seconds()?),
                "namespace" => {
                    control.namespace = Some(
                        value
                            .as_str()
                            .ok_or_else(|| "`cache.namespace` must be a string".to_owned())?
                            .to_owned(),
                    );
                }
                other => {
                    return Err(format!(
                        "unknown `cache.{other}`; LiteLLM's controls are no-cache, no-store, \
                         ttl, s-maxage, namespace and use-cache"
                    ))
                }
            }
        }
        Ok(control)
    }
}

/// One lookup's plan: the key, and what the request allows.
#[derive(Debug)]
pub(crate) struct CachePlan {
    pub(crate) key: String,
    pub(crate) read: bool,
    pub(crate) store: bool,
    pub(crate) ttl: Option<Duration>,
    pub(crate) max_age: Option<Duration>,
}

/// The response cache.
pub(crate) struct ResponseCache {
    shards: Box<[Mutex<Shard>]>,
    max_entries: usize,
    max_bytes: u64,
    ttl: Option<Duration>,
    namespace: Option<String>,
    completion: bool,
    embedding: bool,
    default_off: bool,
    max_messages: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    evictions: AtomicU64,
    seq: AtomicU64,
    /// With `type: redis`, the answers live there and the shards stay empty.
    redis: Option<RedisStore>,
}

/// The longest a Redis lookup or store may take; a slower Redis is a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// At most this many Redis stores in flight; more are dropped and counted as errors.
const REDIS_MAX_PENDING: usize = 256;

struct RedisStore {
    connection: redis::aio::ConnectionManager,
    /// Stores in flight, errors, and successful stores (shared with the store tasks).
    counters: Arc<RedisCounters>,
}

#[derive(Default)]
struct RedisCounters {
    pending: std::sync::atomic::AtomicUsize,
    errors: AtomicU64,
    stores: AtomicU64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<[u8; 32], Entry>,
    /// Insertion order, with each insertion's sequence number (an overwritten key leaves a stale
    /// pair here, skipped when it comes up).
    order: VecDeque<([u8; 32], u64)>,
    bytes: u64,
}

struct Entry {
    value: Arc<[u8]>,
    stored: Instant,
    expires: Option<Instant>,
    seq: u64,
}

impl ResponseCache {
    /// The cache `config` describes; `check` has passed. Redis is connected lazily.
    pub(crate) fn new(config: &CacheConfig) -> Result<Self, (String, String)> {
        let redis = if config.kind.as_deref() == Some("redis") {
            let info = config.redis_address()?;
            let at = "litellm_settings.cache_params.host".to_owned();
            let client = redis::Client::open(info)
                .map_err(|_| (at.clone(), "not a usable Redis address".to_owned()))?;
            let settings = redis::aio::ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(REDIS_TIMEOUT * 4));
            let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, settings)
                .map_err(|_| (at, "could not set up the Redis connection".to_owned()))?;
            Some(RedisStore {
                connection,
                counters: Arc::default(),
            })
        } else {
            None
        };
        Ok(Self::with_store(config, redis))
    }

    fn with_store(config: &CacheConfig, redis: Option<RedisStore>) -> Self {
        let types = config.supported_call_types.as_ref();
        let cached = |kind: CallType| {
            types.is_none_or(|names| names.iter().any(|n| call_type_of(n) == Some(kind)))
        };
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        ResponseCache {
            shards,
            max_entries: config
                .max_entries
                .unwrap_or(DEFAULT_MAX_ENTRIES)
                .div_ceil(SHARDS)
                .max(1),
            max_bytes: config
                .max_bytes
                .unwrap_or(DEFAULT_MAX_BYTES)
                .div_ceil(SHARDS as u64)
                .max(1),
            ttl: if redis.is_some() {
                config.ttl.or(config.default_in_redis_ttl)
            } else {
                config.ttl.or(config.default_in_memory_ttl)
            }
            .map(Duration::from_secs_f64),
            namespace: config.namespace.clone(),
            completion: cached(CallType::Completion),
            embedding: cached(CallType::Embedding),
            default_off: config.mode.as_deref() == Some("default_off"),
            max_messages: config.max_messages.unwrap_or(DEFAULT_MAX_MESSAGES),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stores: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            redis,
        }
    }

    /// The plan for one request, or None when it skips the cache: a call type not cached, more
    /// messages than `max_messages`, `default_off` without `use-cache`.
    ///
    /// `body` is the request as the group would send it, without per-call fields (`metadata`,
    /// `cache`); `group` is the resolved model group, which replaces the model name as in LiteLLM.
    pub(crate) fn plan(
        &self,
        call_type: CallType,
        group: &str,
        messages: usize,
        body: &Map<String, Value>,
        control: &CacheControl,
    ) -> Option<CachePlan> {
        let cached = match call_type {
            CallType::Completion => self.completion,
            CallType::Embedding => self.embedding,
            _ => false,
        };
        if !cached || messages > self.max_messages || (self.default_off && !control.use_cache) {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(group.as_bytes());
        hasher.update([0]);
        hasher.update(format!("{call_type:?}").as_bytes());
        hasher.update([0]);
        // serde_json's map is sorted by key, so equal bodies serialize to equal bytes.
        if serde_json::to_writer(HashWriter(&mut hasher), body).is_err() {
            return None;
        }
        let digest = hex(&hasher.finalize());
        let key = match control.namespace.as_ref().or(self.namespace.as_ref()) {
            Some(namespace) => format!("{namespace}:{digest}"),
            None => digest,
        };
        Some(CachePlan {
            key,
            read: !control.no_cache,
            store: !control.no_store,
            ttl: control.ttl.or(self.ttl),
            max_age: control.max_age,
        })
    }

    fn shard(&self, key: &str) -> (&Mutex<Shard>, [u8; 32]) {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        (&self.shards[usize::from(digest[0]) % SHARDS], digest)
    }

    /// The stored answer for `plan`, counting the hit or the miss.
    pub(crate) async fn get(&self, plan: &CachePlan) -> Option<Arc<[u8]>> {
        let found = match &self.redis {
            Some(redis) => redis.get(plan).await,
            None => self.get_local(plan),
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn get_local(&self, plan: &CachePlan) -> Option<Arc<[u8]>> {
        let (shard, digest) = self.shard(&plan.key);
        let now = Instant::now();
        let found = {
            let mut shard = lock(shard);
            match shard.map.get(&digest) {
                Some(entry) if entry.expires.is_some_and(|at| at <= now) => {
                    if let Some(entry) = shard.map.remove(&digest) {
                        shard.bytes -= entry.value.len() as u64;
                    }
                    None
                }
                Some(entry)
                    if plan
                        .max_age
                        .is_some_and(|age| now.saturating_duration_since(entry.stored) > age) =>
                {
                    None
                }
                Some(entry) => Some(Arc::clone(&entry.value)),
                None => None,
            }
        };
        found
    }

    /// Counts a lookup skipped by `no-cache` as a miss.
    pub(crate) fn count_miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores `value` under `plan`'s key, evicting the oldest answers of its shard to stay bounded.
    pub(crate) fn put(&self, plan: &CachePlan, value: Vec<u8>) {
        if !plan.store || plan.ttl == Some(Duration::ZERO) {
            return;
        }
        if let Some(redis) = &self.redis {
            redis.put(plan, &value);
            return;
        }
        let size = value.len() as u64;
        if size > self.max_bytes {
            return;
        }
        let (shard, digest) = self.shard(&plan.key);
        let now = Instant::now();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            value: value.into(),
            stored: now,
            expires: plan.ttl.map(|ttl| now + ttl),
            seq,
        };
        let mut evicted = 0;
        {
            let mut shard = lock(shard);
            if let Some(old) = shard.map.insert(digest, entry) {
                shard.bytes -= old.value.len() as u64;
            }
            shard.bytes += size;
            shard.order.push_back((digest, seq));
            while shard.map.len() > self.max_entries || shard.bytes > self.max_bytes {
                let Some((oldest, oldest_seq)) = shard.order.pop_front() else {
                    break;
                };
                if shard.map.get(&oldest).is_some_and(|e| e.seq == oldest_seq) {
                    if let Some(old) = shard.map.remove(&oldest) {
                        shard.bytes -= old.value.len() as u64;
                        evicted += 1;
                    }
                }
            }
            // Overwrites and expiries leave stale order pairs: drop them before they pile up.
            if shard.order.len() > 2 * self.max_entries {
                let Shard { map, order, .. } = &mut *shard;
                order.retain(|(key, seq)| map.get(key).is_some_and(|e| e.seq == *seq));
            }
        }
        self.stores.fetch_add(1, Ordering::Relaxed);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let (entries, bytes) = self.shards.iter().fold((0, 0), |(entries, bytes), shard| {
            let shard = lock(shard);
            (entries + shard.map.len() as u64, bytes + shard.bytes)
        });
        let (redis_stores, errors) = self.redis.as_ref().map_or((0, 0), |redis| {
            (
                redis.counters.stores.load(Ordering::Relaxed),
                redis.counters.errors.load(Ordering::Relaxed),
            )
        });
        CacheStats {
            enabled: true,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed) + redis_stores,
            errors,
            evictions: self.evictions.load(Ordering::Relaxed),
            entries,
            bytes,
        }
    }
}

impl RedisStore {
    fn key(plan: &CachePlan) -> String {
        format!("mirror:cache:{}", plan.key)
    }

    /// The answer stored in Redis, if it is younger than the plan's `s-maxage`. A Redis that
    /// fails or is slower than `REDIS_TIMEOUT` is a miss, counted as an error.
    async fn get(&self, plan: &CachePlan) -> Option<Arc<[u8]>> {
        let mut connection = self.connection.clone();
        let read = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::AsyncCommands::get::<_, Option<Vec<u8>>>(&mut connection, Self::key(plan)),
        )
        .await;
        let stored = match read {
            Ok(Ok(stored)) => stored?,
            Ok(Err(_)) | Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        // Each value starts with the epoch milliseconds it was stored at, for `s-maxage`.
        let (stamp, answer) = stored.split_at_checked(8)?;
        let stored_ms = u64::from_be_bytes(stamp.try_into().ok()?);
        if let Some(max_age) = plan.max_age {
            let age_ms = epoch_ms().saturating_sub(stored_ms);
            if u128::from(age_ms) > max_age.as_millis() {
                return None;
            }
        }
        Some(answer.into())
    }

    /// Stores in the background, so the caller never waits for Redis; at most
    /// `REDIS_MAX_PENDING` stores are in flight, and the ones over are dropped and counted.
    fn put(&self, plan: &CachePlan, value: &[u8]) {
        let counters = Arc::clone(&self.counters);
        if counters.pending.fetch_add(1, Ordering::AcqRel) >= REDIS_MAX_PENDING {
            counters.pending.fetch_sub(1, Ordering::AcqRel);
            counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut stored = Vec::with_capacity(8 + value.len());
        stored.extend_from_slice(&epoch_ms().to_be_bytes());
        stored.extend_from_slice(value);
        let key = Self::key(plan);
        let ttl = plan.ttl;
        let mut connection = self.connection.clone();
        tokio::spawn(async move {
            let mut command = redis::cmd("SET");
            command.arg(&key).arg(stored);
            if let Some(ttl) = ttl {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                command.arg("PX").arg(ms);
            }
            let written =
                tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<()>(&mut connection))
                    .await;
            match written {
                Ok(Ok(())) => counters.stores.fetch_add(1, Ordering::Relaxed),
                Ok(Err(_)) | Err(_) => counters.errors.fetch_add(1, Ordering::Relaxed),
            };
            counters.pending.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A poisoned shard (a panic while it was held) is still a consistent map: keep using it.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests;
