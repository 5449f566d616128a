//! Streaming pairing: records go in one at a time; memory stays bounded by the pairing window.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use mirror_core::{CallId, CallRecord, CallStatus, CallType, ChatMessage, TraceId};

use super::agreement::{compare_answers, diff_to_text, word_diff, Agreement, Answer};
use super::intervals::{intervals, PairPoint, Reservoir};
use super::stats::{SideAccumulator, SignedDurations};
use super::{DivergentPair, NoiseComparison, PairSummary, Report, ReportOptions, Totals};

/// The longest answer text kept per pending call; longer texts are cut (and marked) before comparison.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest text kept per side of a most-divergent pair.
const MAX_DIVERGENT_BYTES: usize = 4 * 1024;
/// The longest conversation kept for the judge.
const MAX_PROMPT_BYTES: usize = 16 * 1024;

/// One call, reduced to what the statistics need.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) call_id: CallId,
    pub(crate) trace_id: TraceId,
    pub(crate) group: Arc<str>,
    pub(crate) model: Arc<str>,
    /// `None` on success.
    pub(crate) error_class: Option<String>,
    pub(crate) latency: f64,
    pub(crate) stream: bool,
    pub(crate) ttft: Option<f64>,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) cost: f64,
    /// Answered from the response cache (no provider was called).
    pub(crate) cache_hit: bool,
    pub(crate) answer: Answer,
    /// The conversation, kept only when a judge will read it.
    pub(crate) prompt: Option<String>,
}

impl Call {
    fn is_success(&self) -> bool {
        self.error_class.is_none()
    }
}

/// A pair kept for the judge (see [`judge`](crate::judge)).
#[derive(Debug, Clone)]
pub struct JudgeSample {
    pub(crate) prompt: String,
    pub(crate) primary: String,
    pub(crate) shadow: String,
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [truncated by mirror report]");
    }
    text
}

fn render_answer(answer: &Answer) -> String {
    let mut text = answer.text.clone();
    for (name, args) in &answer.tool_calls {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("tool call {name}({args})"));
    }
    text
}

