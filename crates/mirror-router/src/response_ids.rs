//! Response ids that say which deployment stored the response, so `GET`, `DELETE`, cancel,
//! `input_items` and `previous_response_id` reach it, in a group of many deployments, after a
//! restart and on any instance.
//!
//! The choice (over a bounded map of ids): the id handed to the client encodes the deployment, as
//! LiteLLM does. It is `resp_` followed by the base64 of
//! `litellm:custom_llm_provider:{provider};model_id:{deployment id};response_id:{upstream id}`,
//! LiteLLM's own plaintext. We write URL-safe base64 without padding, since an id goes in a URL
//! path, and read both alphabets, so ids LiteLLM issued for the same deployment ids route too.
//! An id that does not decode, or names no deployment of ours, is refused with a 404: it is never
//! sent to a deployment picked at random.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

const PREFIX: &str = "resp_";

/// The id a client sees for `upstream_id`, stored by deployment `deployment_id` of `provider`.
pub(crate) fn encode(provider: &str, deployment_id: &str, upstream_id: &str) -> String {
    if decode(upstream_id).is_some() {
        // Already ours (a compatible server relaying a routed id): never wrapped twice.
        return upstream_id.to_owned();
    }
    let plain = format!(
        "litellm:custom_llm_provider:{provider};model_id:{deployment_id};response_id:{upstream_id}"
    );
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(plain))
}

/// A decoded id: the deployment that stored it and the upstream's own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) deployment_id: String,
    pub(crate) upstream_id: String,
}

/// The deployment and upstream id in `id`; `None` for an id that is not one of ours.
pub(crate) fn decode(id: &str) -> Option<Decoded> {
    let body = id.strip_prefix(PREFIX)?;
    let bytes = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(body).ok())?;
    let plain = String::from_utf8(bytes).ok()?;
    let rest = plain.strip_prefix("litellm:custom_llm_provider:")?;
    let (_provider, rest) = rest.split_once(";model_id:")?;
    let (deployment_id, upstream_id) = rest.split_once(";response_id:")?;
    if deployment_id.is_empty() || upstream_id.is_empty() {
        return None;
    }
    Some(Decoded {
        deployment_id: deployment_id.to_owned(),
        upstream_id: upstream_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_read_litellm_s_alphabet() {
        let id = encode("openai", "dep-1", "resp_abc");
        assert!(id.starts_with("resp_"));
        assert!(!id.contains(['/', '+', '=']), "{id}");
        let decoded = decode(&id).unwrap();
        assert_eq!(decoded.deployment_id, "dep-1");
        assert_eq!(decoded.upstream_id, "resp_abc");
        // Not wrapped twice.
        assert_eq!(encode("openai", "dep-2", &id), id);
        // LiteLLM's standard alphabet with padding.
        let litellm = format!(
            "resp_{}",
            STANDARD.encode("litellm:custom_llm_provider:azure;model_id:abc;response_id:resp_x")
        );
        assert_eq!(decode(&litellm).unwrap().deployment_id, "abc");
        for foreign in ["resp_abc", "resp_", "msg_1", "resp_!!!", ""] {
            assert_eq!(decode(foreign), None, "{foreign}");
        }
    }
}
