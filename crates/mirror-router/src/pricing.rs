//! A small built-in price table for common OpenAI and Azure OpenAI models, in USD per token.
//!
//! Deployments override it with `model_info.input_cost_per_token` / `output_cost_per_token`. Azure
//! deployments have user-chosen names: set `model_info.base_model` (e.g. `azure/gpt-4o`) to price them.

/// (model, input per 1M tokens, output per 1M tokens), list prices.
const TABLE: &[(&str, f64, f64)] = &[
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4-turbo", 10.0, 30.0),
    ("gpt-4", 30.0, 60.0),
    ("gpt-35-turbo", 0.5, 1.5),
    ("gpt-3.5-turbo", 0.5, 1.5),
    ("o1", 15.0, 60.0),
    ("o1-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
    ("o3-mini", 1.1, 4.4),
    ("o4-mini", 1.1, 4.4),
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("text-embedding-ada-002", 0.1, 0.0),
];

/// The built-in price of `model` (a bare name, or `azure/name`, `openai/name`), per token.
pub(crate) fn builtin_price(model: &str) -> Option<(f64, f64)> {
    let name = model.rsplit('/').next().unwrap_or(model);
    TABLE
        .iter()
        .find(|(known, _, _)| *known == name)
        .map(|(_, input, output)| (input / 1e6, output / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_prefixed_and_bare_names() {
        assert_eq!(builtin_price("azure/gpt-4o"), Some((2.5e-6, 1e-5)));
        assert_eq!(builtin_price("gpt-4o-mini"), Some((0.15e-6, 0.6e-6)));
        assert_eq!(builtin_price("my-custom-deployment"), None);
    }
}
