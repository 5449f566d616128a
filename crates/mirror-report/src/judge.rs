//! The optional judge: each sampled pair, blind and in random order, to a model group (through
//! whatever the caller routes with), which answers `A`, `B` or `TIE`.

use std::future::Future;

use futures::StreamExt as _;
use mirror_core::{ChatMessage, ChatRequest};
use serde::Serialize;
use serde_json::{Map, Value};

use super::analyze::JudgeSample;

/// Judge calls in flight at once.
const CONCURRENCY: usize = 8;

const INSTRUCTIONS: &str = "You are an impartial judge. Two assistants, A and B, answered the same \
conversation. Decide which answer is better: more correct, more helpful and more faithful to the \
request. Ignore the order of the answers and their length. Reply with exactly one word: A, B or TIE.";

/// The judge's win / tie / loss counts for one group pair, from the shadow's point of view.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JudgeOutcome {
    /// The judge's model group.
    pub model: String,
    /// Pairs sent to the judge (a uniform sample of the comparable pairs).
    pub sampled: u64,
    /// Pairs with a usable verdict.
    pub judged: u64,
    /// The judge preferred the shadow's answer.
    pub shadow_wins: u64,
    /// The judge saw no difference.
    pub ties: u64,
    /// The judge preferred the primary's answer.
    pub shadow_losses: u64,
    /// The judge answered something other than A, B or TIE.
    pub invalid: u64,
    /// The judge call failed.
    pub failed: u64,
}

/// A judge's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeVerdict {
    /// The first answer is better.
    A,
    /// The second answer is better.
    B,
    /// Neither is better.
    Tie,
}

/// Reads a verdict: `A`, `B` or `TIE` (any case, with surrounding punctuation or brackets).
pub fn parse_verdict(text: &str) -> Option<JudgeVerdict> {
    let word = text
        .split_whitespace()
        .next()?
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_ascii_uppercase();
    match word.as_str() {
        "A" => Some(JudgeVerdict::A),
        "B" => Some(JudgeVerdict::B),
        "TIE" => Some(JudgeVerdict::Tie),
        _ => None,
    }
}

/// The judge's request: the conversation and two answers, labelled only `A` and `B`.
pub fn judge_prompt(group: &str, conversation: &str, first: &str, second: &str) -> ChatRequest {
    let question = format!(
        "[Conversation]\n{conversation}\n[Answer A]\n{first}\n\n[Answer B]\n{second}\n\n\
         Which answer is better? Reply with exactly one word: A, B or TIE."
    );
    let mut request = ChatRequest::new(
        group,
        vec![
            ChatMessage::new("system", INSTRUCTIONS),
            ChatMessage::user(question),
        ],
    );
    request.temperature = Some(0.0);
    // A judge call is ours, not traffic to compare: never mirror it.
    let mut metadata = Map::new();
    metadata.insert("disable_mirroring".to_owned(), Value::Bool(true));
    request.metadata = Some(metadata);
    request
}

/// Sends every sample to `group` with `ask` and counts the verdicts.
///
/// `ask` sends one judge request (see [`judge_prompt`]) and returns the answer's text (`None`: an
/// answer without text); an error counts as a failed judge call. The `mirror` command asks through
/// a `Router` built from its `--config`.
pub async fn judge<F, Fut, E>(
    ask: F,
    group: &str,
    samples: Vec<JudgeSample>,
    seed: u64,
) -> JudgeOutcome
where
    F: Fn(ChatRequest) -> Fut,
    Fut: Future<Output = Result<Option<String>, E>>,
{
    let mut rng = fastrand::Rng::with_seed(seed);
    let jobs: Vec<(bool, ChatRequest)> = samples
        .into_iter()
        .map(|sample| {
            let shadow_first = rng.bool();
            let (first, second) = if shadow_first {
                (&sample.shadow, &sample.primary)
            } else {
                (&sample.primary, &sample.shadow)
            };
            (
                shadow_first,
                judge_prompt(group, &sample.prompt, first, second),
            )
        })
        .collect();
    let mut outcome = JudgeOutcome {
        model: group.to_owned(),
        sampled: jobs.len() as u64,
        ..JudgeOutcome::default()
    };
    let answers: Vec<(bool, Option<Option<JudgeVerdict>>)> = futures::stream::iter(jobs)
        .map(|(shadow_first, request)| {
            let answer = ask(request);
            async move {
                let answer = answer
                    .await
                    .ok()
                    .map(|text| text.as_deref().and_then(parse_verdict));
                (shadow_first, answer)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (shadow_first, answer) in answers {
        match answer {
            None => outcome.failed += 1,
            Some(None) => outcome.invalid += 1,
            Some(Some(verdict)) => {
                outcome.judged += 1;
                match (verdict, shadow_first) {
                    (JudgeVerdict::Tie, _) => outcome.ties += 1,
                    (JudgeVerdict::A, true) | (JudgeVerdict::B, false) => outcome.shadow_wins += 1,
                    (JudgeVerdict::A, false) | (JudgeVerdict::B, true) => {
                        outcome.shadow_losses += 1;
                    }
                }
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_leniently_but_not_loosely() {
        assert_eq!(parse_verdict("A"), Some(JudgeVerdict::A));
        assert_eq!(parse_verdict(" b.\n"), Some(JudgeVerdict::B));
        assert_eq!(parse_verdict("**Tie**"), Some(JudgeVerdict::Tie));
        assert_eq!(parse_verdict("[A] because ..."), Some(JudgeVerdict::A));
        assert_eq!(parse_verdict("Answer A"), None);
        assert_eq!(parse_verdict(""), None);
    }

    #[test]
    fn the_prompt_is_blind() {
        let request = judge_prompt("judge", "user: hi\n", "first answer", "second answer");
        let text = request.messages[1].text().unwrap_or_default();
        assert!(text.contains("[Answer A]\nfirst answer"));
        assert!(text.contains("[Answer B]\nsecond answer"));
        assert!(
            !text.to_lowercase().contains("shadow") && !text.to_lowercase().contains("primary")
        );
    }
}
