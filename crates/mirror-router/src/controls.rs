//! The run-time controls' public face: reading the effective mirror settings per silent target,
//! and switching a target or overriding its sample rate (what the gateway's admin API calls).

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::router::{Inner, Router};
use crate::silent::control::{self, Stop};

/// The effective mirror settings: the global switch and every primary → silent pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorControls {
    /// Whether mirroring is switched on router-wide.
    pub enabled: bool,
    /// Every pair of a primary group and a silent group it mirrors to, sorted.
    pub targets: Vec<TargetStatus>,
}

/// One primary → silent pair. The switch, rate override, budget and end belong to the silent
/// group: pairs that share a silent group show the same ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    /// The group whose calls are mirrored.
    pub primary_group: String,
    /// The group copies go to.
    pub silent_group: String,
    /// The silent group's own switch (the global one is [`MirrorControls::enabled`]).
    pub enabled: bool,
    /// The rate copies are sampled at: the run-time override, else the primary group's first
    /// mirroring deployment's `silent_sample_rate`.
    pub sample_rate: f64,
    /// `max_spend_usd`, if set.
    pub max_spend_usd: Option<f64>,
    /// `day` or `total` when a budget is set.
    pub spend_period: Option<&'static str>,
    /// USD spent by the silent group's calls in the current period (over every instance when state
    /// is shared; in total when no budget is set).
    pub spent_usd: f64,
    /// When copies stop (from `until` or `duration`), RFC 3339 UTC.
    pub until: Option<String>,
    /// `active`, `disabled`, `budget_exhausted` or `ended`.
    pub state: &'static str,
}

/// A change to one silent target; fields left out are unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TargetChange {
    /// Switch copies to the target on or off.
    pub enabled: Option<bool>,
    /// Override the sample rate of copies to the target (0..=1).
    pub sample_rate: Option<f64>,
}

/// Why a control change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// No deployment mirrors to a group of that name.
    #[error("`{0}` is not a silent target: no deployment names it in `silent_model`")]
    UnknownTarget(String),
    /// A value is out of range.
    #[error("`{field}` {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

#[allow(clippy::cast_precision_loss)]
fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

impl Router {
    /// The effective mirror settings, per primary → silent pair.
    pub fn mirror_controls(&self) -> MirrorControls {
        let inner = &self.inner;
        let now = control::wall_ms();
        let mut targets = Vec::new();
        for primary in &inner.groups {
            let mut seen: Vec<usize> = Vec::new();
            for deployment in &primary.deployments {
                for target in deployment.silent.iter() {
                    if seen.contains(&target.group) {
                        continue;
                    }
                    seen.push(target.group);
                    let group = &inner.groups[target.group];
                    let runtime = &group.runtime;
                    let limits = &group.limits;
                    let state = if !runtime.is_enabled() {
                        "disabled"
                    } else {
                        match limits.stop(runtime, now) {
                            Some(Stop::Ended) => "ended",
                            Some(Stop::BudgetExhausted) => "budget_exhausted",
                            None => "active",
                        }
                    };
                    targets.push(TargetStatus {
                        primary_group: primary.name.clone(),
                        silent_group: group.name.clone(),
                        enabled: runtime.is_enabled(),
                        sample_rate: runtime.rate().unwrap_or(deployment.sample_rate),
                        max_spend_usd: limits.max_micros.map(usd),
                        spend_period: limits.max_micros.map(|_| {
                            if limits.daily {
                                "day"
                            } else {
                                "total"
                            }
                        }),
                        spent_usd: usd(runtime.spend(limits.period(now))),
                        until: limits.ends_at_ms.map(control::format_rfc3339),
                        state,
                    });
                }
            }
        }
        targets.sort_by(|a, b| {
            (&a.primary_group, &a.silent_group).cmp(&(&b.primary_group, &b.silent_group))
        });
        MirrorControls {
            enabled: self.is_mirroring(),
            targets,
        }
    }

    /// Switches copies to the silent group `silent_group` on or off and/or overrides their sample
    /// rate, at once and for every primary group that mirrors to it. The change survives a config
    /// reload ([`crate::RouterBuilder::carry_over`]); with shared state it is published to the other
    /// instances at the next sync.
    ///
    /// # Errors
    ///
    /// [`ControlError::UnknownTarget`] when no deployment mirrors to `silent_group`;
    /// [`ControlError::Invalid`] for a rate outside 0..=1. Nothing changes on an error.
    pub fn set_target(&self, silent_group: &str, change: TargetChange) -> Result<(), ControlError> {
        if let Some(rate) = change.sample_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ControlError::Invalid {
                    field: "sample_rate",
                    message: format!("must be a number from 0 to 1, got {rate}"),
                });
            }
        }
        let index = self
            .inner
            .silent_target_index(silent_group)
            .ok_or_else(|| ControlError::UnknownTarget(silent_group.to_owned()))?;
        let runtime = &self.inner.groups[index].runtime;
        if let Some(enabled) = change.enabled {
            runtime.set_enabled(enabled);
        }
        if let Some(rate) = change.sample_rate {
            runtime.set_rate(rate);
        }
        runtime.dirty.store(true, Ordering::Release);
        if let Some(shared) = &self.inner.shared {
            shared.wake();
        }
        Ok(())
    }
}

impl Inner {
    /// The index of `name` if some deployment mirrors to it.
    pub(crate) fn silent_target_index(&self, name: &str) -> Option<usize> {
        let index = self
            .groups
            .binary_search_by(|g| g.name.as_str().cmp(name))
            .ok()?;
        self.groups
            .iter()
            .flat_map(|group| group.deployments.iter())
            .any(|d| d.silent.iter().any(|t| t.group == index))
            .then_some(index)
    }

    /// Adds a finished silent call's cost to its silent group's spend.
    pub(crate) fn count_target_spend(&self, group: &str, cost: f64) {
        let Ok(index) = self.groups.binary_search_by(|g| g.name.as_str().cmp(group)) else {
            return;
        };
        let group = &self.groups[index];
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let micros = (cost * 1e6).round().max(0.0) as u64;
        if micros > 0 {
            let period = group.limits.period(control::wall_ms());
            group.runtime.add_spend(period, micros);
        }
    }
}
