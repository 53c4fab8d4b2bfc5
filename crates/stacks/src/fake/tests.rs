use super::*;

#[tokio::test]
async fn logs_every_call_and_fails_as_told() {
    let fake = FakeStacks::running([("a", &["web"][..]), ("b", &["db"][..])])
        .start_trouble("b", Trouble::FailTimes(1));
    let slots = Slots::new(1);
    assert_eq!(
        fake.running_app_stacks().await.map(|s| s.len()).ok(),
        Some(2)
    );
    let stopped = fake
        .stop_containers("a", &one("a", "web"), &slots)
        .await
        .expect("stop");
    assert_eq!(stopped.containers.len(), 1);
    let request = StartRequest {
        containers: one("b", "db"),
        stop_may_be_in_flight: false,
        recreate_vanished: true,
    };
    assert!(fake.start_containers("b", &request, &slots).await.is_err());
    assert!(fake.start_containers("b", &request, &slots).await.is_ok());
    assert_eq!(fake.calls(), ["stop a", "start b db", "start b db"]);
}

fn one(stack: &str, service: &str) -> Vec<ContainerRef> {
    vec![container(stack, service)]
}

#[tokio::test]
async fn a_clean_cycle_leaves_clean_evidence() {
    let fake = FakeStacks::running([("a", &["db", "web"][..])]);
    let slots = Slots::new(1);
    let listed = fake.running_app_stacks().await.expect("listed");
    assert_eq!(listed[0].containers.len(), 2);
    let containers = fake.running_containers("a").await.expect("running");
    assert_eq!(containers, listed[0].containers);
    let report = fake
        .stop_containers("a", &containers, &slots)
        .await
        .expect("stop");
    assert!(report.containers.iter().all(|s| s.was_running && !s.killed));
    let since = report.containers[0].stop_requested_at;
    let check = fake
        .check_down("a", &containers, since)
        .await
        .expect("check");
    assert!(check.stayed_down(), "{check:?}");
    assert!(fake.running_now("a").is_empty());
    let request = StartRequest {
        containers: containers.clone(),
        stop_may_be_in_flight: false,
        recreate_vanished: true,
    };
    let started = fake
        .start_containers("a", &request, &slots)
        .await
        .expect("start");
    assert!(started.ready_at.is_some());
    assert_eq!(
        started,
        StartReport {
            ready_at: started.ready_at,
            ..StartReport::default()
        }
    );
    assert_eq!(fake.running_now("a"), containers);
    assert_eq!(fake.calls(), ["stop a", "start a db,web"]);
}

#[tokio::test]
async fn every_fact_shows_in_the_evidence() {
    let fake = FakeStacks::running([("a", &["db", "web"][..])])
        .fact("a", "db", Fact::Killed)
        .fact("a", "web", Fact::RestartedAfterStop)
        .fact("a", "web", Fact::AppearsAfterStop)
        .fact("a", "db", Fact::DiesAfterStart);
    let slots = Slots::new(2);
    let containers = fake.running_containers("a").await.expect("running");
    let report = fake
        .stop_containers("a", &containers, &slots)
        .await
        .expect("stop");
    let killed: Vec<&str> = report
        .containers
        .iter()
        .filter(|s| s.killed)
        .map(|s| s.container.service.as_str())
        .collect();
    assert_eq!(killed, ["db"]);
    assert_eq!(report.containers[0].exit_code, Some(137));
    let since = report.containers[0].stop_requested_at;
    let check = fake
        .check_down("a", &containers, since)
        .await
        .expect("check");
    assert_eq!(check.ran.len(), 1);
    assert_eq!(check.ran[0].0.service, "web");
    assert!(check.ran[0].1 > since);
    assert_eq!(check.appeared.len(), 1);
    assert_eq!(check.appeared[0].service, "web");
    // Stopped again, web stays down; the appeared one still runs.
    let again = fake
        .stop_containers("a", &one("a", "web"), &slots)
        .await
        .expect("stop again");
    assert!(again.containers[0].was_running);
    assert_eq!(fake.running_now("a"), check.appeared);
    // db dies in the settle window.
    let request = StartRequest {
        containers,
        stop_may_be_in_flight: false,
        recreate_vanished: true,
    };
    let err = fake
        .start_containers("a", &request, &slots)
        .await
        .expect_err("db dies");
    assert!(
        matches!(&err, StacksError::StartFailed { service, .. } if service == "db"),
        "{err}"
    );
    assert!(!fake.running_now("a").iter().any(|c| c.service == "db"));
    // Once: the retry works.
    fake.start_containers("a", &request, &slots)
        .await
        .expect("the retry");
    assert!(fake.running_now("a").iter().any(|c| c.service == "db"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_in_flight_is_waited_for_only_with_the_flag() {
    for flag in [true, false] {
        let fake = FakeStacks::running([("a", &["db"][..])]).fact("a", "db", Fact::StopInFlight);
        let slots = Slots::new(1);
        let containers = fake.running_containers("a").await.expect("running");
        let stop = fake.stop_containers("a", &containers, &slots);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), stop)
                .await
                .is_err(),
            "the stop never answers"
        );
        assert_eq!(slots.available(), 1, "an abandoned stop frees its slot");
        assert_eq!(fake.running_now("a"), containers, "still running");
        let request = StartRequest {
            containers: containers.clone(),
            stop_may_be_in_flight: flag,
            recreate_vanished: true,
        };
        let report = fake
            .start_containers("a", &request, &slots)
            .await
            .expect("start");
        if flag {
            assert_eq!(report.waited_for_stop, containers);
            assert_eq!(fake.running_now("a"), containers, "runs after the start");
        } else {
            assert_eq!(report.already_running, containers);
            assert!(fake.running_now("a").is_empty(), "the stop ended after it");
        }
    }
    let fake = FakeStacks::running([("a", &["db"][..])]).fact("a", "db", Fact::StopInFlight);
    let containers = fake.running_containers("a").await.expect("running");
    let slots = Slots::new(1);
    let stop = fake.stop_containers("a", &containers, &slots);
    assert!(tokio::time::timeout(Duration::from_secs(1), stop)
        .await
        .is_err());
    fake.finish_stops();
    assert!(fake.running_now("a").is_empty());
}

