//! An in-process provider for offline use: no network, no keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use mirror_core::{
    ChatChunk, ChatMessage, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta,
    DeploymentParams, Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, Usage,
};
use serde_json::{Map, Value};

use crate::{ChunkStream, Provider, ProviderError};

/// The `mock` provider (`model: mock/<name>`).
///
/// It answers with the deployment's `mock_response`, or echoes the last user message. Optional
/// `mock_latency_ms` delays the answer (for streams, the first chunk) and `mock_failure_rate` makes
/// that fraction of calls fail with a 500. Streams send the answer word by word, with the usage chunk
/// when the request asks for it. Embeddings are small deterministic vectors derived from the input.
///
/// It is what makes the gateway's built-in default run on a fresh machine.
#[derive(Debug, Clone, Default)]
pub struct Mock;

impl Mock {
    /// The mock provider.
    pub fn new() -> Self {
        Mock
    }

    fn answer(deployment: &DeploymentParams, request: &ChatRequest) -> String {
        if let Some(text) = &deployment.mock_response {
            return text.clone();
        }
        request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == "user")
            .and_then(ChatMessage::text)
            .unwrap_or_default()
    }

    async fn delay_or_fail(deployment: &DeploymentParams) -> Result<(), ProviderError> {
        if let Some(ms) = deployment.mock_latency_ms.filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let rate = deployment.mock_failure_rate.unwrap_or(0.0);
        if rate > 0.0 && fastrand::f64() < rate {
            return Err(ProviderError::Upstream {
                status: 500,
                message: "mock failure (mock_failure_rate)".to_owned(),
                retry_after: None,
            });
        }
        Ok(())
    }
}

fn estimate_tokens(text: &str) -> u64 {
    // Roughly four characters a token, as OpenAI's rule of thumb says; at least one for non-empty text.
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

fn usage(request: &ChatRequest, answer: &str) -> Usage {
    let prompt: u64 = request
        .messages
        .iter()
        .filter_map(ChatMessage::text)
        .map(|text| estimate_tokens(&text) + 4)
        .sum();
    let completion = estimate_tokens(answer);
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        extra: Map::new(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn response_id() -> String {
    format!("chatcmpl-mock-{:016x}", fastrand::u64(..))
}

#[async_trait]
impl Provider for Mock {
    fn name(&self) -> &str {
        "mock"
    }

    fn api_base(&self, _deployment: &DeploymentParams) -> String {
        "mock://in-process".to_owned()
    }

    async fn chat(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        Mock::delay_or_fail(deployment).await?;
        let answer = Mock::answer(deployment, request);
        Ok(ChatResponse {
            id: response_id(),
            object: "chat.completion".to_owned(),
            created: now_secs(),
            model: deployment.model.name().to_owned(),
            usage: Some(usage(request, &answer)),
            choices: vec![Choice {
                index: 0,
                message: ChatMessage::new("assistant", answer),
                finish_reason: Some("stop".to_owned()),
                extra: Map::new(),
            }],
            extra: Map::new(),
        })
    }

    async fn chat_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        Mock::delay_or_fail(deployment).await?;
        let answer = Mock::answer(deployment, request);
        let id = response_id();
        let model = deployment.model.name().to_owned();
        let created = now_secs();
        let chunk = |delta: Option<Delta>, finish: Option<&str>| ChatChunk {
            id: id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created,
            model: model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        };
        let mut chunks = vec![chunk(
            Some(Delta {
                role: Some("assistant".to_owned()),
                content: Some(String::new()),
                ..Delta::default()
            }),
            None,
        )];
        for piece in answer.split_inclusive(' ') {
            chunks.push(chunk(
                Some(Delta {
                    content: Some(piece.to_owned()),
                    ..Delta::default()
                }),
                None,
            ));
        }
        chunks.push(chunk(Some(Delta::default()), Some("stop")));
        if request.wants_stream_usage() {
            let mut last = chunk(None, None);
            last.choices.clear();
            last.usage = Some(usage(request, &answer));
            chunks.push(last);
        }
        Ok(futures::stream::iter(chunks.into_iter().map(Ok)).boxed())
    }

    async fn embeddings(
        &self,
        deployment: &DeploymentParams,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Mock::delay_or_fail(deployment).await?;
        let inputs: Vec<String> = match &request.input {
            Value::String(text) => vec![text.clone()],
            Value::Array(items) => items.iter().map(Value::to_string).collect(),
            other => vec![other.to_string()],
        };
        let tokens: u64 = inputs.iter().map(|text| estimate_tokens(text)).sum();
        let data = inputs
            .iter()
            .enumerate()
            .map(|(index, text)| Embedding {
                object: "embedding".to_owned(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
                embedding: Value::from(pseudo_embedding(text)),
            })
            .collect();
        Ok(EmbeddingsResponse {
            object: "list".to_owned(),
            data,
            model: deployment.model.name().to_owned(),
            usage: Some(EmbeddingsUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            }),
            extra: Map::new(),
        })
    }
}

/// Eight numbers in [-1, 1) derived from the text (FNV-1a), so equal inputs embed equally.
fn pseudo_embedding(text: &str) -> Vec<f64> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    (0..8)
        .map(|round| {
            for byte in text.bytes().chain(std::iter::once(round)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            // Map the top 16 bits to [-1, 1).
            f64::from(u16::try_from(hash >> 48).unwrap_or(0)) / 32768.0 - 1.0
        })
        .collect()
}
