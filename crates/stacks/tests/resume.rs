//! `start_containers` on real containers (issues 18, 19 and 22): the settle window, a stop
//! still in flight, a start without the stop's record that starts exactly the listed
//! containers, slots that hold engine work only, a dependency cycle, and a service label no
//! compose would make.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use felhom_stacks::{ContainerRef, Slots, Stacks, StacksError, StartRequest};
use support::{
    app_log, block_on, container, docker, log_times, serve, state_of, wait_for, wait_for_health,
    Made, Root, Signals, Tool,
};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);

fn request(containers: &[ContainerRef], in_flight: bool) -> StartRequest {
    StartRequest {
        containers: containers.to_vec(),
        stop_may_be_in_flight: in_flight,
        recreate_vanished: true,
    }
}

const HEALTH: &str = "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\"]\n      interval: 200ms\n      retries: 50\n";

/// `stacks.settle` at its default (10 s): an app that exits 2 s after each start, and one
/// that is healthy after 300 ms and dies 3 s after its start, are failed starts (a passing
/// health check does not end the watch).
#[test]
fn a_death_within_the_settle_window_is_a_failed_start() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("settle");
    root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}",
            serve("flaky", &["--crash-after", "2s"], ""),
            serve(
                "sick",
                &["--healthy-after", "300ms", "--crash-after", "3s"],
                HEALTH
            ),
        ),
    );
    root.up(&name);
    for service in ["flaky", "sick"] {
        support::wait_until(&format!("{service} has died once"), || {
            container(&name, service).status == "exited"
        });
    }
    let stacks = root.stacks_with(|c| {
        c.settle = felhom_stacks::StacksConfig::default().settle;
    });
    assert_eq!(stacks.config().settle, Duration::from_secs(10));
    block_on(LIMIT, async {
        for (service, code) in [("flaky", "Exited (2)"), ("sick", "Exited (2)")] {
            let c = support::refs(&name, &[service]);
            let err = stacks
                .start_containers(&name, &request(&c, false), &Slots::new(1))
                .await
                .expect_err("it dies within the settle window");
            match &err {
                StacksError::StartFailed {
                    service: failed,
                    status,
                    logs,
                    ..
                } => {
                    assert_eq!(failed, service);
                    assert!(status.starts_with(code), "{status}");
                    assert!(logs.contains("crashed"), "{logs}");
                }
                other => panic!("{service}: expected a failed start, got {other}"),
            }
        }
        assert!(
            log_times(&root.dir.path().join(&name), "sick", "healthy").len() >= 2,
            "sick was healthy after its start before it died"
        );
    });
}

/// The stack is back when its containers run, not when the settle watch ends: `ready_at`
/// comes about `settle` before the start call returns.
#[test]
fn a_start_reports_when_its_containers_ran_before_the_settle_watch() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("ready");
    root.deploy(
        &name,
        "compose.yaml",
        &format!("services:\n{}", serve("web", &[], "")),
    );
    root.up(&name);
    let stacks = root.stacks_with(|c| c.settle = Duration::from_secs(3));
    block_on(LIMIT, async {
        let web = support::stop(&stacks, &name).await.expect("stop");
        let asked = chrono::Utc::now();
        let report = support::start(&stacks, &name, &web).await.expect("start");
        let returned = chrono::Utc::now();
        let ready = report.ready_at.expect("it ran");
        assert!(ready >= asked, "{ready} before {asked}");
        let watched = (returned - ready).to_std().unwrap_or_default();
        assert!(
            watched >= Duration::from_millis(2500) && watched < Duration::from_secs(60),
            "the settle watch came after it ran: {watched:?}"
        );
    });
}

