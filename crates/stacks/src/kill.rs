//! Killing a hook that outlived its timeout. The engine has no "kill exec" call; it reports the
//! exec's pid (`ExecInspect.Pid`), a pid of the engine's pid namespace — this guest's, where
//! the controller runs beside dockerd. Before a signal goes to that pid, `/proc` must show it in
//! the container's cgroup: a pid of another namespace (an engine elsewhere) or one reused by
//! another process since is never signalled.
//!
//! The engine starts an exec's process as the leader of its own session and process group
//! (runc), so the whole group is killed: a `sh -c '…'` hook's children with it.

use std::io;

use rustix::process::{kill_process, kill_process_group, Pid, Signal};

/// What became of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Killed {
    /// SIGKILL was sent to its process group (it leads one) or to it alone.
    Sent,
    /// It had already ended.
    Gone,
}

/// Sends SIGKILL to the exec process `pid` of container `container_id` (its full id), and to
/// its process group where it leads one. `Err` says why nothing was sent.
pub(crate) fn kill_exec(pid: i64, container_id: &str) -> Result<Killed, String> {
    kill_in(&std::path::PathBuf::from("/proc"), pid, container_id)
}

fn kill_in(proc: &std::path::Path, pid: i64, container_id: &str) -> Result<Killed, String> {
    let Some(target) = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .and_then(Pid::from_raw)
    else {
        return Err(format!("the engine reported no usable pid ({pid})"));
    };
    let dir = proc.join(pid.to_string());
    let cgroup = match std::fs::read_to_string(dir.join("cgroup")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Killed::Gone),
        Err(e) => return Err(format!("cannot read /proc/{pid}/cgroup: {e}")),
    };
    if container_id.len() < 12 || !cgroup.contains(container_id) {
        return Err(format!(
            "process {pid} is not in the container's cgroup as this process sees /proc \
             (does the engine run in another pid namespace?): not signalled"
        ));
    }
    let stat = match std::fs::read_to_string(dir.join("stat")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Killed::Gone),
        Err(e) => return Err(format!("cannot read /proc/{pid}/stat: {e}")),
    };
    let leads_group = process_group(&stat) == Some(pid);
    let sent = if leads_group {
        kill_process_group(target, Signal::KILL)
    } else {
        kill_process(target, Signal::KILL)
    };
    match sent {
        Ok(()) => Ok(Killed::Sent),
        Err(rustix::io::Errno::SRCH) => Ok(Killed::Gone),
        Err(rustix::io::Errno::PERM) => Err(format!(
            "SIGKILL to {} {pid} not permitted: a process of another user needs CAP_KILL \
             (docs/decisions.md)",
            if leads_group {
                "process group"
            } else {
                "process"
            }
        )),
        Err(e) => Err(format!("SIGKILL to {pid}: {e}")),
    }
}

/// The process group of a `/proc/<pid>/stat` line: the fifth field, counted after the command
/// name in parentheses (which may itself hold blanks and parentheses).
fn process_group(stat: &str) -> Option<i64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // state, ppid, pgrp
    after_name.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_group_is_read_past_any_command_name() {
        assert_eq!(
            process_group("15166 (app) S 14122 15166 15166 0 -1 4194560"),
            Some(15166)
        );
        assert_eq!(
            process_group("42 (a) b (c)) R 1 40 40 0"),
            Some(40),
            "a name with blanks and parentheses"
        );
        assert_eq!(process_group("garbage"), None);
    }

    /// A fake /proc: a process that is not in the container's cgroup is never signalled, and
    /// one that is gone is reported gone. (The real kill is tested on the engine, in
    /// `tests/hooks.rs`.)
    #[test]
    fn a_pid_outside_the_container_is_never_signalled() {
        let proc = tempfile::tempdir().expect("a fake /proc");
        let id = "2f7150d508484710d431a9b339bfeff909ce965476336c89b47c68c182a323dd";
        // Our own pid, in a cgroup that is not the container's: were it signalled, this test
        // would die.
        let own = std::process::id();
        let dir = proc.path().join(own.to_string());
        std::fs::create_dir(&dir).expect("dir");
        std::fs::write(dir.join("cgroup"), "0::/user.slice/session-1.scope\n").expect("cgroup");
        std::fs::write(dir.join("stat"), format!("{own} (x) S 1 {own} {own} 0")).expect("stat");
        let err = kill_in(proc.path(), i64::from(own), id).expect_err("refused");
        assert!(err.contains("not in the container's cgroup"), "{err}");
        // A short id matches too much: refused.
        std::fs::write(dir.join("cgroup"), format!("0::/docker/{id}\n")).expect("cgroup");
        let err = kill_in(proc.path(), i64::from(own), "2f71").expect_err("refused");
        assert!(err.contains("not in the container's cgroup"), "{err}");
        for bad in [0, -1, i64::MAX] {
            let err = kill_in(proc.path(), bad, id).expect_err("no pid");
            assert!(err.contains("no usable pid"), "{err}");
        }
        assert_eq!(kill_in(proc.path(), 4_000_000, id), Ok(Killed::Gone));
    }
}
