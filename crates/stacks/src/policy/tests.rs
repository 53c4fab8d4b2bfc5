use super::*;

fn read(labels: &[(&str, &str)]) -> (ServicePolicy, Vec<LabelError>) {
    ServicePolicy::from_labels("shop", "db", labels.iter().copied())
}

#[test]
fn no_labels_is_the_default_stop_without_hooks() {
    let (policy, errors) = read(&[
        ("com.docker.compose.service", "db"),
        ("felhom.testapp.sha256", "abc"),
    ]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(policy, ServicePolicy::default());
    assert!(policy.is_default());
    assert_eq!(policy.quiesce, QuiesceMode::Stop);
    assert_eq!(policy.hook_timeout, Duration::from_secs(300));
    assert_eq!(policy.on_hook_error, OnHookError::Stop);
    assert_eq!(policy.stop_order, 0);
    assert_eq!(policy.to_string(), "stop");
}

#[test]
fn every_label_is_read() {
    let (policy, errors) = read(&[
        (label::QUIESCE, "hook"),
        (label::PRE_SNAPSHOT, "sh -c 'pg_dumpall > /data/dump.sql'"),
        (label::POST_RESUME, "app maintenance off"),
        (label::HOOK_TIMEOUT, "2m 30s"),
        (label::ON_HOOK_ERROR, "skip-backup"),
        (label::STOP_ORDER, "-10"),
    ]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(policy.quiesce, QuiesceMode::Hook);
    assert_eq!(
        policy.pre_snapshot.as_ref().map(HookCommand::argv),
        Some(
            &[
                "sh".to_owned(),
                "-c".into(),
                "pg_dumpall > /data/dump.sql".into()
            ][..]
        )
    );
    assert_eq!(
        policy.post_resume.as_ref().map(HookCommand::program),
        Some("app")
    );
    assert_eq!(policy.hook_timeout, Duration::from_secs(150));
    assert_eq!(policy.on_hook_error, OnHookError::SkipBackup);
    assert_eq!(policy.stop_order, -10);
    assert_eq!(
        policy.to_string(),
        "hook, pre-snapshot: sh …, post-resume: app …, hook-timeout 2m 30s, \
         on-hook-error skip-backup, stop-order -10"
    );
    for (value, mode) in [("stop", QuiesceMode::Stop), (" skip ", QuiesceMode::Skip)] {
        let (policy, errors) = read(&[(label::QUIESCE, value)]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policy.quiesce, mode);
    }
    for (value, on) in [
        ("stop", OnHookError::Stop),
        ("continue", OnHookError::Continue),
    ] {
        assert_eq!(read(&[(label::ON_HOOK_ERROR, value)]).0.on_hook_error, on);
    }
    assert_eq!(read(&[(label::STOP_ORDER, "+7")]).0.stop_order, 7);
}

#[test]
fn each_bad_value_is_an_error_naming_stack_service_and_label_and_is_ignored() {
    let cases: [(&str, &str, &str); 9] = [
        (label::QUIESCE, "pause", "expected stop, skip or hook"),
        (label::QUIESCE, "Stop", "expected stop, skip or hook"),
        (
            label::ON_HOOK_ERROR,
            "ignore",
            "expected stop, continue or skip-backup",
        ),
        (label::HOOK_TIMEOUT, "soon", "not a duration"),
        (label::HOOK_TIMEOUT, "0s", "more than 0"),
        (label::STOP_ORDER, "first", "expected an integer"),
        (label::STOP_ORDER, "99999999999", "expected an integer"),
        (label::PRE_SNAPSHOT, "sh -c 'unterminated", "single quote"),
        (label::POST_RESUME, "echo \\", "backslash"),
    ];
    for (key, value, why) in cases {
        // Another label beside it is still read.
        let (other, expected) = if key == label::STOP_ORDER {
            (
                (label::ON_HOOK_ERROR, "continue"),
                ServicePolicy {
                    on_hook_error: OnHookError::Continue,
                    ..ServicePolicy::default()
                },
            )
        } else {
            (
                (label::STOP_ORDER, "-3"),
                ServicePolicy {
                    stop_order: -3,
                    ..ServicePolicy::default()
                },
            )
        };
        let (policy, errors) = read(&[(key, value), other]);
        assert_eq!(policy, expected, "{key}={value}: as if absent");
        assert_eq!(errors.len(), 1, "{key}={value}: {errors:?}");
        let text = errors[0].to_string();
        assert!(
            text.starts_with("stack \"shop\", service \"db\": label "),
            "{text}"
        );
        assert!(text.contains(key), "{text}");
        assert!(text.contains(why), "{text}");
        assert_eq!(errors[0].label, key);
        let hook = key == label::PRE_SNAPSHOT || key == label::POST_RESUME;
        assert_eq!(
            text.contains(value),
            !hook,
            "values are shown, command lines are not: {text}"
        );
    }
}

#[test]
fn hook_without_a_pre_snapshot_command_is_stopped_and_said_so() {
    for labels in [
        &[(label::QUIESCE, "hook")][..],
        &[(label::QUIESCE, "hook"), (label::PRE_SNAPSHOT, "'oops")][..],
        &[(label::QUIESCE, "hook"), (label::POST_RESUME, "x")][..],
    ] {
        let (policy, errors) = read(labels);
        assert_eq!(policy.quiesce, QuiesceMode::Stop, "{labels:?}");
        let quiesce: Vec<&LabelError> = errors
            .iter()
            .filter(|e| e.label == label::QUIESCE)
            .collect();
        assert_eq!(quiesce.len(), 1, "{errors:?}");
        assert_eq!(
            quiesce[0].to_string(),
            "stack \"shop\", service \"db\": label felhom.quiesce=\"hook\": \
             hook needs a felhom.pre-snapshot command"
        );
    }
}

#[test]
fn an_empty_value_is_an_absent_label() {
    let (policy, errors) = read(&[
        (label::QUIESCE, ""),
        (label::PRE_SNAPSHOT, "  "),
        (label::HOOK_TIMEOUT, ""),
        (label::STOP_ORDER, " "),
    ]);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(policy.is_default());
}

#[test]
fn a_long_bad_value_is_shortened_in_the_message() {
    let long = "x".repeat(500);
    let (_, errors) = read(&[(label::QUIESCE, long.as_str())]);
    let value = errors[0].value.as_deref().expect("shown");
    assert_eq!(value.chars().count(), 65, "64 and an ellipsis");
    assert!(value.ends_with('…'));
}

#[test]
fn a_stacks_stop_order_is_its_lowest_and_unknown_services_are_stopped() {
    let mut stack = StackPolicy::default();
    assert_eq!(stack.stop_order(), 0);
    stack.read_service("shop", "web", [(label::STOP_ORDER, "5")]);
    assert_eq!(stack.stop_order(), 5);
    stack.read_service("shop", "db", [(label::STOP_ORDER, "-10")]);
    stack.read_service("shop", "cache", [(label::QUIESCE, "skip")]);
    assert_eq!(stack.stop_order(), -10);
    assert_eq!(stack.service("cache").quiesce, QuiesceMode::Skip);
    assert_eq!(stack.service("nope"), &ServicePolicy::default());
    assert!(!stack.stops_everything());
    // Errors by service, then label; reading a service again replaces its errors.
    stack.read_service(
        "shop",
        "web",
        [(label::STOP_ORDER, "x"), (label::QUIESCE, "y")],
    );
    stack.read_service("shop", "cache", [(label::HOOK_TIMEOUT, "z")]);
    let named: Vec<(&str, &str)> = stack
        .errors
        .iter()
        .map(|e| (e.service.as_str(), e.label.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("cache", label::HOOK_TIMEOUT),
            ("web", label::QUIESCE),
            ("web", label::STOP_ORDER)
        ]
    );
    stack.read_service("shop", "web", [(label::STOP_ORDER, "1")]);
    assert_eq!(stack.errors.len(), 1);
    let mut plain = StackPolicy::default();
    plain.read_service("shop", "web", [("other", "x")]);
    assert!(plain.stops_everything());
}
