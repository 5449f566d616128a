//! Requests, chat completions to Messages: the system prompt, merged turns, tools and tool choice, images and PDFs, stop sequences, the `max_tokens` default.

use serde_json::{json, Map, Value};

use super::TranslateError;
use crate::anthropic::{AnthropicMessage, ContentBlock, MessageContent as Content, SystemPrompt};
use crate::chat::{ContentPart, MessageContent, Tool};
use crate::{ChatMessage, ChatRequest, MessagesRequest};

/// `max_tokens` sent to Anthropic when a chat request sets neither `max_tokens` nor
/// `max_completion_tokens` (Anthropic requires it): LiteLLM's `DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Chat parameters with no Messages counterpart: refused by name (LiteLLM's
/// `UnsupportedParamsError`, without `drop_params`), since dropping them would change the answer.
const CHAT_ONLY_PARAMS: &[&str] = &[
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "audio",
    "modalities",
    "prediction",
    "functions",
    "function_call",
    "web_search_options",
    "verbosity",
];

/// Chat parameters that only shape the transport or the gateway and are not forwarded.
const CHAT_TRANSPORT_PARAMS: &[&str] = &["stream_options", "store", "parallel_tool_calls"];

/// Text a turn gets when every block of it was empty (Anthropic rejects empty text blocks).
const EMPTY_PLACEHOLDER: &str = ".";

/// Prefix of a system message that comes after the conversation started: Anthropic has no system
/// turn, so it becomes a user turn that says what it is.
const MID_SYSTEM_PREFIX: &str = "System: ";

/// A chat-completions request as a Messages request for the same model group.
///
/// `metadata` (the gateway's) becomes `litellm_metadata`, so the silent-copy markers and tags
/// survive; `user` becomes `metadata.user_id`.
///
/// # Errors
///
/// A [`TranslateError`] naming the first field that has no Messages counterpart: `n > 1`,
/// `logprobs`, the penalties, `seed`, `response_format` with a schema, a `function` message,
/// audio or file parts other than PDFs, tool arguments that are not a JSON object, non-function
/// tools.
pub fn chat_to_messages(request: &ChatRequest) -> Result<MessagesRequest, TranslateError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::to_messages(
            "n",
            "Anthropic returns one answer per request",
        ));
    }
    for key in CHAT_ONLY_PARAMS {
        if request
            .extra
            .get(*key)
            .is_some_and(|value| !value.is_null())
        {
            return Err(TranslateError::to_messages(
                *key,
                "Anthropic Messages has no such parameter",
            ));
        }
    }
    if let Some(format) = &request.response_format {
        let kind = format.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "text" {
            return Err(TranslateError::to_messages(
                "response_format",
                format!("`{kind}` output has no Messages equivalent Mirror translates"),
            ));
        }
    }

    let mut translated = MessagesRequest::new(request.model.clone(), 0, "");
    translated.messages.clear();
    translated.max_tokens = Some(
        request
            .max_completion_tokens
            .or(request.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
    );
    translated.stream = request.stream;
    translated.temperature = request.temperature;
    translated.litellm_metadata.clone_from(&request.metadata);
    if let Some(stop) = &request.stop {
        translated.stop_sequences = Some(stop_sequences(stop)?);
    }
    if let Some(user) = &request.user {
        translated.metadata = Some(Map::from_iter([(
            "user_id".to_owned(),
            Value::String(user.clone()),
        )]));
    }
    if let Some(tools) = &request.tools {
        translated.tools = Some(
            tools
                .iter()
                .enumerate()
                .map(|(at, tool)| messages_tool(at, tool))
                .collect::<Result<_, _>>()?,
        );
    }
    translated.tool_choice = tool_choice_to_messages(request)?;
    for (key, value) in &request.extra {
        match key.as_str() {
            "top_p" => translated.top_p = value.as_f64(),
            "top_k" => translated.top_k = value.as_u64(),
            "thinking" => translated.thinking = Some(value.clone()),
            "reasoning_effort" => translated.thinking = thinking_of_effort(value)?,
            key if CHAT_TRANSPORT_PARAMS.contains(&key) || CHAT_ONLY_PARAMS.contains(&key) => {}
            // Unknown to both: forwarded, so the upstream names it if it refuses it.
            _ => {
                translated.extra.insert(key.clone(), value.clone());
            }
        }
    }

    let (system, rest) = split_leading_system(&request.messages);
    translated.system = system;
    for (offset, message) in rest.iter().enumerate() {
        let at = request.messages.len() - rest.len() + offset;
        let (role, blocks) = messages_turn(at, message)?;
        match translated.messages.last_mut() {
            Some(last) if last.role == role => {
                if let Content::Blocks(existing) = &mut last.content {
                    existing.extend(blocks);
                }
            }
            _ => translated.messages.push(AnthropicMessage {
                role: role.to_owned(),
                content: Content::Blocks(blocks),
                extra: Map::new(),
            }),
        }
    }
    if translated.messages.is_empty() {
        return Err(TranslateError::to_messages(
            "messages",
            "Anthropic needs at least one user or assistant message",
        ));
    }
    for message in &mut translated.messages {
        simplify_content(&mut message.content);
    }
    Ok(translated)
}

