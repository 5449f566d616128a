//! OpenAI embeddings wire types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model group.
    pub model: String,
    /// A string, a list of strings, or token arrays.
    pub input: Value,
    /// `float` or `base64` (the official SDKs ask for base64 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// The end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Gateway metadata; never forwarded to a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Every other field (`dimensions`, ...), forwarded verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingsRequest {
    /// The body to send to a provider, with `model` replaced and the gateway's own fields left out.
    pub fn upstream<'a>(&'a self, model: &'a str) -> UpstreamEmbeddingsRequest<'a> {
        UpstreamEmbeddingsRequest {
            request: self,
            model,
            defaults: None,
        }
    }

    fn sets(&self, key: &str) -> bool {
        match key {
            "model" | "input" => true,
            "encoding_format" => self.encoding_format.is_some(),
            "user" => self.user.is_some(),
            other => self.extra.contains_key(other),
        }
    }
}

/// A borrowed view of an [`EmbeddingsRequest`] that serializes as the body a provider receives.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamEmbeddingsRequest<'a> {
    request: &'a EmbeddingsRequest,
    model: &'a str,
    defaults: Option<&'a crate::RequestDefaults>,
}

impl<'a> UpstreamEmbeddingsRequest<'a> {
    /// Adds a deployment's request defaults under the request's own values (see
    /// [`crate::UpstreamChatRequest::with_defaults`]).
    #[must_use]
    pub fn with_defaults(mut self, defaults: &'a crate::RequestDefaults) -> Self {
        self.defaults = Some(defaults);
        self
    }
}

impl Serialize for UpstreamEmbeddingsRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        let request = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("input", &request.input)?;
        if let Some(format) = &request.encoding_format {
            map.serialize_entry("encoding_format", format)?;
        }
        if let Some(user) = &request.user {
            map.serialize_entry("user", user)?;
        }
        for (key, value) in &request.extra {
            if !crate::chat::ROUTER_ONLY_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(defaults) = self.defaults {
            crate::chat::serialize_defaults(&mut map, defaults, |key| request.sets(key))?;
        }
        map.end()
    }
}

/// An embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// One embedding per input.
    #[serde(default, deserialize_with = "crate::chat::null_as_empty")]
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingsUsage>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// `embedding`.
    #[serde(default)]
    pub object: String,
    /// The input's index.
    #[serde(default)]
    pub index: u32,
    /// A list of floats, or a base64 string when `encoding_format` was `base64`.
    pub embedding: Value,
}

/// Token usage of an embeddings call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    /// Tokens in the input.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// The same, as the provider reports it.
    #[serde(default)]
    pub total_tokens: u64,
}
