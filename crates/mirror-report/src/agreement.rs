//! Comparing two answers: exact, normalised, JSON-structural, tool calls, and a similarity score.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

/// The longest a word diff may run before `similar` falls back to a coarser answer.
const DIFF_DEADLINE: Duration = Duration::from_millis(50);

/// Similarity histogram bins: `[0, 0.1)`, ..., `[0.9, 1.0)`, and exactly 1.
pub const SIMILARITY_BINS: usize = 11;

/// What a call answered, reduced to what comparisons need.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Answer {
    /// The first choice's text.
    pub(crate) text: String,
    /// Tool calls as (name, raw arguments).
    pub(crate) tool_calls: Vec<(String, String)>,
}

/// How two answers compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) exact: bool,
    pub(crate) normalized: bool,
    /// `Some(equal)` when both answers are JSON objects or arrays.
    pub(crate) json: Option<bool>,
    /// `Some((names equal, names and arguments equal))` when either answer calls tools.
    pub(crate) tools: Option<(bool, bool)>,
    /// 0 (nothing in common) to 1 (equal up to normalisation).
    pub(crate) similarity: f64,
}

/// Agreement counters of one group pair, over the pairs where both calls succeeded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Agreement {
    /// Pairs where both calls succeeded.
    pub comparable: u64,
    /// Equal text and tool calls, byte for byte.
    pub exact: u64,
    /// Equal up to whitespace and case (tool arguments compared as JSON).
    pub normalized: u64,
    /// Pairs where both answers are JSON objects or arrays.
    pub json_pairs: u64,
    /// Of those, structurally equal (key order and formatting ignored).
    pub json_equal: u64,
    /// Pairs where either answer calls tools.
    pub tool_pairs: u64,
    /// Of those, the same tool names in the same order.
    pub tool_names_equal: u64,
    /// Of those, the same names with arguments equal as JSON.
    pub tool_calls_equal: u64,
    /// Mean similarity score (0 to 1).
    pub mean_similarity: f64,
    /// Similarity histogram: `[0, 0.1)`, ..., `[0.9, 1)`, and exactly 1.
    pub similarity_histogram: [u64; SIMILARITY_BINS],
    /// Share of comparable pairs that are not equal up to normalisation.
    pub disagreement_rate: f64,
}

