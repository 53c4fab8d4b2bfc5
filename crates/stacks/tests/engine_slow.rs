//! A slow engine, a hung one, and an event stream that is cut while the engine answers
//! (issue 19), through `EngineProxy` in front of the real engine: only an engine that answers
//! nothing is `EngineUnreachable` (the caller then waits for it without spending attempts);
//! a call that times out while the engine answers fails the stack; a cut stream is resumed
//! from its last event; an event stream that delivers nothing (a missed `health_status`)
//! costs the periodic re-inspect's period, not the start's timeout.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use felhom_stacks::{ContainerRef, EngineStacks, Slots, Stacks, StacksError, StartRequest};
use felhom_testsupport::EngineProxy;
use support::{block_on, container, serve, wait_for, wait_for_health, Root, Tool};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);
/// The bound on the quick calls through the proxy: short, so that a held call times out
/// soon.
const CALL: Duration = Duration::from_secs(2);

fn proxy(dir: &tempfile::TempDir) -> EngineProxy {
    EngineProxy::start(dir.path().join("docker.sock")).expect("the proxy starts")
}

fn through(
    root: &Root,
    proxy: &EngineProxy,
    tweak: impl FnOnce(&mut felhom_stacks::StacksConfig),
) -> EngineStacks {
    root.stacks_with(tweak)
        .with_call_timeout(CALL)
        .with_docker_host(proxy.docker_host())
}

fn all(stack: &[ContainerRef]) -> StartRequest {
    StartRequest {
        containers: stack.to_vec(),
        stop_may_be_in_flight: false,
        recreate_vanished: true,
    }
}

/// One stack of one `web`, up, and its containers stopped straight on the engine.
fn stopped_stack(root: &mut Root, short: &str) -> (String, Vec<ContainerRef>) {
    let yaml = format!("services:\n{}", serve("web", &[], ""));
    let yaml = yaml.as_str();
    let name = root.name(short);
    root.deploy(&name, "compose.yaml", yaml);
    root.up(&name);
    let direct = root.stacks();
    let containers = block_on(LIMIT, async {
        let containers = direct.running_containers(&name).await.expect("listed");
        direct
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        containers
    });
    (name, containers)
}

/// A start of `containers` under way: it has subscribed to the events and started the
/// container of `service`.
async fn started(
    stacks: &Arc<EngineStacks>,
    proxy: &EngineProxy,
    name: &str,
    containers: Vec<ContainerRef>,
    service: &str,
) -> tokio::task::JoinHandle<Result<felhom_stacks::StartReport, StacksError>> {
    let start = {
        let (stacks, name) = (Arc::clone(stacks), name.to_owned());
        tokio::spawn(async move {
            stacks
                .start_containers(&name, &all(&containers), &Slots::new(1))
                .await
        })
    };
    wait_for("the start subscribed and started its container", || {
        proxy.streams() >= 1 && container(name, service).running
    })
    .await;
    start
}

#[test]
fn a_call_that_times_out_while_the_engine_answers_fails_the_stack() {
    let mut root = Root::new(Tool::V2);
    let (name, containers) = stopped_stack(&mut root, "slowcall");
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = proxy(&dir);
    let stacks = through(&root, &proxy, |_| {});
    block_on(LIMIT, async {
        // The engine answers everything but the start call.
        proxy.hold("/start", None);
        let err = stacks
            .start_containers(&name, &all(&containers), &Slots::new(1))
            .await
            .expect_err("the start call gets no answer");
        assert!(!err.is_engine_unreachable(), "{err}");
        assert!(
            matches!(&err, StacksError::Container { action: "start", service, .. } if service == "web"),
            "{err}"
        );
        assert!(err.to_string().contains("no answer within 2s"), "{err}");
        proxy.release();

        // The listing is slow: a failure of the call, not an engine away.
        proxy.hold("/containers/json", None);
        let err = stacks
            .running_app_stacks()
            .await
            .expect_err("the listing gets no answer");
        assert!(!err.is_engine_unreachable(), "{err}");
        assert!(matches!(err, StacksError::Engine { .. }), "{err}");
        proxy.release();

        // Answered again, the start goes through.
        stacks
            .start_containers(&name, &all(&containers), &Slots::new(1))
            .await
            .expect("start");
        assert!(container(&name, "web").running);
    });
}

