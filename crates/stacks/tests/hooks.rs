//! Hooks on the real engine (issue 23): a command of a service's policy run in its container
//! by `run_hook` — a dump written into the volume, a failing hook's exit code and output, a
//! hook that hangs killed at its timeout with its children, a hook abandoned by its caller
//! killed too, a container that does not run, output bounded to its last 4 KiB.

#[macro_use]
mod support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use felhom_stacks::{
    ContainerRef, EngineStacks, HookCommand, HookError, HookRun, QuiesceMode, Stacks,
    HOOK_OUTPUT_LIMIT,
};
use felhom_testsupport::{engine, process};
use support::{block_on, docker, Root, Tool};

/// Generous: only catches hangs.
const LIMIT: Duration = Duration::from_secs(150);

/// The test app's image under a tag of these tests' own, built from this checkout: the hooks
/// run its `dump`, `exit`, `lines` and `hang`, and `felhom-testapp:dev` may be rebuilt by
/// another checkout's tests (an older binary) while these run.
const HOOKS_IMAGE: &str = "felhom-testapp:hooks";

fn hooks_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        engine::check_engine()?;
        let mut build = Command::new(engine::repo_root().join("scripts/build-test-image.sh"));
        build.env("FELHOM_TESTAPP_IMAGE", HOOKS_IMAGE);
        process::checked(&mut build, Duration::from_secs(900))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    if let Err(e) = built {
        panic!("building {HOOKS_IMAGE}: {e}");
    }
    HOOKS_IMAGE
}

/// A stack `name` with one service `db` (the test app serving, its data in `./data/db`) and
/// the labels `labels` (YAML lines), up.
fn db_stack(root: &mut Root, name: &str, labels: &str) -> std::path::PathBuf {
    let yaml = format!(
        "services:\n  db:\n    image: {}\n    command: [\"serve\", \"--data\", \"/data\"]\n    volumes: [\"./data/db:/data\"]\n    network_mode: none\n{labels}",
        hooks_image()
    );
    let dir = root.deploy(name, "compose.yaml", &yaml);
    root.up(name);
    dir
}

fn db_of(project: &str) -> ContainerRef {
    support::refs(project, &["db"]).remove(0)
}

fn command(line: &str) -> HookCommand {
    HookCommand::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

async fn run(
    stacks: &EngineStacks,
    stack: &str,
    line: &str,
    timeout: Duration,
) -> Result<HookRun, HookError> {
    stacks
        .run_hook(stack, &db_of(stack), &command(line), timeout)
        .await
}

/// The live processes (not zombies) in the container's cgroup whose command line holds
/// `word`, as this host's `/proc` shows them.
fn live_processes(container_id: &str, word: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        panic!("/proc cannot be read");
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_pid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let read = |file: &str| std::fs::read(dir.join(file)).unwrap_or_default();
        let cgroup = String::from_utf8_lossy(&read("cgroup")).into_owned();
        if !cgroup.contains(container_id) {
            continue;
        }
        let stat = String::from_utf8_lossy(&read("stat")).into_owned();
        let state = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        if state != "Z" && cmdline.contains(word) {
            found.push(format!("{} {state} {cmdline}", dir.display()));
        }
    }
    found
}

