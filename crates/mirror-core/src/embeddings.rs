//! OpenAI embeddings wire types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mirror::{MirrorCopy, PER_CALL_METADATA_KEYS};
use crate::{CallId, CallMeta};

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
    /// A deep copy of this request for the silent model group `target`: the embeddings copy point,
    /// with the rules of [`crate::ChatRequest::to_mirror`] (`model` is the silent group; `metadata`
    /// keeps the caller's keys except [`crate::PER_CALL_METADATA_KEYS`] and gains
    /// `is_silent_experiment`, `model_group` and `mirror_of`; a fresh call id, the primary's trace
    /// id and `mirror_of` for the identity).
    pub fn to_mirror(&self, primary: &CallMeta, target: &str) -> MirrorCopy<EmbeddingsRequest> {
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

impl EmbeddingsResponse {
    /// The answer's shape for a record; `request` gives the asked-for `dimensions`.
    pub fn shape(&self, request: &EmbeddingsRequest) -> crate::EmbeddingShape {
        crate::EmbeddingShape {
            vectors: self.data.len() as u64,
            dimensions: self.data.first().and_then(|first| first.dimensions()),
            requested_dimensions: request.extra.get("dimensions").and_then(Value::as_u64),
        }
    }
}

impl Embedding {
    /// The vector's length: the list's, or the number of little-endian float32 values in base64
    /// text (4 bytes each), counted without decoding.
    pub fn dimensions(&self) -> Option<u64> {
        match &self.embedding {
            Value::Array(values) => Some(values.len() as u64),
            Value::String(text) => {
                let digits = text.trim_end_matches('=').len() as u64;
                Some(digits * 3 / 4 / 4)
            }
            _ => None,
        }
    }

    /// The vector's values: the list's numbers, or the little-endian float32 values of base64
    /// text; `None` when it is neither (or a list holds something that is not a number).
    #[allow(clippy::cast_possible_truncation)]
    pub fn vector(&self) -> Option<Vec<f32>> {
        match &self.embedding {
            Value::Array(values) => values
                .iter()
                .map(|v| v.as_f64().map(|x| x as f32))
                .collect(),
            Value::String(text) => {
                let bytes = decode_base64(text)?;
                Some(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

/// Standard base64 (padding optional) to bytes; `None` on a character outside the alphabet.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let digits = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut word = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            word |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = word.to_be_bytes();
        // 4 digits carry 3 bytes, 3 carry 2, 2 carry 1.
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_read_from_lists_and_base64() {
        let list = embedding(serde_json::json!([0.5, -1.0, 2.0]));
        assert_eq!(list.vector(), Some(vec![0.5, -1.0, 2.0]));
        let bytes: Vec<u8> = [0.5f32, -1.0, 2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        // 12 bytes of float32 [0.5, -1.0, 2.0], as Python's base64.b64encode writes them.
        assert_eq!(bytes, [0, 0, 0, 63, 0, 0, 128, 191, 0, 0, 0, 64]);
        let encoded = embedding(Value::from("AAAAPwAAgL8AAABA"));
        assert_eq!(encoded.vector(), Some(vec![0.5, -1.0, 2.0]));
        assert_eq!(embedding(Value::from("not base64!")).vector(), None);
        assert_eq!(embedding(serde_json::json!(["x"])).vector(), None);
    }

    fn embedding(value: Value) -> Embedding {
        Embedding {
            object: "embedding".to_owned(),
            index: 0,
            embedding: value,
        }
    }

    #[test]
    fn dimensions_of_lists_and_base64() {
        assert_eq!(
            embedding(serde_json::json!([0.1, 0.2, 0.3])).dimensions(),
            Some(3)
        );
        // 1.0f32 little-endian is 00 00 80 3f.
        assert_eq!(embedding(Value::from("AACAPw==")).dimensions(), Some(1));
        // Two floats, 8 bytes: one padding character.
        assert_eq!(embedding(Value::from("AACAPwAAAEA=")).dimensions(), Some(2));
        assert_eq!(embedding(Value::Null).dimensions(), None);
    }

    #[test]
    fn shape_counts_vectors_and_reads_the_requested_dimensions() {
        let request: EmbeddingsRequest = serde_json::from_value(
            serde_json::json!({"model": "m", "input": ["a", "b"], "dimensions": 2}),
        )
        .unwrap();
        let response: EmbeddingsResponse = serde_json::from_value(serde_json::json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5, 0.5]},
                {"object": "embedding", "index": 1, "embedding": [0.1, 0.9]}
            ],
            "model": "m"
        }))
        .unwrap();
        assert_eq!(
            response.shape(&request),
            crate::EmbeddingShape {
                vectors: 2,
                dimensions: Some(2),
                requested_dimensions: Some(2)
            }
        );
    }
}
