//! `validate()` without a runtime: one YAML document in, the first problem (or a summary) out.

use expect_test::{expect, Expect};

use super::validate;
use crate::config::{parse_yaml, MirrorSettings, RouterConfig};

/// Parses `yaml` (with an optional `mirror_settings` section) and validates it with the `mock` and
/// `openai` providers registered; prints the error, or the resolved groups and deployments.
#[track_caller]
fn check(yaml: &str, expect: Expect) {
    #[derive(serde::Deserialize)]
    struct Document {
        #[serde(default)]
        model_list: Vec<crate::config::ModelDeployment>,
        #[serde(default)]
        router_settings: crate::config::RouterSettings,
        #[serde(default)]
        mirror_settings: MirrorSettings,
    }
    let document: Document = parse_yaml(yaml, "config.yaml").unwrap();
    let config = RouterConfig {
        model_list: document.model_list,
        router_settings: document.router_settings,
    };
    let actual = match validate(
        &config,
        &document.mirror_settings,
        "config.yaml",
        &["mock", "openai"],
    ) {
        Err(err) => err.to_string(),
        Ok(valid) => {
            let mut out = format!("groups: {:?}\naliases: {:?}\n", valid.groups, valid.aliases);
            for d in &valid.deployments {
                let silent: Vec<(&str, usize)> = d
                    .silent
                    .iter()
                    .map(|t| (t.name.as_str(), t.group))
                    .collect();
                out.push_str(&format!(
                    "{} group={} provider={} weight={} timeout={:?} silent={silent:?} rate={} cool={}\n",
                    d.id, d.group, d.provider, d.weight, d.params.timeout, d.sample_rate, d.can_cool_down
                ));
            }
            out
        }
    };
    expect.assert_eq(&actual);
}

