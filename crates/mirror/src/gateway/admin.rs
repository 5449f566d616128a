//! The admin API and config reload: run-time mirror controls and `POST /admin/reload` (also on
//! `SIGHUP`).
//!
//! - `GET /admin/mirror`: the effective settings (global switch, every primary → silent pair with
//!   its switch, rate, budget, spend, end and state) and the config version.
//! - `POST /admin/mirror` `{"enabled": bool}`: the global switch.
//! - `POST /admin/mirror/targets/{silent_group}` `{"enabled"?: bool, "sample_rate"?: f64}`.
//! - `POST /admin/reload`: reads the config file again; 200 with the new `config_version`, or 400
//!   with the error (the old config keeps serving).
//!
//! Behind the master key like every other route. Without a master key the admin API answers 403
//! unless the gateway listens on a loopback address only, or `mirror_settings.admin_without_key:
//! true`. Every change is logged: who (a short hash of the key), what, when (the log line's time).
//! A change a browser sends from another site is refused (403): without a master key, any page
//! open in the user's browser could otherwise switch a loopback gateway's mirroring off with a
//! plain cross-site POST. Browsers mark such requests with `Sec-Fetch-Site` and `Origin`; `curl`
//! and SDKs send neither and are not affected.
//!
//! A reload builds a new router from the file, taking over the old one's counters, run-time
//! switches and spend ([`mirror_router::RouterBuilder::carry_over`]), and swaps it in: new
//! requests use it, requests in flight finish on the old one, which is then retired. The master
//! key and mirror settings change with it; the listener, client limits, log sinks and shutdown
//! timeout are read at start only.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mirror_core::SecretString;
use mirror_router::{ControlError, Router, TargetChange};
use serde_json::{json, Value};

use super::error::ApiError;
use super::handlers::json_response;
use super::AppState;
use crate::config::GatewayConfig;

/// What a reload replaces at once: the router, the master key, the admin rule, the version.
pub(crate) struct Live {
    pub(crate) router: Arc<Router>,
    pub(crate) master_key: Option<SecretString>,
    pub(crate) admin_without_key: bool,
    /// 1 at start, one more per successful reload.
    pub(crate) version: u64,
}

/// Where a reload reads from, and one reload at a time.
pub(crate) struct Reloader {
    pub(crate) path: std::sync::OnceLock<PathBuf>,
    pub(crate) lock: tokio::sync::Mutex<()>,
    pub(crate) shutdown_timeout: Duration,
}

type SharedState = State<Arc<AppState>>;

/// Who made a change, for the log: a short FNV-1a hash of the presented key (never the key).
fn who(state: &AppState, headers: &HeaderMap) -> String {
    if state.live.load().master_key.is_none() {
        return "no master key".to_owned();
    }
    let key = super::handlers::presented_key(headers);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.trim().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("key:{:08x}", hash >> 32)
}

/// The admin API needs a master key, or a loopback-only listener, or `admin_without_key`.
fn refused(state: &AppState) -> Option<Response> {
    let live = state.live.load();
    if live.master_key.is_some()
        || live.admin_without_key
        || state.loopback_only.load(Ordering::Acquire)
    {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            Some("admin_needs_master_key"),
            "the admin API needs `general_settings.master_key`, a listener on a loopback address, or `mirror_settings.admin_without_key: true`",
        )
        .into_response(),
    )
}

/// A change sent by a browser from another site: `Sec-Fetch-Site` other than `same-origin` or
/// `none`, or an `Origin` whose host is not the `Host` the request was sent to.
fn cross_site(headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let site_ok =
        header("sec-fetch-site").is_none_or(|site| matches!(site, "same-origin" | "none"));
    let origin_ok = match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    };
    if site_ok && origin_ok {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            Some("cross_site_request"),
            "admin changes are refused from another site's page (Sec-Fetch-Site / Origin); send them from /ui, curl or an SDK",
        )
        .into_response(),
    )
}