fn stop_sequences(stop: &Value) -> Result<Vec<String>, TranslateError> {
    match stop {
        Value::String(stop) => Ok(vec![stop.clone()]),
        Value::Array(stops) => stops
            .iter()
            .map(|stop| {
                stop.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| TranslateError::to_messages("stop", "a stop is not a string"))
            })
            .collect(),
        _ => Err(TranslateError::to_messages(
            "stop",
            "expected a string or a list of strings",
        )),
    }
}

/// `reasoning_effort` as Anthropic `thinking` budgets (LiteLLM's mapping).
fn thinking_of_effort(effort: &Value) -> Result<Option<Value>, TranslateError> {
    let budget = match effort.as_str() {
        Some("none") | None => return Ok(None),
        Some("minimal" | "low") => 1024,
        Some("medium") => 2048,
        Some("high") => 4096,
        Some(other) => {
            return Err(TranslateError::to_messages(
                "reasoning_effort",
                format!("unknown effort `{other}`"),
            ))
        }
    };
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

fn messages_tool(at: usize, tool: &Tool) -> Result<Value, TranslateError> {
    let field = || format!("tools[{at}]");
    if tool.kind != "function" {
        return Err(TranslateError::to_messages(
            format!("{}.type", field()),
            format!("`{}` tools have no Messages equivalent", tool.kind),
        ));
    }
    let function = tool
        .function
        .as_ref()
        .ok_or_else(|| TranslateError::to_messages(format!("{}.function", field()), "missing"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::to_messages(format!("{}.function.name", field()), "missing")
        })?;
    let mut out = Map::new();
    out.insert("name".to_owned(), Value::String(name.to_owned()));
    if let Some(description) = function.get("description").filter(|d| !d.is_null()) {
        out.insert("description".to_owned(), description.clone());
    }
    let schema = function
        .get("parameters")
        .filter(|schema| !schema.is_null())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    out.insert("input_schema".to_owned(), schema);
    if let Some(cache_control) = tool.extra.get("cache_control") {
        out.insert("cache_control".to_owned(), cache_control.clone());
    }
    Ok(Value::Object(out))
}

fn tool_choice_to_messages(request: &ChatRequest) -> Result<Option<Value>, TranslateError> {
    let parallel_off = request.extra.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let mut choice = match &request.tool_choice {
        None if parallel_off => json!({"type": "auto"}),
        None => return Ok(None),
        Some(Value::String(kind)) => match kind.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(TranslateError::to_messages(
                    "tool_choice",
                    format!("unknown choice `{other}`"),
                ))
            }
        },
        Some(Value::Object(object)) => {
            let name = object
                .get("function")
                .and_then(|function| function.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::to_messages("tool_choice", "only a named function translates")
                })?;
            json!({"type": "tool", "name": name})
        }
        Some(_) => {
            return Err(TranslateError::to_messages(
                "tool_choice",
                "expected a string or an object",
            ))
        }
    };
    if parallel_off && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(choice))
}

