//! What Mirror does with each LiteLLM configuration key it does not implement: a data table.
//!
//! LiteLLM accepts any key in its sections (`litellm_settings` is applied with `setattr`, and
//! `general_settings`, `router_settings` and the top level are read with `.get`), so "unknown" is
//! judged against LiteLLM, not against what we implement:
//! - a key we implement is a field of the section's struct and never reaches this table;
//! - a key that does not change what a caller gets (database, spend, UI, budgets, admin, alerting,
//!   logging detail) is accepted with one visible warning ([`KeyUse::Ignored`]);
//! - a key that would change what a caller gets is refused with the LiteLLM feature's name
//!   ([`KeyUse::Refused`]);
//! - any other key is a typo when it is close to a key we implement ("did you mean"), and otherwise
//!   an unknown key; in `litellm_params` it is what LiteLLM makes of it, a request parameter sent
//!   to the provider (see [`classify`]).
//!
//! The keys come from LiteLLM 1.106.2: `proxy/_types.py` (`ConfigGeneralSettings`,
//! `ConfigYAML`), `router.py` (`Router.__init__`), `types/router.py` (`GenericLiteLLMParams`) and
//! the docs' `proxy/config_settings.md`.

use crate::error::nearest;

/// A section of a LiteLLM proxy config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The top level of the file.
    TopLevel,
    /// `model_list[].litellm_params`.
    LitellmParams,
    /// `router_settings`.
    RouterSettings,
    /// `litellm_settings`.
    LitellmSettings,
    /// `general_settings`.
    GeneralSettings,
}

impl Section {
    /// The section's name in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Section::TopLevel => "the top level",
            Section::LitellmParams => "litellm_params",
            Section::RouterSettings => "router_settings",
            Section::LitellmSettings => "litellm_settings",
            Section::GeneralSettings => "general_settings",
        }
    }
}

/// What Mirror does with a LiteLLM key it does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Accepted with a warning: it does not change what a caller gets.
    Ignored,
    /// Refused at load: it would change what a caller gets. The text names the LiteLLM feature.
    Refused(&'static str),
}

use KeyUse::{Ignored, Refused};
use Section::{GeneralSettings, LitellmParams, LitellmSettings, RouterSettings, TopLevel};

