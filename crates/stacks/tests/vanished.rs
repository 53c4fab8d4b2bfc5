//! Containers removed outside the controller (issue 19), on the real engine: a start that may
//! not recreate vanished containers (`recreate_vanished` off: a stranded retry, a recovery)
//! ends with `StacksError::Vanished` and creates and starts nothing — what an operator's
//! `docker compose down` or `docker rm` removed stays removed; with it on (the cycle's own
//! resume) compose brings them back as before.

#[macro_use]
mod support;

use std::time::Duration;

use felhom_stacks::{ContainerRef, Slots, Stacks, StacksError, StartRequest};
use felhom_testsupport::engine::container_ids;
use support::{block_on, container, docker, down, serve, state_of, Root, Tool};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);

fn request(containers: &[ContainerRef], recreate_vanished: bool) -> StartRequest {
    StartRequest {
        containers: containers.to_vec(),
        stop_may_be_in_flight: false,
        recreate_vanished,
    }
}

/// Every container of `project`, running or not, by the compose project label.
fn project_ids(project: &str) -> Vec<String> {
    let mut ids = container_ids(project, None).unwrap_or_else(|e| panic!("{e}"));
    ids.sort();
    ids
}

/// A stack of `db` and `web` (depending on it), up; its containers as the controller lists
/// them.
fn stack_up(root: &mut Root, short: &str) -> (String, std::path::PathBuf, Vec<ContainerRef>) {
    let name = root.name(short);
    let dir = root.deploy(
        &name,
        "compose.yaml",
        &format!(
            "services:\n{}{}",
            serve("db", &[], ""),
            serve("web", &[], "    depends_on: [db]\n"),
        ),
    );
    root.up(&name);
    let stacks = root.stacks();
    let containers = block_on(LIMIT, async {
        stacks.running_containers(&name).await.expect("listed")
    });
    assert_eq!(containers.len(), 2, "{containers:?}");
    (name, dir, containers)
}

/// The operator's `docker compose down` of a stack the controller holds as stopped: a start
/// that may not recreate finds every container gone, says which, and creates nothing.
fn compose_down_stays_down(tool: Tool) {
    let mut root = Root::new(tool);
    let (name, dir, containers) = stack_up(&mut root, "downed");
    let stacks = root.stacks_with(|c| c.compose = tool.choice());
    block_on(LIMIT, support::stop(&stacks, &name)).expect("stop");
    down(tool, &name, &dir);
    assert!(project_ids(&name).is_empty(), "compose down removed them");

    let err = block_on(LIMIT, async {
        stacks
            .start_containers(&name, &request(&containers, false), &Slots::new(1))
            .await
            .expect_err("its containers are gone")
    });
    assert!(err.is_vanished(), "{err}");
    assert!(!err.is_engine_unreachable());
    let StacksError::Vanished {
        stack,
        containers: gone,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(stack, &name);
    let mut names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    names.sort();
    let mut gone = gone.clone();
    gone.sort();
    assert_eq!(gone, names, "every removed container is named");
    assert!(
        err.to_string().contains("not recreated"),
        "the message says why: {err}"
    );
    assert!(
        project_ids(&name).is_empty(),
        "nothing was created for the project"
    );
}

/// `docker rm` of one container (the dependency) of a stopped stack: nothing of the stack is
/// started — not even the container that still exists — and nothing is created; the same
/// start with recreating allowed (the cycle's own resume) brings the stack back.
fn one_removed_container_starts_nothing(tool: Tool) {
    let mut root = Root::new(tool);
    let (name, _dir, containers) = stack_up(&mut root, "rmone");
    let stacks = root.stacks_with(|c| c.compose = tool.choice());
    block_on(LIMIT, support::stop(&stacks, &name)).expect("stop");
    let db = container(&name, "db");
    let web = container(&name, "web");
    let db_name = containers
        .iter()
        .find(|c| c.service == "db")
        .map(|c| c.name.clone())
        .expect("db listed");
    docker(&["rm", &db.id]);
    let before = project_ids(&name);
    assert_eq!(before, std::slice::from_ref(&web.id));
    let web_before = state_of(&web.id);

    let err = block_on(LIMIT, async {
        stacks
            .start_containers(&name, &request(&containers, false), &Slots::new(1))
            .await
            .expect_err("db is gone")
    });
    assert!(
        matches!(&err, StacksError::Vanished { containers, .. } if *containers == std::slice::from_ref(&db_name)),
        "{err}"
    );
    assert_eq!(project_ids(&name), before, "nothing was created");
    assert_eq!(
        state_of(&web.id),
        web_before,
        "the web that still exists was not started"
    );

    // The same start where recreating is allowed: compose makes db again, web is started.
    let report = block_on(LIMIT, async {
        stacks
            .start_containers(&name, &request(&containers, true), &Slots::new(1))
            .await
            .expect("start with recreating")
    });
    assert_eq!(report.recreated, ["db"]);
    assert!(container(&name, "db").running);
    assert!(container(&name, "web").running);
}

both_tools!(
    compose_down_stays_down,
    one_removed_container_starts_nothing
);