fn settings(state: &AppState) -> Value {
    let live = state.live.load();
    let controls = live.router.mirror_controls();
    json!({
        "enabled": controls.enabled,
        "targets": controls.targets,
        "config_version": live.version,
    })
}

fn bad_field(field: &str, message: impl Into<String>) -> ApiError {
    let mut error = ApiError::bad_request(message);
    error.body.error.param = Some(Value::String(field.to_owned()));
    error
}

/// Parses a JSON object body; an empty body is an empty object.
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_field("body", "the body must be a JSON object")),
        Err(err) => Err(bad_field("body", format!("the body is not JSON: {err}"))),
    }
}

fn take_bool(map: &serde_json::Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(bad_field(
            field,
            format!("`{field}` must be true or false, got {other}"),
        )),
    }
}

/// `GET /admin/mirror`.
pub(crate) async fn get_mirror(State(state): SharedState) -> Response {
    if let Some(refused) = refused(&state) {
        return refused;
    }
    json_response(&settings(&state))
}

/// `POST /admin/mirror` `{"enabled": bool}`.
pub(crate) async fn post_mirror(
    State(state): SharedState,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refused(&state).or_else(|| cross_site(&headers)) {
        return refused;
    }
    let map = match object(&body) {
        Ok(map) => map,
        Err(error) => return error.into_response(),
    };
    if let Some(unknown) = map.keys().find(|key| *key != "enabled") {
        return bad_field(
            unknown,
            format!("unknown field `{unknown}`; expected `enabled`"),
        )
        .into_response();
    }
    let enabled = match take_bool(&map, "enabled") {
        Ok(Some(enabled)) => enabled,
        Ok(None) => {
            return bad_field("enabled", "`enabled` (true or false) is required").into_response()
        }
        Err(error) => return error.into_response(),
    };
    let router = Arc::clone(&state.live.load().router);
    router.set_mirroring(enabled);
    tracing::info!(
        who = %who(&state, &headers),
        enabled,
        "Admin: mirroring switched {}.",
        if enabled { "on" } else { "off" }
    );
    json_response(&settings(&state))
}

/// `POST /admin/mirror/targets/{silent_group}` `{"enabled"?: bool, "sample_rate"?: f64}`.
pub(crate) async fn post_target(
    State(state): SharedState,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refused(&state).or_else(|| cross_site(&headers)) {
        return refused;
    }
    let map = match object(&body) {
        Ok(map) => map,
        Err(error) => return error.into_response(),
    };
    if let Some(unknown) = map
        .keys()
        .find(|key| !matches!(key.as_str(), "enabled" | "sample_rate"))
    {
        return bad_field(
            unknown,
            format!("unknown field `{unknown}`; expected `enabled` or `sample_rate`"),
        )
        .into_response();
    }
    let enabled = match take_bool(&map, "enabled") {
        Ok(enabled) => enabled,
        Err(error) => return error.into_response(),
    };
    let sample_rate = match map.get("sample_rate") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_f64(),
        Some(other) => {
            return bad_field(
                "sample_rate",
                format!("`sample_rate` must be a number from 0 to 1, got {other}"),
            )
            .into_response()
        }
    };
    let change = TargetChange {
        enabled,
        sample_rate,
    };
    let router = Arc::clone(&state.live.load().router);
    match router.set_target(&group, change) {
        Ok(()) => {
            tracing::info!(
                who = %who(&state, &headers),
                silent_group = %group,
                enabled = ?enabled,
                sample_rate = ?sample_rate,
                "Admin: silent target changed."
            );
            json_response(&settings(&state))
        }
        Err(err @ ControlError::UnknownTarget(_)) => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("unknown_silent_target"),
            err.to_string(),
        )
        .into_response(),
        Err(err @ ControlError::Invalid { field, .. }) => {
            bad_field(field, err.to_string()).into_response()
        }
    }
}