#[test]
fn a_valid_config_resolves_names_to_indexes() {
    check(
        "
model_list:
  - model_name: prod
    litellm_params: {model: mock/a, silent_model: [shadow, s2], silent_sample_rate: 0.5, rpm: 30}
    model_info: {id: p1}
  - model_name: prod
    litellm_params: {model: openai/gpt-4o, timeout: 5}
    model_info: {id: p2}
  - model_name: shadow
    litellm_params: {model: mock/b}
    model_info: {id: s1}
router_settings:
  timeout: 30
  model_group_alias: {s2: shadow}
mirror_settings:
  default_sample_rate: 0.25
",
        expect![[r#"
            groups: ["prod", "shadow"]
            aliases: [("s2", 1)]
            p1 group=0 provider=0 weight=30 timeout=Some(30.0) silent=[("shadow", 1), ("s2", 1)] rate=0.5 cool=true
            p2 group=0 provider=1 weight=1 timeout=Some(5.0) silent=[] rate=0.25 cool=true
            s1 group=1 provider=0 weight=1 timeout=Some(30.0) silent=[] rate=0.25 cool=false
        "#]],
    );
}

#[test]
fn names_that_resolve_to_nothing() {
    let entry = "model_list:\n  - model_name: prod\n    litellm_params: {model: mock/a}\n";
    check(
        "model_list:\n  - model_name: prod\n    litellm_params: {model: mock/a, silent_model: prd}\n",
        expect![[r#"config.yaml: model_list[0] (`prod`).litellm_params.silent_model: names no model group `prd` (did you mean `prod`?)"#]],
    );
    check(
        "model_list:\n  - model_name: a\n    litellm_params: {model: bedrock/claude}\n",
        expect!["config.yaml: model_list[0] (`a`).litellm_params.model: the LiteLLM provider `bedrock` (in `bedrock/claude`) is not supported; supported: mock, openai"],
    );
    check(
        &format!("{entry}router_settings:\n  fallbacks: [{{prod: [nowhere]}}]\n"),
        expect!["config.yaml: router_settings.fallbacks.prod: names no model group `nowhere`"],
    );
    check(
        &format!("{entry}router_settings:\n  context_window_fallbacks: [{{prod: [prdo]}}]\n"),
        expect!["config.yaml: router_settings.context_window_fallbacks.prod: names no model group `prdo` (did you mean `prod`?)"],
    );
    check(
        &format!("{entry}router_settings:\n  default_fallbacks: [x]\n"),
        expect!["config.yaml: router_settings.default_fallbacks: names no model group `x`"],
    );
    check(
        &format!("{entry}router_settings:\n  model_group_alias: {{p: prodd}}\n"),
        expect!["config.yaml: router_settings.model_group_alias.p: names no model group `prodd` (did you mean `prod`?)"],
    );
    check(
        "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}, model_info: {id: x}}\n  - {model_name: b, litellm_params: {model: mock/a}, model_info: {id: x}}\n",
        expect!["config.yaml: model_list[1] (`b`).model_info.id: deployment id `x` is also used by model_list[0]; give each deployment a distinct `model_info.id`"],
    );
}

#[test]
fn deployment_numbers() {
    let cases = [
        ("timeout: 1e300", expect!["config.yaml: model_list[0] (`a`).litellm_params.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got 1e300"]),
        ("timeout: .nan", expect!["config.yaml: model_list[0] (`a`).litellm_params.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got NaN"]),
        ("timeout: -1", expect!["config.yaml: model_list[0] (`a`).litellm_params.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got -1.0"]),
        ("timeout: 0", expect!["config.yaml: model_list[0] (`a`).litellm_params.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got 0.0"]),
        ("stream_timeout: .inf", expect!["config.yaml: model_list[0] (`a`).litellm_params.stream_timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got inf"]),
        ("weight: 0", expect!["config.yaml: model_list[0] (`a`).litellm_params.weight: weight must be greater than 0, got 0.0"]),
        ("silent_sample_rate: 1.5", expect!["config.yaml: model_list[0] (`a`).litellm_params.silent_sample_rate: must be between 0 and 1, got 1.5"]),
        ("mock_failure_rate: -0.1", expect!["config.yaml: model_list[0] (`a`).litellm_params.mock_failure_rate: must be between 0 and 1, got -0.1"]),
        ("rpm: 0", expect!["config.yaml: model_list[0] (`a`).litellm_params.rpm: must be greater than 0 (a per-minute limit)"]),
        ("mock_latency_ms: 100000000000", expect!["config.yaml: model_list[0] (`a`).litellm_params.mock_latency_ms: must be at most 86400000 milliseconds (1 day), got 100000000000"]),
        ("input_cost_per_token: -1", expect!["config.yaml: model_list[0] (`a`).litellm_params.input_cost_per_token: must be a price in USD of 0 or more, got -1.0"]),
        ("silent_mirror_mcp_tools: true", expect!["config.yaml: model_list[0] (`a`).litellm_params.silent_mirror_mcp_tools: is true but this deployment has no `silent_model`: it only applies to a deployment that mirrors; set it where `silent_model` is"]),
    ];
    for (field, expect) in cases {
        check(
            &format!(
                "model_list:\n  - model_name: a\n    litellm_params: {{model: mock/a, {field}}}\n"
            ),
            expect,
        );
    }
    check(
        "model_list:\n  - model_name: a\n    litellm_params: {model: mock/a}\n    model_info: {output_cost_per_token: .nan}\n",
        expect!["config.yaml: model_list[0] (`a`).model_info.output_cost_per_token: must be a price in USD of 0 or more, got NaN"],
    );
}

#[test]
fn router_and_mirror_numbers() {
    let cases = [
        ("router_settings: {timeout: 1e300}", expect!["config.yaml: router_settings.timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got 1e300"]),
        ("router_settings: {stream_timeout: 0}", expect!["config.yaml: router_settings.stream_timeout: must be a number of seconds greater than 0 and at most 86400 (1 day), got 0.0"]),
        ("router_settings: {cooldown_time: 1e300}", expect!["config.yaml: router_settings.cooldown_time: must be a number of seconds 0 or more and at most 3600 (1 hour), got 1e300"]),
        ("router_settings: {retry_after: -1}", expect!["config.yaml: router_settings.retry_after: must be a number of seconds 0 or more and at most 3600 (1 hour), got -1.0"]),
        ("router_settings: {routing_strategy_args: {lowest_latency_buffer: .nan}}", expect!["config.yaml: router_settings.routing_strategy_args.lowest_latency_buffer: must be a number of 0 or more, got NaN"]),
        ("router_settings: {redis_timeout_ms: 0}", expect!["config.yaml: router_settings.redis_timeout_ms: must be a number of milliseconds from 1 to 60000, got 0"]),
        ("router_settings: {redis_sync_interval_ms: 0}", expect!["config.yaml: router_settings.redis_sync_interval_ms: must be a number of milliseconds from 1 to 3600000, got 0"]),
        ("router_settings: {redis_host: ' '}", expect!["config.yaml: router_settings.redis_host: must not be empty"]),
        ("mirror_settings: {silent_queue_size: 0}", expect!["config.yaml: mirror_settings.silent_queue_size: must be greater than 0 (a number of queued silent copies)"]),
        ("mirror_settings: {silent_max_bytes: 0}", expect!["config.yaml: mirror_settings.silent_max_bytes: must be greater than 0 (a number of bytes, e.g. 402653184 for 384 MiB)"]),
        ("mirror_settings: {silent_max_in_flight: 0}", expect!["config.yaml: mirror_settings.silent_max_in_flight: must be greater than 0 (a number of silent calls at once)"]),
        ("mirror_settings: {default_sample_rate: 1.5}", expect!["config.yaml: mirror_settings.default_sample_rate: must be between 0 and 1, got 1.5"]),
        ("mirror_settings: {silent_max_per_minute: 0}", expect!["config.yaml: mirror_settings.silent_max_per_minute: must be greater than 0 (a number of silent copies per minute; to stop mirroring, set `mirroring_enabled: false`)"]),
    ];
    for (section, expect) in cases {
        check(section, expect);
    }
    // Zero waits mean "none" and are fine.
    check(
        "router_settings: {cooldown_time: 0, retry_after: 0}",
        expect![[r#"
            groups: []
            aliases: []
        "#]],
    );
}

#[test]
fn seconds_rules_never_panic() {
    use super::{SHUTDOWN_SECONDS, TIMEOUT_SECONDS, WAIT_SECONDS};
    for rule in [TIMEOUT_SECONDS, WAIT_SECONDS, SHUTDOWN_SECONDS] {
        for value in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            -0.0,
            1e-300,
            rule.max_seconds,
        ] {
            let _ = rule.check(value);
        }
        assert_eq!(
            rule.check(rule.max_seconds).unwrap().as_secs_f64(),
            rule.max_seconds
        );
    }
}

#[test]
fn deployments_differing_only_by_key_get_different_ids_without_the_key() {
    check(
        "
model_list:
  - model_name: g
    litellm_params: {model: openai/gpt-4o, api_key: sk-team-a}
  - model_name: g
    litellm_params: {model: openai/gpt-4o, api_key: sk-team-b}
",
        expect![[r#"
            groups: ["g"]
            aliases: []
            3210a8c9880fc31d group=0 provider=1 weight=1 timeout=None silent=[] rate=1 cool=true
            32140ec98812a646 group=0 provider=1 weight=1 timeout=None silent=[] rate=1 cool=true
        "#]],
    );
    check(
        "
model_list:
  - model_name: h
    litellm_params: {model: openai/gpt-4o, custom_llm_provider: openai}
",
        expect!["config.yaml: model_list[0] (`h`).litellm_params.custom_llm_provider: `custom_llm_provider` (LiteLLM's provider override; write the provider as the `model` prefix, e.g. `openai/<model>`) is not supported"],
    );
}