/// Every LiteLLM key Mirror does not implement but knows, with what it does with it.
pub const LITELLM_KEYS: &[(Section, &str, KeyUse)] = &[
    // Top-level sections.
    (TopLevel, "credential_list", Refused("LiteLLM credential management")),
    (TopLevel, "guardrails", Refused("LiteLLM guardrails")),
    (TopLevel, "include", Refused("LiteLLM config includes")),
    (TopLevel, "prompts", Refused("LiteLLM prompt management")),
    (TopLevel, "pass_through_endpoints", Refused("LiteLLM pass-through endpoints")),
    (TopLevel, "files_settings", Ignored),
    (TopLevel, "finetune_settings", Ignored),
    (TopLevel, "assistant_settings", Ignored),
    (TopLevel, "batch_settings", Ignored),
    (TopLevel, "agents", Ignored),
    (TopLevel, "mcp_servers", Ignored),
    (TopLevel, "mcp_tools", Ignored),
    (TopLevel, "search_tools", Ignored),
    (TopLevel, "vector_store_registry", Ignored),
    (TopLevel, "vector_stores", Ignored),
    (TopLevel, "callback_settings", Ignored),
    (TopLevel, "model_group_settings", Ignored),
    (TopLevel, "alerting_settings", Ignored),
    // litellm_params (deployment).
    (LitellmParams, "litellm_credential_name", Refused("LiteLLM credential management")),
    (LitellmParams, "custom_llm_provider", Refused("LiteLLM's provider override; write the provider as the `model` prefix, e.g. `openai/<model>`")),
    (LitellmParams, "aws_access_key_id", Refused("AWS credentials (Bedrock, SageMaker)")),
    (LitellmParams, "aws_secret_access_key", Refused("AWS credentials (Bedrock, SageMaker)")),
    (LitellmParams, "aws_session_token", Refused("AWS credentials (Bedrock, SageMaker)")),
    (LitellmParams, "aws_role_name", Refused("AWS credentials (Bedrock, SageMaker)")),
    (LitellmParams, "aws_profile_name", Refused("AWS credentials (Bedrock, SageMaker)")),
    (LitellmParams, "vertex_project", Refused("Vertex AI credentials")),
    (LitellmParams, "vertex_location", Refused("Vertex AI credentials")),
    (LitellmParams, "vertex_credentials", Refused("Vertex AI credentials")),
    (LitellmParams, "tenant_id", Refused("Azure Entra ID client credentials (use `azure_ad_token` or `api_key`)")),
    (LitellmParams, "client_id", Refused("Azure Entra ID client credentials (use `azure_ad_token` or `api_key`)")),
    (LitellmParams, "client_secret", Refused("Azure Entra ID client credentials (use `azure_ad_token` or `api_key`)")),
    (LitellmParams, "azure_username", Refused("Azure Entra ID username/password credentials")),
    (LitellmParams, "azure_password", Refused("Azure Entra ID username/password credentials")),
    (LitellmParams, "max_budget", Refused("LiteLLM provider budgets")),
    (LitellmParams, "budget_duration", Refused("LiteLLM provider budgets")),
    (LitellmParams, "auto_router_config", Refused("LiteLLM auto-router")),
    (LitellmParams, "auto_router_config_path", Refused("LiteLLM auto-router")),
    (LitellmParams, "prompt_id", Refused("LiteLLM prompt management")),
    (LitellmParams, "guardrails", Refused("LiteLLM guardrails")),
    (LitellmParams, "max_parallel_requests", Ignored),
    (LitellmParams, "region_name", Ignored),
    (LitellmParams, "aws_region_name", Ignored),
    (LitellmParams, "drop_params", Ignored),
    (LitellmParams, "use_in_pass_through", Ignored),
    (LitellmParams, "use_litellm_proxy", Ignored),
    (LitellmParams, "merge_reasoning_content_in_choices", Ignored),
    (LitellmParams, "model_info", Ignored),
    (LitellmParams, "base_model", Ignored),
    (LitellmParams, "input_cost_per_second", Ignored),
    (LitellmParams, "output_cost_per_second", Ignored),
    (LitellmParams, "cache_creation_input_token_cost", Ignored),
    (LitellmParams, "cache_read_input_token_cost", Ignored),
    (LitellmParams, "input_cost_per_pixel", Ignored),
    (LitellmParams, "output_cost_per_pixel", Ignored),
    (LitellmParams, "health_check_model", Ignored),
    (LitellmParams, "health_check_timeout", Ignored),
    (LitellmParams, "configurable_clientside_auth_params", Ignored),
    (LitellmParams, "litellm_trace_id", Ignored),
    (LitellmParams, "cooldown_time", Ignored),
    // router_settings.
    (RouterSettings, "provider_budget_config", Refused("LiteLLM provider budget routing")),
    (RouterSettings, "enable_tag_filtering", Refused("LiteLLM tag-based routing")),
    (RouterSettings, "tag_filtering_match_any", Refused("LiteLLM tag-based routing")),
    (RouterSettings, "model_group_affinity_config", Refused("LiteLLM deployment affinity")),
    (RouterSettings, "deployment_affinity_ttl_seconds", Refused("LiteLLM deployment affinity")),
    (RouterSettings, "assistants_config", Refused("LiteLLM Assistants API")),
    (RouterSettings, "search_tools", Refused("LiteLLM search tools")),
    (RouterSettings, "pass_through_all_models", Refused("LiteLLM pass-through of unknown models")),
    (RouterSettings, "router_general_settings", Ignored),
    (RouterSettings, "enable_pre_call_checks", Ignored),
    (RouterSettings, "optional_pre_call_checks", Ignored),
    (RouterSettings, "cache_responses", Ignored),
    (RouterSettings, "caching_groups", Ignored),
    (RouterSettings, "cache_kwargs", Ignored),
    (RouterSettings, "retry_policy", Ignored),
    (RouterSettings, "allowed_fails_policy", Ignored),
    (RouterSettings, "model_group_retry_policy", Ignored),
    (RouterSettings, "set_verbose", Ignored),
    (RouterSettings, "debug_level", Ignored),
    (RouterSettings, "polling_interval", Ignored),
    (RouterSettings, "client_ttl", Ignored),
    (RouterSettings, "default_litellm_params", Ignored),
    (RouterSettings, "default_max_parallel_requests", Ignored),
    (RouterSettings, "default_priority", Ignored),
    (RouterSettings, "alerting_config", Ignored),
    (RouterSettings, "redis_db", Ignored),
    (RouterSettings, "cache_responses_ttl", Ignored),
    // litellm_settings.
    (LitellmSettings, "guardrails", Refused("LiteLLM guardrails")),
    (LitellmSettings, "pre_call_rules", Refused("LiteLLM call rules")),
    (LitellmSettings, "post_call_rules", Refused("LiteLLM call rules")),
    (LitellmSettings, "ssl_verify", Refused("custom TLS verification")),
    (LitellmSettings, "ssl_certificate", Refused("custom TLS certificates")),
    (LitellmSettings, "enable_json_schema_validation", Refused("LiteLLM JSON schema validation of responses")),
    (LitellmSettings, "model_alias_map", Refused("LiteLLM's model alias map; use `router_settings.model_group_alias`")),
    (LitellmSettings, "default_internal_user_params", Ignored),
    (LitellmSettings, "drop_params", Ignored),
    (LitellmSettings, "set_verbose", Ignored),
    (LitellmSettings, "json_logs", Ignored),
    (LitellmSettings, "turn_off_message_logging", Ignored),
    (LitellmSettings, "redact_user_api_key_info", Ignored),
    (LitellmSettings, "redact_messages_in_exceptions", Ignored),
    (LitellmSettings, "max_budget", Ignored),
    (LitellmSettings, "budget_duration", Ignored),
    (LitellmSettings, "max_end_user_budget", Ignored),
    (LitellmSettings, "max_internal_user_budget", Ignored),
    (LitellmSettings, "internal_user_budget_duration", Ignored),
    (LitellmSettings, "default_team_settings", Ignored),
    (LitellmSettings, "default_key_generate_params", Ignored),
    (LitellmSettings, "upperbound_key_generate_params", Ignored),
    (LitellmSettings, "key_generation_settings", Ignored),
    (LitellmSettings, "disable_end_user_cost_tracking", Ignored),
    (LitellmSettings, "disable_end_user_cost_tracking_prometheus_only", Ignored),
    (LitellmSettings, "telemetry", Ignored),
    (LitellmSettings, "service_callback", Ignored),
    (LitellmSettings, "modify_params", Ignored),
    (LitellmSettings, "enable_preview_features", Ignored),
    (LitellmSettings, "force_ipv4", Ignored),
    (LitellmSettings, "log_raw_request_response", Ignored),
    (LitellmSettings, "langfuse_default_tags", Ignored),
    (LitellmSettings, "prometheus_initialize_budget_metrics", Ignored),
    (LitellmSettings, "return_response_headers", Ignored),
    (LitellmSettings, "store_audit_logs", Ignored),
    (LitellmSettings, "public_model_groups", Ignored),
    (LitellmSettings, "callback_settings", Ignored),
    (LitellmSettings, "success_callback_params", Ignored),
    (LitellmSettings, "num_retries_per_request", Ignored),
    (LitellmSettings, "disable_copilot_system_to_assistant", Ignored),
    (LitellmSettings, "suppress_debug_info", Ignored),
    // general_settings.
    (GeneralSettings, "custom_auth", Refused("LiteLLM custom authentication")),
    (GeneralSettings, "enable_jwt_auth", Refused("LiteLLM JWT authentication")),
    (GeneralSettings, "litellm_jwtauth", Refused("LiteLLM JWT authentication")),
    (GeneralSettings, "enable_oauth2_auth", Refused("LiteLLM OAuth2 authentication")),
    (GeneralSettings, "allowed_ips", Refused("LiteLLM IP allow-lists")),
    (GeneralSettings, "enforce_user_param", Refused("LiteLLM's `enforce_user_param` check")),
    (GeneralSettings, "enforced_params", Refused("LiteLLM enforced request parameters")),
    (GeneralSettings, "forward_client_headers_to_llm_api", Refused("forwarding client headers to providers")),
    (GeneralSettings, "forward_openai_org_id", Refused("forwarding the client's OpenAI organization")),
    (GeneralSettings, "pass_through_endpoints", Refused("LiteLLM pass-through endpoints")),
    (GeneralSettings, "key_management_system", Refused("LiteLLM secret managers (only `os.environ/NAME` is read)")),
    (GeneralSettings, "key_management_settings", Refused("LiteLLM secret managers (only `os.environ/NAME` is read)")),
    (GeneralSettings, "use_google_kms", Refused("LiteLLM secret managers (only `os.environ/NAME` is read)")),
    (GeneralSettings, "use_azure_key_vault", Refused("LiteLLM secret managers (only `os.environ/NAME` is read)")),
    (GeneralSettings, "max_request_size_mb", Refused("LiteLLM's request size limit; use `mirror_settings.max_body_bytes`")),
    (GeneralSettings, "database_url", Ignored),
    (GeneralSettings, "database_connection_pool_limit", Ignored),
    (GeneralSettings, "database_connection_timeout", Ignored),
    (GeneralSettings, "database_args", Ignored),
    (GeneralSettings, "allow_requests_on_db_unavailable", Ignored),
    (GeneralSettings, "disable_prisma_schema_update", Ignored),
    (GeneralSettings, "store_model_in_db", Ignored),
    (GeneralSettings, "store_prompts_in_spend_logs", Ignored),
    (GeneralSettings, "disable_spend_logs", Ignored),
    (GeneralSettings, "disable_error_logs", Ignored),
    (GeneralSettings, "maximum_spend_logs_retention_period", Ignored),
    (GeneralSettings, "maximum_spend_logs_retention_interval", Ignored),
    (GeneralSettings, "proxy_batch_write_at", Ignored),
    (GeneralSettings, "proxy_budget_rescheduler_min_time", Ignored),
    (GeneralSettings, "proxy_budget_rescheduler_max_time", Ignored),
    (GeneralSettings, "disable_reset_budget", Ignored),
    (GeneralSettings, "spend_report_frequency", Ignored),
    (GeneralSettings, "alerting", Ignored),
    (GeneralSettings, "alerting_threshold", Ignored),
    (GeneralSettings, "alerting_args", Ignored),
    (GeneralSettings, "alert_types", Ignored),
    (GeneralSettings, "alert_to_webhook_url", Ignored),
    (GeneralSettings, "background_health_checks", Ignored),
    (GeneralSettings, "health_check_interval", Ignored),
    (GeneralSettings, "health_check_details", Ignored),
    (GeneralSettings, "ui_access_mode", Ignored),
    (GeneralSettings, "admin_only_routes", Ignored),
    (GeneralSettings, "allowed_routes", Ignored),
    (GeneralSettings, "public_routes", Ignored),
    (GeneralSettings, "disable_master_key_return", Ignored),
    (GeneralSettings, "disable_adding_master_key_hash_to_db", Ignored),
    (GeneralSettings, "master_key_rotation", Ignored),
    (GeneralSettings, "custom_key_generate", Ignored),
    (GeneralSettings, "custom_sso", Ignored),
    (GeneralSettings, "infer_model_from_keys", Ignored),
    (GeneralSettings, "allow_user_auth", Ignored),
    (GeneralSettings, "user_header_name", Ignored),
    (GeneralSettings, "use_x_forwarded_for", Ignored),
    (GeneralSettings, "max_parallel_requests", Ignored),
    (GeneralSettings, "global_max_parallel_requests", Ignored),
    (GeneralSettings, "disable_retry_on_max_parallel_request_limit_error", Ignored),
    (GeneralSettings, "use_redis_transaction_buffer", Ignored),
    (GeneralSettings, "service_account_settings", Ignored),
    (GeneralSettings, "max_response_size_mb", Ignored),
    (GeneralSettings, "proxy_batch_polling_interval", Ignored),
    (GeneralSettings, "supported_db_objects", Ignored),
    (GeneralSettings, "embedding_model", Ignored),
    (GeneralSettings, "moderation_model", Ignored),
    (GeneralSettings, "disable_responses_id_security", Ignored),
];