/// Issue 18's test: a 60 s shutdown (grace 90 s) whose stop call was abandoned 2 s in; the
/// engine goes on stopping it. A start with `stop_may_be_in_flight` (by another instance, as
/// after a crash) returns only once the container has exited and been started again, without
/// a second stop signal; it still runs 15 s later.
#[test]
fn a_start_waits_for_a_stop_in_flight_and_never_signals_it() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("inflight");
    let dir = root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}",
            serve(
                "db",
                &["--stop-delay", "60s"],
                "    stop_grace_period: 90s\n"
            ),
            serve("web", &[], "    depends_on: [db]\n"),
        ),
    );
    root.up(&name);
    let stacks = Arc::new(root.stacks());
    let signals = Signals::watch(&container(&name, "db").id);
    block_on(Duration::from_secs(300), async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        let stop = {
            let (stacks, name, containers) =
                (Arc::clone(&stacks), name.clone(), containers.clone());
            tokio::spawn(async move {
                stacks
                    .stop_containers(&name, &containers, &Slots::new(1))
                    .await
            })
        };
        wait_for("db got its stop signal", || {
            app_log(&dir, "db").contains("stopping")
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.abort();
        assert!(stop.await.is_err(), "the stop was abandoned");
        assert!(
            container(&name, "db").running,
            "the engine is still stopping it"
        );

        let recovering = root.stacks();
        let report = recovering
            .start_containers(&name, &request(&containers, true), &Slots::new(1))
            .await
            .expect("start");
        let db = container(&name, "db");
        assert!(db.running, "{db:?}");
        assert!(
            db.started_at > db.finished_at,
            "started after its exit: {db:?}"
        );
        let log = app_log(&dir, "db");
        let shut = log
            .find("shut down cleanly")
            .expect("its shutdown ended cleanly");
        let restart = log.rfind("clean start").expect("started again");
        assert!(shut < restart, "{log}");
        assert!(!log.contains("recovering"), "{log}");
        let waited: Vec<&str> = report
            .waited_for_stop
            .iter()
            .map(|c| c.service.as_str())
            .collect();
        assert!(waited.contains(&"db"), "{report:?}");
        assert!(report.already_running.is_empty(), "{report:?}");
        assert_eq!(container(&name, "web").status, "running");
        assert_eq!(
            signals.seen(),
            ["kill 15"],
            "one stop signal, the abandoned stop's"
        );

        tokio::time::sleep(Duration::from_secs(15)).await;
        let later = container(&name, "db");
        assert!(later.running, "{later:?}");
        assert_eq!(later.started_at, db.started_at, "the same run");
    });
}

/// Without `stop_may_be_in_flight`, a running container of the request counts as started at
/// once; with it, a running container whose stop never came is waited for only until its
/// bound (grace 1 s plus the margin), then counts as started: never signalled, never
/// restarted.
#[test]
fn a_running_container_counts_as_started() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("running");
    root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}",
            serve("db", &[], "    stop_grace_period: 1s\n")
        ),
    );
    root.up(&name);
    let stacks = root.stacks();
    let signals = Signals::watch(&container(&name, "db").id);
    block_on(LIMIT, async {
        let before = container(&name, "db");
        let containers = stacks.running_containers(&name).await.expect("listed");
        for in_flight in [false, true] {
            let report = stacks
                .start_containers(&name, &request(&containers, in_flight), &Slots::new(1))
                .await
                .expect("start");
            assert_eq!(report.already_running, containers, "{report:?}");
            assert!(report.waited_for_stop.is_empty());
            let after = container(&name, "db");
            assert!(after.running);
            assert_eq!(after.started_at, before.started_at, "not restarted");
        }
        // Had it been signalled, the SIGTERM would have stopped it (grace 1 s) before now.
        assert!(
            signals.seen().is_empty(),
            "never signalled: {:?}",
            signals.seen()
        );
    });
}