fn is_system(message: &ChatMessage) -> bool {
    message.role == "system" || message.role == "developer"
}

/// The leading run of system (and developer) messages as the top-level `system`, and the rest.
fn split_leading_system(messages: &[ChatMessage]) -> (Option<SystemPrompt>, &[ChatMessage]) {
    let count = messages.iter().take_while(|m| is_system(m)).count();
    let (leading, rest) = messages.split_at(count);
    let mut blocks = Vec::new();
    for message in leading {
        match &message.content {
            Some(MessageContent::Text(text)) if !text.is_empty() => {
                blocks.push(ContentBlock::text(text.clone()));
            }
            Some(MessageContent::Parts(parts)) => {
                for part in parts {
                    if let Some(text) = part.text.as_deref().filter(|text| !text.is_empty()) {
                        let mut block = ContentBlock::text(text);
                        if let Some(cache_control) = part.extra.get("cache_control") {
                            block
                                .fields
                                .insert("cache_control".to_owned(), cache_control.clone());
                        }
                        blocks.push(block);
                    }
                }
            }
            _ => {}
        }
    }
    let system = match blocks.len() {
        0 => None,
        1 if blocks[0].fields.len() == 1 => blocks[0]
            .as_text()
            .map(|text| SystemPrompt::Text(text.to_owned())),
        _ => Some(SystemPrompt::Blocks(blocks)),
    };
    (system, rest)
}

