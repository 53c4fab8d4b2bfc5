//! `EngineStacks` against the real Docker engine, with compose v2 and v1.
//!
//! The containers run the test app (`felhom-testapp:dev`, built by
//! `scripts/build-test-image.sh`), which logs a clean start, a recovery after an unclean
//! shutdown and a clean shutdown to `data/<service>/log` in the stack's directory.

#[macro_use]
mod support;

use std::time::Duration;

use felhom_stacks::{ComposeChoice, ContainerRef, RunningStack, Stacks, StacksError};
use support::{app_log, block_on, container, docker, has_container, serve, Root, Tool};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);

both_tools!(
    running_stopped_and_partially_running,
    stop_and_start_follow_dependency_order,
    an_exited_one_shot_stays_exited,
    removed_containers_are_recreated,
);

fn running_stopped_and_partially_running(tool: Tool) {
    let mut root = Root::new(tool);
    let name = root.name("state");
    let dir = root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}",
            serve("db", &[], ""),
            serve("web", &[], "")
        ),
    );
    let stacks = root.stacks();
    block_on(LIMIT, async {
        // Deployed but never started.
        assert!(!stacks.is_running(&name).await.expect("is_running"));
        assert_eq!(stacks.running_app_stacks().await.expect("listed"), []);
        assert_eq!(
            support::stop(&stacks, &name).await.expect("no-op stop"),
            Vec::<ContainerRef>::new()
        );

        root.up(&name);
        assert!(stacks.is_running(&name).await.expect("is_running"));
        assert_eq!(
            stacks.running_app_stacks().await.expect("listed"),
            [RunningStack {
                name: name.clone(),
                services: vec!["db".into(), "web".into()],
                containers: support::refs(&name, &["db", "web"]),
                policy: felhom_stacks::StackPolicy::without_labels(&name, &["db", "web"]),
            }]
        );

        // Partially running: web stopped by hand.
        let web = container(&name, "web");
        docker(&["stop", "-t", "1", &web.id]);
        assert_eq!(
            stacks.running_app_stacks().await.expect("listed"),
            [RunningStack {
                name: name.clone(),
                services: vec!["db".into()],
                containers: support::refs(&name, &["db"]),
                policy: felhom_stacks::StackPolicy::without_labels(&name, &["db"]),
            }]
        );
        let db_before = container(&name, "db");

        assert_eq!(
            support::services(&support::stop(&stacks, &name).await.expect("stop")),
            ["db"]
        );
        assert!(!stacks.is_running(&name).await.expect("is_running"));
        assert_eq!(stacks.running_app_stacks().await.expect("listed"), []);
        assert!(
            app_log(&dir, "db").contains("shut down cleanly"),
            "{}",
            app_log(&dir, "db")
        );
        // Stopped again: nothing runs, nothing to do.
        assert_eq!(
            support::stop(&stacks, &name).await.expect("no-op stop"),
            Vec::<ContainerRef>::new()
        );

        support::start(&stacks, &name, &support::refs(&name, &["db"]))
            .await
            .expect("start");
        let db_after = container(&name, "db");
        assert_eq!(
            db_after.id, db_before.id,
            "start brings back the same container"
        );
        assert_eq!(db_after.status, "running");
        assert_eq!(
            container(&name, "web").status,
            "exited",
            "web was not running: stays down"
        );
        let log = app_log(&dir, "db");
        assert_eq!(log.matches("clean start").count(), 2, "{log}");
        assert!(!log.contains("recovering"), "{log}");
    });
}

