//! The numbers of a configuration: per deployment, `router_settings`, `mirror_settings` and each silent target, checked without providers or other entries (`check_values`, and again in `validate`).

use super::*;

pub(super) fn values(config: &RouterConfig, mirror: &MirrorSettings) -> Result<(), Problem> {
    key_report(config)?;
    for (index, entry) in config.model_list.iter().enumerate() {
        deployment_values(&entry.litellm_params, &entry.model_info)
            .map_err(|(field, message)| (entry_path(index, entry, &field), message))?;
    }
    settings_values(&config.router_settings)
        .map_err(|(field, message)| (format!("router_settings.{field}"), message))?;
    mirror_values(mirror).map_err(|(field, message)| (format!("mirror_settings.{field}"), message))
}

fn deployment_values(
    params: &DeploymentParams,
    info: &mirror_core::ModelInfo,
) -> Result<(), Problem> {
    if let Some(weight) = params.weight {
        if !(weight > 0.0 && weight.is_finite()) {
            return Err((
                "litellm_params.weight".to_owned(),
                format!("weight must be greater than 0, got {weight:?}"),
            ));
        }
    }
    for (field, rate) in [
        (
            "litellm_params.silent_sample_rate",
            params.silent_sample_rate,
        ),
        ("litellm_params.mock_failure_rate", params.mock_failure_rate),
    ] {
        if let Some(rate) = rate {
            check_rate(rate).map_err(at(field))?;
        }
    }
    // Allowing a side effect on a deployment that mirrors nothing is a mistake in the file (the key
    // sits on the wrong entry), not a setting to ignore.
    if params.silent_mirror_mcp_tools == Some(true) && params.silent_model.is_none() {
        return Err((
            "litellm_params.silent_mirror_mcp_tools".to_owned(),
            "is true but this deployment has no `silent_model`: it only applies to a deployment that mirrors; set it where `silent_model` is".to_owned(),
        ));
    }
    for (field, seconds) in [
        ("litellm_params.timeout", params.timeout),
        ("litellm_params.stream_timeout", params.stream_timeout),
    ] {
        if let Some(seconds) = seconds {
            TIMEOUT_SECONDS.check(seconds).map_err(at(field))?;
        }
    }
    for (field, bytes) in [
        (
            "litellm_params.max_response_bytes",
            params.max_response_bytes,
        ),
        (
            "litellm_params.max_stream_event_bytes",
            params.max_stream_event_bytes,
        ),
        ("litellm_params.max_stream_bytes", params.max_stream_bytes),
    ] {
        if let Some(bytes) = bytes {
            check_size(bytes, "bytes").map_err(at(field))?;
        }
    }
    if let Some(ms) = params.mock_latency_ms {
        // Milliseconds, under the same limit as a timeout.
        #[allow(clippy::cast_precision_loss)]
        TIMEOUT_SECONDS
            .check(ms as f64 / 1000.0)
            .map_err(|_| {
                format!(
                    "must be at most {} milliseconds (1 day), got {ms}",
                    TIMEOUT_SECONDS.max_seconds * 1000.0
                )
            })
            .map_err(at("litellm_params.mock_latency_ms"))?;
    }
    for (field, limit) in [
        ("litellm_params.rpm", params.rpm),
        ("litellm_params.tpm", params.tpm),
    ] {
        if let Some(limit) = limit {
            check_size(limit, "a per-minute limit").map_err(at(field))?;
        }
    }
    for (field, price) in [
        (
            "litellm_params.input_cost_per_token",
            params.input_cost_per_token,
        ),
        (
            "litellm_params.output_cost_per_token",
            params.output_cost_per_token,
        ),
        ("model_info.input_cost_per_token", info.input_cost_per_token),
        (
            "model_info.output_cost_per_token",
            info.output_cost_per_token,
        ),
    ] {
        if let Some(price) = price {
            if !(price >= 0.0 && price.is_finite()) {
                return Err((
                    field.to_owned(),
                    format!("must be a price in USD of 0 or more, got {price:?}"),
                ));
            }
        }
    }
    Ok(())
}

