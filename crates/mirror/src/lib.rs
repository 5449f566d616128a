//! Mirror: an LLM router and OpenAI-compatible gateway whose headline feature is traffic mirroring.
//!
//! A deployment in a model group may name a `silent_model`. Requests routed to it are answered from
//! the deployment as usual, and a deep copy is sent in the background to the silent model group, so
//! you can try a new model or provider on production traffic and compare the two call by call. The
//! silent call never delays, changes or fails the primary response; it is routed like any call
//! (selection, retries, records), marked `is_silent_experiment`, given its own call id, linked to the
//! primary by `mirror_of` and the shared `trace_id`, and never mirrored again.
//!
//! # Quick start
//!
//! The Rust equivalent of LiteLLM's quick start: `gpt-3.5-turbo` on Azure answers, and every request
//! routed to it is mirrored to the `gpt-4` group on OpenAI.
//!
//! ```no_run
//! use mirror::{ChatMessage, ChatRequest, ModelDeployment};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let router = mirror::router_builder()?
//!     .deployment(
//!         ModelDeployment::new("gpt-3.5-turbo", "azure/chatgpt-v-2")?
//!             .api_key(std::env::var("AZURE_API_KEY")?)
//!             .api_base(std::env::var("AZURE_API_BASE")?)
//!             .api_version("2024-10-21")
//!             .silent_model(["gpt-4"])?,
//!     )
//!     .deployment(
//!         ModelDeployment::new("gpt-4", "openai/gpt-4")?.api_key(std::env::var("OPENAI_API_KEY")?),
//!     )
//!     // See both calls: every call, primary or silent, becomes a record.
//!     .records(|record: mirror::CallRecord| {
//!         println!(
//!             "{} group={} silent={} mirror_of={:?} trace={} {:.3}s",
//!             record.call_id,
//!             record.model_group,
//!             record.metadata.is_silent_experiment,
//!             record.metadata.mirror_of,
//!             record.trace_id,
//!             record.response_time,
//!         );
//!     })
//!     .build()?;
//!
//! let routed = router
//!     .chat(ChatRequest::new("gpt-3.5-turbo", vec![ChatMessage::user("Hello, how are you?")]))
//!     .await?;
//! println!("{:?} (call {}, trace {})", routed.response.text(), routed.call_id, routed.trace_id);
//!
//! // Let the silent call finish before the process exits.
//! router.shutdown(std::time::Duration::from_secs(30)).await;
//! # Ok(())
//! # }
//! ```
//!
//! The primary record and the silent record share `trace_id`; the silent one has
//! `metadata.is_silent_experiment = true` and `metadata.mirror_of` = the primary's call id.
//!
//! # Crates
//!
//! This facade re-exports the types users name and the layered crates as modules: [`core`] (wire
//! types, identity, silent-copy rules, records), [`providers`] (OpenAI, Azure OpenAI, mock),
//! [`router`] (selection, retries, the silent scheduler) and [`logging`] (sinks).
//!
//! It is not the `mirror` command (the `mirror-cli` crate) nor the report (`mirror-report`), so a
//! library user compiles neither's dependencies.

pub mod config;
mod defaults;
pub mod gateway;

pub use defaults::{default_config, default_providers, router_builder, DEFAULT_CONFIG_YAML};
pub use mirror_core::{
    CallId, CallRecord, ChatChunk, ChatMessage, ChatRequest, ChatResponse, EmbeddingsRequest,
    EmbeddingsResponse, SecretString, TraceId,
};
pub use mirror_router::{
    BlockingRouter, ChatStream, ConfigError, MirrorSettings, MirrorSnapshot, ModelDeployment,
    Routed, Router, RouterBuilder, RouterConfig, RouterError, RouterSettings,
};

pub use mirror_core as core;
pub use mirror_logging as logging;
pub use mirror_providers as providers;
pub use mirror_router as router;
