//! Compose `stop` commands still running for a stack, e.g. left behind by a controller that
//! was killed (`kill -9` of the controller alone does not kill its children).
//!
//! Why it matters: crash recovery starts the stacks named in the marker. If the dead
//! controller's `docker compose stop` for one of them is still running, it can finish *after*
//! recovery started the stack and leave it down with the marker already cleared — the one
//! outcome the controller exists to prevent. So before a start, wait until no other process is
//! stopping the same project.

use std::path::Path;
use std::time::{Duration, Instant};

/// How often the process table is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The pids and command lines of the processes, other than this one, that run a compose
/// `stop` of `stack` (`docker compose … -p <stack> … stop` or `docker-compose … -p <stack> …
/// stop`: the form the controller runs; an operator's own `stop` of the stack counts too).
pub(crate) fn stops_of(stack: &str) -> Vec<(u32, String)> {
    stops_in(Path::new("/proc"), stack)
}

fn stops_in(proc_root: &Path, stack: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process may exit between the listing and the read: skip it.
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if is_compose_stop_of(&args, stack) {
            found.push((pid, args.join(" ")));
        }
    }
    found
}

fn is_compose_stop_of(args: &[String], stack: &str) -> bool {
    let compose = args.iter().any(|a| {
        a == "compose"
            || Path::new(a)
                .file_name()
                .is_some_and(|f| f == "docker-compose")
    });
    let project = args
        .windows(2)
        .any(|w| (w[0] == "-p" || w[0] == "--project-name") && w[1] == stack)
        || args.iter().any(|a| {
            a.strip_prefix("--project-name=") == Some(stack) || a.strip_prefix("-p=") == Some(stack)
        });
    compose && project && args.iter().any(|a| a == "stop")
}

/// Waits, at most `bound`, until no other process runs a compose `stop` of `stack`. Returns
/// the command lines still running when the bound passed (empty when the way is clear).
pub(crate) async fn wait_for_stops(stack: &str, bound: Duration) -> Vec<String> {
    let deadline = Instant::now() + bound;
    let mut warned = false;
    loop {
        let stops = stops_of(stack);
        if stops.is_empty() {
            return Vec::new();
        }
        if Instant::now() >= deadline {
            return stops
                .into_iter()
                .map(|(pid, line)| format!("pid {pid}: {line}"))
                .collect();
        }
        if !warned {
            warned = true;
            tracing::warn!(
                stack,
                stops = ?stops,
                "another compose stop of this stack is still running (left by a killed process?): waiting for it before the start"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn recognises_the_controllers_own_stop_commands() {
        for line in [
            "docker compose -p app -f /s/app/compose.yaml stop -t 30",
            "/usr/libexec/docker/cli-plugins/docker-compose compose -p app -f x stop -t 30",
            "docker-compose -p app -f /s/app/docker-compose.yml stop -t 30",
            "/usr/bin/python3 /usr/bin/docker-compose --project-name app stop",
            "docker compose --project-name=app stop",
        ] {
            assert!(is_compose_stop_of(&args(line), "app"), "{line}");
        }
    }

    #[test]
    fn ignores_other_stacks_other_verbs_and_other_programs() {
        for line in [
            "docker compose -p app2 -f x stop",
            "docker compose -p app logs -f",
            "docker compose -p app start web",
            "docker stop app-web-1",
        ] {
            assert!(!is_compose_stop_of(&args(line), "app"), "{line}");
        }
    }

    /// A stand-in for an orphaned `docker compose -p <stack> stop` running `script`: bash
    /// stays alive (two commands) with those words as its arguments. Returns once it is seen.
    async fn stand_in(stack: &str, script: &str) -> std::process::Child {
        let child = std::process::Command::new("bash")
            .args(["-c", script, "compose", "-p", stack, "stop"])
            .spawn()
            .expect("spawn bash");
        // Until bash has exec'd, its /proc cmdline is still the forked test binary's.
        let seen_by = Instant::now() + Duration::from_secs(10);
        while stops_of(stack).is_empty() {
            assert!(Instant::now() < seen_by, "the stand-in is never seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child
    }

    #[tokio::test]
    async fn waits_until_a_stop_of_the_stack_is_over() {
        let stack = format!("orphan-{}", std::process::id());
        let mut orphan = stand_in(&stack, "sleep 1; true").await;
        let left = wait_for_stops(&stack, Duration::from_secs(30)).await;
        assert!(left.is_empty(), "{left:?}");
        // The wait ended because the stop was over, not before.
        let status = orphan.try_wait().expect("try_wait");
        let status = match status {
            Some(s) => s,
            // Exited but not yet reaped: /proc no longer lists a zombie's cmdline.
            None => orphan.wait().expect("wait"),
        };
        assert!(status.success());
    }

    #[tokio::test]
    async fn gives_up_at_the_bound_and_names_what_still_runs() {
        let stack = format!("stuck-{}", std::process::id());
        let mut orphan = stand_in(&stack, "sleep 30; true").await;
        let left = wait_for_stops(&stack, Duration::from_millis(300)).await;
        orphan.kill().expect("kill");
        let _ = orphan.wait();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(
            left[0].contains(&stack) && left[0].contains("stop"),
            "{left:?}"
        );
    }

    #[tokio::test]
    async fn a_clear_way_returns_at_once() {
        let left = wait_for_stops("nobody-stops-this-stack", Duration::from_secs(30)).await;
        assert!(left.is_empty());
    }
}