/// `POST /admin/reload`.
pub(crate) async fn post_reload(State(state): SharedState, headers: HeaderMap) -> Response {
    if let Some(refused) = refused(&state).or_else(|| cross_site(&headers)) {
        return refused;
    }
    let who = who(&state, &headers);
    match reload(&state, &who).await {
        Ok(version) => json_response(&json!({"config_version": version})),
        Err(message) => {
            let mut error = ApiError::bad_request(message);
            error.body.error.code = Some(Value::String("invalid_config".to_owned()));
            error.into_response()
        }
    }
}

/// Reads the config file again and swaps in a router built from it; on any error the old config
/// keeps serving and the error is logged and returned. Returns the new config version.
pub(crate) async fn reload(state: &Arc<AppState>, who: &str) -> Result<u64, String> {
    // In the per-core layout the new router's background tasks (its silent dispatcher, the shared
    // state sync) belong on the background runtime, not on the worker that took the request.
    if let Some(background) = state.background.get() {
        if tokio::runtime::Handle::try_current().map(|h| h.id()).ok() != Some(background.id()) {
            let (state, who) = (Arc::clone(state), who.to_owned());
            return background
                .spawn(async move { reload_here(&state, &who).await })
                .await
                .unwrap_or_else(|_| Err("the reload was cut short".to_owned()));
        }
    }
    reload_here(state, who).await
}

async fn reload_here(state: &Arc<AppState>, who: &str) -> Result<u64, String> {
    let _one_at_a_time = state.reloader.lock.lock().await;
    let result = rebuild(state).await;
    match &result {
        Ok(version) => tracing::info!(
            who = %who,
            config_version = version,
            "Config reloaded; new requests use it, requests in flight finish on the old one."
        ),
        Err(message) => tracing::error!(
            who = %who,
            error = %message,
            "Config reload refused; the old config keeps serving."
        ),
    }
    result
}

async fn rebuild(state: &Arc<AppState>) -> Result<u64, String> {
    let Some(path) = state.reloader.path.get().cloned() else {
        return Err(
            "nothing to reload: the gateway serves the built-in default, not a config file"
                .to_owned(),
        );
    };
    let config = tokio::task::spawn_blocking(move || GatewayConfig::from_file(&path))
        .await
        .map_err(|_| "reading the config file failed".to_owned())?
        .map_err(|err| mirror_core::error_chain(&err))?;
    if config.model_list.is_empty() {
        return Err(format!(
            "{}: model_list is empty or missing: list at least one deployment",
            config.origin()
        ));
    }
    let old = state.live.load_full();
    let router = super::build_router(&config, &state.records, Some(&old.router))
        .map_err(|err| mirror_core::error_chain(&err))?;
    state.metrics.register(&router.deployments());
    let version = old.version + 1;
    state.live.store(Arc::new(Live {
        router: Arc::new(router),
        master_key: config.general_settings.master_key.clone(),
        admin_without_key: config.mirror_settings.admin_without_key,
        version,
    }));
    tokio::spawn(retire(old, state.reloader.shutdown_timeout));
    Ok(version)
}

/// Retires the router a reload replaced once no request holds it (at most `deadline`).
async fn retire(mut old: Arc<Live>, deadline: Duration) {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match Arc::try_unwrap(old) {
            Ok(live) => {
                if let Ok(router) = Arc::try_unwrap(live.router) {
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    router.retire(left).await;
                }
                return;
            }
            Err(still) if tokio::time::Instant::now() < until => {
                old = still;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Still held at the deadline: its copies end when the last holder lets go.
            Err(_) => return,
        }
    }
}

/// Reloads on every `SIGHUP` until the gateway shuts down. The handler is installed before the
/// gateway accepts its first connection (a `SIGHUP` before that would end the process).
#[cfg(unix)]
pub(crate) fn reload_on_hangup(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(err) => {
            tracing::warn!(error = %err, "Cannot listen for SIGHUP; reload with POST /admin/reload.");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = reload(&state, "SIGHUP").await;
        }
    }))
}