#[test]
fn a_pre_snapshot_hook_from_the_labels_writes_its_dump_into_the_volume() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("hookdump");
    // The quotes keep the path with a blank one word; `$$` is compose's escape of `$` (the
    // hook runs no shell, so the `$HOME` reaches the program as text).
    let dir = db_stack(
        &mut root,
        &name,
        "    labels:\n      felhom.quiesce: hook\n      felhom.pre-snapshot: \"/app dump '/data/my dump.sql'\"\n      felhom.post-resume: /app exit 0 $$HOME stays text\n      felhom.hook-timeout: 30s\n",
    );
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let listed = stacks.running_app_stacks().await.expect("listed");
        let policy = listed[0].policy.service("db").clone();
        assert_eq!(policy.quiesce, QuiesceMode::Hook);
        assert_eq!(policy.hook_timeout, Duration::from_secs(30));
        let pre = policy.pre_snapshot.expect("a pre-snapshot hook");
        assert_eq!(pre.argv(), ["/app", "dump", "/data/my dump.sql"]);
        let db = &listed[0].containers[0];
        let before = chrono::Utc::now();
        let run = stacks
            .run_hook(&name, db, &pre, policy.hook_timeout)
            .await
            .expect("the hook ran");
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output, "dumped to /data/my dump.sql\n");
        assert!(run.duration < Duration::from_secs(30), "{run:?}");
        // Read back from the host: the volume holds it.
        let dump = std::fs::read_to_string(dir.join("data/db/my dump.sql")).expect("the dump");
        let stamp = dump
            .strip_prefix("dump ")
            .and_then(|rest| chrono::DateTime::parse_from_rfc3339(rest.trim()).ok())
            .unwrap_or_else(|| panic!("{dump:?}"));
        assert!(stamp >= before - chrono::Duration::seconds(1), "{dump}");
        // And the post-resume hook's words arrive unexpanded.
        let post = policy.post_resume.expect("a post-resume hook");
        let run = stacks
            .run_hook(&name, db, &post, policy.hook_timeout)
            .await
            .expect("the hook ran");
        assert!(run.succeeded(), "{run:?}");
        // stdout and stderr come through separate pipes: each line whole, in either order.
        assert!(run.output.contains("$HOME stays text\n"), "{run:?}");
        assert!(run.output.contains("exiting with 0\n"), "{run:?}");
    });
    // The app went on serving: a hook is not a stop.
    let log = support::app_log(&dir, "db");
    assert!(!log.contains("stopping"), "{log}");
    assert_eq!(support::container(&name, "db").status, "running");
}

#[test]
fn a_failing_hook_reports_its_exit_code_and_both_streams() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("hookfail");
    db_stack(&mut root, &name, "");
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let run = run(&stacks, &name, "/app exit 3 no space left", LIMIT)
            .await
            .expect("the hook ran");
        assert_eq!(run.exit_code, Some(3), "{run:?}");
        assert!(!run.timed_out && !run.succeeded(), "{run:?}");
        assert!(run.output.contains("no space left\n"), "{run:?}");
        assert!(run.output.contains("exiting with 3\n"), "{run:?}");
        // A program that does not exist fails as a shell would say it: 126 or 127, and why.
        let run = run_missing(&stacks, &name).await;
        assert!(matches!(run.exit_code, Some(126 | 127)), "{run:?}");
        assert!(run.output.contains("/no/such/program"), "{run:?}");
    });
}

async fn run_missing(stacks: &EngineStacks, name: &str) -> HookRun {
    run(stacks, name, "/no/such/program --now", LIMIT)
        .await
        .expect("the engine runs it and reports the failure")
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_with_its_children() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("hookhang");
    let dir = db_stack(&mut root, &name, "");
    let stacks = root.stacks();
    let db = db_of(&name);
    block_on(LIMIT, async {
        let timeout = Duration::from_secs(2);
        let run = run(&stacks, &name, "/app hang --children 2", timeout)
            .await
            .expect("the hook ran");
        assert!(run.timed_out, "{run:?}");
        assert!(!run.succeeded());
        assert_eq!(run.exit_code, Some(137), "killed: {run:?}");
        assert!(run.output.contains("hanging"), "{run:?}");
        assert!(run.duration >= timeout, "{run:?}");
        assert!(run.duration < timeout + Duration::from_secs(20), "{run:?}");
    });
    // The hook and its children are gone; the app is untouched.
    assert_eq!(live_processes(&db.id, "hang"), Vec::<String>::new());
    assert_eq!(live_processes(&db.id, "serve").len(), 1, "the app runs on");
    assert!(!support::app_log(&dir, "db").contains("stopping"));
}

#[test]
fn a_hook_abandoned_by_its_caller_is_killed() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("hookdrop");
    db_stack(&mut root, &name, "");
    let stacks = root.stacks();
    let db = db_of(&name);
    block_on(LIMIT, async {
        let hook = run(&stacks, &name, "/app hang --children 1", LIMIT);
        let seen = async {
            support::wait_for("the hook runs", || {
                live_processes(&db.id, "hang").len() == 2
            })
            .await;
        };
        // The caller's own bound (the cycle's) ends the call before the hook's timeout.
        tokio::select! {
            _ = hook => panic!("the hook ended by itself"),
            () = seen => {}
        }
        support::wait_for("the abandoned hook is killed", || {
            live_processes(&db.id, "hang").is_empty()
        })
        .await;
    });
}