fn render_prompt(messages: &[ChatMessage]) -> String {
    let mut out = String::new();
    for message in messages {
        out.push_str(&message.role);
        out.push_str(": ");
        out.push_str(&message.text().unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The most divergent pairs kept so far, ordered so the heap's top is the least divergent one.
#[derive(Debug)]
struct Divergent(DivergentPair);

impl PartialEq for Divergent {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Divergent {}
impl PartialOrd for Divergent {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Divergent {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.similarity.total_cmp(&other.0.similarity)
    }
}

/// Per group-pair accumulators.
#[derive(Debug)]
struct Edge {
    pairs: u64,
    self_copy_pairs: u64,
    primary: SideAccumulator,
    shadow: SideAccumulator,
    latency_diff: SignedDurations,
    ttft_diff: SignedDurations,
    agreement: Agreement,
    divergent: BinaryHeap<Divergent>,
    judge_samples: Vec<JudgeSample>,
    judge_seen: u64,
    /// A uniform sample of the pairs, for the confidence intervals.
    reservoir: Reservoir,
}

impl Edge {
    fn new(options: &ReportOptions, index: usize) -> Self {
        Edge {
            pairs: 0,
            self_copy_pairs: 0,
            primary: SideAccumulator::default(),
            shadow: SideAccumulator::default(),
            latency_diff: SignedDurations::default(),
            ttft_diff: SignedDurations::default(),
            agreement: Agreement::default(),
            divergent: BinaryHeap::new(),
            judge_samples: Vec::new(),
            judge_seen: 0,
            // Its own stream of the seed, so the judge's sampling is unchanged by it.
            reservoir: Reservoir::new(
                options.resample_pairs,
                options.seed ^ 0x7265_7365_7276_6f69 ^ index as u64,
            ),
        }
    }
}

#[derive(Debug)]
struct Pending {
    call: Call,
    /// Shadow call ids paired with this primary, to skip duplicate lines.
    shadows: Vec<CallId>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Primary(CallId),
    Orphan(CallId),
}

/// Pairs primary and silent records as they stream by and accumulates the report.
///
/// A primary waits in memory for its shadows for `options.window` records, then it is finished: its
/// group pairs without a shadow count it as missing. A shadow read before its primary waits the same
/// window. So memory holds at most `window` pending calls (each with an answer of at most
/// [`MAX_ANSWER_BYTES`]), plus fixed-size histograms and the top-K most divergent pairs per group pair.
#[derive(Debug)]
pub struct Analyzer {
    options: ReportOptions,
    seq: u64,
    totals: Totals,
    pending: HashMap<CallId, Pending>,
    by_trace: HashMap<TraceId, CallId>,
    orphans: HashMap<CallId, Vec<Call>>,
    queue: VecDeque<(u64, Slot)>,
    group_primaries: HashMap<Arc<str>, u64>,
    edges: BTreeMap<(Arc<str>, Arc<str>), Edge>,
    unmatched_shadows: BTreeMap<String, u64>,
    interned: HashMap<String, Arc<str>>,
    rng: fastrand::Rng,
}

impl Analyzer {
    /// An analyzer with `options`.
    pub fn new(options: ReportOptions) -> Self {
        Analyzer {
            rng: fastrand::Rng::with_seed(options.seed),
            options,
            seq: 0,
            totals: Totals::default(),
            pending: HashMap::new(),
            by_trace: HashMap::new(),
            orphans: HashMap::new(),
            queue: VecDeque::new(),
            group_primaries: HashMap::new(),
            edges: BTreeMap::new(),
            unmatched_shadows: BTreeMap::new(),
            interned: HashMap::new(),
        }
    }

    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(it) = self.interned.get(text) {
            return Arc::clone(it);
        }
        let it: Arc<str> = Arc::from(text);
        self.interned.insert(text.to_owned(), Arc::clone(&it));
        it
    }

    /// Counts a line that was not a record.
    pub fn skip_malformed(&mut self) {
        self.totals.malformed_lines += 1;
    }

    /// Pending calls held in memory right now (at most the window).
    pub fn pending(&self) -> usize {
        self.pending.len() + self.orphans.values().map(Vec::len).sum::<usize>()
    }

    fn reduce(&mut self, record: &CallRecord) -> Call {
        let response = record.response.as_ref();
        let message = response.and_then(|r| r.choices.first()).map(|c| &c.message);
        let answer = Answer {
            text: truncate(
                message.and_then(ChatMessage::text).unwrap_or_default(),
                MAX_ANSWER_BYTES,
            ),
            tool_calls: message
                .and_then(|m| m.tool_calls.as_ref())
                .map(|calls| {
                    calls
                        .iter()
                        .map(|c| {
                            let args = truncate(c.function.arguments.clone(), MAX_ANSWER_BYTES);
                            (c.function.name.clone(), args)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let error_class = (record.status == CallStatus::Failure).then(|| {
            record
                .error_information
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |e| e.error_class.clone())
        });
        let prompt = (self.options.judge_samples > 0)
            .then(|| record.messages.as_deref().map(render_prompt))
            .flatten()
            .map(|p| truncate(p, MAX_PROMPT_BYTES));
        Call {
            call_id: record.call_id,
            trace_id: record.trace_id.clone(),
            group: self.intern(&record.model_group),
            model: self.intern(&record.model),
            error_class,
            latency: record.response_time,
            stream: record.stream,
            ttft: record.time_to_first_token().filter(|_| record.stream),
            prompt_tokens: record.prompt_tokens,
            completion_tokens: record.completion_tokens,
            cost: record.response_cost,
            cache_hit: record.metadata.cache_hit,
            answer,
            prompt,
        }
    }

    /// Adds one record.
    pub fn push(&mut self, record: &CallRecord) {
        self.totals.records += 1;
        // Chat completions and Anthropic messages (recorded in chat's shape) are compared.
        if !matches!(
            record.call_type,
            CallType::Completion | CallType::AnthropicMessages
        ) {
            self.totals.other_calls += 1;
            return;
        }
        if record.status == CallStatus::Cancelled {
            self.totals.cancelled += 1;
            return;
        }
        self.seq += 1;
        self.evict();
        let call = self.reduce(record);
        if record.is_silent() {
            self.totals.shadows += 1;
            let primary_id = record.metadata.mirror_of.or_else(|| {
                self.totals.shadows_without_mirror_of += 1;
                self.by_trace.get(&record.trace_id).copied()
            });
            self.push_shadow(primary_id, call);
        } else {
            self.totals.primaries += 1;
            self.push_primary(call);
        }
    }

    fn push_primary(&mut self, call: Call) {
        if self.pending.contains_key(&call.call_id) {
            self.totals.duplicates += 1;
            return;
        }
        *self
            .group_primaries
            .entry(Arc::clone(&call.group))
            .or_default() += 1;
        let id = call.call_id;
        let mut pending = Pending {
            call,
            shadows: Vec::new(),
        };
        for shadow in self.orphans.remove(&id).unwrap_or_default() {
            self.pair(&mut pending, shadow);
        }
        self.by_trace.insert(pending.call.trace_id.clone(), id);
        self.pending.insert(id, pending);
        self.queue.push_back((self.seq, Slot::Primary(id)));
    }

    fn push_shadow(&mut self, primary_id: Option<CallId>, call: Call) {
        let Some(primary_id) = primary_id else {
            *self
                .unmatched_shadows
                .entry(call.group.to_string())
                .or_default() += 1;
            return;
        };
        if let Some(mut pending) = self.pending.remove(&primary_id) {
            if pending.shadows.contains(&call.call_id) {
                self.totals.duplicates += 1;
            } else {
                self.pair(&mut pending, call);
            }
            self.pending.insert(primary_id, pending);
        } else {
            self.orphans.entry(primary_id).or_default().push(call);
            self.queue.push_back((self.seq, Slot::Orphan(primary_id)));
        }
    }

    /// Finishes what has waited a whole window.
    fn evict(&mut self) {
        let window = self.options.window.max(1) as u64;
        while let Some(&(seq, slot)) = self.queue.front() {
            if seq + window > self.seq {
                break;
            }
            self.queue.pop_front();
            self.totals.evicted += 1;
            self.finish_slot(slot);
        }
    }

    fn finish_slot(&mut self, slot: Slot) {
        match slot {
            Slot::Primary(id) => {
                if let Some(pending) = self.pending.remove(&id) {
                    if self.by_trace.get(&pending.call.trace_id) == Some(&id) {
                        self.by_trace.remove(&pending.call.trace_id);
                    }
                }
            }
            Slot::Orphan(id) => {
                let Some(waiting) = self.orphans.get_mut(&id) else {
                    return;
                };
                if !waiting.is_empty() {
                    let shadow = waiting.remove(0);
                    *self
                        .unmatched_shadows
                        .entry(shadow.group.to_string())
                        .or_default() += 1;
                }
                if waiting.is_empty() {
                    self.orphans.remove(&id);
                }
            }
        }
    }

    fn pair(&mut self, pending: &mut Pending, shadow: Call) {
        pending.shadows.push(shadow.call_id);
        let primary = &pending.call;
        let options = &self.options;
        let index = self.edges.len();
        let edge = self
            .edges
            .entry((Arc::clone(&primary.group), Arc::clone(&shadow.group)))
            .or_insert_with(|| Edge::new(options, index));
        edge.pairs += 1;
        edge.self_copy_pairs += u64::from(primary.model == shadow.model);
        edge.primary.add(primary);
        edge.shadow.add(&shadow);
        edge.latency_diff
            .record_seconds(shadow.latency - primary.latency);
        if let (Some(a), Some(b)) = (primary.ttft, shadow.ttft) {
            edge.ttft_diff.record_seconds(b - a);
        }
        let mut point = PairPoint {
            primary_ms: primary.latency * 1000.0,
            shadow_ms: shadow.latency * 1000.0,
            cost_diff: shadow.cost - primary.cost,
            primary_failed: !primary.is_success(),
            shadow_failed: !shadow.is_success(),
            agreed: None,
        };
        if !(primary.is_success() && shadow.is_success()) {
            edge.reservoir.add(point);
            return;
        }
        let verdict = compare_answers(&primary.answer, &shadow.answer);
        edge.agreement.add(&verdict);
        point.agreed = Some(verdict.normalized);
        edge.reservoir.add(point);
        if !verdict.normalized && options.top > 0 {
            let worth_keeping = edge.divergent.len() < options.top
                || edge
                    .divergent
                    .peek()
                    .is_some_and(|top| verdict.similarity < top.0.similarity);
            if worth_keeping {
                let primary_text = truncate(render_answer(&primary.answer), MAX_DIVERGENT_BYTES);
                let shadow_text = truncate(render_answer(&shadow.answer), MAX_DIVERGENT_BYTES);
                edge.divergent.push(Divergent(DivergentPair {
                    trace_id: primary.trace_id.to_string(),
                    primary_call_id: primary.call_id.to_string(),
                    shadow_call_id: shadow.call_id.to_string(),
                    similarity: verdict.similarity,
                    json: verdict.json,
                    tools: verdict.tools.map(|(_, calls)| calls),
                    diff: Vec::new(),
                    diff_text: String::new(),
                    primary: primary_text,
                    shadow: shadow_text,
                }));
                if edge.divergent.len() > options.top {
                    edge.divergent.pop();
                }
            }
        }
        if options.judge_samples > 0 {
            // Reservoir sampling (algorithm R): every pair has the same chance to be judged.
            edge.judge_seen += 1;
            let slot = if edge.judge_samples.len() < options.judge_samples {
                Some(edge.judge_samples.len())
            } else {
                let pick = self.rng.u64(..edge.judge_seen);
                usize::try_from(pick)
                    .ok()
                    .filter(|pick| *pick < options.judge_samples)
            };
            if let Some(slot) = slot {
                let sample = JudgeSample {
                    prompt: primary.prompt.clone().unwrap_or_default(),
                    primary: render_answer(&primary.answer),
                    shadow: render_answer(&shadow.answer),
                };
                if slot == edge.judge_samples.len() {
                    edge.judge_samples.push(sample);
                } else {
                    edge.judge_samples[slot] = sample;
                }
            }
        }
    }

    /// Finishes every pending call and returns the report, with the pairs sampled for a judge: one
    /// list per entry of `Report::edges`, in the same order.
    pub fn finish_with_samples(mut self) -> (Report, Vec<Vec<JudgeSample>>) {
        while let Some((_, slot)) = self.queue.pop_front() {
            self.finish_slot(slot);
        }
        let mut edges = Vec::with_capacity(self.edges.len());
        let mut samples = Vec::with_capacity(self.edges.len());
        for (index, ((primary_group, shadow_group), mut edge)) in
            std::mem::take(&mut self.edges).into_iter().enumerate()
        {
            edge.agreement.finish();
            let group_primaries = self
                .group_primaries
                .get(&primary_group)
                .copied()
                .unwrap_or(0);
            let paired_primaries = edge.pairs;
            let mut divergent: Vec<DivergentPair> = edge
                .divergent
                .into_sorted_vec()
                .into_iter()
                .map(|d| d.0)
                .collect();
            for pair in &mut divergent {
                pair.diff = word_diff(&pair.primary, &pair.shadow);
                pair.diff_text = diff_to_text(&pair.diff);
            }
            let primary = edge.primary.finish();
            let shadow = edge.shadow.finish();
            let intervals = intervals(
                &edge.reservoir,
                self.options.resamples,
                self.options.seed.wrapping_add(index as u64),
            );
            edges.push(PairSummary {
                primary_group: primary_group.to_string(),
                shadow_group: shadow_group.to_string(),
                primaries: group_primaries,
                pairs: edge.pairs,
                missing: group_primaries.saturating_sub(paired_primaries),
                primary_failed: primary.failures,
                shadow_failed: shadow.failures,
                is_self_copy: edge.pairs > 0 && edge.self_copy_pairs == edge.pairs,
                self_copy_pairs: edge.self_copy_pairs,
                latency_diff_ms: edge.latency_diff.percentiles(),
                ttft_diff_ms: edge.ttft_diff.percentiles(),
                cost_per_1k_diff: shadow.cost_per_1k - primary.cost_per_1k,
                primary,
                shadow,
                agreement: edge.agreement,
                intervals,
                noise: None,
                divergent,
                judge: None,
                latency_buckets: [
                    edge.primary.latency.buckets_ms(),
                    edge.shadow.latency.buckets_ms(),
                ],
            });
            samples.push(edge.judge_samples);
        }
        attach_noise(&mut edges);
        self.totals.unmatched_shadows = self.unmatched_shadows;
        let report = Report {
            window: self.options.window,
            totals: self.totals,
            edges,
            gate: None,
        };
        (report, samples)
    }

    /// Finishes every pending call and returns the report.
    pub fn finish(self) -> Report {
        self.finish_with_samples().0
    }
}

/// Gives every group pair whose primary group also mirrors to a copy of itself that copy's
/// disagreement as its noise floor.
fn attach_noise(edges: &mut [PairSummary]) {
    let baselines: Vec<(String, String, u64, f64, f64)> = edges
        .iter()
        .filter(|e| e.is_self_copy && e.agreement.comparable > 0)
        .map(|e| {
            (
                e.primary_group.clone(),
                e.shadow_group.clone(),
                e.agreement.comparable,
                e.agreement.disagreement_rate,
                e.agreement.mean_similarity,
            )
        })
        .collect();
    for edge in edges.iter_mut().filter(|e| !e.is_self_copy) {
        let Some((_, group, pairs, disagreement, similarity)) = baselines
            .iter()
            .find(|(primary, ..)| *primary == edge.primary_group)
        else {
            continue;
        };
        edge.noise = Some(NoiseComparison {
            baseline_group: group.clone(),
            baseline_pairs: *pairs,
            baseline_disagreement_rate: *disagreement,
            baseline_mean_similarity: *similarity,
            disagreement_rate: edge.agreement.disagreement_rate,
            excess_disagreement: edge.agreement.disagreement_rate - disagreement,
        });
    }
}
