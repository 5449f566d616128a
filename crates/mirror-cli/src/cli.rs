//! Arguments and bodies of the `mirror serve` and `mirror check` subcommands.

use std::fmt::Write;
use std::path::PathBuf;

use mirror::config::{load, GatewayConfig};
use mirror::gateway::{Gateway, GatewayError, ShutdownReport};

/// `mirror serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// A LiteLLM proxy `config.yaml`; without one, the built-in offline default is served.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on.
    #[arg(long, default_value_t = 4000)]
    pub port: u16,
    /// Runtime worker threads; defaults to one per CPU. Every request and silent call shares them.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// How the workers share the work. `shared`: one multi-thread runtime, any thread serves any
    /// connection and upstream connection. `per-core`: each worker is a thread with its own
    /// runtime, listener on the port (SO_REUSEPORT), upstream connection pools and silent copies,
    /// so a request never wakes another thread (lower added latency at low concurrency); background
    /// work (log writer, reloads, the silent queue's dispatcher) runs on the main thread.
    #[arg(long, value_enum, default_value_t = Runtime::Shared)]
    pub runtime: Runtime,
}

/// `mirror serve --runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// One multi-thread runtime shared by every connection.
    Shared,
    /// One current-thread runtime and listener per worker thread.
    PerCore,
}

impl ServeArgs {
    /// The number of workers: `--workers`, else one per CPU.
    pub fn worker_count(&self) -> std::num::NonZeroUsize {
        match self
            .workers
            .and_then(|w| std::num::NonZeroUsize::new(usize::from(w)))
        {
            Some(workers) => workers,
            None => std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN),
        }
    }
}

/// `mirror check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The configuration to check; without one, the built-in default is checked.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Serves until SIGINT or SIGTERM, then drains; must run inside a Tokio runtime.
///
/// # Errors
///
/// When the configuration is invalid or the address cannot be bound.
pub async fn serve(args: &ServeArgs) -> Result<ShutdownReport, GatewayError> {
    let config = load(args.config.as_deref())?;
    let mut gateway = Gateway::from_config(&config)?;
    if let Some(path) = &args.config {
        // SIGHUP and `POST /admin/reload` read this file again.
        gateway = gateway.reload_from(path);
    }
    let address = format!("{}:{}", args.host, args.port);
    eprintln!(
        "Mirror gateway on http://{address} ({}); model groups: {}; logs: {}.",
        args.config.as_ref().map_or_else(
            || "built-in default".to_owned(),
            |p| p.display().to_string()
        ),
        gateway.router().model_groups().join(", "),
        if gateway.sinks().is_empty() {
            "none".to_owned()
        } else {
            gateway.sinks().join(", ")
        }
    );
    match args.runtime {
        Runtime::Shared => gateway.serve_until_signal(&address).await,
        Runtime::PerCore => {
            let listeners = mirror::gateway::bind_per_core(&address, args.worker_count())?;
            gateway
                .serve_per_core(listeners, mirror::gateway::shutdown_signal())
                .await
        }
    }
}

/// Validates a configuration and describes it: groups, deployments (secrets redacted), the mirror
/// graph, and sinks. Must run inside a Tokio runtime (the router is really built).
///
/// # Errors
///
/// When the configuration is invalid.
pub fn check(args: &CheckArgs) -> Result<String, GatewayError> {
    let config = load(args.config.as_deref())?;
    let gateway = Gateway::from_config(&config)?;
    Ok(describe(&config, &gateway))
}

