//! What a scenario runs: the gateway's configuration and the request bodies it sends.

use std::net::SocketAddr;
use std::path::Path;

use super::MASTER_KEY;

/// The gateway configuration of a scenario: a group without mirroring, one mirrored to the shadow,
/// and the shadow group. No retries, and no call log unless `log` names its file (`--log`): the
/// gateway itself is what is measured.
pub(super) fn gateway_config(
    primary: SocketAddr,
    shadow: SocketAddr,
    queue: Option<(usize, usize)>,
    master_key: bool,
    log: Option<&Path>,
) -> String {
    let mut text = format!(
        "# Written by `cargo xtask bench`.
model_list:
  - model_name: bench-direct
    litellm_params:
      model: openai/bench-primary
      api_base: http://{primary}/v1
      api_key: sk-bench
  - model_name: bench-mirror
    litellm_params:
      model: openai/bench-primary
      api_base: http://{primary}/v1
      api_key: sk-bench
      silent_model: bench-shadow
  - model_name: bench-shadow
    litellm_params:
      model: openai/bench-shadow
      api_base: http://{shadow}/v1
      api_key: sk-bench
  - model_name: bench-claude
    litellm_params:
      model: anthropic/bench-primary
      api_base: http://{primary}
      api_key: sk-bench
  - model_name: bench-claude-mirror
    litellm_params:
      model: anthropic/bench-primary
      api_base: http://{primary}
      api_key: sk-bench
      silent_model: bench-claude-shadow
  - model_name: bench-claude-shadow
    litellm_params:
      model: anthropic/bench-shadow
      api_base: http://{shadow}
      api_key: sk-bench
  - model_name: bench-claude-to-gpt
    litellm_params:
      model: anthropic/bench-primary
      api_base: http://{primary}
      api_key: sk-bench
      silent_model: bench-shadow
router_settings:
  num_retries: 0
mirror_settings:
  log_file: {log}
",
        log = log.map_or_else(
            || "null".to_owned(),
            |path| format!("{:?}", path.display().to_string())
        ),
    );
    if let Some((size, in_flight)) = queue {
        text.push_str(&format!(
            "  silent_queue_size: {size}\n  silent_max_in_flight: {in_flight}\n"
        ));
    }
    if master_key {
        text.push_str(&format!("general_settings:\n  master_key: {MASTER_KEY}\n"));
    }
    text
}

/// A chat request; `prompt_bytes` above 0 pads the user message so the body is about that long
/// (a 100k-token prompt is ~400 KB).
pub(super) fn chat_body(model: &str, stream: bool, prompt_bytes: usize) -> Vec<u8> {
    let padding = if prompt_bytes > 0 {
        let words = "Context line of a long document, repeated to fill the prompt. ";
        format!(" Context: {}", words.repeat(prompt_bytes / words.len() + 1))
    } else {
        String::new()
    };
    let stream = if stream {
        r#","stream":true,"stream_options":{"include_usage":true}"#
    } else {
        ""
    };
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a helpful assistant. Answer briefly."}},{{"role":"user","content":"Summarise the plot of Hamlet in two sentences, without spoilers for the last act.{padding}"}}],"temperature":0.2,"max_tokens":64,"user":"bench-user","metadata":{{"tags":["bench"]}}{stream}}}"#
    )
    .into_bytes()
}

/// A Responses create of the same size as [`chat_body`]'s chat request.
pub(super) fn responses_body(model: &str, stream: bool) -> Vec<u8> {
    let stream = if stream { r#","stream":true"# } else { "" };
    format!(
        r#"{{"model":"{model}","instructions":"You are a helpful assistant. Answer briefly.","input":[{{"role":"user","content":"Summarise the plot of Hamlet in two sentences, without spoilers for the last act."}}],"temperature":0.2,"max_output_tokens":64,"user":"bench-user","litellm_metadata":{{"tags":["bench"]}}{stream}}}"#
    )
    .into_bytes()
}

/// The Messages API request of the streamed Messages scenarios: as [`chat_body`], in Anthropic's
/// shape.
pub(super) fn messages_body(model: &str, stream: bool) -> Vec<u8> {
    let stream = if stream { r#","stream":true"# } else { "" };
    format!(
        r#"{{"model":"{model}","max_tokens":64,"system":"You are a helpful assistant. Answer briefly.","messages":[{{"role":"user","content":"Summarise the plot of Hamlet in two sentences, without spoilers for the last act."}}],"temperature":0.2,"metadata":{{"user_id":"bench-user"}}{stream}}}"#
    )
    .into_bytes()
}
