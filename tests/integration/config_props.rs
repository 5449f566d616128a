//! Property tests of the configuration loader: whatever YAML it is given, it answers with a
//! configuration or an error, never a panic.

use mirror::config::GatewayConfig;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys the loader knows (so nested known sections get odd values) and a few it does not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "model_list",
            "model_name",
            "litellm_params",
            "model_info",
            "model",
            "api_base",
            "api_key",
            "api_version",
            "timeout",
            "stream_timeout",
            "silent_model",
            "silent_sample_rate",
            "weight",
            "rpm",
            "tpm",
            "order",
            "id",
            "router_settings",
            "num_retries",
            "routing_strategy",
            "fallbacks",
            "cooldown_time",
            "allowed_fails",
            "mirror_settings",
            "log_file",
            "queue_size",
            "max_in_flight",
            "shutdown_timeout",
            "max_body_bytes",
            "general_settings",
            "master_key",
            "litellm_settings",
            "max_response_bytes",
            "max_stream_bytes",
            "redis_url",
            "callbacks",
            "<<",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ]
}

/// Scalars and flow values, including the ones YAML and our parsers treat specially.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "null",
            "~",
            "true",
            "0",
            "-1",
            "1e309",
            "-0.0",
            ".nan",
            ".inf",
            "18446744073709551616",
            "openai/gpt-4o",
            "azure/",
            "/",
            "mock/echo",
            "os.environ/MIRROR_PROPTEST_UNSET",
            "os.environ/HOME",
            "os.environ/",
            "[]",
            "{}",
            "[a, b]",
            "{a: 1}",
            "&anchor x",
            "*anchor",
            "*missing",
            "!!binary aGk=",
            "!tag x",
            "\"quoted\"",
            "'single'",
            "|",
            ">",
            "? x",
            "- -",
            "[",
            "{",
            "\"",
            "'",
            "@",
            "`",
            "%",
            "\t",
            "simple-shuffle",
            "least-busy",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        ".{0,12}",
    ]
}

/// One line of YAML-ish text: indentation, maybe a list dash, a key and a value.
fn line() -> impl Strategy<Value = String> {
    (0..8usize, any::<bool>(), key(), prop::option::of(scalar())).prop_map(
        |(indent, dash, key, value)| {
            let dash = if dash { "- " } else { "" };
            match value {
                Some(value) => format!("{:indent$}{dash}{key}: {value}", ""),
                None => format!("{:indent$}{dash}{key}:", ""),
            }
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn yaml_ish_text_never_panics(lines in prop::collection::vec(line(), 0..24)) {
        let _ = GatewayConfig::from_yaml_str(&lines.join("\n"), "proptest.yaml");
    }

    #[test]
    fn any_text_never_panics(text in ".{0,200}") {
        let _ = GatewayConfig::from_yaml_str(&text, "proptest.yaml");
    }

    #[test]
    fn a_valid_config_with_odd_values_never_panics(
        values in prop::collection::vec(scalar(), 6),
    ) {
        let yaml = format!(
            "model_list:\n  - model_name: {}\n    litellm_params:\n      model: {}\n      timeout: {}\n      silent_model: {}\n      max_response_bytes: {}\nrouter_settings:\n  num_retries: {}\n",
            values[0], values[1], values[2], values[3], values[4], values[5]
        );
        let _ = GatewayConfig::from_yaml_str(&yaml, "proptest.yaml");
    }
}
