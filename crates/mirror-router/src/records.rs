//! Where the router's call records go, and how a call's record is built from its scope.

use std::borrow::Cow;
use std::sync::Arc;

use mirror_core::{
    epoch_seconds, CallId, CallRecord, CallStatus, ChatResponse, EmbeddingShape, ErrorInformation,
    RecordMetadata, SpendKind, Usage, PER_CALL_METADATA_KEYS,
};
use mirror_providers::ProviderError;
use tokio::time::Instant;

use crate::call::{Call, CallRequest, CallScope, RecordParts};
use crate::deployment::Deployment;
use crate::RouterError;

/// Receives one [`CallRecord`] per call, primary or silent, success or failure.
///
/// `consume` is called on the request path, so it must not block or wait: hand the record to a
/// bounded queue (the facade's log writer does) and count what does not fit.
pub trait RecordConsumer: Send + Sync + 'static {
    /// Takes one record.
    fn consume(&self, record: CallRecord);

    /// Whether records should carry the payloads: the request's `messages` and the `response`.
    ///
    /// Asked once, when the router is built. A consumer that only counts (metrics without a log
    /// sink) returns false, and the router then skips copying every response into its record; every
    /// other field is the same. Default: true.
    fn wants_payloads(&self) -> bool {
        true
    }
}

impl<F> RecordConsumer for F
where
    F: Fn(CallRecord) + Send + Sync + 'static,
{
    fn consume(&self, record: CallRecord) {
        self(record);
    }
}

/// Sends records into a bounded Tokio channel; a full channel drops the record (and the drop is
/// visible as a gap in what the receiver sees, so prefer the log writer for production use).
impl RecordConsumer for tokio::sync::mpsc::Sender<CallRecord> {
    fn consume(&self, record: CallRecord) {
        if self.try_send(record).is_err() {
            tracing::warn!("Record channel full or closed; record dropped.");
        }
    }
}

/// Keeps every record in an unbounded channel: for tests and small tools only.
impl RecordConsumer for tokio::sync::mpsc::UnboundedSender<CallRecord> {
    fn consume(&self, record: CallRecord) {
        let _ = self.send(record);
    }
}

/// What a call that got an answer adds to its record.
pub(crate) struct Answered<'a> {
    pub(crate) usage: Option<&'a Usage>,
    /// The response, for the record's payload (only copied when the consumer wants payloads) and
    /// its id.
    pub(crate) response: Option<Cow<'a, ChatResponse>>,
    /// When the first token arrived (streams).
    pub(crate) first_token: Option<Instant>,
    /// The shape of an embeddings answer.
    pub(crate) embedding: Option<EmbeddingShape>,
}

impl<R: CallRequest> Call<R> {
    /// Records a call that got its answer, and counts its tokens and spend.
    pub(crate) fn succeeded(&mut self, deployment: &Deployment, answered: Answered<'_>) {
        let Some(parts) = self.take_for_record() else {
            return;
        };
        let end = Instant::now();
        let scope = &mut self.scope;
        let router = Arc::clone(&scope.router);
        let (prompt, completion, total) = answered.usage.map_or((0, 0, 0), |u| {
            let total = if u.total_tokens > 0 {
                u.total_tokens
            } else {
                u.prompt_tokens + u.completion_tokens
            };
            (u.prompt_tokens, u.completion_tokens, total)
        });
        deployment.state.count_tokens(router.clock.minute(), total);
        let cost = answered
            .usage
            .map_or(0.0, |usage| deployment.cost_of(usage));
        router.count_spend(scope.meta.is_silent_experiment, cost, total);
        if scope.meta.is_silent_experiment {
            router.count_target_spend(&deployment.group, cost);
        }
        let Some(records) = &router.records else {
            return;
        };
        let id = answered
            .response
            .as_deref()
            .map(|r| r.id.as_str())
            .filter(|id| !id.is_empty());
        let mut record = scope.base_record(Some(deployment), parts, end, id);
        record.status = CallStatus::Success;
        record.completion_start_time = answered.first_token.map(|t| scope.wall_at(t));
        record.prompt_tokens = prompt;
        record.completion_tokens = completion;
        record.total_tokens = total;
        record.response_cost = cost;
        record.metadata.embedding = answered.embedding;
        // The one deep copy of a response, made only for a consumer that keeps it.
        record.response = answered
            .response
            .filter(|_| router.record_payloads)
            .map(Cow::into_owned);
        records.consume(record);
    }

