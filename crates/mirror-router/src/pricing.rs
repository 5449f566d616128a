//! A built-in price table for common OpenAI, Azure OpenAI and Anthropic models, in USD per token.
//!
//! Deployments override it with `model_info.input_cost_per_token` / `output_cost_per_token`. Azure
//! deployments have user-chosen names: set `model_info.base_model` (e.g. `azure/gpt-4o`) to price them.
//!
//! Prices are the providers' standard (pay-as-you-go, global) list prices for text tokens; cached
//! input, batch and regional (data-zone) discounts or surcharges are not modelled, except Anthropic's
//! prompt cache, whose usage says which tokens were written to it (1.25 times the input price, the
//! 5-minute cache) and read from it (0.1 times): see [`ANTHROPIC_CACHE_WRITE`]. Azure names its
//! models as OpenAI does, except `gpt-35-turbo`, which is listed under both spellings.

/// What a token written to Anthropic's prompt cache costs, as a multiple of the input price.
pub(crate) const ANTHROPIC_CACHE_WRITE: f64 = 1.25;
/// What a token read from Anthropic's prompt cache costs, as a multiple of the input price.
pub(crate) const ANTHROPIC_CACHE_READ: f64 = 0.1;

/// (model, input per 1M tokens, output per 1M tokens), list prices.
const TABLE: &[(&str, f64, f64)] = &[
    // GPT-5 family.
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-2025-08-07", 1.25, 10.0),
    ("gpt-5-chat", 1.25, 10.0),
    ("gpt-5-chat-latest", 1.25, 10.0),
    ("gpt-5-codex", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-mini-2025-08-07", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-5-nano-2025-08-07", 0.05, 0.4),
    ("gpt-5-pro", 15.0, 120.0),
    // GPT-4.1 family.
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-2025-04-14", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-mini-2025-04-14", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1-nano-2025-04-14", 0.1, 0.4),
    ("gpt-4.5-preview", 75.0, 150.0),
    // GPT-4o family.
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-2024-11-20", 2.5, 10.0),
    ("gpt-4o-2024-08-06", 2.5, 10.0),
    ("gpt-4o-2024-05-13", 5.0, 15.0),
    ("chatgpt-4o-latest", 5.0, 15.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o-mini-2024-07-18", 0.15, 0.6),
    ("gpt-4o-search-preview", 2.5, 10.0),
    ("gpt-4o-mini-search-preview", 0.15, 0.6),
    // GPT-4 and GPT-3.5.
    ("gpt-4-turbo", 10.0, 30.0),
    ("gpt-4-turbo-2024-04-09", 10.0, 30.0),
    ("gpt-4-turbo-preview", 10.0, 30.0),
    ("gpt-4-0125-preview", 10.0, 30.0),
    ("gpt-4-1106-preview", 10.0, 30.0),
    ("gpt-4", 30.0, 60.0),
    ("gpt-4-0613", 30.0, 60.0),
    ("gpt-4-32k", 60.0, 120.0),
    ("gpt-3.5-turbo", 0.5, 1.5),
    ("gpt-3.5-turbo-0125", 0.5, 1.5),
    ("gpt-3.5-turbo-1106", 1.0, 2.0),
    ("gpt-3.5-turbo-16k", 3.0, 4.0),
    ("gpt-3.5-turbo-instruct", 1.5, 2.0),
    ("gpt-35-turbo", 0.5, 1.5),
    ("gpt-35-turbo-0125", 0.5, 1.5),
    ("gpt-35-turbo-1106", 1.0, 2.0),
    ("gpt-35-turbo-16k", 3.0, 4.0),
    ("gpt-35-turbo-instruct", 1.5, 2.0),
    // Reasoning models.
    ("o1", 15.0, 60.0),
    ("o1-2024-12-17", 15.0, 60.0),
    ("o1-preview", 15.0, 60.0),
    ("o1-mini", 1.1, 4.4),
    ("o1-pro", 150.0, 600.0),
    ("o3", 2.0, 8.0),
    ("o3-2025-04-16", 2.0, 8.0),
    ("o3-pro", 20.0, 80.0),
    ("o3-mini", 1.1, 4.4),
    ("o3-mini-2025-01-31", 1.1, 4.4),
    ("o3-deep-research", 10.0, 40.0),
    ("o4-mini", 1.1, 4.4),
    ("o4-mini-2025-04-16", 1.1, 4.4),
    ("o4-mini-deep-research", 2.0, 8.0),
    ("codex-mini-latest", 1.5, 6.0),
    // Claude (Anthropic's list prices; dated snapshots fall back to these names).
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-4-opus", 15.0, 75.0),
    ("claude-sonnet-4-6", 3.0, 15.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-4-sonnet", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-7-sonnet-latest", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet-latest", 3.0, 15.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-5-haiku-latest", 0.8, 4.0),
    ("claude-3-opus", 15.0, 75.0),
    ("claude-3-haiku", 0.25, 1.25),
    // Embeddings (input only).
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("text-embedding-ada-002", 0.1, 0.0),
];

/// The built-in price of `model` (a bare name, or `azure/name`, `openai/name`), per token.
///
/// Names match exactly, ignoring case; a dated snapshot not in the table (`gpt-4o-mini-2099-01-01`)
/// falls back to its undated name.
pub(crate) fn builtin_price(model: &str) -> Option<(f64, f64)> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    lookup(&name)
        .or_else(|| strip_date(&name).and_then(lookup))
        .map(|(input, output)| (input / 1e6, output / 1e6))
}