fn stop_and_start_follow_dependency_order(tool: Tool) {
    let mut root = Root::new(tool);
    let name = root.name("order");
    // `web` depends on `db`; `side` shares db's network namespace. Both take a while to
    // shut down, so that stopping them in parallel with db would show in the times.
    let yaml = format!(
        "services:\n{}{}{}",
        serve("db", &[], ""),
        serve("web", &["--stop-delay", "300ms"], "    depends_on: [db]\n"),
        serve(
            "side",
            &["--stop-delay", "300ms"],
            "    network_mode: \"service:db\"\n"
        ),
    );
    root.deploy(&name, "docker-compose.yml", &yaml);
    root.up(&name);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let services = support::stop(&stacks, &name).await.expect("stop");
        assert_eq!(support::services(&services), ["db", "side", "web"]);
        let (db, web, side) = (
            container(&name, "db"),
            container(&name, "web"),
            container(&name, "side"),
        );
        assert!(
            web.finished_at < db.finished_at,
            "web stopped before db: {web:?} {db:?}"
        );
        assert!(
            side.finished_at < db.finished_at,
            "side stopped before db: {side:?} {db:?}"
        );

        support::start(&stacks, &name, &services)
            .await
            .expect("start");
        let (db2, web2, side2) = (
            container(&name, "db"),
            container(&name, "web"),
            container(&name, "side"),
        );
        for (before, after) in [(&db, &db2), (&web, &web2), (&side, &side2)] {
            assert_eq!(after.id, before.id, "same containers");
            assert_eq!(after.status, "running");
        }
        assert!(
            db2.started_at < web2.started_at,
            "db started before web: {db2:?} {web2:?}"
        );
        assert!(
            db2.started_at < side2.started_at,
            "db started before side: {db2:?} {side2:?}"
        );
    });
}

fn an_exited_one_shot_stays_exited(tool: Tool) {
    let mut root = Root::new(tool);
    let name = root.name("oneshot");
    let yaml = format!(
        "services:\n  init:\n    image: {}\n    command: [\"oneshot\"]\n{}",
        support::IMAGE,
        serve(
            "app",
            &[],
            "    depends_on:\n      init:\n        condition: service_completed_successfully\n"
        ),
    );
    root.deploy(&name, "compose.yml", &yaml);
    root.up(&name);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let init = container(&name, "init");
        assert_eq!(init.status, "exited");
        assert_eq!(
            stacks.running_app_stacks().await.expect("listed"),
            [RunningStack {
                name: name.clone(),
                services: vec!["app".into()],
                containers: support::refs(&name, &["app"]),
                policy: felhom_stacks::StackPolicy::without_labels(&name, &["app"]),
            }]
        );
        let services = support::stop(&stacks, &name).await.expect("stop");
        assert_eq!(support::services(&services), ["app"]);
        support::start(&stacks, &name, &services)
            .await
            .expect("start");
        assert_eq!(container(&name, "app").status, "running");
        support::assert_not_run_again(&name, "init", &init);
    });
}

fn removed_containers_are_recreated(tool: Tool) {
    let mut root = Root::new(tool);
    let name = root.name("removed");
    let yaml = format!(
        "services:\n{}{}",
        serve("db", &[], ""),
        serve("web", &[], "    depends_on: [db]\n"),
    );
    let dir = root.deploy(&name, "docker-compose.yaml", &yaml);
    root.up(&name);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let services = support::stop(&stacks, &name).await.expect("stop");
        let db = container(&name, "db");
        let web = container(&name, "web");
        docker(&["rm", &web.id]);
        assert!(!has_container(&name, "web"));

        support::start(&stacks, &name, &services)
            .await
            .expect("start with up fallback");
        let (db2, web2) = (container(&name, "db"), container(&name, "web"));
        assert_eq!(db2.id, db.id, "db's container was there: not recreated");
        assert_ne!(web2.id, web.id, "web's container was recreated");
        assert_eq!(
            (db2.status.as_str(), web2.status.as_str()),
            ("running", "running")
        );
        // The data survived in the bind mount; the new container found it cleanly shut down.
        let log = app_log(&dir, "web");
        assert_eq!(log.matches("clean start").count(), 2, "{log}");
    });
}

#[test]
fn a_health_checked_service_is_waited_for() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("health");
    let yaml = format!(
        "services:\n{}",
        serve(
            "db",
            &["--healthy-after", "1500ms"],
            "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\"]\n      interval: 300ms\n      retries: 20\n"
        )
    );
    root.deploy(&name, "compose.yaml", &yaml);
    root.up(&name);
    // Healthy before the cycle: its start waits for health again.
    support::wait_for_health(&name, "db", "healthy");
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let services = support::stop(&stacks, &name).await.expect("stop");
        support::start(&stacks, &name, &services)
            .await
            .expect("start");
        assert_eq!(
            container(&name, "db").health,
            "healthy",
            "start returned before healthy"
        );
        // Waited for health, nothing recreated, nothing found running: only the moment it
        // was ready is reported.
        let report = stacks.last_start(&name).expect("a start report");
        assert!(report.ready_at.is_some(), "{report:?}");
        assert_eq!(
            report,
            felhom_stacks::StartReport {
                ready_at: report.ready_at,
                ..felhom_stacks::StartReport::default()
            }
        );
    });
}

