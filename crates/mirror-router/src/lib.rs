//! The router of Mirror: LiteLLM's Router with `silent_model`, done properly.
//!
//! - [`Router`]: resolves a model group (or alias), picks a deployment ([`RoutingStrategy`]), retries
//!   with backoff, cools failing deployments down, falls back to other groups, and emits one
//!   `CallRecord` per call to a [`RecordConsumer`].
//! - Silent mirroring: when the first deployment picked for a client request names a `silent_model`,
//!   a deep copy of the request is queued for each silent group. Copies run in the background through
//!   the same router (selection, retries, records) but never mirror again. The queue and the number of
//!   copies running are bounded; whatever is not run is counted ([`MirrorSnapshot`]).
//! - [`RouterConfig`]: LiteLLM's `model_list` and `router_settings`, from YAML, JSON or code.
//! - [`BlockingRouter`]: the same for callers without a runtime.
//!
//! Unlike LiteLLM, a request is mirrored once per client request, not once per attempt: retries and
//! fallbacks of the primary do not multiply shadows, so the shadow sees the production request rate.
//!
//! The router knows providers only through the `Provider` trait and does no logging I/O: the `mirror`
//! facade registers the OpenAI, Azure and mock adapters and feeds records to the log sinks.

mod api;
mod attempt;
mod blocking;
mod cache;
mod call;
mod config;
mod controls;
mod deployment;
mod error;
mod kinds;
mod litellm_keys;
mod locate;
mod messages;
mod pricing;
mod records;
mod response_ids;
mod responses;
mod router;
mod select;
mod shared;
mod silent;
mod stream;
mod translate;
mod validate;

pub use blocking::{BlockingChatStream, BlockingRouter};
pub use cache::{CacheConfig, CacheStats, CacheStatus};
pub use config::{
    parse_yaml, parse_yaml_as_pyyaml, GroupAlias, MirrorSettings, ModelDeployment, RouterConfig,
    RouterSettings, RoutingStrategy, RoutingStrategyArgs, SilentTargetSettings,
};
pub use controls::{ControlError, MirrorControls, TargetChange, TargetStatus};
pub use error::{ConfigError, Position, RouterError};
pub use litellm_keys::{
    classify, Classified, KeyUse, Section, LITELLM_KEYS, REQUEST_DEFAULT_KEYS,
    UNSUPPORTED_PROVIDERS,
};
pub use messages::MessagesStream;
pub use records::RecordConsumer;
pub use responses::ResponsesStream;
pub use router::{Routed, Router, RouterBuilder, SpendSnapshot};
pub use shared::SharedStateStats;
pub use silent::{
    silent_copies_stay_on_thread, DropReason, MirrorSnapshot, MirrorStats, SILENT_CALL_BYTES,
};
pub use stream::ChatStream;
pub use validate::{
    apply_supported_environments, check_rate, check_size, check_values, SecondsRule,
    DEPLOYMENT_KEYS, SHUTDOWN_SECONDS, TIMEOUT_SECONDS, WAIT_SECONDS,
};
