//! Tests of `ChatRequest::to_mirror`: what a silent copy keeps, drops and adds (snapshots).

use expect_test::{expect, Expect};
use serde_json::json;

use super::*;
use crate::{CallMeta, ChatRequest};

/// Mirrors `input` to `target` and snapshots the copy, with call ids replaced by placeholders.
#[track_caller]
fn check_mirror(input: serde_json::Value, target: &str, expect: Expect) {
    let request: ChatRequest = serde_json::from_value(input).unwrap();
    let before = request.clone();
    let primary = CallMeta::for_request(&request.model, request.metadata.as_ref());
    let copy = request.to_mirror(&primary, target);

    // The caller's request is never touched.
    assert_eq!(request, before);
    // Identity rules.
    assert_ne!(copy.meta.call_id, primary.call_id);
    assert_eq!(copy.meta.trace_id, primary.trace_id);
    assert_eq!(copy.meta.mirror_of, Some(primary.call_id));
    assert!(copy.meta.is_silent_experiment);
    assert_eq!(copy.meta.model_group, target);

    let rendered = serde_json::to_string_pretty(&json!({
        "request": copy.request,
        "upstream_body": copy.request.upstream("provider-model", copy.request.is_stream()),
    }))
    .unwrap()
    .replace(&primary.call_id.to_string(), "<primary call id>");
    expect.assert_eq(&rendered);
}

#[test]
fn metadata_is_isolated_and_marked() {
    check_mirror(
        json!({
            "model": "gpt-3.5-turbo",
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {
                "trace_id": "trace-1",
                "tags": ["team-a"],
                "customer": {"tier": "gold"},
                "litellm_call_id": "primary-call",
                "generation_id": "gen-1",
                "is_silent_experiment": false,
                "deployment": "azure-eu-1",
                "model_info": {"id": "azure-eu-1"},
                "disable_mirroring": false
            }
        }),
        "gpt-4",
        expect![[r#"
            {
              "request": {
                "messages": [
                  {
                    "content": "hi",
                    "role": "user"
                  }
                ],
                "metadata": {
                  "customer": {
                    "tier": "gold"
                  },
                  "is_silent_experiment": true,
                  "mirror_of": "<primary call id>",
                  "model_group": "gpt-4",
                  "tags": [
                    "team-a"
                  ],
                  "trace_id": "trace-1"
                },
                "model": "gpt-4"
              },
              "upstream_body": {
                "messages": [
                  {
                    "content": "hi",
                    "role": "user"
                  }
                ],
                "model": "provider-model"
              }
            }"#]],
    );
}

#[test]
fn stream_and_stream_options_are_kept() {
    check_mirror(
        json!({
            "model": "primary",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.2
        }),
        "shadow",
        expect![[r#"
            {
              "request": {
                "messages": [
                  {
                    "content": [
                      {
                        "text": "hi",
                        "type": "text"
                      }
                    ],
                    "role": "user"
                  }
                ],
                "metadata": {
                  "is_silent_experiment": true,
                  "mirror_of": "<primary call id>",
                  "model_group": "shadow"
                },
                "model": "shadow",
                "stream": true,
                "stream_options": {
                  "include_usage": true
                },
                "temperature": 0.2
              },
              "upstream_body": {
                "messages": [
                  {
                    "content": [
                      {
                        "text": "hi",
                        "type": "text"
                      }
                    ],
                    "role": "user"
                  }
                ],
                "model": "provider-model",
                "stream": true,
                "stream_options": {
                  "include_usage": true
                },
                "temperature": 0.2
              }
            }"#]],
    );
}

#[test]
fn stream_absent_stays_absent_and_unknown_fields_are_forwarded() {
    check_mirror(
        json!({
            "model": "primary",
            "messages": [{"role": "user", "content": "hi"}],
            "seed": 7,
            "reasoning_effort": "low",
            "silent_model": "sneaky",
            "litellm_metadata": {"x": 1}
        }),
        "shadow",
        expect![[r#"
            {
              "request": {
                "litellm_metadata": {
                  "x": 1
                },
                "messages": [
                  {
                    "content": "hi",
                    "role": "user"
                  }
                ],
                "metadata": {
                  "is_silent_experiment": true,
                  "mirror_of": "<primary call id>",
                  "model_group": "shadow"
                },
                "model": "shadow",
                "reasoning_effort": "low",
                "seed": 7,
                "silent_model": "sneaky"
              },
              "upstream_body": {
                "messages": [
                  {
                    "content": "hi",
                    "role": "user"
                  }
                ],
                "model": "provider-model",
                "reasoning_effort": "low",
                "seed": 7
              }
            }"#]],
    );
}

#[test]
fn two_mirrors_share_nothing() {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "primary",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"nested": {"list": [1, 2]}}
    }))
    .unwrap();
    let primary = CallMeta::for_request("primary", request.metadata.as_ref());
    let mut first = request.to_mirror(&primary, "a");
    let second = request.to_mirror(&primary, "b");
    first.request.messages[0] = crate::ChatMessage::user("changed");
    first
        .request
        .metadata
        .as_mut()
        .unwrap()
        .insert("nested".to_owned(), json!(null));
    assert_eq!(second.request.messages[0].text().as_deref(), Some("hi"));
    assert_eq!(
        second.request.metadata.as_ref().unwrap()["nested"],
        json!({"list": [1, 2]})
    );
    assert_eq!(
        request.metadata.as_ref().unwrap()["nested"],
        json!({"list": [1, 2]})
    );
    assert_ne!(first.meta.call_id, second.meta.call_id);
    assert_eq!(first.meta.trace_id, second.meta.trace_id);
}

#[test]
fn caller_cannot_spoof_silent_flag_or_mirror_of() {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "primary",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"is_silent_experiment": true, "mirror_of": "x", "disable_mirroring": true}
    }))
    .unwrap();
    let primary = CallMeta::for_request("primary", request.metadata.as_ref());
    assert!(!primary.is_silent_experiment);
    assert_eq!(primary.mirror_of, None);
    assert!(primary.mirror_opt_out);
}