/// Issue 18 item 5: a start without the stop's record (a new instance, as after a crash)
/// starts exactly the listed containers that are not running — not an exited replica nor a
/// `created` leftover of the same service — and brings a vanished one back through compose
/// for its service.
#[test]
fn a_start_without_the_record_starts_exactly_the_listed_containers() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("exact");
    root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}",
            serve("db", &[], ""),
            serve(
                "web",
                &[],
                "    depends_on: [db]\n    deploy:\n      replicas: 2\n"
            ),
        ),
    );
    root.up(&name);
    let webs = support::engine_ids(&name, "web");
    assert_eq!(webs.len(), 2);
    // One replica was stopped before the cycle, and a leftover was created and never started.
    docker(&["stop", "-t", "1", &webs[1]]);
    let replica_before = state_of(&webs[1]);
    let mut made = Made::default();
    let leftover = made.member(&name, "web", false, &[], &["serve"]);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        let ids: Vec<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(containers.len(), 2, "db and one web: {containers:?}");
        assert!(ids.contains(&webs[0].as_str()));
        stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        let db = container(&name, "db");
        docker(&["rm", &db.id]);

        let recovering = root.stacks();
        let report = recovering
            .start_containers(&name, &request(&containers, false), &Slots::new(1))
            .await
            .expect("start");
        assert_eq!(report.recreated, ["db"]);
        let db2 = container(&name, "db");
        assert_ne!(db2.id, db.id, "db was made again");
        assert!(db2.running);
        assert_eq!(state_of(&webs[0]).0, "running", "the listed web");
        assert_eq!(
            state_of(&webs[1]),
            replica_before,
            "the exited replica is untouched"
        );
        assert_eq!(
            state_of(&leftover).0,
            "created",
            "the leftover is untouched"
        );
    });
}

/// Issue 22 item 1, with one slot: a stack's stop calls hold it (another stop waits), but a
/// stack whose app takes 3 s to become healthy does not hold it while it waits: the next
/// stack's container starts while the first is still unhealthy.
#[test]
fn a_slot_is_held_by_engine_calls_only() {
    let mut root = Root::new(Tool::V2);
    let slow = root.name("slowhealth");
    let fast = root.name("fastnext");
    let slow_dir = root.deploy(
        &slow,
        "compose.yaml",
        &format!(
            "services:\n{}",
            serve("db", &["--healthy-after", "3s"], HEALTH)
        ),
    );
    root.deploy(
        &fast,
        "compose.yaml",
        &format!("services:\n{}", serve("web", &[], "")),
    );
    root.up(&slow);
    root.up(&fast);
    wait_for_health(&slow, "db", "healthy");
    let stacks = Arc::new(root.stacks());
    let slots = Slots::new(1);
    block_on(LIMIT, async {
        let slow_containers = stacks.running_containers(&slow).await.expect("listed");
        let fast_containers = stacks.running_containers(&fast).await.expect("listed");
        stacks
            .stop_containers(&slow, &slow_containers, &slots)
            .await
            .expect("stop");
        // The only slot is taken: the stop of the other stack waits for it.
        let held = slots.take().await;
        let stop = {
            let (stacks, fast, containers, slots) = (
                Arc::clone(&stacks),
                fast.clone(),
                fast_containers.clone(),
                slots.clone(),
            );
            tokio::spawn(async move { stacks.stop_containers(&fast, &containers, &slots).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!stop.is_finished(), "the stop waits for the slot");
        assert!(container(&fast, "web").running);
        drop(held);
        stop.await.expect("task").expect("stop");
        assert_eq!(container(&fast, "web").status, "exited");

        let first = {
            let (stacks, slow, containers, slots) = (
                Arc::clone(&stacks),
                slow.clone(),
                slow_containers.clone(),
                slots.clone(),
            );
            tokio::spawn(async move {
                stacks
                    .start_containers(&slow, &request(&containers, false), &slots)
                    .await
            })
        };
        wait_for("the slow stack's container started", || {
            container(&slow, "db").running
        })
        .await;
        stacks
            .start_containers(&fast, &request(&fast_containers, false), &slots)
            .await
            .expect("start of the next stack");
        let web = container(&fast, "web");
        assert!(web.running);
        first.await.expect("task").expect("start of the slow stack");
        let healthy = log_times(&slow_dir, "db", "healthy");
        let healthy_again = *healthy.last().expect("healthy after its start");
        assert!(
            web.started_at < healthy_again,
            "the next stack started before the first was healthy: {web:?} {healthy:?}"
        );
        assert_eq!(container(&slow, "db").health, "healthy");
        assert_eq!(slots.available(), 1);
    });
}

/// Hand-made containers whose dependencies form a cycle: `a` joins `b`'s network namespace,
/// and `b`'s `depends_on` label names `a`. The stop and the start both break it (the start
/// leaves out `b`'s label, not the namespace, which the engine needs) instead of waiting
/// until `start_timeout`.
#[test]
fn a_dependency_cycle_does_not_deadlock_the_start() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("cycle");
    root.deploy_for_hand_made(&name);
    let mut made = Made::default();
    let b = made.member(
        &name,
        "b",
        true,
        &[
            "--label",
            "com.docker.compose.depends_on=a:service_started:false",
        ],
        &["serve"],
    );
    let joins_b = format!("container:{b}");
    let a = made.member(
        &name,
        "a",
        true,
        &[
            "--network",
            &joins_b,
            "--label",
            "com.docker.compose.depends_on=",
        ],
        &["serve"],
    );
    let stacks = root.stacks_with(|c| c.start_timeout = Duration::from_secs(20));
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        assert_eq!(containers.len(), 2);
        stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        assert_eq!(state_of(&a).0, "exited");
        assert_eq!(state_of(&b).0, "exited");
        stacks
            .start_containers(&name, &request(&containers, false), &Slots::new(1))
            .await
            .expect("the cycle is broken, not waited on");
        let (a_state, a_started, _) = state_of(&a);
        let (b_state, b_started, _) = state_of(&b);
        assert_eq!((a_state.as_str(), b_state.as_str()), ("running", "running"));
        assert!(b_started <= a_started, "b, whose namespace a joins, first");
    });
}

