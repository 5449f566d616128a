//! Run-time controls per silent target, budgets and end dates, and what a reload carries over.

use mirror_router::{ControlError, MirrorSettings, Router, SilentTargetSettings, TargetChange};

use crate::support::*;

fn mirrored_builder(targets: &[(&str, SilentTargetSettings)]) -> Router {
    let (builder, _records) = builder();
    let mut candidate = mock_deployment("candidate", "candidate-1");
    candidate.litellm_params.input_cost_per_token = Some(0.001);
    builder
        .mirror_settings(MirrorSettings {
            silent_targets: targets
                .iter()
                .map(|(name, t)| ((*name).to_owned(), t.clone()))
                .collect(),
            ..MirrorSettings::default()
        })
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(candidate)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_target_can_be_switched_off_and_sampled_at_run_time() {
    let router = mirrored_builder(&[]);
    let controls = router.mirror_controls();
    assert!(controls.enabled);
    assert_eq!(controls.targets.len(), 1);
    let target = &controls.targets[0];
    assert_eq!(
        (target.primary_group.as_str(), target.silent_group.as_str()),
        ("prod", "candidate")
    );
    assert_eq!((target.state, target.sample_rate), ("active", 1.0));

    router
        .set_target(
            "candidate",
            TargetChange {
                enabled: Some(false),
                sample_rate: None,
            },
        )
        .unwrap();
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_disabled), (1, 1));
    assert_eq!(router.mirror_controls().targets[0].state, "disabled");

    router
        .set_target(
            "candidate",
            TargetChange {
                enabled: Some(true),
                sample_rate: Some(0.0),
            },
        )
        .unwrap();
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_sampled_out), (2, 1));
    assert_eq!(router.mirror_controls().targets[0].sample_rate, 0.0);

    router
        .set_target(
            "candidate",
            TargetChange {
                enabled: None,
                sample_rate: Some(1.0),
            },
        )
        .unwrap();
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (3, 1));
    assert!(stats.is_balanced());

    assert_eq!(
        router.set_target("prod", TargetChange::default()),
        Err(ControlError::UnknownTarget("prod".into()))
    );
    assert!(matches!(
        router.set_target(
            "candidate",
            TargetChange {
                enabled: None,
                sample_rate: Some(1.5)
            }
        ),
        Err(ControlError::Invalid {
            field: "sample_rate",
            ..
        })
    ));
}

#[tokio::test]
async fn a_spent_budget_and_a_past_end_drop_copies_by_their_own_reasons() {
    let budget = SilentTargetSettings {
        max_spend_usd: Some(0.000_001),
        ..SilentTargetSettings::default()
    };
    let router = mirrored_builder(&[("candidate", budget)]);
    let target = &router.mirror_controls().targets[0];
    assert_eq!(
        (target.max_spend_usd, target.spend_period),
        (Some(0.000_001), Some("total"))
    );
    // The first copy runs and spends more than the budget; the next is dropped.
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!(stats.completed, 1);
    let target = &router.mirror_controls().targets[0];
    assert!(target.spent_usd > 0.000_001, "{target:?}");
    assert_eq!(target.state, "budget_exhausted");
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_budget_exhausted), (2, 1));

    let ended = SilentTargetSettings {
        until: Some("2020-01-01T00:00:00Z".into()),
        ..SilentTargetSettings::default()
    };
    let router = mirrored_builder(&[("candidate", ended)]);
    let target = &router.mirror_controls().targets[0];
    assert_eq!(
        (target.state, target.until.as_deref()),
        ("ended", Some("2020-01-01T00:00:00Z"))
    );
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_experiment_ended), (1, 1));
}

#[tokio::test]
async fn limits_name_their_key_path() {
    for (settings, path, words) in [
        (
            SilentTargetSettings {
                max_spend_usd: Some(-1.0),
                ..Default::default()
            },
            "mirror_settings.silent_targets.candidate.max_spend_usd",
            "greater than 0",
        ),
        (
            SilentTargetSettings {
                max_spend_usd: Some(1.0),
                budget_duration: Some("7d".into()),
                ..Default::default()
            },
            "mirror_settings.silent_targets.candidate.budget_duration",
            "per UTC day",
        ),
        (
            SilentTargetSettings {
                until: Some("soon".into()),
                ..Default::default()
            },
            "mirror_settings.silent_targets.candidate.until",
            "RFC 3339",
        ),
        (
            SilentTargetSettings {
                duration: Some("1w".into()),
                ..Default::default()
            },
            "mirror_settings.silent_targets.candidate.duration",
            "7d",
        ),
    ] {
        let (builder, _records) = builder();
        let err = builder
            .mirror_settings(MirrorSettings {
                silent_targets: [("candidate".to_owned(), settings)].into_iter().collect(),
                ..MirrorSettings::default()
            })
            .deployment(
                mock_deployment("prod", "prod-1")
                    .silent_model(["candidate"])
                    .unwrap(),
            )
            .deployment(mock_deployment("candidate", "candidate-1"))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(path) && err.contains(words), "{err}");
    }
    let (builder, _records) = builder();
    let err = builder
        .mirror_settings(MirrorSettings {
            silent_targets: [("prod".to_owned(), SilentTargetSettings::default())]
                .into_iter()
                .collect(),
            ..MirrorSettings::default()
        })
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(mock_deployment("candidate", "candidate-1"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mirror_settings.silent_targets.prod") && err.contains("silent_model"),
        "{err}"
    );
}

#[tokio::test]
async fn a_reloaded_router_keeps_counters_switches_and_spend() {
    let old = mirrored_builder(&[]);
    old.chat(request("prod")).await.unwrap();
    settled(&old).await;
    old.set_mirroring(false);
    old.set_target(
        "candidate",
        TargetChange {
            enabled: None,
            sample_rate: Some(0.5),
        },
    )
    .unwrap();
    let spent = old.mirror_controls().targets[0].spent_usd;
    assert!(spent > 0.0);

    let (builder, _records) = builder();
    let new = builder
        .carry_over(&old)
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(mock_deployment("candidate", "candidate-1"))
        .deployment(mock_deployment("new-group", "new-1"))
        .build()
        .unwrap();
    assert_eq!(new.model_groups(), ["candidate", "new-group", "prod"]);
    let controls = new.mirror_controls();
    assert!(!controls.enabled, "the run-time switch survives the reload");
    assert_eq!(
        (
            controls.targets[0].sample_rate,
            controls.targets[0].spent_usd
        ),
        (0.5, spent)
    );
    new.chat(request("prod")).await.unwrap();
    let stats = settled(&new).await;
    assert_eq!(
        (stats.mirrored, stats.completed, stats.dropped_switched_off),
        (2, 1, 1)
    );
    assert_eq!(old.mirror_stats(), stats, "one set of counters");
}
