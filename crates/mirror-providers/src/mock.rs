//! An in-process provider for offline use: no network, no keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use mirror_core::{
    ChatChunk, ChatMessage, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta,
    DeploymentParams, Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, Usage,
};
use serde_json::{Map, Value};

use crate::{ChunkStream, Provider, ProviderError, RelayedChunk};
use crate::{ResponseCall, ResponsesEventStream};
use mirror_core::{ResponsesRequest, ResponsesResponse};

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

pub(crate) fn estimate_tokens(text: &str) -> u64 {
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

pub(crate) fn now_secs() -> u64 {
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
        // Built here, not parsed: no upstream bytes, so a gateway serialises them.
        let chunks = chunks
            .into_iter()
            .map(|chunk| Ok(RelayedChunk::from(chunk)));
        Ok(futures::stream::iter(chunks).boxed())
    }

    async fn embeddings(
        &self,
        deployment: &DeploymentParams,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Mock::delay_or_fail(deployment).await?;
        let inputs: Vec<String> = match &request.input {
            Value::String(text) => vec![text.clone()],
            // A string item embeds like the same string alone (not its JSON text, quotes included);
            // token arrays embed as their JSON.
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect(),
            other => vec![other.to_string()],
        };
        let tokens: u64 = inputs.iter().map(|text| estimate_tokens(text)).sum();
        let base64 = request.encoding_format.as_deref() == Some("base64");
        let data = inputs
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let vector = pseudo_embedding(text);
                Embedding {
                    object: "embedding".to_owned(),
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    embedding: if base64 {
                        Value::String(encode_base64(&vector))
                    } else {
                        Value::from(vector)
                    },
                }
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

    async fn responses(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesResponse, ProviderError> {
        Mock::delay_or_fail(deployment).await?;
        let text = crate::mock_responses::answer(deployment, request);
        Ok(crate::mock_responses::response(deployment, request, &text))
    }

    async fn responses_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesEventStream, ProviderError> {
        Mock::delay_or_fail(deployment).await?;
        let text = crate::mock_responses::answer(deployment, request);
        let done = crate::mock_responses::response(deployment, request, &text);
        Ok(crate::mock_responses::events(&done, &text))
    }

    /// The mock stores nothing: every stored-response call is a 404 that says so.
    async fn response_call(
        &self,
        _deployment: &DeploymentParams,
        call: ResponseCall<'_>,
    ) -> Result<Value, ProviderError> {
        Err(ProviderError::NotFound {
            message: format!(
                "the mock provider stores no responses, so it has no response `{}`",
                call.id
            ),
        })
    }
}

/// OpenAI's `encoding_format: base64`: the little-endian float32 bytes, base64-encoded.
fn encode_base64(vector: &[f64]) -> String {
    use base64::Engine as _;
    #[allow(clippy::cast_possible_truncation)]
    let bytes: Vec<u8> = vector
        .iter()
        .flat_map(|value| (*value as f32).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
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

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use futures::StreamExt;
    use mirror_core::{ChatChunk, ModelRef, StreamAccumulator};
    use serde_json::json;

    use super::*;

    fn params() -> DeploymentParams {
        DeploymentParams::new(ModelRef::parse("mock/echo").unwrap())
    }

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn conversation() -> ChatRequest {
        request(json!({
            "model": "group",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "question"}]},
            ],
        }))
    }

    async fn stream(params: &DeploymentParams, request: &ChatRequest) -> Vec<ChatChunk> {
        Mock::new()
            .chat_stream(params, request)
            .await
            .unwrap()
            .map(|item| item.unwrap().into_chunk())
            .collect()
            .await
    }

    #[tokio::test]
    async fn echoes_the_last_user_message() {
        let response = Mock::new().chat(&params(), &conversation()).await.unwrap();
        assert_eq!(response.text().as_deref(), Some("second question"));
        assert_eq!(response.model, "echo");
        assert_eq!(response.object, "chat.completion");
        assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));
        let usage = response.usage.unwrap();
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );
        assert_eq!(usage.completion_tokens, 4); // 15 characters, about four a token
    }

    #[tokio::test]
    async fn answers_mock_response() {
        let mut params = params();
        params.mock_response = Some("fixed answer".to_owned());
        let response = Mock::new().chat(&params, &conversation()).await.unwrap();
        assert_eq!(response.text().as_deref(), Some("fixed answer"));
    }

    #[tokio::test]
    async fn streams_word_by_word_without_usage_unless_asked() {
        let mut params = params();
        params.mock_response = Some("one two three".to_owned());
        let chunks = stream(&params, &conversation()).await;
        let contents: Vec<Option<&str>> = chunks
            .iter()
            .map(|chunk| chunk.choices[0].delta.as_ref()?.content.as_deref())
            .collect();
        expect![[r#"
            [
                Some(
                    "",
                ),
                Some(
                    "one ",
                ),
                Some(
                    "two ",
                ),
                Some(
                    "three",
                ),
                None,
            ]
        "#]]
        .assert_debug_eq(&contents);
        assert!(chunks.iter().all(|chunk| chunk.usage.is_none()));
        assert_eq!(
            chunks[0].choices[0].delta.as_ref().unwrap().role.as_deref(),
            Some("assistant")
        );
        assert_eq!(
            chunks.last().unwrap().choices[0].finish_reason.as_deref(),
            Some("stop")
        );
        // Every chunk belongs to the same response.
        assert!(chunks
            .iter()
            .all(|chunk| chunk.id == chunks[0].id && chunk.object == "chat.completion.chunk"));
    }

    #[tokio::test]
    async fn streams_the_usage_chunk_last_when_asked() {
        let mut request = conversation();
        request.stream_options = serde_json::from_value(json!({"include_usage": true})).unwrap();
        let chunks = stream(&params(), &request).await;
        let last = chunks.last().unwrap();
        assert!(last.choices.is_empty());
        let mut accumulator = StreamAccumulator::default();
        for chunk in &chunks {
            accumulator.push(chunk);
        }
        let streamed = accumulator.finish();
        let complete = Mock::new().chat(&params(), &request).await.unwrap();
        assert_eq!(streamed.text(), complete.text());
        assert_eq!(streamed.usage, complete.usage);
        assert_eq!(last.usage, complete.usage);
    }

    #[tokio::test]
    async fn failure_rate_one_always_fails_with_a_500() {
        let mut params = params();
        params.mock_failure_rate = Some(1.0);
        let mock = Mock::new();
        for _ in 0..20 {
            let err = mock.chat(&params, &conversation()).await.unwrap_err();
            assert!(
                matches!(err, ProviderError::Upstream { status: 500, .. }),
                "{err:?}"
            );
            assert!(err.is_retryable());
            assert!(mock.chat_stream(&params, &conversation()).await.is_err());
            let embeddings = serde_json::from_value(json!({"model": "e", "input": "x"})).unwrap();
            assert!(mock.embeddings(&params, &embeddings).await.is_err());
        }
        params.mock_failure_rate = Some(0.0);
        for _ in 0..20 {
            mock.chat(&params, &conversation()).await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_the_answer() {
        let mut params = params();
        params.mock_latency_ms = Some(1500);
        let started = tokio::time::Instant::now();
        Mock::new().chat(&params, &conversation()).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn base64_embeddings_decode_to_the_float_vector() {
        use base64::Engine as _;
        let request: EmbeddingsRequest = serde_json::from_value(
            json!({"model": "group", "input": "hi", "encoding_format": "base64"}),
        )
        .unwrap();
        let plain: EmbeddingsRequest =
            serde_json::from_value(json!({"model": "group", "input": "hi"})).unwrap();
        let encoded = Mock::new().embeddings(&params(), &request).await.unwrap();
        let floats = Mock::new().embeddings(&params(), &plain).await.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.data[0].embedding.as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
            .collect();
        let expected: Vec<f32> = floats.data[0]
            .embedding
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(decoded, expected);
    }

    #[tokio::test]
    async fn embeddings_are_deterministic() {
        let mock = Mock::new();
        let embed = |input: Value| {
            let request: EmbeddingsRequest =
                serde_json::from_value(json!({"model": "group", "input": input})).unwrap();
            let mock = mock.clone();
            async move { mock.embeddings(&params(), &request).await.unwrap() }
        };
        let single = embed(json!("hello")).await;
        let again = embed(json!("hello")).await;
        let list = embed(json!(["hello", "world"])).await;
        let other = embed(json!("world")).await;

        assert_eq!(single, again);
        assert_eq!(single.data.len(), 1);
        assert_eq!(list.data.len(), 2);
        assert_eq!(list.data[1].index, 1);
        // The same text embeds the same, alone or in a list.
        assert_eq!(list.data[0].embedding, single.data[0].embedding);
        assert_eq!(list.data[1].embedding, other.data[0].embedding);
        assert_ne!(single.data[0].embedding, other.data[0].embedding);
        assert_eq!(single.usage.as_ref().unwrap().prompt_tokens, 2);
        assert_eq!(list.usage.as_ref().unwrap().prompt_tokens, 4);
        let values = single.data[0].embedding.as_array().unwrap();
        assert_eq!(values.len(), 8);
        assert!(values
            .iter()
            .all(|v| (-1.0..1.0).contains(&v.as_f64().unwrap())));
    }

    #[test]
    fn names_itself() {
        assert_eq!(Mock::new().name(), "mock");
        assert_eq!(Mock::new().api_base(&params()), "mock://in-process");
    }
}
