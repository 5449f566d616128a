//! Router state shared by several instances through Redis: cooldowns, per-minute usage (rpm/tpm)
//! and the mirror budget.
//!
//! The request path keeps reading local atomics. A background task syncs them with Redis every
//! `redis_sync_interval_ms` in one atomic script: it publishes this instance's counts of the current
//! minute and its cooldowns, and pulls the other instances' counts and cooldowns into the local
//! atomics. Only deployments with an `rpm` limit add a call to Redis on the request path: one atomic
//! script that admits the request only while the group-wide count is under the limit, bounded by
//! `redis_timeout_ms`. When Redis is unreachable or slow, every decision is taken on local state (as
//! last synced), the outage is logged once and counted, and the next successful sync rejoins.
//!
//! Mirror controls ride the same sync: a switch or rate set on one instance (admin API,
//! `Router::set_mirroring`, `Router::set_target`) is written to one hash (`<prefix>:mirror:controls`)
//! at its next sync, which it wakes, and every instance applies that hash at each sync (a field
//! never set there leaves the local value alone; the last write wins). Each silent target's spend is
//! published like the counts below, per instance and spend period (`<prefix>:{silent:<group>}:spend:
//! <UTC day or total>`), and the others' sum is pulled into the budget's atomics.
//!
//! Every instance publishes its own absolute count per minute in a hash field named by its instance
//! id, and a sync only ever raises that field: a lost or repeated sync cannot count twice, and a
//! restarted (empty) Redis is refilled by the next sync.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, Script};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::RouterSettings;
use crate::deployment::{Clock, Deployment};
use crate::silent::control::{wall_ms, TargetLimits, TargetRuntime};
use crate::silent::MinuteBudget;

/// How long a daily spend key lives: its day and one more.
const DAY_SPEND_TTL_MS: u64 = 2 * 86_400_000;
/// How long a total spend key lives without a sync refreshing it.
const TOTAL_SPEND_TTL_MS: u64 = 400 * 86_400_000;

/// What the sync shares of the mirror controls: the global switch and every silent target.
#[derive(Debug)]
pub(crate) struct SyncedControls {
    pub(crate) enabled: Arc<AtomicBool>,
    pub(crate) enabled_dirty: Arc<AtomicBool>,
    pub(crate) targets: Vec<(String, Arc<TargetRuntime>, TargetLimits)>,
}

/// How long per-minute keys live: the minute itself and one more, for late syncs.
const MINUTE_KEY_TTL_MS: u64 = 120_000;

/// The longest a background sync waits for Redis.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// Counters of the state shared through Redis, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SharedStateStats {
    /// Whether Redis is configured (`router_settings.redis_host` or `redis_url`).
    pub enabled: bool,
    /// Whether the last exchange with Redis succeeded (false while it is unreachable: decisions
    /// are then taken on local state).
    pub connected: bool,
    /// Failed or timed-out exchanges with Redis (syncs and request-path reservations).
    pub errors: u64,
    /// Successful syncs.
    pub syncs: u64,
    /// Milliseconds since the last successful sync; None before the first one.
    pub last_sync_age_ms: Option<u64>,
    /// Requests to rpm-limited deployments that Redis decided (admitted or refused).
    pub reservations: u64,
    /// Of those, refused because the deployment had its rpm this minute across instances.
    pub reservations_refused: u64,
    /// Requests to rpm-limited deployments decided on local state because Redis was unreachable or
    /// slower than `redis_timeout_ms`.
    pub local_decisions: u64,
}

const CONNECTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The connection to Redis and the counters about it, owned by the router.
pub(crate) struct SharedState {
    connection: ConnectionManager,
    /// `host:port`, without credentials, for logs.
    address: String,
    instance: String,
    prefix: String,
    timeout: Duration,
    interval: Duration,
    health: AtomicU8,
    errors: AtomicU64,
    syncs: AtomicU64,
    last_sync_ms: AtomicU64,
    reservations: AtomicU64,
    reservations_refused: AtomicU64,
    local_decisions: AtomicU64,
    wake: Notify,
    reserve_script: Script,
    sync_script: Script,
    controls_script: Script,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("address", &self.address)
            .field("instance", &self.instance)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Admits one request while the deployment's count this minute, over all instances, is under the
/// limit. Raises this instance's field to at least its local count first (a sync may not have
/// published it yet). Returns `{admitted, total - local count}`: what Redis knows beyond this
/// instance's own count, so `local + that` is the group-wide count.
///
/// KEYS[1]: the deployment's rpm hash of this minute. ARGV: instance id, TTL ms, limit, local count.
const RESERVE_LUA: &str = r"
local id = ARGV[1]
local limit = tonumber(ARGV[3])
local localcount = tonumber(ARGV[4])
local cur = tonumber(redis.call('HGET', KEYS[1], id) or '0')
local mine = math.max(cur, localcount)
local total = mine - cur
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if total >= limit then
  if mine > cur then
    redis.call('HSET', KEYS[1], id, mine)
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return {0, total - localcount}
end
redis.call('HSET', KEYS[1], id, mine + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, total + 1 - (localcount + 1)}
";

/// Publishes this instance's counts and cooldowns and returns everybody else's.
///
/// KEYS: per deployment its rpm hash, tpm hash and cooldown key, then one hash per mirror budget.
/// ARGV: instance id, TTL ms, now (wall ms), number of deployments, then per deployment local
/// requests, local tokens and cooldown end (wall ms, 0 for none), then per budget the local count.
/// Returns per deployment the others' requests, tokens and the cooldown end, then per budget the
/// others' count.
const SYNC_LUA: &str = r"
local id = ARGV[1]
local ttl = ARGV[2]
local now = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local out = {}
local function publish(key, mine)
  local cur = tonumber(redis.call('HGET', key, id) or '0')
  if mine > cur then
    redis.call('HSET', key, id, mine)
    cur = mine
  end
  if cur > 0 then redis.call('PEXPIRE', key, ttl) end
  local total = 0
  for _, v in ipairs(redis.call('HVALS', key)) do total = total + tonumber(v) end
  return total - cur
end
for i = 0, n - 1 do
  out[#out + 1] = publish(KEYS[i * 3 + 1], tonumber(ARGV[5 + i * 3]))
  out[#out + 1] = publish(KEYS[i * 3 + 2], tonumber(ARGV[6 + i * 3]))
  local ckey = KEYS[i * 3 + 3]
  local mine = tonumber(ARGV[7 + i * 3])
  local cur = tonumber(redis.call('GET', ckey) or '0')
  if mine > now and mine > cur then
    redis.call('SET', ckey, mine, 'PX', mine - now)
    cur = mine
  end
  out[#out + 1] = cur
end
for j = n * 3 + 1, #KEYS do
  out[#out + 1] = publish(KEYS[j], tonumber(ARGV[5 + n * 3 + (j - n * 3 - 1)]))
end
return out
";

/// Writes the controls set on this instance, returns the whole controls hash, publishes this
/// instance's spend per silent target and returns the others'.
///
/// KEYS[1]: the controls hash; then one spend hash per target. ARGV: instance id, number of control
/// fields set, the field/value pairs, then per target the local spend (micro-USD) and its TTL ms.
/// Returns strings: the number of hash entries (fields and values), the entries, then per target
/// the others' spend.
const CONTROLS_LUA: &str = r"
local id = ARGV[1]
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[3 + i * 2], ARGV[4 + i * 2])
end
local all = redis.call('HGETALL', KEYS[1])
local out = {tostring(#all)}
for _, v in ipairs(all) do out[#out + 1] = v end
local base = 3 + n * 2
for j = 2, #KEYS do
  local mine = tonumber(ARGV[base + (j - 2) * 2])
  local ttl = ARGV[base + (j - 2) * 2 + 1]
  local cur = tonumber(redis.call('HGET', KEYS[j], id) or '0')
  if mine > cur then
    redis.call('HSET', KEYS[j], id, mine)
    cur = mine
  end
  if cur > 0 then redis.call('PEXPIRE', KEYS[j], ttl) end
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[j])) do total = total + tonumber(v) end
  out[#out + 1] = tostring(total - cur)
end
return out
";

impl SharedState {
    /// The shared state configured in `settings`, or None when Redis is not configured.
    ///
    /// Connects lazily: the first sync (started by [`SharedState::spawn_sync`]) connects.
    ///
    /// # Errors
    ///
    /// A message naming the setting when the URL or the host is not usable.
    pub(crate) fn from_settings(
        settings: &RouterSettings,
    ) -> Result<Option<Self>, (String, String)> {
        let mut info = if let Some(url) = &settings.redis_url {
            url.expose().into_connection_info().map_err(|_| {
                (
                    "router_settings.redis_url".to_owned(),
                    "not a valid Redis URL; expected redis://[:password@]host[:port][/db]"
                        .to_owned(),
                )
            })?
        } else if let Some(host) = &settings.redis_host {
            // `validate` refused an empty host and a zero sync interval.
            ConnectionAddr::Tcp(host.trim().to_owned(), settings.redis_port.unwrap_or(6379))
                .into_connection_info()
                .map_err(|_| {
                    (
                        "router_settings.redis_host".to_owned(),
                        format!("not a usable Redis host `{host}`"),
                    )
                })?
        } else {
            return Ok(None);
        };
        if let Some(password) = &settings.redis_password {
            let redis = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(redis);
        }
        let address = info.addr().to_string();
        let client = redis::Client::open(info).map_err(|_| {
            (
                "router_settings.redis_url".to_owned(),
                "not a usable Redis address".to_owned(),
            )
        })?;
        // One attempt per command while Redis is down: the sync task retries every interval, and
        // the request path does not use Redis at all until a sync succeeds again.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200))
            .set_connection_timeout(Some(SYNC_TIMEOUT));
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(|_| {
            (
                "router_settings.redis_url".to_owned(),
                "could not set up the Redis connection".to_owned(),
            )
        })?;
        Ok(Some(SharedState {
            connection,
            address,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            prefix: settings.redis_key_prefix.clone(),
            timeout: Duration::from_millis(settings.redis_timeout_ms.max(1)),
            interval: Duration::from_millis(settings.redis_sync_interval_ms),
            health: AtomicU8::new(CONNECTING),
            errors: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            last_sync_ms: AtomicU64::new(0),
            reservations: AtomicU64::new(0),
            reservations_refused: AtomicU64::new(0),
            local_decisions: AtomicU64::new(0),
            wake: Notify::new(),
            reserve_script: Script::new(RESERVE_LUA),
            sync_script: Script::new(SYNC_LUA),
            controls_script: Script::new(CONTROLS_LUA),
        }))
    }

    /// The same shared state under instance id `instance` (a reloaded router keeps its id).
    pub(crate) fn with_instance(mut self, instance: &str) -> Self {
        instance.clone_into(&mut self.instance);
        self
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    fn controls_key(&self) -> String {
        format!("{}:mirror:controls", self.prefix)
    }

    fn spend_key(&self, group: &str, period: u64) -> String {
        if period == 0 {
            format!("{}:{{silent:{group}}}:spend:total", self.prefix)
        } else {
            format!("{}:{{silent:{group}}}:spend:{period}", self.prefix)
        }
    }

    fn usage_key(&self, deployment: &str, kind: &str, minute: u64) -> String {
        format!("{}:{{{deployment}}}:{kind}:{minute}", self.prefix)
    }

    fn cooldown_key(&self, deployment: &str) -> String {
        format!("{}:{{{deployment}}}:cooldown", self.prefix)
    }

    fn mirror_key(&self, group: &str, minute: u64) -> String {
        format!("{}:{{silent:{group}}}:mirrors:{minute}", self.prefix)
    }

    fn is_connected(&self) -> bool {
        self.health.load(Ordering::Acquire) == UP
    }

    fn mark_up(&self) {
        let previous = self.health.swap(UP, Ordering::AcqRel);
        if previous == DOWN {
            tracing::info!(
                redis = %self.address,
                "Shared state reachable again; sharing cooldowns and usage through Redis."
            );
        }
    }

    fn mark_down(&self, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let previous = self.health.swap(DOWN, Ordering::AcqRel);
        if previous != DOWN {
            tracing::warn!(
                redis = %self.address,
                error = %error,
                "Shared state unreachable; serving on local state until Redis returns."
            );
        }
    }

    /// Asks the sync task to sync now (after a cooldown, so other instances learn of it soon).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self, clock: &Clock) -> SharedStateStats {
        let last = self.last_sync_ms.load(Ordering::Relaxed);
        SharedStateStats {
            enabled: true,
            connected: self.is_connected(),
            errors: self.errors.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            last_sync_age_ms: (last > 0).then(|| clock.now_ms().saturating_sub(last)),
            reservations: self.reservations.load(Ordering::Relaxed),
            reservations_refused: self.reservations_refused.load(Ordering::Relaxed),
            local_decisions: self.local_decisions.load(Ordering::Relaxed),
        }
    }

    /// Asks Redis to admit one request to `deployment`, whose rpm limit is `limit`.
    ///
    /// Some(admitted) when Redis decided; None when it could not within `redis_timeout_ms` (or is
    /// known to be down), and the caller decides on local state.
    ///
    /// # Cancel safety
    ///
    /// Cancelling may leave the request counted in Redis but not locally, which the next sync
    /// corrects only upward: at worst one request too many is counted this minute.
    pub(crate) async fn reserve_request(
        &self,
        deployment: &Deployment,
        limit: u64,
        clock: &Clock,
    ) -> Option<bool> {
        if !self.is_connected() {
            self.local_decisions.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let minute = clock.minute();
        let (local, _) = deployment.state.local_usage(minute);
        let mut invocation = self.reserve_script.prepare_invoke();
        invocation
            .key(self.usage_key(&deployment.id, "rpm", minute))
            .arg(&self.instance)
            .arg(MINUTE_KEY_TTL_MS)
            .arg(limit)
            .arg(local);
        let mut connection = self.connection.clone();
        let reply = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<Vec<i64>>(&mut connection),
        )
        .await;
        let error: String = match reply {
            Ok(Ok(values)) if values.len() == 2 => {
                self.reservations.fetch_add(1, Ordering::Relaxed);
                let admitted = values[0] == 1;
                let others = u64::try_from(values[1]).unwrap_or(0);
                deployment.state.set_remote_requests(minute, others);
                if !admitted {
                    self.reservations_refused.fetch_add(1, Ordering::Relaxed);
                }
                return Some(admitted);
            }
            Ok(Ok(values)) => format!("unexpected reply with {} values", values.len()),
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.local_decisions.fetch_add(1, Ordering::Relaxed);
        self.mark_down(&error);
        None
    }

    /// Starts the sync task. It stops when the router (the last strong reference) is dropped.
    pub(crate) fn spawn_sync(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        deployments: Vec<Arc<Deployment>>,
        budgets: Vec<(String, Arc<MinuteBudget>)>,
        controls: SyncedControls,
        clock: Clock,
    ) {
        let weak: Weak<SharedState> = Arc::downgrade(self);
        handle.spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { break };
                shared.sync(&deployments, &budgets, &clock).await;
                if shared.is_connected() {
                    shared.sync_controls(&controls).await;
                }
                let interval = shared.interval;
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = shared.wake.notified() => {}
                }
            }
        });
    }

    /// Publishes the controls set here and this instance's spend; applies everybody's.
    async fn sync_controls(&self, controls: &SyncedControls) {
        let mut fields: Vec<(String, String)> = Vec::new();
        let global_dirty = controls.enabled_dirty.swap(false, Ordering::AcqRel);
        if global_dirty {
            let on = controls.enabled.load(Ordering::Acquire);
            fields.push(("enabled".to_owned(), u8::from(on).to_string()));
        }
        let mut dirty = Vec::new();
        for (name, runtime, _) in &controls.targets {
            if runtime.dirty.swap(false, Ordering::AcqRel) {
                dirty.push(runtime);
                if let Some(on) = runtime.switch() {
                    fields.push((format!("target:{name}:enabled"), u8::from(on).to_string()));
                }
                if let Some(rate) = runtime.rate() {
                    fields.push((format!("target:{name}:rate"), rate.to_string()));
                }
            }
        }
        let now = wall_ms();
        let mut invocation = self.controls_script.prepare_invoke();
        invocation
            .key(self.controls_key())
            .arg(&self.instance)
            .arg(fields.len());
        for (field, value) in &fields {
            invocation.arg(field).arg(value);
        }
        let mut periods = Vec::with_capacity(controls.targets.len());
        for (name, runtime, limits) in &controls.targets {
            let period = limits.period(now);
            periods.push(period);
            let ttl = if period == 0 {
                TOTAL_SPEND_TTL_MS
            } else {
                DAY_SPEND_TTL_MS
            };
            invocation
                .key(self.spend_key(name, period))
                .arg(runtime.local_spend(period))
                .arg(ttl);
        }
        let mut connection = self.connection.clone();
        let reply = tokio::time::timeout(
            SYNC_TIMEOUT,
            invocation.invoke_async::<Vec<String>>(&mut connection),
        )
        .await;
        let values = match reply {
            Ok(Ok(values)) => values,
            failed => {
                // Publish again at the next sync.
                if global_dirty {
                    controls.enabled_dirty.store(true, Ordering::Release);
                }
                for runtime in dirty {
                    runtime.dirty.store(true, Ordering::Release);
                }
                let error = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => format!("no answer within {} ms", SYNC_TIMEOUT.as_millis()),
                };
                return self.mark_down(&error);
            }
        };
        let entries: usize = values.first().and_then(|n| n.parse().ok()).unwrap_or(0);
        let (hash, spends) = values
            .get(1..)
            .unwrap_or_default()
            .split_at(entries.min(values.len().saturating_sub(1)));
        for pair in hash.chunks_exact(2) {
            let (field, value) = (pair[0].as_str(), pair[1].as_str());
            if field == "enabled" {
                // A change made here since this sync began is published by the next one first.
                if !controls.enabled_dirty.load(Ordering::Acquire) {
                    controls.enabled.store(value == "1", Ordering::Release);
                }
                continue;
            }
            let Some(rest) = field.strip_prefix("target:") else {
                continue;
            };
            let Some((name, what)) = rest.rsplit_once(':') else {
                continue;
            };
            let Some((_, runtime, _)) = controls.targets.iter().find(|(n, _, _)| n == name) else {
                continue;
            };
            // A change made here since this sync began is published by the next one first.
            if runtime.dirty.load(Ordering::Acquire) {
                continue;
            }
            match what {
                "enabled" => runtime.set_enabled(value == "1"),
                "rate" => {
                    if let Ok(rate) = value.parse::<f64>() {
                        if (0.0..=1.0).contains(&rate) {
                            runtime.set_rate(rate);
                        }
                    }
                }
                _ => {}
            }
        }
        for (((_, runtime, _), period), others) in controls.targets.iter().zip(periods).zip(spends)
        {
            if let Ok(others) = others.parse::<u64>() {
                runtime.set_remote_spend(period, others);
            }
        }
    }

    /// One exchange: publish local counts and cooldowns, pull the others'.
    async fn sync(
        &self,
        deployments: &[Arc<Deployment>],
        budgets: &[(String, Arc<MinuteBudget>)],
        clock: &Clock,
    ) {
        let now = clock.now_ms();
        let minute = clock.minute();
        let mut invocation = self.sync_script.prepare_invoke();
        invocation
            .arg(&self.instance)
            .arg(MINUTE_KEY_TTL_MS)
            .arg(now)
            .arg(deployments.len());
        for deployment in deployments {
            let (requests, tokens) = deployment.state.local_usage(minute);
            let cooldown = deployment.state.cooldown_until_ms();
            invocation
                .key(self.usage_key(&deployment.id, "rpm", minute))
                .key(self.usage_key(&deployment.id, "tpm", minute))
                .key(self.cooldown_key(&deployment.id))
                .arg(requests)
                .arg(tokens)
                .arg(if cooldown > now { cooldown } else { 0 });
        }
        for (group, budget) in budgets {
            invocation
                .key(self.mirror_key(group, minute))
                .arg(budget.local(minute));
        }
        let mut connection = self.connection.clone();
        let reply = tokio::time::timeout(
            SYNC_TIMEOUT,
            invocation.invoke_async::<Vec<i64>>(&mut connection),
        )
        .await;
        let values = match reply {
            Ok(Ok(values)) if values.len() == deployments.len() * 3 + budgets.len() => values,
            Ok(Ok(values)) => {
                return self.mark_down(&format!("unexpected reply with {} values", values.len()))
            }
            Ok(Err(err)) => return self.mark_down(&err),
            Err(_) => {
                return self.mark_down(&format!("no answer within {} ms", SYNC_TIMEOUT.as_millis()))
            }
        };
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let (usage, mirrors) = values.split_at(deployments.len() * 3);
        for (deployment, values) in deployments.iter().zip(usage.chunks_exact(3)) {
            deployment
                .state
                .set_remote_usage(minute, count(values[0]), count(values[1]));
            let until = count(values[2]);
            if until > clock.now_ms() {
                deployment.state.cool_down_until(until);
            }
        }
        for ((_, budget), others) in budgets.iter().zip(mirrors) {
            budget.set_remote(minute, count(*others));
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.last_sync_ms.store(clock.now_ms(), Ordering::Relaxed);
        self.mark_up();
    }
}