fn settings_values(settings: &RouterSettings) -> Result<(), Problem> {
    for (field, seconds) in [
        ("timeout", settings.timeout),
        ("stream_timeout", settings.stream_timeout),
    ] {
        if let Some(seconds) = seconds {
            TIMEOUT_SECONDS.check(seconds).map_err(at(field))?;
        }
    }
    for (field, bytes) in [
        ("max_response_bytes", settings.max_response_bytes),
        ("max_stream_event_bytes", settings.max_stream_event_bytes),
        ("max_stream_bytes", settings.max_stream_bytes),
    ] {
        if let Some(bytes) = bytes {
            check_size(bytes, "bytes").map_err(at(field))?;
        }
    }
    WAIT_SECONDS
        .check(settings.cooldown_time)
        .map_err(at("cooldown_time"))?;
    WAIT_SECONDS
        .check(settings.retry_after)
        .map_err(at("retry_after"))?;
    let args = &settings.routing_strategy_args;
    for (field, value) in [
        (
            "routing_strategy_args.lowest_latency_buffer",
            args.lowest_latency_buffer,
        ),
        ("routing_strategy_args.ttl", args.ttl),
    ] {
        if let Some(value) = value {
            if !(value >= 0.0 && value.is_finite()) {
                return Err((
                    field.to_owned(),
                    format!("must be a number of 0 or more, got {value:?}"),
                ));
            }
        }
    }
    if settings.redis_url.is_none() {
        if let Some(host) = &settings.redis_host {
            if host.trim().is_empty() {
                return Err(("redis_host".to_owned(), "must not be empty".to_owned()));
            }
        }
    }
    for (field, ms, max) in [
        (
            "redis_timeout_ms",
            settings.redis_timeout_ms,
            MAX_REDIS_TIMEOUT_MS,
        ),
        (
            "redis_sync_interval_ms",
            settings.redis_sync_interval_ms,
            MAX_REDIS_SYNC_INTERVAL_MS,
        ),
    ] {
        if !(1..=max).contains(&ms) {
            return Err((
                field.to_owned(),
                format!("must be a number of milliseconds from 1 to {max}, got {ms}"),
            ));
        }
    }
    Ok(())
}

fn mirror_values(mirror: &MirrorSettings) -> Result<(), Problem> {
    check_size(mirror.queue_size as u64, "a number of queued silent copies")
        .map_err(at("silent_queue_size"))?;
    check_size(
        mirror.max_bytes,
        "a number of bytes, e.g. 402653184 for 384 MiB",
    )
    .map_err(at("silent_max_bytes"))?;
    check_size(
        mirror.max_in_flight as u64,
        "a number of silent calls at once",
    )
    .map_err(at("silent_max_in_flight"))?;
    check_rate(mirror.default_sample_rate).map_err(at("default_sample_rate"))?;
    if let Some(cap) = mirror.max_mirrors_per_minute {
        check_size(cap, "a number of silent copies per minute; to stop mirroring, set `mirroring_enabled: false`")
            .map_err(at("silent_max_per_minute"))?;
    }
    Ok(())
}

/// Checks one `mirror_settings.silent_targets` entry; the field is returned as `.name`.
pub(super) fn silent_target_values(
    target: &crate::config::SilentTargetSettings,
) -> Result<(), Problem> {
    use crate::silent::control::{parse_duration, parse_rfc3339_ms};
    if let Some(usd) = target.max_spend_usd {
        if !(usd > 0.0 && usd.is_finite() && usd <= 1e9) {
            return Err((
                ".max_spend_usd".to_owned(),
                format!("must be a number of USD greater than 0, got {usd}"),
            ));
        }
    }
    if let Some(period) = &target.budget_duration {
        if target.max_spend_usd.is_none() {
            return Err((
                ".budget_duration".to_owned(),
                "is set without `max_spend_usd`: set the budget it is the period of".to_owned(),
            ));
        }
        if !matches!(period.trim(), "1d" | "24h") {
            return Err((
                ".budget_duration".to_owned(),
                format!("`{period}` is not supported: use `1d` for a budget per UTC day, or leave it out for a budget in total"),
            ));
        }
    }
    if target.until.is_some() && target.duration.is_some() {
        return Err((
            ".duration".to_owned(),
            "is set together with `until`: set one end, a date (`until`) or a length from the process start (`duration`)".to_owned(),
        ));
    }
    if let Some(until) = &target.until {
        parse_rfc3339_ms(until).map_err(|message| (".until".to_owned(), message))?;
    }
    if let Some(duration) = &target.duration {
        parse_duration(duration).map_err(|message| (".duration".to_owned(), message))?;
    }
    Ok(())
}