#[tokio::test(start_paused = true)]
async fn v2_calls_take_their_time_inside_and_outside_the_slots() {
    let timing = Timing {
        stop: Duration::from_secs(2),
        start: Duration::from_secs(1),
        ready: Duration::from_secs(30),
    };
    let fake =
        Arc::new(FakeStacks::running([("a", &["web"][..]), ("b", &["web"][..])]).timing(timing));
    let slots = Slots::new(1);
    let begun = tokio::time::Instant::now();
    for stack in ["a", "b"] {
        let containers = fake.running_containers(stack).await.expect("running");
        fake.stop_containers(stack, &containers, &slots)
            .await
            .expect("stop");
    }
    assert_eq!(begun.elapsed(), Duration::from_secs(4));
    let begun = tokio::time::Instant::now();
    let starts = ["a", "b"].map(|stack| {
        let (fake, slots) = (Arc::clone(&fake), slots.clone());
        tokio::spawn(async move {
            let request = StartRequest {
                containers: vec![container(stack, "web")],
                stop_may_be_in_flight: false,
                recreate_vanished: true,
            };
            fake.start_containers(stack, &request, &slots).await
        })
    });
    for start in starts {
        start.await.expect("task").expect("start");
    }
    // The two starts queue for the one slot; their 30 s waits do not.
    assert_eq!(begun.elapsed(), Duration::from_secs(32));
}

#[tokio::test]
async fn trouble_reaches_the_v2_calls_too() {
    let fake = FakeStacks::running([("a", &["web"][..])])
        .check_trouble("a", Trouble::EngineAway)
        .stop_trouble("a", Trouble::Fail("no".into()));
    let containers = one("a", "web");
    let err = fake
        .check_down("a", &containers, Utc::now())
        .await
        .expect_err("away");
    assert!(err.is_engine_unreachable(), "{err}");
    let err = fake
        .stop_containers("a", &containers, &Slots::new(1))
        .await
        .expect_err("fails");
    assert!(matches!(err, StacksError::Other(_)), "{err}");
}

#[tokio::test]
async fn labels_give_the_listed_policy_through_the_real_reader() {
    let fake = FakeStacks::running([("a", &["db", "web"][..])])
        .labels(
            "a",
            "db",
            &[("felhom.quiesce", "hook"), ("felhom.pre-snapshot", "dump")],
        )
        .labels("a", "web", &[("felhom.stop-order", "soon")]);
    let listed = fake.running_app_stacks().await.expect("listed");
    let policy = &listed[0].policy;
    assert_eq!(policy.service("db").quiesce, crate::QuiesceMode::Hook);
    assert_eq!(policy.services.len(), 2, "every service has one");
    assert_eq!(policy.errors.len(), 1);
    assert_eq!(policy.errors[0].label, "felhom.stop-order");
    let plain = FakeStacks::running([("b", &["x"][..])]);
    let listed = plain.running_app_stacks().await.expect("listed");
    assert!(listed[0].policy.stops_everything());
    assert_eq!(listed[0].policy.services.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn hooks_run_as_scripted_and_time_out_at_their_timeout() {
    let fake = FakeStacks::running([("a", &["db"][..])])
        .hook("a", "db", HookScript::exit(3, "no space"))
        .hook(
            "a",
            "db",
            HookScript::Exit {
                code: 0,
                output: "slow".into(),
                after: Duration::from_secs(20),
            },
        )
        .hook("a", "db", HookScript::Hang);
    let db = container("a", "db");
    let dump = HookCommand::parse("dump --all").expect("parses");
    let limit = Duration::from_secs(10);
    let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
    assert_eq!((run.exit_code, run.output.as_str()), (Some(3), "no space"));
    assert!(!run.succeeded());
    let begun = tokio::time::Instant::now();
    let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
    assert!(run.timed_out && run.exit_code == Some(137), "{run:?}");
    assert_eq!(begun.elapsed(), limit);
    let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
    assert!(run.timed_out, "{run:?}");
    // Nothing scripted: exit 0 at once.
    let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(fake.calls(), ["hook a db dump --all"; 4]);
    // A stopped container runs no hook.
    fake.stop_containers("a", std::slice::from_ref(&db), &Slots::new(1))
        .await
        .expect("stop");
    let err = fake
        .run_hook("a", &db, &dump, limit)
        .await
        .expect_err("down");
    assert!(
        matches!(&err, HookError::NotRunning { status, .. } if status == "exited"),
        "{err}"
    );
}
