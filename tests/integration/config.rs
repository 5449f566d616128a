//! Loading LiteLLM proxy configs: as their docs write them, with typos, with missing variables.

use std::path::Path;

use mirror::config::GatewayConfig;
use mirror::ConfigError;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn parse(yaml: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_yaml_str(yaml, "config.yaml")
}

#[test]
fn litellm_quickstart_config_loads_unchanged() {
    std::env::set_var("AZURE_API_BASE", "http://127.0.0.1:9/azure");
    std::env::set_var("OPENAI_API_KEY", "sk-openai-from-env");
    std::env::set_var("MIRROR_TEST_OPENAI_BASE", "http://127.0.0.1:9/v1");
    std::env::set_var("REDIS_HOST", "127.0.0.1");
    let config = GatewayConfig::from_file(&fixture("litellm-quickstart.yaml")).unwrap();

    assert_eq!(config.model_list.len(), 3);
    let azure = &config.model_list[0].litellm_params;
    // `environment_variables` were set before `os.environ/` was resolved.
    assert_eq!(
        azure.api_key.as_ref().unwrap().expose(),
        "azure-key-from-config"
    );
    assert_eq!(azure.api_base.as_deref(), Some("http://127.0.0.1:9/azure"));
    assert_eq!(azure.silent_model.as_ref().unwrap().groups(), ["gpt-4"]);
    // router_settings win over litellm_settings; litellm_settings fill the rest.
    assert_eq!(config.router_settings.num_retries, 1);
    assert_eq!(config.router_settings.timeout, Some(30.0));
    assert_eq!(config.router_settings.fallbacks.len(), 1);
    assert_eq!(
        config
            .general_settings
            .master_key
            .as_ref()
            .unwrap()
            .expose(),
        "sk-1234"
    );
    // Known LiteLLM keys without effect are listed, not refused.
    let ignored = config.ignored_keys();
    for key in [
        "litellm_settings.drop_params",
        "general_settings.database_url",
    ] {
        assert!(ignored.iter().any(|k| k == key), "{key} not in {ignored:?}");
    }
    let sinks = config.sinks();
    assert!(!sinks.langfuse && !sinks.s3);
    assert_eq!(sinks.unknown, ["prometheus"]);
    // Secrets stay out of Debug output.
    let debug = format!("{config:?}");
    assert!(!debug.contains("sk-1234"), "{debug}");
    assert!(!debug.contains("azure-key-from-config"), "{debug}");
}

#[test]
fn a_misspelled_key_names_file_line_column_and_the_right_name() {
    let err = parse(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: mock/a\n      silent_modle: b\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("config.yaml: "), "{err}");
    assert!(err.contains("unknown field `silent_modle`"), "{err}");
    assert!(err.contains("line 5 column"), "{err}");
    assert!(err.contains("did you mean `silent_model`?"), "{err}");

    let err = parse("mirror_setings:\n  log_file: x.jsonl\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `mirror_settings`?"), "{err}");

    let err = parse("mirror_settings:\n  silent_queue_sise: 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `silent_queue_size`?"), "{err}");
}

#[test]
fn the_silent_queue_byte_bound_is_read_and_zero_is_refused_with_where() {
    let config = parse("mirror_settings:\n  silent_queue_max_bytes: 1048576\n").unwrap();
    assert_eq!(
        config.mirror_settings.mirror_settings().queue_max_bytes,
        1_048_576
    );
    let default = parse("mirror_settings: {}\n").unwrap();
    assert_eq!(
        default.mirror_settings.mirror_settings().queue_max_bytes,
        32 * 1024 * 1024
    );
    let err = parse("mirror_settings:\n  silent_queue_max_bytes: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("silent_queue_max_bytes"), "{err}");
    assert!(err.contains("greater than 0"), "{err}");
    assert!(err.contains("line 2 column"), "{err}");
}

#[test]
fn a_missing_environment_variable_is_named_with_where_it_was_used() {
    let err = parse(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/MIRROR_TEST_DEFINITELY_UNSET\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("MIRROR_TEST_DEFINITELY_UNSET"), "{err}");
    assert!(err.contains("model_list[0].litellm_params"), "{err}");
    assert!(err.contains(" at line "), "{err}");
}

#[tokio::test]
async fn a_silent_model_naming_no_group_is_refused_at_start() {
    let config = parse(
        "model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, silent_model: gpt-5}\n",
    )
    .unwrap();
    let err = mirror::gateway::Gateway::from_config(&config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("silent_model"), "{err}");
    assert!(err.contains("names no model group `gpt-5`"), "{err}");
}

#[test]
fn the_built_in_default_loads() {
    let config = mirror::config::load(None).unwrap();
    assert_eq!(config.model_list.len(), 2);
    assert!(config.mirror_settings.log_file.is_some());
}