/// OpenAI request parameters (and LiteLLM's request-only ones) that a deployment's `litellm_params`
/// may carry as defaults for every request it serves (LiteLLM merges them under the request's own).
pub const REQUEST_DEFAULT_KEYS: &[&str] = &[
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "reasoning_effort",
    "thinking",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "service_tier",
    "verbosity",
    "modalities",
    "audio",
    "prediction",
    "store",
    "web_search_options",
    "extra_body",
    "extra_headers",
    "dimensions",
    "encoding_format",
];

/// What a key of `section` that is not one of `implemented` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Accepted with a warning.
    Ignored,
    /// A request parameter: a default for the deployment's requests (`litellm_params` only).
    RequestDefault,
    /// Refused: the message says why.
    Refused(String),
}

/// Classifies a key of `section` that is not one of the section's `implemented` keys.
///
/// A key in [`LITELLM_KEYS`] gets its entry. Otherwise a near-miss of an implemented key is a typo
/// ("did you mean"); in `litellm_params` any other key is a request parameter, as LiteLLM sends
/// keys it does not know to OpenAI-compatible providers in the body; elsewhere it is unknown.
pub fn classify(section: Section, key: &str, implemented: &[&str]) -> Classified {
    if let Some((_, _, use_)) = LITELLM_KEYS
        .iter()
        .find(|(s, name, _)| *s == section && *name == key)
    {
        return match use_ {
            Ignored => Classified::Ignored,
            Refused(feature) => {
                Classified::Refused(format!("`{key}` ({feature}) is not supported"))
            }
        };
    }
    if section == LitellmParams && REQUEST_DEFAULT_KEYS.contains(&key) {
        return Classified::RequestDefault;
    }
    if let Some(best) = nearest(key, implemented.iter().copied()) {
        return Classified::Refused(format!("unknown field `{key}` (did you mean `{best}`?)"));
    }
    if section == LitellmParams {
        return Classified::RequestDefault;
    }
    Classified::Refused(format!(
        "unknown field `{key}` in {}: not a LiteLLM setting Mirror knows, expected one of {}",
        section.name(),
        implemented
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// LiteLLM providers Mirror does not serve, refused by name. Registered prefixes (the shipped
/// adapters and their OpenAI-compatible presets) are never looked up here.
pub const UNSUPPORTED_PROVIDERS: &[&str] = &[
    "bedrock",
    "bedrock_converse",
    "sagemaker",
    "sagemaker_chat",
    "vertex_ai",
    "vertex_ai_beta",
    "cohere",
    "cohere_chat",
    "huggingface",
    "replicate",
    "anyscale",
    "ai21",
    "nlp_cloud",
    "aleph_alpha",
    "petals",
    "palm",
    "baseten",
    "cloudflare",
    "databricks",
    "watsonx",
    "predibase",
    "triton",
    "clarifai",
    "voyage",
    "jina_ai",
    "nvidia_nim",
    "cerebras",
    "sambanova",
    "azure_ai",
    "azure_text",
    "text-completion-openai",
    "text-completion-codestral",
    "codestral",
    "friendliai",
    "github",
    "github_copilot",
    "litellm_proxy",
    "lm_studio",
    "llamafile",
    "vllm",
    "dashscope",
    "volcengine",
    "nebius",
    "novita",
    "snowflake",
    "oci",
    "infinity",
    "deepinfra",
    "hyperbolic",
    "featherless_ai",
    "nscale",
    "moonshot",
    "v0",
    "lambda_ai",
    "elevenlabs",
    "assemblyai",
    "openai_like",
    "custom_openai",
    "empower",
    "ollama_text",
    "maritalk",
    "xinference",
    "topaz",
    "dataforseo",
    "morph",
    "heroku",
    "recraft",
    "gradient_ai",
];