#[test]
fn an_unhealthy_service_times_out() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("unhealthy");
    let yaml = format!(
        "services:\n{}",
        serve(
            "db",
            &["--never-healthy", "--health-file", "/data/ok"],
            "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\", \"--health-file\", \"/data/ok\"]\n      interval: 200ms\n      retries: 2\n"
        )
    );
    let dir = root.deploy(&name, "compose.yaml", &yaml);
    root.up(&name);
    // Healthy before the cycle (the test provides the health file the app never writes; the
    // app removes it when it stops): after the start it never is again.
    std::fs::write(dir.join("data/db/ok"), "ok\n").expect("health file");
    support::wait_for_health(&name, "db", "healthy");
    let stacks = root.stacks_with(|c| c.start_timeout = Duration::from_secs(3));
    block_on(LIMIT, async {
        let services = support::stop(&stacks, &name).await.expect("stop");
        let err = support::start(&stacks, &name, &services)
            .await
            .expect_err("never healthy");
        match &err {
            StacksError::StartTimeout { stack, pending, .. } => {
                assert_eq!(stack, &name);
                assert_eq!(pending, &["db (unhealthy)"], "{err}");
            }
            other => panic!("expected a start timeout, got {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&name) && text.contains("db (unhealthy)"),
            "{text}"
        );
        assert!(text.contains("after 3s"), "{text}");
    });
}

#[test]
fn a_service_that_exits_at_once_is_a_failed_start() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("crash");
    let yaml = format!(
        "services:\n{}  broken:\n    image: {}\n    command: [\"crash\"]\n",
        serve("web", &[], ""),
        support::IMAGE
    );
    root.deploy(&name, "compose.yaml", &yaml);
    root.up(&name);
    // A generous settle window: on a loaded machine the engine may report the crashed
    // container as running for longer than the default 200 ms (the test would then race the
    // engine's bookkeeping, not test the stacks manager).
    let stacks = root.stacks_with(|c| c.settle = Duration::from_secs(3));
    block_on(LIMIT, async {
        let err = support::start(&stacks, &name, &support::refs(&name, &["broken", "web"]))
            .await
            .expect_err("broken exits at once");
        match &err {
            StacksError::StartFailed {
                stack,
                service,
                status,
                logs,
                ..
            } => {
                assert_eq!(
                    (stack.as_str(), service.as_str()),
                    (name.as_str(), "broken")
                );
                assert!(status.starts_with("Exited (1)"), "{status}");
                assert!(logs.contains("fatal: boom"), "{logs}");
            }
            other => panic!("expected a failed start, got {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("failed to start") && text.contains("fatal: boom"),
            "{text}"
        );
    });
}

#[test]
fn protected_and_undeployed_stacks_are_never_listed() {
    let mut root = Root::new(Tool::V2);
    let app = root.name("app");
    let guarded = root.name("guarded");
    for name in [&app, &guarded] {
        root.deploy(
            name,
            "compose.yaml",
            &format!("services:\n{}", serve("web", &[], "")),
        );
        root.up(name);
    }
    // A running project whose directory is not under the root.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let stray = root.name("stray");
    std::fs::write(
        elsewhere.path().join("compose.yaml"),
        format!("services:\n{}", serve("web", &[], "")),
    )
    .expect("compose file");
    let _stray_down = StrayDown(stray.clone(), elsewhere.path().to_path_buf());
    let mut up = std::process::Command::new("docker");
    up.args(["compose", "-p", &stray, "up", "-d"])
        .current_dir(elsewhere.path());
    support::run(up, "compose up of the stray project");

    let stacks = root.stacks_with(|c| c.protected.push(guarded.clone()));
    block_on(LIMIT, async {
        assert_eq!(stacks.deployed().expect("deployed"), {
            let mut both = vec![app.clone(), guarded.clone()];
            both.sort();
            both
        });
        assert_eq!(
            stacks.running_app_stacks().await.expect("listed"),
            [RunningStack {
                name: app.clone(),
                services: vec!["web".into()],
                containers: support::refs(&app, &["web"]),
                policy: felhom_stacks::StackPolicy::without_labels(&app, &["web"]),
            }]
        );
        let err = support::stop(&stacks, &guarded)
            .await
            .expect_err("protected");
        assert!(
            matches!(&err, StacksError::Protected(n) if n == &guarded),
            "{err}"
        );
        assert!(
            stacks.is_running(&guarded).await.expect("is_running"),
            "still running"
        );
        let err = support::stop(&stacks, &stray)
            .await
            .expect_err("not deployed");
        assert!(
            matches!(&err, StacksError::NotDeployed { stack, .. } if stack == &stray),
            "{err}"
        );
        assert!(
            stacks.is_running(&stray).await.expect("is_running"),
            "still running"
        );
    });
}