/// One chat message as a Messages role and its blocks.
fn messages_turn(
    at: usize,
    message: &ChatMessage,
) -> Result<(&'static str, Vec<ContentBlock>), TranslateError> {
    match message.role.as_str() {
        "user" => Ok(("user", user_blocks(at, message)?)),
        "system" | "developer" => {
            let text = message.text().unwrap_or_default();
            Ok((
                "user",
                vec![ContentBlock::text(format!("{MID_SYSTEM_PREFIX}{text}"))],
            ))
        }
        "assistant" => Ok(("assistant", assistant_blocks(at, message)?)),
        "tool" => {
            let id = message.tool_call_id.clone().ok_or_else(|| {
                TranslateError::to_messages(format!("messages[{at}].tool_call_id"), "missing")
            })?;
            let content = match &message.content {
                Some(MessageContent::Text(text)) => Value::String(text.clone()),
                Some(MessageContent::Parts(parts)) => Value::Array(
                    parts
                        .iter()
                        .enumerate()
                        .map(|(part_at, part)| {
                            content_block(at, part_at, part).map(|block| json!(block))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                None => Value::String(String::new()),
            };
            let mut fields = Map::new();
            fields.insert("tool_use_id".to_owned(), Value::String(id));
            fields.insert("content".to_owned(), content);
            Ok(("user", vec![ContentBlock::new("tool_result", fields)]))
        }
        other => Err(TranslateError::to_messages(
            format!("messages[{at}].role"),
            format!("`{other}` messages have no Messages equivalent"),
        )),
    }
}

fn user_blocks(at: usize, message: &ChatMessage) -> Result<Vec<ContentBlock>, TranslateError> {
    let mut blocks = match &message.content {
        Some(MessageContent::Text(text)) if !text.is_empty() => vec![ContentBlock::text(text)],
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .filter(|(_, part)| !(part.kind == "text" && part.text.as_deref() == Some("")))
            .map(|(part_at, part)| content_block(at, part_at, part))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    if blocks.is_empty() {
        blocks.push(ContentBlock::text(EMPTY_PLACEHOLDER));
    }
    Ok(blocks)
}

/// One content part of a user or tool message as a Messages block.
fn content_block(
    at: usize,
    part_at: usize,
    part: &ContentPart,
) -> Result<ContentBlock, TranslateError> {
    let field = || format!("messages[{at}].content[{part_at}]");
    let mut block = match part.kind.as_str() {
        "text" => ContentBlock::text(part.text.clone().unwrap_or_default()),
        "image_url" => {
            let url = part
                .extra
                .get("image_url")
                .and_then(|image| image.get("url").or(Some(image)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::to_messages(format!("{}.image_url.url", field()), "missing")
                })?;
            let source = match parse_data_url(url) {
                Some((media_type, data)) => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                None if url.starts_with("https://") || url.starts_with("http://") => {
                    json!({"type": "url", "url": url})
                }
                None => {
                    return Err(TranslateError::to_messages(
                        format!("{}.image_url.url", field()),
                        "expected a base64 data URL or an http(s) URL",
                    ))
                }
            };
            ContentBlock::new("image", Map::from_iter([("source".to_owned(), source)]))
        }
        "file" => {
            let data = part
                .extra
                .get("file")
                .and_then(|file| file.get("file_data"))
                .and_then(Value::as_str)
                .and_then(parse_data_url)
                .filter(|(media_type, _)| *media_type == "application/pdf")
                .ok_or_else(|| {
                    TranslateError::to_messages(
                        format!("{}.file", field()),
                        "only a PDF given inline as `file_data` translates (file ids do not)",
                    )
                })?;
            let source = json!({"type": "base64", "media_type": data.0, "data": data.1});
            ContentBlock::new("document", Map::from_iter([("source".to_owned(), source)]))
        }
        other => {
            return Err(TranslateError::to_messages(
                format!("{}.type", field()),
                format!("`{other}` parts have no Messages equivalent"),
            ))
        }
    };
    if let Some(cache_control) = part.extra.get("cache_control") {
        block
            .fields
            .insert("cache_control".to_owned(), cache_control.clone());
    }
    Ok(block)
}

/// `data:<media type>;base64,<data>` as its media type and data.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let media_type = header.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn assistant_blocks(at: usize, message: &ChatMessage) -> Result<Vec<ContentBlock>, TranslateError> {
    let mut blocks = Vec::new();
    if let Some(Value::Array(thinking)) = message.extra.get("thinking_blocks") {
        for block in thinking {
            if let Ok(block) = serde_json::from_value::<ContentBlock>(block.clone()) {
                blocks.push(block);
            }
        }
    }
    match &message.content {
        Some(MessageContent::Text(text)) if !text.is_empty() => {
            blocks.push(ContentBlock::text(text));
        }
        Some(MessageContent::Parts(parts)) => {
            for (part_at, part) in parts.iter().enumerate() {
                match part.text.as_deref() {
                    Some("") => {}
                    Some(text) => blocks.push(ContentBlock::text(text)),
                    None => {
                        return Err(TranslateError::to_messages(
                            format!("messages[{at}].content[{part_at}].type"),
                            format!("`{}` parts in an assistant message", part.kind),
                        ))
                    }
                }
            }
        }
        _ => {}
    }
    for (call_at, call) in message.tool_calls.iter().flatten().enumerate() {
        let arguments = call.function.arguments.trim();
        let input = if arguments.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    TranslateError::to_messages(
                        format!("messages[{at}].tool_calls[{call_at}].function.arguments"),
                        "Anthropic needs the arguments as a JSON object",
                    )
                })?
        };
        blocks.push(ContentBlock::tool_use(
            call.id.clone(),
            call.function.name.clone(),
            input,
        ));
    }
    if blocks.is_empty() {
        blocks.push(ContentBlock::text(EMPTY_PLACEHOLDER));
    }
    Ok(blocks)
}

/// One plain text block becomes a string, as clients usually write it.
fn simplify_content(content: &mut Content) {
    if let Content::Blocks(blocks) = content {
        if let [block] = blocks.as_slice() {
            if block.fields.len() == 1 {
                if let Some(text) = block.as_text() {
                    *content = Content::Text(text.to_owned());
                }
            }
        }
    }
}
