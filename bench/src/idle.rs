//! The daemon at rest: `felhom-controller run` against an agent that never says due, its
//! resident memory (`VmRSS`) and the CPU it uses (`utime + stime` of `/proc/<pid>/stat`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::agent::AgentProcess;
use felhom_testsupport::process;

/// Time for the daemon to start, recover (nothing) and ask the agent once before measuring.
const WARM_UP: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What one idle daemon used.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Idle {
    /// `quiesce.due_poll_interval`.
    pub(crate) due_poll_ms: u64,
    /// How long CPU time was counted, after the warm-up.
    pub(crate) window_s: f64,
    /// The largest `VmRSS` seen during the window.
    pub(crate) rss_kib: u64,
    /// CPU time over the window, in percent of one core.
    pub(crate) cpu_percent: f64,
    /// The same in clock ticks (the kernel's resolution), and how long one tick is.
    pub(crate) cpu_ticks: u64,
    pub(crate) tick_ms: f64,
}

/// A daemon being watched.
struct Watched {
    child: Child,
    due_poll: Duration,
    ticks_at_start: u64,
    rss_kib: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        process::terminate(&mut self.child, crate::STOP_GRACE);
    }
}

/// Runs one daemon per poll interval, all at once, for `window` after a warm-up.
pub(crate) fn measure(
    controller: &Path,
    agent: &AgentProcess,
    dir: &Path,
    intervals: &[Duration],
    window: Duration,
) -> Result<Vec<Idle>> {
    let ticks_per_s = clock_ticks()?;
    let mut watched = Vec::new();
    for &due_poll in intervals {
        let run_dir = dir.join(format!("idle-{}ms", due_poll.as_millis()));
        watched.push(start_daemon(controller, agent, &run_dir, due_poll)?);
    }
    thread::sleep(WARM_UP);
    for w in &mut watched {
        w.ticks_at_start = cpu_ticks(w.child.id())?;
    }
    let begin = Instant::now();
    while begin.elapsed() < window {
        for w in &mut watched {
            if let Ok(Some(status)) = w.child.try_wait() {
                bail!(
                    "the idle daemon (due_poll_interval {:?}) exited: {status}",
                    w.due_poll
                );
            }
            w.rss_kib = w.rss_kib.max(rss_kib(w.child.id())?);
        }
        thread::sleep(SAMPLE_EVERY);
    }
    let elapsed = begin.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for w in &watched {
        let ticks = cpu_ticks(w.child.id())?.saturating_sub(w.ticks_at_start);
        results.push(Idle {
            due_poll_ms: u64::try_from(w.due_poll.as_millis()).unwrap_or(u64::MAX),
            window_s: elapsed,
            rss_kib: w.rss_kib,
            cpu_percent: ticks as f64 / ticks_per_s as f64 / elapsed * 100.0,
            cpu_ticks: ticks,
            tick_ms: 1000.0 / ticks_per_s as f64,
        });
    }
    Ok(results)
}

fn start_daemon(
    controller: &Path,
    agent: &AgentProcess,
    dir: &Path,
    due_poll: Duration,
) -> Result<Watched> {
    let stacks = dir.join("stacks");
    std::fs::create_dir_all(&stacks).with_context(|| format!("creating {}", stacks.display()))?;
    let config = dir.join("controller.toml");
    // The status endpoint stays on (as in production), on a free port.
    let toml = format!(
        "[agent]\nurl = {:?}\ntoken = {:?}\npin_sha256 = {:?}\n\n[stacks]\nroot = {:?}\n\n\
         [quiesce]\nstate_dir = {:?}\ndue_poll_interval = \"{}\"\n\n[status]\nlisten = \"127.0.0.1:0\"\n",
        agent.url,
        agent.token,
        agent.pin,
        stacks.display().to_string(),
        dir.join("state").display().to_string(),
        humantime::format_duration(due_poll),
    );
    std::fs::write(&config, toml).with_context(|| format!("writing {}", config.display()))?;
    let log_path = dir.join("controller.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(controller);
    cmd.arg("--config")
        .arg(&config)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", process::describe(&cmd)))?;
    Ok(Watched {
        child,
        due_poll,
        ticks_at_start: 0,
        rss_kib: 0,
    })
}

fn proc_file(pid: u32, name: &str) -> Result<(PathBuf, String)> {
    let path = PathBuf::from(format!("/proc/{pid}/{name}"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path, text))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let (path, text) = proc_file(pid, "status")?;
    parse_rss_kib(&text).with_context(|| format!("{}: no VmRSS line", path.display()))
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let (path, text) = proc_file(pid, "stat")?;
    parse_cpu_ticks(&text).with_context(|| format!("{}: unexpected format", path.display()))
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime + cutime + cstime`: the fields after the command name, which may itself
/// hold spaces and parentheses, so the text is split at the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14.
    (11..=14).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

fn clock_ticks() -> Result<u64> {
    let mut cmd = Command::new("getconf");
    cmd.arg("CLK_TCK");
    let text = process::checked(&mut cmd, Duration::from_secs(10))?;
    text.trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK printed {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_a_command_name_with_spaces() {
        let stat = "4242 (felhom (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    17 5 2 1 20 0 3 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(17 + 5 + 2 + 1));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_comes_from_the_vmrss_line() {
        let status = "Name:\tfelhom\nVmPeak:\t  9000 kB\nVmRSS:\t    6532 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(6532));
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_watched() {
        let pid = std::process::id();
        assert!(rss_kib(pid).expect("own status") > 0);
        cpu_ticks(pid).expect("own stat");
        assert!(clock_ticks().expect("getconf") > 0);
    }
}
