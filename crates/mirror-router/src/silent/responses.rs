//! Mirroring Responses calls: the eligibility chain of chat plus state and side effects.
//!
//! Beyond chat's checks, a copy is dropped as `mcp_tools` when the request carries `mcp` tools (the
//! upstream would call those servers again) unless the deployment sets `silent_mirror_mcp_tools`, and as `missing_state` when it continues state the
//! silent group lacks: a `conversation`, or a `previous_response_id` with no linked silent
//! response (`state.rs`). `store: false` requests carry their context and need no link.

use std::sync::Arc;

use futures::StreamExt;
use mirror_core::{CallMeta, MirrorCopy, ResponsesRequest};

use super::queue::{self, SilentCopy, SilentJob};
use super::DropReason;
use crate::deployment::Deployment;
use crate::response_ids;
use crate::responses::{Responses, ResponsesCall, ResponsesStreamed};
use crate::router::Inner;
use crate::RouterError;

impl Inner {
    /// Offers a copy of a Responses `request` to each silent group of `deployment`; never waits.
    /// `request.previous_response_id` is the primary upstream's own id.
    pub(crate) fn fire_silent_responses(
        &self,
        deployment: &Deployment,
        request: &ResponsesRequest,
        meta: &CallMeta,
    ) {
        if deployment.silent.is_empty() || meta.is_silent_experiment {
            return;
        }
        let silent = &self.silent;
        let stats = &silent.stats;
        let key = request.user.as_deref().or_else(|| {
            let name = self.mirror_settings.sample_key.as_deref()?;
            request.gateway_metadata()?.get(name)?.as_str()
        });
        let mut bytes = None;
        for target in &deployment.silent {
            let group = &self.groups[target.group];
            let previous = request
                .previous_response_id
                .as_deref()
                .map(|primary| silent.links.silent_id(target.group, primary));
            if meta.mirror_opt_out {
                stats.mirrored_and_dropped(DropReason::OptedOut);
            } else if let Err(reason) = self.target_admits(deployment, group, key) {
                stats.mirrored_and_dropped(reason);
            } else if request.has_mcp_tools()
                && deployment.params.silent_mirror_mcp_tools != Some(true)
            {
                stats.mirrored_and_dropped(DropReason::McpTools);
            } else if request.conversation.is_some() || matches!(previous, Some(None)) {
                stats.mirrored_and_dropped(DropReason::MissingState);
            } else if !self.is_silent_group_healthy(group) {
                stats.mirrored_and_dropped(DropReason::Unhealthy);
            } else if !self.silent_budget_admits(group) {
                stats.mirrored_and_dropped(DropReason::RateCapped);
            } else {
                let bytes =
                    *bytes.get_or_insert_with(|| queue::approx_responses_copy_bytes(request));
                if let Some(ticket) = silent.reserve(bytes) {
                    let copy = request.to_mirror(meta, &target.name, previous.flatten());
                    let job = SilentJob {
                        copy: SilentCopy::Responses(copy),
                        group: target.group,
                    };
                    silent.send(job, ticket);
                }
            }
        }
    }

    /// A Responses call answered with routed id `id`: links a primary and its silent copies, so a
    /// continued conversation continues on the silent side with the silent side's own ids.
    pub(crate) fn note_primary_response(
        &self,
        meta: &CallMeta,
        request: &ResponsesRequest,
        id: &str,
    ) {
        // Not stored upstream: nothing can continue it by id.
        if request.store == Some(false) || id.is_empty() {
            return;
        }
        let links = &self.silent.links;
        match (meta.is_silent_experiment, meta.mirror_of) {
            (true, Some(primary_call)) => {
                if let Some(&group) = self.names.get(&meta.model_group) {
                    links.silent_done(primary_call, group, id.to_owned());
                }
            }
            (false, _) => {
                // Only primaries of mirrored deployments are kept, keyed by the upstream's id
                // (what a later request's decoded `previous_response_id` is).
                let Some(decoded) = response_ids::decode(id) else {
                    return;
                };
                let mirrored = self
                    .groups
                    .iter()
                    .flat_map(|group| group.deployments.iter())
                    .any(|d| d.id == decoded.deployment_id && !d.silent.is_empty());
                if mirrored {
                    links.primary_done(meta.call_id, decoded.upstream_id);
                }
            }
            (true, None) => {}
        }
    }

    /// Runs one Responses copy; a stream is read to its end.
    pub(crate) async fn run_silent_responses(
        self: &Arc<Self>,
        copy: MirrorCopy<ResponsesRequest>,
    ) -> Result<(), RouterError> {
        let MirrorCopy { request, meta } = copy;
        if request.is_stream() {
            let routed = self
                .call::<ResponsesStreamed>(ResponsesCall::new(request), meta)
                .await?;
            let mut stream = routed.response;
            while let Some(item) = stream.next().await {
                item?;
            }
            // An `error` event is relayed as an event but recorded as a failure: counted as one.
            stream.take_failure().map_or(Ok(()), Err)
        } else {
            self.call::<Responses>(ResponsesCall::new(request), meta)
                .await
                .map(|_| ())
        }
    }
}
