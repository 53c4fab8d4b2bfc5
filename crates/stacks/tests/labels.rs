//! The per-service policy read from the running containers' labels (issue 23): every label,
//! an orphan's included, a stack's stop order, and each bad value as a `LabelError` that names
//! the stack, the service and the full label — on real compose stacks, stopping nothing.

#[macro_use]
mod support;

use std::time::Duration;

use felhom_stacks::{label, OnHookError, QuiesceMode, ServicePolicy, Stacks};
use support::{block_on, serve, Root, Tool};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);

/// `labels` as the YAML lines of a service.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut yaml = "    labels:\n".to_owned();
    for (key, value) in pairs {
        // Single-quoted YAML: a quote inside is doubled.
        yaml.push_str(&format!("      {key}: '{}'\n", value.replace('\'', "''")));
    }
    yaml
}

#[test]
fn every_label_is_read_from_the_running_containers_an_orphans_included() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("labels");
    let db = labels(&[
        (label::QUIESCE, "hook"),
        (
            label::PRE_SNAPSHOT,
            "sh -c 'pg_dumpall -U postgres > /var/lib/postgresql/data/dump.sql'",
        ),
        (label::HOOK_TIMEOUT, "2m"),
        (label::ON_HOOK_ERROR, "skip-backup"),
        (label::STOP_ORDER, "-10"),
    ]);
    let web = labels(&[
        (label::QUIESCE, "skip"),
        (label::POST_RESUME, "/app maintenance off"),
        (label::ON_HOOK_ERROR, "continue"),
        (label::STOP_ORDER, "5"),
    ]);
    let old = labels(&[(label::QUIESCE, "skip"), (label::STOP_ORDER, "-20")]);
    let file = |with_old: bool| {
        format!(
            "services:\n{}{}{}{}",
            serve("db", &[], &db),
            serve("web", &[], &web),
            serve("worker", &[], ""),
            if with_old {
                serve("old", &[], &old)
            } else {
                String::new()
            }
        )
    };
    root.deploy(&name, "compose.yaml", &file(true));
    root.up(&name);
    // `old` leaves the file; its container stays, an orphan, and is still the stack's.
    root.deploy(&name, "compose.yaml", &file(false));
    let stacks = root.stacks();
    let listed = block_on(LIMIT, stacks.running_app_stacks()).expect("listed");
    assert_eq!(listed.len(), 1);
    let stack = &listed[0];
    assert_eq!(stack.services, ["db", "old", "web", "worker"]);
    let policy = &stack.policy;
    assert_eq!(
        policy.errors,
        [],
        "the image's felhom.testapp.sha256 is no policy label"
    );
    assert_eq!(
        policy.services.keys().collect::<Vec<_>>(),
        ["db", "old", "web", "worker"]
    );

    let db = policy.service("db");
    assert_eq!(db.quiesce, QuiesceMode::Hook);
    let pre = db.pre_snapshot.as_ref().expect("db's pre-snapshot");
    assert_eq!(
        pre.argv(),
        [
            "sh",
            "-c",
            "pg_dumpall -U postgres > /var/lib/postgresql/data/dump.sql"
        ]
    );
    assert_eq!(db.post_resume, None);
    assert_eq!(db.hook_timeout, Duration::from_secs(120));
    assert_eq!(db.on_hook_error, OnHookError::SkipBackup);
    assert_eq!(db.stop_order, -10);

    let web = policy.service("web");
    assert_eq!(web.quiesce, QuiesceMode::Skip);
    assert_eq!(
        web.post_resume.as_ref().map(|c| c.argv().to_vec()),
        Some(vec!["/app".to_owned(), "maintenance".into(), "off".into()])
    );
    assert_eq!(web.hook_timeout, ServicePolicy::DEFAULT_HOOK_TIMEOUT);
    assert_eq!(web.on_hook_error, OnHookError::Continue);
    assert_eq!(web.stop_order, 5);

    let orphan = policy.service("old");
    assert_eq!(orphan.quiesce, QuiesceMode::Skip);
    assert_eq!(orphan.stop_order, -20);
    assert!(policy.service("worker").is_default());

    // The orphan's value is the lowest: it is the stack's.
    assert_eq!(policy.stop_order(), -20);
    // Listing stopped nothing.
    for service in ["db", "old", "web", "worker"] {
        assert_eq!(
            support::container(&name, service).status,
            "running",
            "{service}"
        );
    }
}

#[test]
fn each_bad_value_is_a_label_error_naming_stack_service_and_label() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("badlabels");
    // Each service has one bad label and one good one, which is still read.
    let cases: [(&str, &str, &str, &str); 7] = [
        ("a", label::QUIESCE, "pause", "expected stop, skip or hook"),
        (
            "b",
            label::ON_HOOK_ERROR,
            "ignore",
            "expected stop, continue or skip-backup",
        ),
        ("c", label::HOOK_TIMEOUT, "soon", "not a duration"),
        ("d", label::STOP_ORDER, "first", "expected an integer"),
        (
            "e",
            label::PRE_SNAPSHOT,
            "sh -c 'unterminated",
            "a single quote (') is never closed",
        ),
        (
            "f",
            label::POST_RESUME,
            "echo \"half",
            "a double quote (\") is never closed",
        ),
        (
            "g",
            label::QUIESCE,
            "hook",
            "hook needs a felhom.pre-snapshot command",
        ),
    ];
    let mut yaml = "services:\n".to_owned();
    for (service, key, value, _) in cases {
        let good = if key == label::STOP_ORDER {
            (label::HOOK_TIMEOUT, "7s")
        } else {
            (label::STOP_ORDER, "3")
        };
        yaml.push_str(&serve(service, &[], &labels(&[(key, value), good])));
    }
    root.deploy(&name, "compose.yaml", &yaml);
    root.up(&name);
    let stacks = root.stacks();
    let listed = block_on(LIMIT, stacks.running_app_stacks()).expect("listed");
    let policy = &listed[0].policy;
    assert_eq!(policy.errors.len(), cases.len(), "{:#?}", policy.errors);
    for ((service, key, value, why), error) in cases.iter().zip(&policy.errors) {
        let text = error.to_string();
        assert_eq!(
            (error.service.as_str(), error.label.as_str()),
            (*service, *key)
        );
        assert!(
            text.starts_with(&format!("stack {name:?}, service {service:?}: label {key}")),
            "{text}"
        );
        assert!(text.contains(why), "{text}");
        let is_command = *key == label::PRE_SNAPSHOT || *key == label::POST_RESUME;
        assert_eq!(text.contains(value), !is_command, "{text}");
        // As if the bad label were absent; the good one beside it counts.
        let read = policy.service(service);
        let expected = if *key == label::STOP_ORDER {
            ServicePolicy {
                hook_timeout: Duration::from_secs(7),
                ..ServicePolicy::default()
            }
        } else {
            ServicePolicy {
                stop_order: 3,
                ..ServicePolicy::default()
            }
        };
        assert_eq!(read, &expected, "{service}");
    }
    assert_eq!(policy.stop_order(), 0, "d's bad stop order counts as 0");
}