impl Agreement {
    pub(crate) fn add(&mut self, verdict: &Verdict) {
        self.comparable += 1;
        self.exact += u64::from(verdict.exact);
        self.normalized += u64::from(verdict.normalized);
        if let Some(equal) = verdict.json {
            self.json_pairs += 1;
            self.json_equal += u64::from(equal);
        }
        if let Some((names, calls)) = verdict.tools {
            self.tool_pairs += 1;
            self.tool_names_equal += u64::from(names);
            self.tool_calls_equal += u64::from(calls);
        }
        // The running sum lives in `mean_similarity` until `finish`.
        self.mean_similarity += verdict.similarity;
        self.similarity_histogram[similarity_bin(verdict.similarity)] += 1;
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn finish(&mut self) {
        if self.comparable > 0 {
            self.mean_similarity /= self.comparable as f64;
            self.disagreement_rate = 1.0 - self.normalized as f64 / self.comparable as f64;
        }
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn similarity_bin(similarity: f64) -> usize {
    if similarity >= 1.0 {
        SIMILARITY_BINS - 1
    } else {
        ((similarity.max(0.0) * 10.0) as usize).min(SIMILARITY_BINS - 2)
    }
}

/// Lowercase, with every run of whitespace made one space and the ends trimmed.
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// The answer as JSON, when it is a JSON object or array (optionally in a Markdown code fence).
pub(crate) fn parse_json(text: &str) -> Option<Value> {
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("```") {
        let rest = rest.strip_suffix("```")?;
        // Drop the info string (`json`) on the fence's first line.
        body = rest.split_once('\n').map_or(rest, |(_, code)| code).trim();
    }
    if !(body.starts_with('{') || body.starts_with('[')) {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// JSON text with object keys sorted, so equal structures render equally, and a space after each
/// `:` and `,`, so a word diff sees keys and values as words.
pub(crate) fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push_str(": ");
                    write(item, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// Tool-call arguments as canonical JSON, or the raw text when they are not JSON.
fn canonical_arguments(raw: &str) -> String {
    serde_json::from_str::<Value>(raw)
        .map_or_else(|_| raw.trim().to_owned(), |v| canonical_json(&v))
}

/// Compares two successful answers.
pub(crate) fn compare_answers(primary: &Answer, shadow: &Answer) -> Verdict {
    let tools = (!primary.tool_calls.is_empty() || !shadow.tool_calls.is_empty()).then(|| {
        let names = |a: &Answer| {
            a.tool_calls
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        let calls = |a: &Answer| {
            a.tool_calls
                .iter()
                .map(|(n, args)| (n.clone(), canonical_arguments(args)))
                .collect::<Vec<_>>()
        };
        (
            names(primary) == names(shadow),
            calls(primary) == calls(shadow),
        )
    });
    let tools_equal = tools.is_none_or(|(_, calls)| calls);
    let exact = primary.text == shadow.text && primary.tool_calls == shadow.tool_calls;
    let normalized_a = normalize(&primary.text);
    let normalized_b = normalize(&shadow.text);
    let normalized = tools_equal && normalized_a == normalized_b;
    let json = match (parse_json(&primary.text), parse_json(&shadow.text)) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    let similarity = if normalized || json == Some(true) && tools_equal {
        1.0
    } else {
        let render = |normalized: &str, answer: &Answer, json: Option<Value>| {
            let mut text = json.map_or_else(|| normalized.to_owned(), |v| canonical_json(&v));
            for (name, args) in &answer.tool_calls {
                let _ = write!(text, "\n{name}({})", canonical_arguments(args));
            }
            text
        };
        let (json_a, json_b) = if json.is_some() {
            (parse_json(&primary.text), parse_json(&shadow.text))
        } else {
            (None, None)
        };
        similarity(
            &render(&normalized_a, primary, json_a),
            &render(&normalized_b, shadow, json_b),
        )
    };
    Verdict {
        exact,
        normalized,
        json,
        tools,
        similarity,
    }
}

/// Word-level similarity: `similar`'s ratio (2 × matched / total) over words and the spaces
/// between them; 1 for two empty texts.
#[allow(clippy::cast_lossless)]
pub(crate) fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    f64::from(
        TextDiff::configure()
            .timeout(DIFF_DEADLINE)
            .diff_words(a, b)
            .ratio(),
    )
}

/// One piece of a word diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "text")]
pub enum DiffOp {
    /// In both answers.
    Equal(String),
    /// Only in the primary's answer.
    Delete(String),
    /// Only in the shadow's answer.
    Insert(String),
}

/// The word diff from `primary` to `shadow`, with adjacent pieces of one kind merged.
pub(crate) fn word_diff(primary: &str, shadow: &str) -> Vec<DiffOp> {
    let diff = TextDiff::configure()
        .timeout(DIFF_DEADLINE)
        .diff_words(primary, shadow);
    let mut ops: Vec<DiffOp> = Vec::new();
    for change in diff.iter_all_changes() {
        let text = change.value();
        match (ops.last_mut(), change.tag()) {
            (Some(DiffOp::Equal(last)), ChangeTag::Equal)
            | (Some(DiffOp::Delete(last)), ChangeTag::Delete)
            | (Some(DiffOp::Insert(last)), ChangeTag::Insert) => last.push_str(text),
            (_, ChangeTag::Equal) => ops.push(DiffOp::Equal(text.to_owned())),
            (_, ChangeTag::Delete) => ops.push(DiffOp::Delete(text.to_owned())),
            (_, ChangeTag::Insert) => ops.push(DiffOp::Insert(text.to_owned())),
        }
    }
    ops
}

/// A diff as terminal text: `[-removed-]{+added+}`.
pub(crate) fn diff_to_text(ops: &[DiffOp]) -> String {
    let mut out = String::new();
    for op in ops {
        match op {
            DiffOp::Equal(text) => out.push_str(text),
            DiffOp::Delete(text) => {
                let _ = write!(out, "[-{text}-]");
            }
            DiffOp::Insert(text) => {
                let _ = write!(out, "{{+{text}+}}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(text: &str) -> Answer {
        Answer {
            text: text.to_owned(),
            tool_calls: Vec::new(),
        }
    }

    fn tools(calls: &[(&str, &str)]) -> Answer {
        Answer {
            text: String::new(),
            tool_calls: calls
                .iter()
                .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn exact_normalised_and_different_text() {
        let same = compare_answers(&text("Paris."), &text("Paris."));
        assert!(same.exact && same.normalized && same.similarity == 1.0);
        let spaced = compare_answers(
            &text("The  answer\nis Paris."),
            &text("the answer is PARIS."),
        );
        assert!(!spaced.exact && spaced.normalized && spaced.similarity == 1.0);
        let other = compare_answers(&text("It is Paris."), &text("It is Lyon."));
        assert!(!other.exact && !other.normalized);
        assert!(
            other.similarity > 0.5 && other.similarity < 1.0,
            "{other:?}"
        );
        assert_eq!(other.json, None);
        assert_eq!(other.tools, None);
    }

    #[test]
    fn json_answers_compare_structurally() {
        let verdict = compare_answers(
            &text(r#"{"city": "Paris", "temp": [1, 2]}"#),
            &text("```json\n{\"temp\":[1,2],\n \"city\":\"Paris\"}\n```"),
        );
        assert_eq!(verdict.json, Some(true));
        assert!(!verdict.normalized);
        assert_eq!(verdict.similarity, 1.0);
        let verdict = compare_answers(&text(r#"{"a": 1}"#), &text(r#"{"a": 2}"#));
        assert_eq!(verdict.json, Some(false));
        assert!(verdict.similarity < 1.0);
        // A bare number is JSON, but not an answer worth comparing as JSON.
        assert_eq!(compare_answers(&text("42"), &text("42")).json, None);
    }

    #[test]
    fn tool_calls_compare_names_and_arguments_as_json() {
        let a = tools(&[("get_weather", r#"{"city": "Paris", "unit": "c"}"#)]);
        let b = tools(&[("get_weather", r#"{"unit":"c","city":"Paris"}"#)]);
        let verdict = compare_answers(&a, &b);
        assert_eq!(verdict.tools, Some((true, true)));
        assert!(!verdict.exact && verdict.normalized);
        let c = tools(&[("get_weather", r#"{"city": "Lyon", "unit": "c"}"#)]);
        let verdict = compare_answers(&a, &c);
        assert_eq!(verdict.tools, Some((true, false)));
        assert!(!verdict.normalized && verdict.similarity < 1.0);
        let verdict = compare_answers(&a, &text("It is sunny."));
        assert_eq!(verdict.tools, Some((false, false)));
    }

    #[test]
    fn similarity_bins_cover_zero_to_one() {
        assert_eq!(similarity_bin(0.0), 0);
        assert_eq!(similarity_bin(0.95), 9);
        assert_eq!(similarity_bin(0.999), 9);
        assert_eq!(similarity_bin(1.0), 10);
    }

    #[test]
    fn word_diff_marks_changes() {
        let ops = word_diff("It is Paris.", "It is Lyon.");
        assert_eq!(diff_to_text(&ops), "It is [-Paris.-]{+Lyon.+}");
    }
}