fn describe(config: &GatewayConfig, gateway: &Gateway) -> String {
    let mut out = String::new();
    let router = gateway.router();
    let _ = writeln!(out, "Model groups:");
    for group in router.model_groups() {
        let _ = writeln!(out, "  {group}");
        for entry in config.model_list.iter().filter(|e| e.model_name == group) {
            let params = &entry.litellm_params;
            let mut facts = vec![format!("model {}", params.model)];
            if let Some(id) = &entry.model_info.id {
                facts.push(format!("id {id}"));
            }
            if let Some(base) = &params.api_base {
                facts.push(format!("api_base {}", redact_url(base)));
            }
            if let Some(version) = &params.api_version {
                facts.push(format!("api_version {version}"));
            } else if params.model.provider() == "azure" {
                facts.push(format!(
                    "api_version {} (default: AZURE_API_VERSION, else LiteLLM's)",
                    mirror::providers::azure_default_api_version()
                ));
            }
            if params.api_key.is_some() || params.azure_ad_token.is_some() {
                facts.push("key set (redacted)".to_owned());
            }
            // `rpm`/`tpm` may sit beside `litellm_params`, as LiteLLM reads them too.
            for (name, value) in [
                ("rpm", params.rpm.or(entry.rpm)),
                ("tpm", params.tpm.or(entry.tpm)),
            ] {
                if let Some(value) = value {
                    facts.push(format!("{name} {value}"));
                }
            }
            if let Some(weight) = params.weight {
                facts.push(format!("weight {weight}"));
            }
            if let Some(order) = params.order {
                facts.push(format!("order {order}"));
            }
            if let Some(targets) = &params.silent_model {
                let rate = params
                    .silent_sample_rate
                    .unwrap_or(config.mirror_settings.mirror.default_sample_rate);
                facts.push(format!(
                    "mirrors to {} at {:.0}%",
                    targets.groups().join(", "),
                    rate * 100.0
                ));
            }
            let _ = writeln!(out, "    - {}", facts.join(", "));
        }
    }
    let _ = writeln!(out, "Mirror graph:");
    let mut any = false;
    for group in router.model_groups() {
        let targets = router.silent_targets(&group);
        if !targets.is_empty() {
            any = true;
            let _ = writeln!(out, "  {group} -> {}", targets.join(", "));
        }
    }
    if !any {
        let _ = writeln!(out, "  (no deployment names a silent_model)");
    }
    for target in router
        .mirror_controls()
        .targets
        .iter()
        .filter(|t| t.max_spend_usd.is_some() || t.until.is_some())
    {
        let mut limits = Vec::new();
        if let (Some(max), Some(period)) = (target.max_spend_usd, target.spend_period) {
            limits.push(format!("at most {max} USD per {period}"));
        }
        if let Some(until) = &target.until {
            limits.push(format!("until {until}"));
        }
        let line = format!("  {}: {}", target.silent_group, limits.join(", "));
        if !out.contains(&format!("{line}\n")) {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(
        out,
        "Silent work: {} MiB budget, {} queued and {} in flight at most; mirroring {}.",
        config.mirror_settings.mirror.max_bytes / (1024 * 1024),
        config.mirror_settings.mirror.queue_size,
        config.mirror_settings.mirror.max_in_flight,
        if config.mirror_settings.mirror.enabled {
            "on"
        } else {
            "off"
        }
    );
    let _ = writeln!(
        out,
        "Sinks: {}",
        if gateway.sinks().is_empty() {
            "none".to_owned()
        } else {
            gateway.sinks().join(", ")
        }
    );
    let _ = writeln!(
        out,
        "Auth: {}",
        // What the built gateway enforces, not what the file seems to say.
        if gateway.requires_key() {
            "master key required on every route but /health* (key redacted)"
        } else {
            "OFF: no master key, every client is accepted"
        }
    );
    describe_router_settings(&mut out, config);
    let ignored = config.ignored_keys();
    if !ignored.is_empty() {
        let _ = writeln!(out, "Accepted without effect:");
        for key in &ignored {
            let _ = writeln!(out, "  {key}");
        }
    }
    if !config.duplicate_keys().is_empty() {
        let _ = writeln!(
            out,
            "Keys written twice (the last value is used): {}",
            config.duplicate_keys().join(", ")
        );
    }
    if !config.inactive_deployments().is_empty() {
        let _ = writeln!(
            out,
            "Deployments left out for LITELLM_ENVIRONMENT: {}",
            config.inactive_deployments().join(", ")
        );
    }
    let dropped = config.sinks().unknown;
    if !dropped.is_empty() {
        let _ = writeln!(
            out,
            "Callbacks dropped (Mirror does not implement them): {}",
            dropped.join(", ")
        );
    }
    out
}

/// The router settings as resolved: `router_settings`, then `litellm_settings`, then defaults.
fn describe_router_settings(out: &mut String, config: &GatewayConfig) {
    let settings = &config.router_settings;
    let seconds = |value: Option<f64>| value.map_or_else(|| "none".to_owned(), |s| format!("{s}s"));
    let _ = writeln!(out, "Router settings:");
    let _ = writeln!(
        out,
        "  strategy {}; num_retries {}; retry_after {}s; timeout {}; stream_timeout {}",
        settings.routing_strategy.name(),
        settings.num_retries,
        settings.retry_after,
        seconds(settings.timeout),
        seconds(settings.stream_timeout)
    );
    let _ = writeln!(
        out,
        "  cooldowns: {}; allowed_fails {} per minute; cooldown_time {}s",
        if settings.disable_cooldowns {
            "off"
        } else {
            "on"
        },
        settings.allowed_fails,
        settings.cooldown_time
    );
    for (name, lists) in [
        ("fallbacks", &settings.fallbacks),
        (
            "context_window_fallbacks",
            &settings.context_window_fallbacks,
        ),
        (
            "content_policy_fallbacks",
            &settings.content_policy_fallbacks,
        ),
    ] {
        for map in lists {
            for (from, to) in map {
                let _ = writeln!(out, "  {name}: {from} -> {}", to.join(", "));
            }
        }
    }
    if !settings.default_fallbacks.is_empty() {
        let _ = writeln!(
            out,
            "  default_fallbacks: {}",
            settings.default_fallbacks.join(", ")
        );
    }
    let _ = writeln!(out, "  max_fallbacks {}", settings.max_fallbacks);
    for (alias, target) in &settings.model_group_alias {
        let _ = writeln!(out, "  alias: {alias} -> {}", target.target());
    }
    let redis = if settings.redis_url.is_some() {
        "redis_url (redacted)".to_owned()
    } else if let Some(host) = &settings.redis_host {
        format!("{host}:{}", settings.redis_port.unwrap_or(6379))
    } else {
        "none (state stays in this process)".to_owned()
    };
    let _ = writeln!(out, "  redis: {redis}");
    let cache = match config.cache_config() {
        None => "off".to_owned(),
        Some(cache) => {
            let store = match cache.kind.as_deref() {
                Some("redis") => format!(
                    "redis {}:{}",
                    cache.host.as_deref().unwrap_or("$REDIS_HOST"),
                    cache
                        .port
                        .map_or_else(|| "6379".to_owned(), |p| p.to_string())
                ),
                _ => "memory".to_owned(),
            };
            let ttl = cache
                .ttl
                .or(cache.default_in_memory_ttl)
                .or(cache.default_in_redis_ttl);
            format!(
                "{store}; ttl {}; namespace {}; mode {}",
                seconds(ttl),
                cache.namespace.as_deref().unwrap_or("none"),
                cache.mode.as_deref().unwrap_or("default_on")
            )
        }
    };
    let _ = writeln!(out, "  response cache: {cache}");
    // Variable names only: their values may be keys.
    let presets = mirror::providers::OPENAI_COMPATIBLE_PRESETS
        .iter()
        .flat_map(|preset| preset.key_vars.iter().chain([&preset.base_var]))
        .copied();
    let mut from_env: Vec<&str> = [
        "OPENAI_API_KEY",
        "OPENAI_API_BASE",
        "OPENAI_BASE_URL",
        "AZURE_API_KEY",
        "AZURE_API_BASE",
        "AZURE_API_VERSION",
        "LITELLM_ENVIRONMENT",
    ]
    .into_iter()
    .chain(presets)
    .filter(|name| std::env::var_os(name).is_some())
    .collect();
    from_env.dedup();
    let _ = writeln!(
        out,
        "  defaults from the environment: {}",
        if from_env.is_empty() {
            "none".to_owned()
        } else {
            from_env.join(", ")
        }
    );
}

/// Drops `user:password@` from a URL.
fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    };
    // Query values too (`?code=<redacted>`): some gateways in front of a model take their key there.
    if let Some(query) = query {
        redacted.push_str(&mirror::providers::public_base(&format!("?{query}")));
    }
    redacted
}
