//! Configuration errors say what and where.

use mirror_router::{ConfigError, Router, RouterConfig};

use crate::support::{mock, openai};

/// Parses `yaml` and builds a router from it (inside the test's runtime).
fn build(yaml: &str) -> Result<Router, ConfigError> {
    let config = RouterConfig::from_yaml_str(yaml, "config.yaml")?;
    Router::builder()
        .origin("config.yaml")
        .provider(openai())
        .provider(mock())
        .config(config)
        .build()
}

#[track_caller]
fn parse_error(result: Result<Router, ConfigError>) -> (String, String) {
    match result {
        Err(ConfigError::Parse { origin, message }) => (origin, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[track_caller]
fn invalid(result: Result<Router, ConfigError>) -> (String, String) {
    match result {
        Err(ConfigError::Invalid {
            location, message, ..
        }) => (location, message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_litellm_config_builds() {
    let router = build(
        "
model_list:
  - model_name: prod
    litellm_params:
      model: mock/echo
      silent_model: [candidate, other]
      silent_sample_rate: 0.5
  - model_name: candidate
    litellm_params: {model: mock/echo}
  - model_name: other
    litellm_params: {model: mock/echo}
router_settings:
  routing_strategy: usage-based-routing-v2
  num_retries: 1
  cache_responses: true
",
    )
    .unwrap();
    assert_eq!(router.model_groups(), ["candidate", "other", "prod"]);
    assert_eq!(router.silent_targets("prod"), ["candidate", "other"]);
}

#[tokio::test]
async fn a_misspelled_key_names_line_column_and_the_right_name() {
    let (origin, message) = parse_error(build(
        "
model_list:
  - model_name: prod
    litellm_params:
      model: mock/echo
      silent_modle: candidate
",
    ));
    assert_eq!(origin, "config.yaml");
    assert!(message.contains("silent_modle"), "{message}");
    assert!(message.contains("line 6"), "{message}");
    assert!(message.contains("column"), "{message}");
    assert!(message.contains("did you mean `silent_model`"), "{message}");
}

#[tokio::test]
async fn a_silent_model_that_names_no_group_is_invalid_with_its_path() {
    let (location, message) = invalid(build(
        "
model_list:
  - model_name: prod
    litellm_params: {model: mock/echo}
  - model_name: prod
    litellm_params:
      model: mock/echo
      api_base: http://127.0.0.1:9/v1
      silent_model: candidat
  - model_name: candidate
    litellm_params: {model: mock/echo}
",
    ));
    assert_eq!(
        location,
        "model_list[1] (`prod`).litellm_params.silent_model"
    );
    assert!(message.contains("`candidat`"), "{message}");
    assert!(message.contains("did you mean `candidate`"), "{message}");
}

#[tokio::test]
async fn a_silent_model_of_the_wrong_type_is_a_clear_error() {
    let (_, message) = parse_error(build(
        "
model_list:
  - model_name: prod
    litellm_params:
      model: mock/echo
      silent_model: 42
",
    ));
    assert!(message.contains("silent_model"), "{message}");
    assert!(message.contains("42"), "{message}");
    assert!(message.contains("model group name"), "{message}");

    let (_, message) = parse_error(build(
        "
model_list:
  - model_name: prod
    litellm_params:
      model: mock/echo
      silent_model: [candidate, 7]
",
    ));
    assert!(message.contains("list containing `7`"), "{message}");
}

#[tokio::test]
async fn duplicate_ids_are_invalid() {
    let (location, message) = invalid(build(
        "
model_list:
  - model_name: a
    litellm_params: {model: mock/echo}
    model_info: {id: same}
  - model_name: b
    litellm_params: {model: mock/echo}
    model_info: {id: same}
",
    ));
    assert_eq!(location, "model_list[1] (`b`).model_info.id");
    assert!(message.contains("model_list[0]"), "{message}");
}

#[tokio::test]
async fn a_zero_weight_is_invalid() {
    let (location, message) = invalid(build(
        "
model_list:
  - model_name: a
    litellm_params: {model: mock/echo, weight: 0}
",
    ));
    assert_eq!(location, "model_list[0] (`a`).litellm_params.weight");
    assert!(message.contains("greater than 0"), "{message}");
}

#[tokio::test]
async fn a_missing_environment_variable_is_named() {
    let (_, message) = parse_error(build(
        "
model_list:
  - model_name: a
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/MIRROR_ROUTER_TEST_SURELY_UNSET
",
    ));
    assert!(
        message.contains("MIRROR_ROUTER_TEST_SURELY_UNSET"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_provider_prefix_lists_the_supported_ones() {
    let (location, message) = invalid(build(
        "
model_list:
  - model_name: a
    litellm_params: {model: anthropic/claude-3}
",
    ));
    assert_eq!(location, "model_list[0] (`a`).litellm_params.model");
    assert!(message.contains("`anthropic`"), "{message}");
    assert!(message.contains("mock, openai"), "{message}");
}

#[tokio::test]
async fn unknown_fallback_groups_and_bad_sample_rates_are_invalid() {
    let (location, _) = invalid(build(
        "
model_list:
  - model_name: a
    litellm_params: {model: mock/echo}
router_settings:
  fallbacks: [{a: [nowhere]}]
",
    ));
    assert_eq!(location, "router_settings.fallbacks.a");
    let (location, _) = invalid(build(
        "
model_list:
  - model_name: a
    litellm_params: {model: mock/echo, silent_sample_rate: 1.5}
",
    ));
    assert_eq!(
        location,
        "model_list[0] (`a`).litellm_params.silent_sample_rate"
    );
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Router::builder().provider(mock()).build().unwrap_err();
    assert!(matches!(err, ConfigError::NoRuntime), "{err:?}");
}

#[test]
fn json_typos_and_unknown_router_settings_get_suggestions_and_ignored_keys_are_listed() {
    let err = RouterConfig::from_json_str(
        r#"{"model_list": [{"model_name": "a", "litellm_params": {"model": "mock/echo", "silent_modle": "b"}}]}"#,
        "config.json",
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("config.json: "), "{message}");
    assert!(message.contains("did you mean `silent_model`"), "{message}");
    assert!(message.contains("column"), "{message}");

    let err = RouterConfig::from_yaml_str(
        "router_settings:\n  routing_stratgy: least-busy\n",
        "config.yaml",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `routing_strategy`"),
        "{err}"
    );
    let err = RouterConfig::from_yaml_str(
        "router_settings:\n  routing_strategy: least-bussy\n",
        "config.yaml",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `least-busy`"),
        "{err}"
    );

    let config = RouterConfig::from_yaml_str(
        "model_list:\n  - model_name: a\n    litellm_params: {model: mock/echo, drop_params: true}\nrouter_settings:\n  cache_responses: true\n",
        "config.yaml",
    )
    .unwrap();
    assert_eq!(
        config.ignored_keys(),
        [
            "model_list[0] (`a`).litellm_params.drop_params",
            "router_settings.cache_responses"
        ]
    );
}
