//! Call identity: who a call is, which trace it belongs to, and whether it is a silent copy.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The id of one call (one client request, or one silent copy of it). Fresh for every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(Uuid);

impl CallId {
    /// A new, time-ordered id (UUIDv7).
    pub fn new() -> Self {
        CallId(Uuid::now_v7())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for CallId {
    fn default() -> Self {
        CallId::new()
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for CallId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(CallId)
    }
}

/// The id shared by a primary call and its silent copies; the key for pairing them.
///
/// A caller may choose it (`metadata.trace_id`), so it is any string, not necessarily a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TraceId(String);

impl TraceId {
    /// A new random trace id.
    pub fn new() -> Self {
        TraceId(Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TraceId {
    fn default() -> Self {
        TraceId::new()
    }
}

impl From<String> for TraceId {
    fn from(value: String) -> Self {
        TraceId(value)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Request-metadata key a caller sets to `true` to keep one request from being mirrored.
pub const OPT_OUT_METADATA_KEY: &str = "disable_mirroring";

/// Request-metadata key a caller may set to choose the trace id (LiteLLM's name).
pub const TRACE_ID_METADATA_KEY: &str = "trace_id";

/// Request-metadata key holding the request's tags (LiteLLM's name).
pub const TAGS_METADATA_KEY: &str = "tags";

/// Identity and routing facts of one call, kept beside the wire request.
///
/// The router creates one per client request with [`CallMeta::for_request`] and one per silent copy
/// with [`crate::ChatRequest::to_mirror`]. `is_silent_experiment` and `mirror_of` are never read from
/// what a caller sent, so a caller cannot make a primary call look like a shadow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallMeta {
    /// Fresh for every call.
    pub call_id: CallId,
    /// Shared by a primary call and its silent copies.
    pub trace_id: TraceId,
    /// The model group the call was made to.
    pub model_group: String,
    /// Whether this call is a silent copy.
    pub is_silent_experiment: bool,
    /// The primary's call id, on a silent copy.
    pub mirror_of: Option<CallId>,
    /// Request tags (from `metadata.tags`).
    pub tags: Vec<String>,
    /// The caller asked for this request not to be mirrored.
    pub mirror_opt_out: bool,
}

impl CallMeta {
    /// Identity for a new client request to `model_group`, reading the caller's `trace_id`, `tags` and
    /// opt-out flag from the request metadata.
    pub fn for_request(
        model_group: impl Into<String>,
        metadata: Option<&Map<String, Value>>,
    ) -> Self {
        let lookup = |key: &str| metadata.and_then(|m| m.get(key));
        let trace_id = match lookup(TRACE_ID_METADATA_KEY) {
            Some(Value::String(id)) if !id.is_empty() => TraceId::from(id.clone()),
            _ => TraceId::new(),
        };
        let tags = match lookup(TAGS_METADATA_KEY) {
            Some(Value::Array(tags)) => tags
                .iter()
                .filter_map(|tag| tag.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let mirror_opt_out = matches!(lookup(OPT_OUT_METADATA_KEY), Some(Value::Bool(true)));
        CallMeta {
            call_id: CallId::new(),
            trace_id,
            model_group: model_group.into(),
            is_silent_experiment: false,
            mirror_of: None,
            tags,
            mirror_opt_out,
        }
    }
}
