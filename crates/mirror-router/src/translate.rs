//! Calls across formats: a chat completion sent to a deployment that speaks Anthropic Messages,
//! and a Messages call sent to one that speaks chat completions, translated on the way in and the
//! answer (whole or streamed) translated back, with `mirror_core::translate`.
//!
//! The kinds call these from their one `send`, so retries, fallbacks, records and silent copies
//! are the same as for a call in the deployment's own format. A request that cannot be translated
//! fails as the provider's 400 would ([`ProviderError::BadRequest`], code `untranslatable`): not
//! retried, not counted against the deployment.

use std::collections::VecDeque;

use futures::{stream, StreamExt};
use mirror_core::translate::{
    chat_response_to_messages, chat_to_messages, messages_response_to_chat, messages_to_chat,
    ChatToMessagesStream, MessagesToChatStream, TranslateError,
};
use mirror_core::{
    anthropic_error_status, AnthropicErrorBody, ChatRequest, ChatResponse, MessagesRequest,
    MessagesResponse, StreamOptions,
};
use mirror_providers::{ChunkStream, MessagesEventStream, ProviderError};
use serde_json::Map;

use crate::deployment::Deployment;

/// The error code of a request refused because it cannot be translated.
pub(crate) const UNTRANSLATABLE: &str = "untranslatable";

fn refused(err: TranslateError) -> ProviderError {
    ProviderError::BadRequest {
        status: 400,
        message: err.to_string(),
        code: Some(UNTRANSLATABLE.to_owned()),
    }
}

fn malformed(err: TranslateError) -> ProviderError {
    ProviderError::MalformedResponse {
        message: err.to_string(),
        excerpt: String::new(),
    }
}

/// An `error` event inside a Messages stream, as the error the same status would have been.
fn stream_error(error: AnthropicErrorBody) -> ProviderError {
    let message = error.error.message;
    match anthropic_error_status(&error.error.kind) {
        429 => ProviderError::RateLimited {
            message,
            retry_after: None,
        },
        status @ 400..=499 => ProviderError::BadRequest {
            status,
            message,
            code: Some(error.error.kind),
        },
        status => ProviderError::Upstream {
            status,
            message,
            retry_after: None,
        },
    }
}

/// One attempt of a chat completion on `deployment`: in chat completions, or translated to
/// Messages when that is what the deployment speaks.
pub(crate) async fn send_chat(
    deployment: &Deployment,
    request: &ChatRequest,
) -> Result<ChatResponse, ProviderError> {
    if deployment.provider.speaks_messages() {
        return chat_via_messages(deployment, request).await;
    }
    deployment.provider.chat(&deployment.params, request).await
}

/// One attempt of a streamed chat completion on `deployment`, as [`send_chat`].
pub(crate) async fn send_chat_stream(
    deployment: &Deployment,
    request: &ChatRequest,
) -> Result<ChunkStream, ProviderError> {
    if deployment.provider.speaks_messages() {
        return chat_stream_via_messages(deployment, request).await;
    }
    deployment
        .provider
        .chat_stream(&deployment.params, request)
        .await
}

/// A chat completion from a deployment that speaks Messages.
async fn chat_via_messages(
    deployment: &Deployment,
    request: &ChatRequest,
) -> Result<ChatResponse, ProviderError> {
    let translated = chat_to_messages(request).map_err(refused)?;
    let answer = deployment
        .provider
        .messages(&deployment.params, &translated)
        .await?;
    Ok(messages_response_to_chat(&answer))
}

/// A streamed chat completion from a deployment that speaks Messages: its events as chunks, the
/// usage chunk when the caller asked for it, an `error` event as the stream's error.
async fn chat_stream_via_messages(
    deployment: &Deployment,
    request: &ChatRequest,
) -> Result<ChunkStream, ProviderError> {
    let translated = chat_to_messages(request).map_err(refused)?;
    let events = deployment
        .provider
        .messages_stream(&deployment.params, &translated)
        .await?;
    let translation = MessagesToChatStream::new(request.wants_stream_usage());
    let chunks = stream::unfold(Some((events, translation)), |state| async move {
        let (mut events, mut translation) = state?;
        loop {
            match events.next().await? {
                Ok(event) => match translation.push(&event) {
                    // Built from events of another format: no upstream bytes to relay.
                    Ok(Some(chunk)) => {
                        return Some((Ok(chunk.into()), Some((events, translation))));
                    }
                    Ok(None) => {}
                    Err(error) => return Some((Err(stream_error(error)), None)),
                },
                Err(err) => return Some((Err(err), None)),
            }
        }
    });
    Ok(Box::pin(chunks))
}

/// A Messages answer from a deployment that speaks chat completions.
pub(crate) async fn messages_via_chat(
    deployment: &Deployment,
    request: &MessagesRequest,
) -> Result<MessagesResponse, ProviderError> {
    let translated = messages_to_chat(request).map_err(refused)?;
    let answer = deployment
        .provider
        .chat(&deployment.params, &translated)
        .await?;
    chat_response_to_messages(&answer).map_err(malformed)
}

/// A streamed Messages call from a deployment that speaks chat completions: the chunks as
/// Anthropic's events, ending with `message_delta` (stop reason and usage) and `message_stop`
/// once the chunk stream ends; a failed chunk stream ends with its error, never a `message_stop`.
pub(crate) async fn messages_stream_via_chat(
    deployment: &Deployment,
    request: &MessagesRequest,
) -> Result<MessagesEventStream, ProviderError> {
    let mut translated = messages_to_chat(request).map_err(refused)?;
    // The usage arrives only in the usage chunk; the final `message_delta` carries it.
    translated.stream = Some(true);
    translated.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        extra: Map::new(),
    });
    let chunks = deployment
        .provider
        .chat_stream(&deployment.params, &translated)
        .await?;
    struct State {
        chunks: ChunkStream,
        translation: ChatToMessagesStream,
        pending: VecDeque<mirror_core::MessagesEvent>,
        ended: bool,
    }
    let state = State {
        chunks,
        translation: ChatToMessagesStream::new(),
        pending: VecDeque::new(),
        ended: false,
    };
    let events = stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), Some(state)));
            }
            if state.ended {
                return None;
            }
            match state.chunks.next().await {
                Some(Ok(chunk)) => state.pending.extend(state.translation.push(&chunk)),
                Some(Err(err)) => return Some((Err(err), None)),
                None => {
                    state.ended = true;
                    state.pending.extend(state.translation.finish());
                }
            }
        }
    });
    Ok(Box::pin(events))
}