fn lookup(name: &str) -> Option<(f64, f64)> {
    TABLE
        .iter()
        .find(|(known, _, _)| *known == name)
        .map(|(_, input, output)| (*input, *output))
}

/// `name` without a trailing snapshot date: `-YYYY-MM-DD` (OpenAI) or `-YYYYMMDD` (Anthropic).
fn strip_date(name: &str) -> Option<&str> {
    if let Some((stem, date)) = name.rsplit_once('-') {
        if date.len() == 8 && date.bytes().all(|byte| byte.is_ascii_digit()) {
            return Some(stem);
        }
    }
    let (stem, date) = name.split_at_checked(name.len().checked_sub(11)?)?;
    let bytes = date.as_bytes();
    let is_date = bytes[0] == b'-'
        && bytes[5] == b'-'
        && bytes[8] == b'-'
        && [1, 2, 3, 4, 6, 7, 9, 10]
            .iter()
            .all(|i| bytes[*i].is_ascii_digit());
    is_date.then_some(stem)
}

#[cfg(test)]
mod tests {
    use mirror_core::{DeploymentParams, ModelInfo, ModelRef};

    use super::*;

    #[test]
    fn finds_prefixed_and_bare_names() {
        assert_eq!(builtin_price("azure/gpt-4o"), Some((2.5e-6, 1e-5)));
        assert_eq!(builtin_price("gpt-4o-mini"), Some((0.15e-6, 0.6e-6)));
        assert_eq!(builtin_price("openai/GPT-5-mini"), Some((0.25e-6, 2e-6)));
        assert_eq!(builtin_price("azure/gpt-35-turbo"), Some((0.5e-6, 1.5e-6)));
        assert_eq!(builtin_price("my-custom-deployment"), None);
    }

    #[test]
    fn dated_snapshots_fall_back_to_the_undated_name_unless_listed() {
        assert_eq!(
            builtin_price("gpt-4o-mini-2099-01-01"),
            Some((0.15e-6, 0.6e-6))
        );
        // Listed snapshots keep their own price.
        assert_eq!(builtin_price("gpt-4o-2024-05-13"), Some((5e-6, 15e-6)));
        assert_eq!(builtin_price("unknown-2024-01-01"), None);
        assert_eq!(
            builtin_price("anthropic/claude-sonnet-4-5-20250929"),
            Some((3e-6, 15e-6))
        );
        assert_eq!(
            builtin_price("claude-opus-4-1-20250805"),
            Some((15e-6, 75e-6))
        );
        assert_eq!(
            builtin_price("claude-3-5-haiku-20241022"),
            Some((0.8 / 1e6, 4e-6))
        );
        assert_eq!(builtin_price("claude-unknown-20250101"), None);
        assert_eq!(strip_date("o3-2025-04-16"), Some("o3"));
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("gpt-4o-mini-2099-0x-01"), None);
    }

    #[test]
    fn table_names_are_unique_and_lowercase() {
        for (i, (name, input, output)) in TABLE.iter().enumerate() {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(*input >= 0.0 && *output >= 0.0, "{name}");
            assert!(
                TABLE[i + 1..].iter().all(|(other, _, _)| other != name),
                "{name} is listed twice"
            );
        }
    }

    fn deployment(model: &str, info: serde_json::Value) -> (DeploymentParams, ModelInfo) {
        let params = DeploymentParams::new(ModelRef::parse(model).unwrap());
        (params, serde_json::from_value(info).unwrap())
    }

    #[test]
    fn azure_deployment_is_priced_by_its_base_model() {
        // An Azure deployment's name is the user's choice, so only `base_model` can price it.
        let (params, info) = deployment(
            "azure/prod-chat-eu",
            serde_json::json!({ "base_model": "azure/gpt-4o" }),
        );
        let prices = crate::deployment::prices(&params, &info);
        assert_eq!(prices, Some((2.5e-6, 10e-6)));
        let (params, info) = deployment("azure/prod-chat-eu", serde_json::json!({}));
        assert_eq!(crate::deployment::prices(&params, &info), None);
        // Explicit prices win over the table.
        let (params, info) = deployment(
            "azure/prod-chat-eu",
            serde_json::json!({
                "base_model": "azure/gpt-4o",
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
            }),
        );
        assert_eq!(
            crate::deployment::prices(&params, &info),
            Some((1e-6, 2e-6))
        );
    }
}