#[track_caller]
fn check_targets(input: &str, expect: Expect) {
    let rendered = match serde_json::from_str::<SilentTargets>(input) {
        Ok(targets) => format!("ok {targets:?}"),
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&rendered);
}

#[test]
fn silent_model_shapes() {
    check_targets(r#""gpt-4""#, expect![[r#"ok ["gpt-4"]"#]]);
    check_targets(
        r#"["gpt-4", "claude"]"#,
        expect![[r#"ok ["gpt-4", "claude"]"#]],
    );
    check_targets(
        "[]",
        expect!["error: `silent_model` must be a model group name or a list of names, got an empty list at line 1 column 2"],
    );
    check_targets(
        r#"["gpt-4", 3]"#,
        expect!["error: `silent_model` must be a model group name or a list of names, got a list containing `3` at line 1 column 12"],
    );
    check_targets(
        "42",
        expect!["error: invalid type: integer `42`, expected a model group name or a list of model group names at line 1 column 2"],
    );
    check_targets(
        r#"{"a": 1}"#,
        expect!["error: invalid type: map, expected a model group name or a list of model group names at line 1 column 1"],
    );
    check_targets(
        r#""  ""#,
        expect!["error: `silent_model` must be a model group name or a list of names, got an empty name at line 1 column 4"],
    );
}

#[test]
fn only_a_copy_point_s_marker_survives_for_the_providers() {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "prod",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"is_silent_experiment": true, "tags": ["a"]},
    }))
    .unwrap();
    // What a caller wrote reads as a marker until the router clears it on a primary call.
    assert!(is_silent_copy(request.metadata.as_ref()));
    let mut primary = request.clone();
    clear_silent_mark(&mut primary.metadata);
    assert!(!is_silent_copy(primary.metadata.as_ref()));
    assert_eq!(
        primary.metadata,
        Some(json!({"tags": ["a"]}).as_object().unwrap().clone())
    );
    clear_silent_mark(&mut None);
    // A copy of the cleared primary is marked again by the copy point.
    let meta = CallMeta::for_request("prod", primary.metadata.as_ref());
    let copy = primary.to_mirror(&meta, "shadow");
    assert!(is_silent_copy(copy.request.metadata.as_ref()));
    // Only `true` marks a copy.
    for value in [json!(false), json!("true"), json!(1)] {
        let metadata = json!({"is_silent_experiment": value});
        assert!(!is_silent_copy(metadata.as_object()), "{value}");
    }
    assert!(!is_silent_copy(None));
}