    /// Records a call answered from the response cache: no deployment answered, nothing is
    /// spent, and the record says `cache_hit`.
    pub(crate) fn succeeded_from_cache(&mut self, answered: Answered<'_>) {
        let Some(parts) = self.take_for_record() else {
            return;
        };
        let scope = &mut self.scope;
        scope.cache_hit = true;
        let router = Arc::clone(&scope.router);
        let Some(records) = &router.records else {
            return;
        };
        let id = answered
            .response
            .as_deref()
            .map(|r| r.id.as_str())
            .filter(|id| !id.is_empty());
        let mut record = scope.base_record(None, parts, Instant::now(), id);
        record.status = CallStatus::Success;
        if let Some(usage) = answered.usage {
            record.prompt_tokens = usage.prompt_tokens;
            record.completion_tokens = usage.completion_tokens;
            record.total_tokens = usage.total_tokens;
        }
        record.response = answered
            .response
            .filter(|_| router.record_payloads)
            .map(Cow::into_owned);
        records.consume(record);
    }

    /// Records a call that failed after its retries and fallbacks (or mid-stream).
    pub(crate) fn failed(&mut self, error: &RouterError) {
        self.record_error(CallStatus::Failure, error);
    }

    /// Records a call whose caller went away before it finished.
    pub(crate) fn cancelled(&mut self) {
        self.record_error(CallStatus::Cancelled, &RouterError::Cancelled);
    }

    fn record_error(&mut self, status: CallStatus, error: &RouterError) {
        let Some(parts) = self.take_for_record() else {
            return;
        };
        let scope = &mut self.scope;
        let router = Arc::clone(&scope.router);
        let Some(records) = &router.records else {
            return;
        };
        // Nothing was routed for an unknown model: the gateway answers 404 and logs it itself.
        if matches!(error, RouterError::UnknownModel { .. }) {
            return;
        }
        let deployment = scope.deployment.clone();
        let mut record = scope.base_record(deployment.as_deref(), parts, Instant::now(), None);
        record.status = status;
        let message = mirror_core::error_chain(error);
        record.error_information = Some(ErrorInformation {
            error_code: error
                .provider_error()
                .and_then(ProviderError::status)
                .map(|status| status.to_string()),
            error_class: error.class().to_owned(),
            llm_provider: record.custom_llm_provider.clone(),
            error_message: message.clone(),
        });
        record.error_str = Some(message);
        records.consume(record);
    }
}

impl CallScope {
    /// The record's common fields. The scope is finished: what the record keeps is moved out.
    fn base_record(
        &mut self,
        deployment: Option<&Deployment>,
        parts: RecordParts,
        end: Instant,
        id: Option<&str>,
    ) -> CallRecord {
        let meta = &mut self.meta;
        let mut requester_metadata = parts.metadata.unwrap_or_default();
        requester_metadata.retain(|key, _| !PER_CALL_METADATA_KEYS.contains(&key.as_str()));
        let start_time = epoch_seconds(self.start_wall);
        let end_time = epoch_seconds(self.start_wall + end.saturating_duration_since(self.start));
        CallRecord {
            id: id.map_or_else(|| call_id_text(meta.call_id), str::to_owned),
            trace_id: meta.trace_id.clone(),
            call_id: meta.call_id,
            call_type: self.call_type,
            stream: self.stream,
            status: CallStatus::Failure,
            custom_llm_provider: deployment
                .map(|d| d.params.model.provider().to_owned())
                .unwrap_or_default(),
            model: deployment
                .map(|d| d.params.model.name().to_owned())
                .unwrap_or_default(),
            model_id: deployment.map(|d| d.id.clone()).unwrap_or_default(),
            model_group: std::mem::take(&mut meta.model_group),
            api_base: deployment.map(|d| d.api_base.clone()).unwrap_or_default(),
            start_time,
            end_time,
            completion_start_time: None,
            response_time: (end_time - start_time).max(0.0),
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            response_cost: 0.0,
            messages: parts.messages.filter(|messages| !messages.is_empty()),
            response: None,
            error_str: None,
            error_information: None,
            metadata: RecordMetadata {
                is_silent_experiment: meta.is_silent_experiment,
                mirror_of: meta.mirror_of,
                spend: if meta.is_silent_experiment {
                    SpendKind::Shadow
                } else {
                    SpendKind::Caller
                },
                attempts: self.attempts,
                fallbacks_tried: std::mem::take(&mut self.fallbacks_tried),
                requester_metadata,
                embedding: None,
                cache_hit: self.cache_hit,
            },
            request_tags: std::mem::take(&mut meta.tags),
            end_user: parts.user,
        }
    }

    /// Wall-clock epoch seconds at `instant`.
    fn wall_at(&self, instant: Instant) -> f64 {
        epoch_seconds(self.start_wall + instant.saturating_duration_since(self.start))
    }
}

/// The call id as text, as `Display` writes it, without the formatting machinery.
fn call_id_text(id: CallId) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    id.as_uuid()
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_owned()
}