#[test]
fn a_hook_in_a_container_that_does_not_run_is_a_clear_error() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("hookdown");
    let other = root.name("hookother");
    db_stack(&mut root, &name, "");
    db_stack(&mut root, &other, "");
    let stacks = root.stacks();
    let db = db_of(&name);
    block_on(LIMIT, async {
        // A container of another stack is refused, whatever it is told.
        let foreign = db_of(&other);
        let err = stacks
            .run_hook(&name, &foreign, &command("/app exit 0"), LIMIT)
            .await
            .expect_err("not the stack's");
        let text = err.to_string();
        assert!(matches!(err, HookError::Exec { .. }), "{text}");
        assert!(text.contains("not the stack's"), "{text}");
        assert!(
            text.contains(&format!("its project is {other:?}")),
            "{text}"
        );

        docker(&["stop", "-t", "1", &db.id]);
        let err = stacks
            .run_hook(&name, &db, &command("/app dump /data/x"), LIMIT)
            .await
            .expect_err("not running");
        assert_eq!(
            err.to_string(),
            format!(
                "stack {name:?}: hook \"/app\" in service \"db\" (container {}): the container is not running (exited)",
                db.name
            )
        );

        docker(&["rm", "-f", &db.id]);
        let err = stacks
            .run_hook(&name, &db, &command("/app dump /data/x"), LIMIT)
            .await
            .expect_err("gone");
        assert!(
            matches!(&err, HookError::NotRunning { status, .. } if status == "gone"),
            "{err}"
        );
    });
}

#[test]
fn a_hooks_output_is_bounded_to_its_last_4_kib() {
    let mut root = Root::new(Tool::V2);
    let name = root.name("hooklines");
    db_stack(&mut root, &name, "");
    let stacks = root.stacks();
    block_on(LIMIT, async {
        let run = run(&stacks, &name, "/app lines 20000", LIMIT)
            .await
            .expect("the hook ran");
        assert!(run.succeeded(), "{run:?}");
        assert!(
            run.output.len() <= HOOK_OUTPUT_LIMIT,
            "{}",
            run.output.len()
        );
        assert!(
            run.output.len() > HOOK_OUTPUT_LIMIT - 20,
            "{}",
            run.output.len()
        );
        assert!(
            run.output.ends_with("line 19999\nline 20000\n"),
            "{:?}",
            &run.output[run.output.len() - 40..]
        );
    });
}

/// The newer engine (Docker 26) runs and kills hooks alike.
#[test]
fn hooks_on_the_newer_engine() {
    let Some(host) = support::newer_engine() else {
        return;
    };
    let image = hooks_image();
    let on = |args: &[&str]| {
        let mut c = Command::new("docker");
        c.args(args).env("DOCKER_HOST", &host);
        support::run(c, &format!("docker {} on the newer engine", args.join(" ")))
    };
    let name = format!("fst-newerhook-{}", std::process::id());
    let id = on(&[
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        &format!("com.docker.compose.project={name}"),
        "--label",
        "com.docker.compose.service=db",
        image,
        "serve",
    ])
    .trim()
    .to_owned();
    let _removed = RemoveOnDrop {
        host: host.clone(),
        id: id.clone(),
    };
    let root = tempfile::tempdir().expect("tempdir");
    let stacks = EngineStacks::new(felhom_stacks::StacksConfig {
        root: root.path().to_path_buf(),
        ..felhom_stacks::StacksConfig::default()
    })
    .expect("valid")
    .with_docker_host(host.clone());
    let db = ContainerRef {
        id: id.clone(),
        name: String::new(),
        service: "db".to_owned(),
    };
    block_on(LIMIT, async {
        let run = stacks
            .run_hook(&name, &db, &command("/app exit 3 on 26"), LIMIT)
            .await
            .expect("ran");
        assert_eq!(run.exit_code, Some(3), "{run:?}");
        assert!(run.output.contains("on 26"), "{run:?}");
        let run = stacks
            .run_hook(
                &name,
                &db,
                &command("/app hang --children 1"),
                Duration::from_secs(1),
            )
            .await
            .expect("ran");
        assert!(run.timed_out, "{run:?}");
    });
    assert_eq!(live_processes(&id, "hang"), Vec::<String>::new());
}

struct RemoveOnDrop {
    host: String,
    id: String,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let mut c = Command::new("docker");
        c.args(["rm", "-f", &self.id])
            .env("DOCKER_HOST", &self.host);
        if let Err(e) = process::checked(&mut c, Duration::from_secs(60)) {
            eprintln!("removing {} failed: {e}", self.id);
        }
    }
}
