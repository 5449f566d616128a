//! The silent-copy rules: what a mirror of a request keeps, drops and sets.
//!
//! All of it lives in [`ChatRequest::to_mirror`], the one place where a request is copied.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CallId, CallMeta, ChatRequest};

/// Request-metadata keys that identify one call, or that the primary path added, and so are never
/// carried to a silent copy.
///
/// This closes LiteLLM's holes where per-call logging ids, the parent span, or a caller-supplied
/// `is_silent_experiment` leaked from the primary into the shadow (or the other way round).
pub const PER_CALL_METADATA_KEYS: &[&str] = &[
    "litellm_call_id",
    "litellm_logging_obj",
    "standard_logging_object",
    "litellm_parent_otel_span",
    "call_id",
    "generation_id",
    "parent_observation_id",
    "existing_trace_id",
    "deployment",
    "deployment_id",
    "deployment_tags",
    "model_info",
    "api_base",
    "routing_decision",
    "is_silent_experiment",
    "mirror_of",
    "model_group",
    crate::OPT_OUT_METADATA_KEY,
];

/// Whether request metadata carries the marker the copy points set on a silent copy
/// (`is_silent_experiment: true` in chat and embeddings `metadata`, in `litellm_metadata` for
/// Responses and Messages). Providers read it to send the copy over the silent lane's
/// connections, never a primary call's.
pub fn is_silent_copy(metadata: Option<&Map<String, Value>>) -> bool {
    metadata
        .and_then(|metadata| metadata.get("is_silent_experiment"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Removes the silent-copy marker from request metadata. The router does this on every call that
/// is not a silent copy, so the marker a provider reads is always the copy point's, never one a
/// caller sent.
pub fn clear_silent_mark(metadata: &mut Option<Map<String, Value>>) {
    if let Some(metadata) = metadata {
        metadata.remove("is_silent_experiment");
    }
}

/// A silent copy of a request (chat by default; one copy point per format): its body and its
/// identity.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorCopy<R = ChatRequest> {
    /// The copied request, addressed to the silent group.
    pub request: R,
    /// The copy's identity: fresh call id, the primary's trace id, `mirror_of` set.
    pub meta: CallMeta,
}

impl ChatRequest {
    /// A deep copy of this request for the silent model group `target`.
    ///
    /// The rules (LiteLLM 1.109's contract, with its known holes closed):
    /// - the copy shares nothing with `self` or with any other copy; `self` is not touched;
    /// - `model` is the silent group; `stream` and `stream_options` are kept as the caller sent them;
    /// - metadata keeps the caller's keys except [`PER_CALL_METADATA_KEYS`], and gains
    ///   `is_silent_experiment: true`, `model_group: <target>` and `mirror_of: <primary call id>`;
    /// - the identity gets a fresh call id, the primary's trace id, `mirror_of` = the primary's call id,
    ///   and no routing decision of the primary's.
    pub fn to_mirror(&self, primary: &CallMeta, target: &str) -> MirrorCopy {
        let mut request = self.clone();
        request.model = target.to_owned();
        let metadata = request.metadata.get_or_insert_with(Map::new);
        metadata.retain(|key, _| !PER_CALL_METADATA_KEYS.contains(&key.as_str()));
        metadata.insert("is_silent_experiment".to_owned(), Value::Bool(true));
        metadata.insert("model_group".to_owned(), Value::String(target.to_owned()));
        metadata.insert(
            "mirror_of".to_owned(),
            Value::String(primary.call_id.to_string()),
        );
        let meta = CallMeta {
            call_id: CallId::new(),
            trace_id: primary.trace_id.clone(),
            model_group: target.to_owned(),
            is_silent_experiment: true,
            mirror_of: Some(primary.call_id),
            tags: primary.tags.clone(),
            mirror_opt_out: false,
        };
        MirrorCopy { request, meta }
    }
}

/// The silent model groups a deployment mirrors to: `silent_model` as a string or a list of strings.
///
/// Anything else (a number, a map, an empty list, a list with a non-string, an empty name) is refused
/// with an error that says why; LiteLLM quietly disables mirroring in those cases.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SilentTargets(Vec<String>);

impl SilentTargets {
    /// Targets from a list of group names.
    ///
    /// # Errors
    ///
    /// Fails when the list is empty or a name is empty.
    pub fn new<I, S>(groups: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let groups: Vec<String> = groups.into_iter().map(Into::into).collect();
        if groups.is_empty() {
            return Err(SILENT_MODEL_SHAPE.to_owned() + ", got an empty list");
        }
        if groups.iter().any(|name| name.trim().is_empty()) {
            return Err(SILENT_MODEL_SHAPE.to_owned() + ", got an empty name");
        }
        Ok(SilentTargets(groups))
    }

    /// The group names, in configured order.
    pub fn groups(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Debug for SilentTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

const SILENT_MODEL_SHAPE: &str = "`silent_model` must be a model group name or a list of names";

impl<'de> Deserialize<'de> for SilentTargets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetsVisitor;

        impl<'de> Visitor<'de> for TargetsVisitor {
            type Value = SilentTargets;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model group name or a list of model group names")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                SilentTargets::new([value]).map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut groups = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    match item {
                        Value::String(name) => groups.push(name),
                        other => {
                            return Err(de::Error::custom(format!(
                                "{SILENT_MODEL_SHAPE}, got a list containing `{other}`"
                            )))
                        }
                    }
                }
                SilentTargets::new(groups).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(TargetsVisitor)
    }
}

#[cfg(test)]
mod tests;