/// A service label no compose would make (`svc name`, a hand-made container): stopped and
/// started by id like any other; only the compose fallback
/// needs a valid name, and it refuses this one clearly.
#[test]
fn a_foreign_service_label_is_stopped_and_started_by_id() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("foreign");
    root.deploy_for_hand_made(&name);
    let mut made = Made::default();
    let id = made.member(&name, "svc name", true, &[], &["serve"]);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let listed = stacks.running_app_stacks().await.expect("listed");
        let mine = listed.iter().find(|s| s.name == name).expect("listed");
        assert_eq!(mine.services, ["svc name"]);
        let containers = mine.containers.clone();
        stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        assert_eq!(state_of(&id).0, "exited");
        stacks
            .start_containers(&name, &request(&containers, false), &Slots::new(1))
            .await
            .expect("start");
        assert_eq!(state_of(&id).0, "running");
        // Gone while down: compose would have to make it, and cannot be given that name.
        stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        docker(&["rm", &id]);
        let err = stacks
            .start_containers(&name, &request(&containers, false), &Slots::new(1))
            .await
            .expect_err("compose cannot bring it back");
        assert!(
            matches!(&err, StacksError::InvalidService { service, .. } if service == "svc name"),
            "{err}"
        );
        assert!(err.to_string().contains("svc name"), "{err}");
    });
}

/// Issue 19: any local process whose command line looks like `compose -p <stack> stop` (here
/// `sh -c 'sleep 600' compose -p <stack> stop`, held by no compose) once held every stop and
/// start of that stack for up to 2×stop_timeout+30 s (a `/proc` scan). Nothing reads other
/// processes now: with a 30 s `stop_timeout` the old wait was 90 s per call; the stop and the
/// start together end well inside that (the bound only catches the old wait).
#[test]
fn a_process_that_looks_like_compose_stop_delays_nothing() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("spoof");
    root.deploy(
        &name,
        "compose.yaml",
        &format!("services:\n{}", serve("web", &[], "")),
    );
    root.up(&name);
    let mut spoof = std::process::Command::new("sh")
        .args(["-c", "sleep 600", "compose", "-p", &name, "stop"])
        .spawn()
        .expect("the spoofing process");
    let stacks = root.stacks_with(|c| c.stop_timeout = Duration::from_secs(30));
    let began = std::time::Instant::now();
    block_on(LIMIT, async {
        let web = support::stop(&stacks, &name).await.expect("stop");
        support::start(&stacks, &name, &web).await.expect("start");
    });
    let took = began.elapsed();
    let _ = spoof.kill();
    let _ = spoof.wait();
    assert_eq!(state_of(&container(&name, "web").id).0, "running");
    assert!(
        took < Duration::from_secs(45),
        "a stop and a start of a one-container stack took {took:?}: something waited on the spoof"
    );
}