/// Tears the stray project down.
struct StrayDown(String, std::path::PathBuf);

impl Drop for StrayDown {
    fn drop(&mut self) {
        support::down(Tool::V2, &self.0, &self.1);
    }
}

#[test]
fn bad_stack_names_are_refused() {
    let root = Root::new(Tool::V2);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        for bad in ["Bad Name", "../etc", "-p", "", "app;reboot"] {
            let err = support::stop(&stacks, bad).await.expect_err("invalid");
            assert!(
                matches!(&err, StacksError::InvalidName { name, .. } if name == bad),
                "{err}"
            );
            let web = ContainerRef {
                id: "0123abcd".into(),
                name: "web-1".into(),
                service: "web".into(),
            };
            let err = support::start(&stacks, bad, &[web])
                .await
                .expect_err("invalid");
            assert!(matches!(err, StacksError::InvalidName { .. }), "{err}");
            let err = stacks.is_running(bad).await.expect_err("invalid");
            assert!(matches!(err, StacksError::InvalidName { .. }), "{err}");
        }
    });
}

#[test]
fn an_unreachable_engine_is_a_clear_error() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("noengine");
    root.deploy(
        &name,
        "compose.yaml",
        &format!("services:\n{}", serve("web", &[], "")),
    );
    // A path with no socket at all, a socket that nobody listens on any more (refused), and
    // one whose listener drops every connection at once (reset, as by a dying engine).
    let sockets = tempfile::tempdir().expect("tempdir");
    let refused = sockets.path().join("refused/felhom-test-docker.sock");
    std::fs::create_dir(sockets.path().join("refused")).expect("mkdir");
    drop(std::os::unix::net::UnixListener::bind(&refused).expect("bind a socket"));
    let reset = sockets.path().join("reset/felhom-test-docker.sock");
    std::fs::create_dir(sockets.path().join("reset")).expect("mkdir");
    let listener = std::os::unix::net::UnixListener::bind(&reset).expect("bind a socket");
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    for socket in [
        "unix:///nonexistent/felhom-test-docker.sock".to_owned(),
        format!("unix://{}", refused.display()),
        format!("unix://{}", reset.display()),
    ] {
        let stacks = root.stacks().with_docker_host(&socket);
        block_on(LIMIT, async {
            let err = stacks.running_app_stacks().await.expect_err("no engine");
            let text = err.to_string();
            assert!(err.is_engine_unreachable(), "{text}");
            assert!(text.contains("felhom-test-docker.sock"), "{text}");

            let err = support::stop(&stacks, &name).await.expect_err("no engine");
            let text = err.to_string();
            assert!(err.is_engine_unreachable(), "{text}");
            assert!(
                text.contains(&name) && text.contains("felhom-test-docker.sock"),
                "{text}"
            );

            let web = ContainerRef {
                id: "0123abcd".into(),
                name: format!("{name}-web-1"),
                service: "web".into(),
            };
            let err = support::start(&stacks, &name, &[web])
                .await
                .expect_err("no engine");
            assert!(err.is_engine_unreachable(), "{err}");
            assert!(err.to_string().contains(&name), "{err}");

            let err = stacks.is_running(&name).await.expect_err("no engine");
            assert!(err.is_engine_unreachable(), "{err}");
        });
    }
}

#[test]
fn auto_detects_compose_and_configured_tools_are_checked() {
    let root = Root::new(Tool::V2);
    block_on(LIMIT, async {
        let auto = root.stacks_with(|c| c.compose = ComposeChoice::Auto);
        assert_eq!(
            auto.compose_command().await.expect("detected"),
            ComposeChoice::V2
        );
        assert_eq!(
            auto.compose_command().await.expect("asked again"),
            ComposeChoice::V2
        );
        let v1 = root.stacks_with(|c| c.compose = ComposeChoice::V1);
        assert_eq!(
            v1.compose_command().await.expect("installed"),
            ComposeChoice::V1
        );
    });
}
