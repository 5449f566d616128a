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
    let gateway = Gateway::from_config(&config)?;
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
    gateway.serve_until_signal(&address).await
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
            }
            if params.api_key.is_some() || params.azure_ad_token.is_some() {
                facts.push("key set (redacted)".to_owned());
            }
            for (name, value) in [("rpm", params.rpm), ("tpm", params.tpm)] {
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
        if config.general_settings.master_key.is_some() {
            "master key set (redacted)"
        } else {
            "none (every client is accepted)"
        }
    );
    let ignored = config.ignored_keys();
    if !ignored.is_empty() {
        let _ = writeln!(out, "Accepted without effect: {}", ignored.join(", "));
    }
    out
}

/// Drops `user:password@` from a URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
