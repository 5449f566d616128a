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
fn the_silent_byte_budget_is_read_under_both_names_and_zero_is_refused_with_where() {
    let config = parse("mirror_settings:\n  silent_max_bytes: 1048576\n").unwrap();
    assert_eq!(
        config.mirror_settings.mirror_settings().max_bytes,
        1_048_576
    );
    // The former name still works.
    let config = parse("mirror_settings:\n  silent_queue_max_bytes: 2097152\n").unwrap();
    assert_eq!(
        config.mirror_settings.mirror_settings().max_bytes,
        2_097_152
    );
    let default = parse("mirror_settings: {}\n").unwrap();
    assert_eq!(
        default.mirror_settings.mirror_settings().max_bytes,
        384 * 1024 * 1024
    );
    let err = parse("mirror_settings:\n  silent_max_bytes: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("silent_max_bytes"), "{err}");
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

/// `mirror check` on bad files: every number out of range and every name that resolves to nothing is
/// an error with the file, the field's path and its line, never a panic.
#[tokio::test]
async fn mirror_check_refuses_bad_values_with_file_path_and_line() {
    let dir = std::env::temp_dir().join(format!("mirror-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let entry = "model_list:\n  - model_name: gpt-4\n    litellm_params:\n      model: mock/a\n";
    let cases = [
        format!("{entry}      timeout: 1e300\n"),
        format!("{entry}      timeout: .nan\n"),
        format!("{entry}      stream_timeout: -1\n"),
        format!("{entry}      silent_sample_rate: 1.5\n"),
        format!("{entry}      silent_model: gtp-4\n"),
        format!("{entry}router_settings:\n  cooldown_time: 1e300\n"),
        format!("{entry}router_settings:\n  fallbacks: [{{gpt-4: [gpt-5]}}]\n"),
        format!("{entry}litellm_settings:\n  request_timeout: 1e300\n"),
        format!("{entry}mirror_settings:\n  shutdown_timeout: 1e300\n"),
        format!("{entry}mirror_settings:\n  shutdown_timeout: 0\n"),
        format!("{entry}mirror_settings:\n  silent_queue_size: 0\n"),
        format!("{entry}mirror_settings:\n  silent_max_in_flight: 0\n"),
        format!("{entry}mirror_settings:\n  max_body_bytes: 0\n"),
        format!("{entry}mirror_settings:\n  default_sample_rate: .nan\n"),
        format!("{entry}mirror_settings:\n  silent_max_per_mniute: 5\n"),
        format!("{entry}  - model_name: b\n    litellm_params: {{model: bedrock/claude}}\n"),
    ];
    let mut out = String::new();
    for (index, yaml) in cases.iter().enumerate() {
        let path = dir.join(format!("bad-{index}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let args = mirror_cli::cli::CheckArgs { config: Some(path) };
        let message = match mirror_cli::cli::check(&args) {
            Ok(_) => "accepted".to_owned(),
            Err(err) => err.to_string(),
        };
        out.push_str(&message.replace(&dir.display().to_string(), "$DIR"));
        out.push('\n');
    }
    std::fs::remove_dir_all(&dir).unwrap();
    expect_test::expect![[r#"
        $DIR/bad-0.yaml: model_list[0] (`gpt-4`).litellm_params.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got 1e300 at line 5 column 16
        $DIR/bad-1.yaml: model_list[0] (`gpt-4`).litellm_params.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got NaN at line 5 column 16
        $DIR/bad-2.yaml: model_list[0] (`gpt-4`).litellm_params.stream_timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got -1.0 at line 5 column 23
        $DIR/bad-3.yaml: model_list[0] (`gpt-4`).litellm_params.silent_sample_rate: must be between 0 and 1, got 1.5 at line 5 column 27
        $DIR/bad-4.yaml: model_list[0] (`gpt-4`).litellm_params.silent_model: names no model group `gtp-4` (did you mean `gpt-4`?) at line 5 column 21
        $DIR/bad-5.yaml: router_settings.cooldown_time: must be a number of seconds 0 or more and at most 3600 (1 hour), got 1e300 at line 6 column 18
        $DIR/bad-6.yaml: router_settings.fallbacks.gpt-4: names no model group `gpt-5` (did you mean `gpt-4`?) at line 6 column 14
        $DIR/bad-7.yaml: litellm_settings.request_timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got 1e300 at line 6 column 20
        $DIR/bad-8.yaml: mirror_settings.shutdown_timeout: must be a number of seconds greater than 0 and at most 3600 (1 hour), got 1e300 at line 6 column 21
        $DIR/bad-9.yaml: mirror_settings.shutdown_timeout: must be a number of seconds greater than 0 and at most 3600 (1 hour), got 0.0 at line 6 column 21
        $DIR/bad-10.yaml: mirror_settings.silent_queue_size: must be greater than 0 (a number of queued silent copies) at line 6 column 22
        $DIR/bad-11.yaml: mirror_settings.silent_max_in_flight: must be greater than 0 (a number of silent calls at once) at line 6 column 25
        $DIR/bad-12.yaml: mirror_settings.max_body_bytes: must be greater than 0 (a number of bytes) at line 6 column 19
        $DIR/bad-13.yaml: mirror_settings.default_sample_rate: must be between 0 and 1, got NaN at line 6 column 24
        $DIR/bad-14.yaml: mirror_settings: unknown field `silent_max_per_mniute`, expected one of `log_file`, `log_max_bytes`, `log_daily_rotation`, `max_body_bytes`, `shutdown_timeout`, `admin_without_key`, `silent_queue_size`, `silent_max_bytes`, `silent_queue_max_bytes`, `silent_max_in_flight`, `default_sample_rate`, `sample_key`, `mirroring_enabled`, `silent_max_per_minute`, `silent_targets`, `max_client_connections`, `client_header_timeout`, `client_body_min_rate`, `client_body_grace`, `max_body_bytes_in_flight` at line 6 column 3 (did you mean `silent_max_per_minute`?)
        $DIR/bad-15.yaml: model_list[1] (`b`).litellm_params.model: the LiteLLM provider `bedrock` (in `bedrock/claude`) is not supported; supported: anthropic, azure, cerebras, deepseek, fireworks_ai, gemini, groq, hosted_vllm, mistral, mock, ollama, ollama_chat, openai, openrouter, perplexity, together_ai, xai at line 6 column 29
    "#]].assert_eq(&out);
}

#[test]
fn mirror_settings_keys_are_the_same_as_before() {
    let config = parse(
        "mirror_settings:\n  silent_queue_size: 7\n  silent_max_bytes: 9\n  silent_max_in_flight: 3\n  default_sample_rate: 0.5\n  sample_key: session_id\n  mirroring_enabled: false\n  silent_max_per_minute: 60\n  log_file: null\n  log_max_bytes: 100\n  log_daily_rotation: true\n  max_body_bytes: 1024\n  shutdown_timeout: 5\n",
    )
    .unwrap();
    let section = &config.mirror_settings;
    let mirror = section.mirror_settings();
    assert_eq!(
        (mirror.queue_size, mirror.max_bytes, mirror.max_in_flight),
        (7, 9, 3)
    );
    assert_eq!(mirror.default_sample_rate, 0.5);
    assert_eq!(mirror.sample_key.as_deref(), Some("session_id"));
    assert!(!mirror.enabled);
    assert_eq!(mirror.max_mirrors_per_minute, Some(60));
    assert_eq!(section.log_file, None);
    assert_eq!(section.log_max_bytes, Some(100));
    assert!(section.log_daily_rotation);
    assert_eq!(section.max_body_bytes, 1024);
    assert_eq!(section.shutdown_timeout, 5.0);
    // The router's field names are not keys of the file.
    let err = parse("mirror_settings:\n  queue_size: 7\n")
        .unwrap_err()
        .to_string();
    expect_test::expect!["config.yaml: mirror_settings: unknown field `queue_size`, expected one of `log_file`, `log_max_bytes`, `log_daily_rotation`, `max_body_bytes`, `shutdown_timeout`, `admin_without_key`, `silent_queue_size`, `silent_max_bytes`, `silent_queue_max_bytes`, `silent_max_in_flight`, `default_sample_rate`, `sample_key`, `mirroring_enabled`, `silent_max_per_minute`, `silent_targets`, `max_client_connections`, `client_header_timeout`, `client_body_min_rate`, `client_body_grace`, `max_body_bytes_in_flight` at line 2 column 3"].assert_eq(&err);
}

#[test]
fn every_litellm_key_mirror_judges_is_documented_and_none_is_also_implemented() {
    use mirror::config::{GeneralSettings, LiteLlmSettings};
    use mirror::router::{Section, DEPLOYMENT_KEYS, LITELLM_KEYS};
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let coming_from = &docs[docs.find("## Coming from LiteLLM").unwrap()..];
    for (section, key, _) in LITELLM_KEYS {
        assert!(
            coming_from.contains(&format!("`{key}`")),
            "`{key}` ({section:?}) is not in docs/configuration.md's Coming from LiteLLM"
        );
        let implemented: &[&str] = match section {
            Section::LitellmParams => DEPLOYMENT_KEYS,
            Section::RouterSettings => mirror::RouterSettings::KEYS,
            Section::LitellmSettings => LiteLlmSettings::KEYS,
            Section::GeneralSettings => GeneralSettings::KEYS,
            _ => &[],
        };
        assert!(
            !implemented.contains(key),
            "`{key}` is both implemented and in the table"
        );
    }
}