/// A hung engine (socket activation keeps accepting, dockerd answers nothing): every call,
/// the ping included, goes unanswered.
#[test]
fn an_engine_that_answers_nothing_is_unreachable() {
    let mut root = Root::new(Tool::V2);
    let (name, containers) = stopped_stack(&mut root, "hung");
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = proxy(&dir);
    let stacks = through(&root, &proxy, |_| {});
    block_on(LIMIT, async {
        proxy.hold("", None);
        let err = stacks
            .running_containers(&name)
            .await
            .expect_err("nothing answers");
        assert!(err.is_engine_unreachable(), "{err}");
        assert!(err.to_string().contains("none to a ping"), "{err}");
        let err = stacks
            .start_containers(&name, &all(&containers), &Slots::new(1))
            .await
            .expect_err("nothing answers");
        assert!(err.is_engine_unreachable(), "{err}");
        assert_eq!(container(&name, "web").status, "exited");
    });
}

/// The event stream is cut while the start waits for health: the start resumes it and ends
/// well, instead of reporting the engine away.
#[test]
fn a_cut_event_stream_is_resumed() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("cutstream");
    let health = "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\"]\n      interval: 200ms\n      retries: 50\n";
    root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}",
            serve("db", &["--healthy-after", "3s"], health)
        ),
    );
    root.up(&name);
    wait_for_health(&name, "db", "healthy");
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = proxy(&dir);
    let stacks = Arc::new(through(&root, &proxy, |_| {}));
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        let start = started(&stacks, &proxy, &name, containers, "db").await;
        assert_ne!(
            container(&name, "db").health,
            "healthy",
            "cut before it is healthy"
        );
        proxy.cut_streams();
        start.await.expect("task").expect("the start ends well");
        assert!(proxy.streams() >= 2, "the stream was opened again");
        assert_eq!(container(&name, "db").health, "healthy");
    });
}

/// The stream is cut, and opened again only 4 s later; the app dies 3 s after its start, in
/// that gap. The resumed stream replays what was missed (`since` its last event): a failed
/// start, not a start that looks fine.
#[test]
fn a_death_while_the_stream_is_cut_is_still_a_failed_start() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("gap");
    root.deploy(
        &name,
        "compose.yaml",
        &format!("services:\n{}", serve("app", &["--crash-after", "3s"], "")),
    );
    root.up(&name);
    support::wait_until("app has died once", || {
        container(&name, "app").status == "exited"
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = proxy(&dir);
    let stacks = Arc::new(through(&root, &proxy, |c| {
        c.settle = Duration::from_secs(10)
    }));
    let containers = support::refs(&name, &["app"]);
    block_on(LIMIT, async {
        let start = started(&stacks, &proxy, &name, containers, "app").await;
        proxy.hold("/events", Some(Duration::from_secs(4)));
        proxy.cut_streams();
        let err = start.await.expect("task").expect_err("app died");
        assert!(
            matches!(&err, StacksError::StartFailed { service, .. } if service == "app"),
            "{err}"
        );
    });
}

/// A start that hears no event at all — its event stream is held by the proxy, so the
/// `health_status` event of its container never comes — still sees the container healthy by
/// its periodic re-inspect of the containers not yet ready (every 2 s): the start ends well,
/// long before its `start_timeout` of 60 s, where it would otherwise time out.
#[test]
fn a_missed_health_event_is_seen_by_the_re_inspect() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("missedhealth");
    let health = "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\"]\n      interval: 200ms\n      retries: 50\n";
    root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}",
            serve("db", &["--healthy-after", "1s"], health)
        ),
    );
    root.up(&name);
    wait_for_health(&name, "db", "healthy");
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = proxy(&dir);
    let timeout = Duration::from_secs(60);
    let stacks = through(&root, &proxy, |c| c.start_timeout = timeout);
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        // Every event stream from now on gets no answer, and so no event.
        proxy.hold("/events", None);
        let began = tokio::time::Instant::now();
        let report = stacks
            .start_containers(&name, &all(&containers), &Slots::new(1))
            .await
            .expect("the start sees db healthy without its event");
        let took = began.elapsed();
        assert_eq!(proxy.streams(), 0, "no event stream reached the engine");
        assert!(report.ready_at.is_some());
        assert_eq!(container(&name, "db").health, "healthy");
        // Generous: only tells the re-inspect (2 s after `healthy-after` 1 s) from the 60 s
        // timeout the start would otherwise wait out.
        assert!(
            took < timeout / 2,
            "the start took {took:?}: the missed event was not made up for"
        );
        proxy.release();
    });
}
