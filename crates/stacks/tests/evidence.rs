//! The engine's evidence of a stop and of a stopped stack (issue 18), on real containers:
//! which containers were killed at the end of their grace, a grace without a bound, and what
//! ran or appeared while the stack was down.

#[macro_use]
mod support;

use std::time::Duration;

use felhom_stacks::{Slots, Stacks, StoppedContainer};
use support::{block_on, container, docker, serve, state_of, Made, Root, Tool};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);

fn by_service<'a>(report: &'a [StoppedContainer], service: &str) -> &'a StoppedContainer {
    report
        .iter()
        .find(|s| s.container.service == service)
        .unwrap_or_else(|| panic!("{service} is not in {report:?}"))
}

#[test]
fn each_stop_is_reported_with_the_engines_evidence() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("evidence");
    let dir = root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}{}{}",
            // Needs 10 s to stop and declares 2: the engine kills it at the end of its grace.
            serve(
                "slow",
                &["--stop-delay", "10s"],
                "    stop_grace_period: 2s\n"
            ),
            // Needs 1 s and declares 5: it stops by itself.
            serve(
                "quick",
                &["--stop-delay", "1s"],
                "    stop_grace_period: 5s\n"
            ),
            // Its stop signal is SIGKILL: exit 137 at once, and that is how it stops.
            serve("brutal", &[], "    stop_signal: SIGKILL\n"),
            // Declares nothing: stacks.stop_timeout (1 s here), and it stops at once.
            serve("plain", &[], ""),
        ),
    );
    root.up(&name);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        let services: Vec<&str> = containers.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(services, ["brutal", "plain", "quick", "slow"]);
        let report = stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        assert!(report.vanished.is_empty());
        assert_eq!(report.containers.len(), 4);
        for s in &report.containers {
            assert!(s.was_running, "{s:?}");
            let exited = s.exited_at.expect("an exit time");
            // The engine's clock against ours: the same host, within a second.
            assert!(
                exited >= s.stop_requested_at - chrono::Duration::seconds(1),
                "{s:?}"
            );
            assert_eq!(container(&name, &s.container.service).status, "exited");
        }
        let slow = by_service(&report.containers, "slow");
        assert!(slow.killed, "{slow:?}");
        assert_eq!(slow.exit_code, Some(137));
        assert!(
            !support::app_log(&dir, "slow").contains("shut down cleanly"),
            "it really was cut short"
        );
        let quick = by_service(&report.containers, "quick");
        assert!(!quick.killed, "{quick:?}");
        assert_eq!(quick.exit_code, Some(0));
        let brutal = by_service(&report.containers, "brutal");
        assert_eq!(brutal.exit_code, Some(137));
        assert!(!brutal.killed, "its own stop signal is SIGKILL: {brutal:?}");
        let plain = by_service(&report.containers, "plain");
        assert!(!plain.killed && plain.exit_code == Some(0), "{plain:?}");

        // Stopped already: reported as not running, with the exit it had, and not signalled.
        let again = stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("a stop of stopped containers");
        for (first, second) in report.containers.iter().zip(&again.containers) {
            assert!(!second.was_running && !second.killed, "{second:?}");
            assert_eq!(second.exited_at, first.exited_at);
            assert_eq!(second.container, first.container);
        }
        // A container removed since the listing is reported vanished.
        docker(&["rm", &containers[0].id]);
        let gone = stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("a stop with a removed container");
        assert_eq!(gone.vanished, [containers[0].clone()]);
        assert_eq!(gone.containers.len(), 3);
    });
}

/// `StopTimeout: -1` (`docker create --stop-timeout=-1`; compose's `stop_grace_period` cannot
/// say it): the engine waits for the container without a bound, and so does the stop —
/// neither `stacks.stop_timeout` (1 s here) nor the call's own margin (30 s) cuts a 35 s
/// shutdown short.
#[test]
fn a_negative_stop_timeout_is_waited_for_without_a_bound_of_ours() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("forever");
    root.deploy_for_hand_made(&name);
    let mut made = Made::default();
    let id = made.member(
        &name,
        "db",
        true,
        &["--stop-timeout=-1"],
        &["serve", "--stop-delay", "35s"],
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.Config.StopTimeout}}", &id]).trim(),
        "-1"
    );
    let stacks = root.stacks_with(|c| c.stop_timeout = Duration::from_secs(1));
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        assert_eq!(containers.len(), 1);
        let report = stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        let db = &report.containers[0];
        assert_eq!(db.exit_code, Some(0), "it shut down by itself: {db:?}");
        assert!(!db.killed);
        let took = db.exited_at.expect("an exit time") - db.stop_requested_at;
        assert!(took >= chrono::Duration::seconds(34), "{took:?}");
        let logs = docker(&["logs", &id]);
        assert!(logs.contains("shut down cleanly"), "{logs}");
    });
}

#[test]
fn check_down_tells_what_ran_and_what_appeared() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("down");
    root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}",
            serve("db", &[], ""),
            serve("web", &[], "    depends_on: [db]\n")
        ),
    );
    root.up(&name);
    let mut made = Made::default();
    // A leftover made before the cycle, never started: not a new container.
    made.member(&name, "web", false, &[], &["serve"]);
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let containers = stacks.running_containers(&name).await.expect("listed");
        let report = stacks
            .stop_containers(&name, &containers, &Slots::new(1))
            .await
            .expect("stop");
        let down_since = report
            .containers
            .iter()
            .map(|s| s.stop_requested_at)
            .min()
            .expect("stopped");
        let check = stacks
            .check_down(&name, &containers, down_since)
            .await
            .expect("check");
        assert!(check.stayed_down(), "untouched: {check:?}");

        // Someone starts web again, and stops it again: it ran meanwhile all the same.
        let web = containers
            .iter()
            .find(|c| c.service == "web")
            .expect("web")
            .clone();
        docker(&["start", &web.id]);
        let check = stacks
            .check_down(&name, &containers, down_since)
            .await
            .expect("check");
        let (ran, started) = check.ran.first().expect("web ran");
        assert_eq!(ran.service, "web");
        assert_eq!(*started, state_of(&web.id).1);
        assert!(*started > down_since);
        assert!(check.appeared.is_empty(), "{check:?}");
        docker(&["stop", "-t", "1", &web.id]);
        let check = stacks
            .check_down(&name, &containers, down_since)
            .await
            .expect("check");
        assert_eq!(check.ran.len(), 1, "{check:?}");
        let (status, started_again, _) = state_of(&web.id);
        assert_eq!(status, "exited");
        assert_eq!(check.ran[0].1, started_again);

        // A new container of the project (a redeploy, Watchtower), and a one-off beside it.
        let worker = made.member(&name, "worker", true, &[], &["serve"]);
        let one_off = made.member(
            &name,
            "web",
            true,
            &["--label", "com.docker.compose.oneoff=True"],
            &["serve"],
        );
        let check = stacks
            .check_down(&name, &containers, down_since)
            .await
            .expect("check");
        let appeared: Vec<&str> = check.appeared.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            appeared,
            [worker.as_str()],
            "not the one-off nor the leftover"
        );
        assert!(!appeared.contains(&one_off.as_str()));
        // Stopped again, it still appeared: it was created after the stop.
        docker(&["stop", "-t", "1", &worker]);
        let check = stacks
            .check_down(&name, &containers, down_since)
            .await
            .expect("check");
        assert_eq!(check.appeared.len(), 1, "{check:?}");
    });
}
