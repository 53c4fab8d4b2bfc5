//! `felhom-testapp`: the app inside the test containers of felhom-controller.
//!
//! It stands in for a customer's app (a database, say) so that tests and demos can see whether
//! the controller shut it down cleanly, and it is built as a static binary so that its image
//! is `FROM scratch` and needs no registry (see `scripts/build-test-image.sh`).
//!
//! ```text
//! felhom-testapp serve [--data DIR] [--healthy-after DUR] [--never-healthy]
//!                      [--health-file PATH] [--stop-delay DUR] [--crash-after DUR]
//! felhom-testapp health [--health-file PATH]
//! felhom-testapp oneshot
//! felhom-testapp crash
//! felhom-testapp dump FILE
//! felhom-testapp exit CODE [WORD...]
//! felhom-testapp lines N
//! felhom-testapp hang [--children N]
//! ```
//!
//! `serve` runs until SIGTERM or SIGINT. With `--data DIR` it keeps a `running` flag file in DIR
//! while it runs and a `counter` file that it rewrites every 100 ms; a flag already present at
//! start means the previous run did not shut down cleanly, and the app says so, like
//! PostgreSQL's `redo starts`. It writes the health file once `--healthy-after` (default 0s)
//! has passed, unless `--never-healthy`; `health` exits 0 iff that file exists (for a compose
//! `healthcheck`). `--stop-delay` makes the shutdown take that long (to make stop order
//! visible, or to stand in for a database's slow clean shutdown). `--crash-after` makes it
//! exit 2 that long after its start, uncleanly (an app that dies soon after a resume).
//! `oneshot` exits 0 at once, `crash` logs `fatal: boom` and exits 1.
//!
//! The rest stand in for the hooks an app's author runs in a container (`felhom.pre-snapshot`,
//! `felhom.post-resume`), since a `FROM scratch` image has no shell: `dump` writes a dump file
//! (`dump <timestamp>`, as `pg_dumpall > FILE` would) and says so; `exit` prints its words on
//! stdout and `exiting with CODE` on stderr, and exits CODE; `lines` prints `line 1` to
//! `line N`; `hang` prints `hanging` and never ends, after starting `--children` copies of
//! itself that hang too (a hook's whole process group must be killed).
//!
//! Every log line starts with an RFC 3339 UTC timestamp with milliseconds (benchmarks read
//! them); with `--data` the lines are also appended to `DIR/log`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEFAULT_HEALTH_FILE: &str = "/tmp/healthy";
const COUNTER_INTERVAL: Duration = Duration::from_millis(100);
/// How often the serve loop looks at the signal flag: short, so that a stop is quick.
const TICK: Duration = Duration::from_millis(20);

const USAGE: &str =
    "usage: felhom-testapp serve [--data DIR] [--healthy-after DUR] [--never-healthy] \
[--health-file PATH] [--stop-delay DUR] [--crash-after DUR] | health [--health-file PATH] | oneshot | crash \
| dump FILE | exit CODE [WORD...] | lines N | hang [--children N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => ServeOptions::parse(&args[1..]).and_then(|opts| serve(&opts)),
        Some("health") => return health(&args[1..]),
        Some("oneshot") => {
            log(None, "oneshot done");
            Ok(())
        }
        Some("crash") => {
            log_stderr("fatal: boom");
            return ExitCode::from(1);
        }
        Some("dump") => dump(&args[1..]),
        Some("exit") => return exit_with(&args[1..]),
        Some("lines") => lines(&args[1..]),
        Some("hang") => hang(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log_stderr(&format!("error: {message}"));
            ExitCode::from(2)
        }
    }
}

#[derive(Debug)]
struct ServeOptions {
    data: Option<PathBuf>,
    healthy_after: Duration,
    never_healthy: bool,
    health_file: PathBuf,
    stop_delay: Duration,
    crash_after: Option<Duration>,
}

impl ServeOptions {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = ServeOptions {
            data: None,
            healthy_after: Duration::ZERO,
            never_healthy: false,
            health_file: PathBuf::from(DEFAULT_HEALTH_FILE),
            stop_delay: Duration::ZERO,
            crash_after: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--data" => opts.data = Some(PathBuf::from(value()?)),
                "--healthy-after" => opts.healthy_after = parse_duration(value()?)?,
                "--never-healthy" => opts.never_healthy = true,
                "--health-file" => opts.health_file = PathBuf::from(value()?),
                "--stop-delay" => opts.stop_delay = parse_duration(value()?)?,
                "--crash-after" => opts.crash_after = Some(parse_duration(value()?)?),
                other => return Err(format!("unknown option {other:?}; {USAGE}")),
            }
        }
        Ok(opts)
    }
}

fn serve(opts: &ServeOptions) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }

    // A restarted container keeps its filesystem: a health file from the previous run must not
    // make this run look healthy before it is.
    remove_if_present(&opts.health_file)?;

    let data = opts.data.as_deref();
    if let Some(dir) = data {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let flag = dir.join("running");
        if flag.exists() {
            log(data, "recovering after an unclean shutdown");
        } else {
            log(data, "clean start");
        }
        fs::write(&flag, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write {}: {e}", flag.display()))?;
    } else {
        log(None, "clean start");
    }

    let started = Instant::now();
    let mut healthy = false;
    let mut counter: u64 = 0;
    let mut next_count = started;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Some(after) = opts.crash_after {
            if now.duration_since(started) >= after {
                // No cleanup: the running flag stays, as after a real crash.
                return Err(format!("fatal: crashed {after:?} after the start"));
            }
        }
        if !healthy && !opts.never_healthy && now.duration_since(started) >= opts.healthy_after {
            write_health_file(&opts.health_file)?;
            healthy = true;
            log(data, "healthy");
        }
        if now >= next_count {
            counter += 1;
            if let Some(dir) = data {
                let path = dir.join("counter");
                fs::write(&path, format!("{counter}\n"))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            next_count += COUNTER_INTERVAL;
        }
        thread::sleep(TICK);
    }

    log(data, "stopping");
    thread::sleep(opts.stop_delay);
    remove_if_present(&opts.health_file)?;
    if let Some(dir) = data {
        remove_if_present(&dir.join("running"))?;
    }
    log(data, "shut down cleanly");
    Ok(())
}

fn health(args: &[String]) -> ExitCode {
    let path = match args {
        [] => PathBuf::from(DEFAULT_HEALTH_FILE),
        [flag, path] if flag == "--health-file" => PathBuf::from(path),
        _ => {
            log_stderr(USAGE);
            return ExitCode::from(2);
        }
    };
    if path.exists() {
        ExitCode::SUCCESS
    } else {
        println!("not healthy: {} is missing", path.display());
        ExitCode::from(1)
    }
}

/// `dump FILE`: a dump of the "database", as a pre-snapshot hook makes one.
fn dump(args: &[String]) -> Result<(), String> {
    let [file] = args else {
        return Err(USAGE.to_owned());
    };
    fs::write(file, format!("dump {}\n", rfc3339_now()))
        .map_err(|e| format!("cannot write {file}: {e}"))?;
    println!("dumped to {file}");
    Ok(())
}

/// `exit CODE [WORD...]`: a hook that fails, with something to say on both streams.
fn exit_with(args: &[String]) -> ExitCode {
    let Some(code) = args.first().and_then(|c| c.parse::<u8>().ok()) else {
        log_stderr(USAGE);
        return ExitCode::from(2);
    };
    println!("{}", args[1..].join(" "));
    eprintln!("exiting with {code}");
    ExitCode::from(code)
}

/// `lines N`: more output than a hook's record keeps.
fn lines(args: &[String]) -> Result<(), String> {
    let count: u64 = match args {
        [n] => n.parse().map_err(|_| format!("bad count {n:?}"))?,
        _ => return Err(USAGE.to_owned()),
    };
    let mut out = std::io::stdout().lock();
    for n in 1..=count {
        writeln!(out, "line {n}").map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(())
}

/// `hang [--children N]`: a hook that never ends, with children in its process group.
fn hang(args: &[String]) -> Result<(), String> {
    let children: u32 = match args {
        [] => 0,
        [flag, n] if flag == "--children" => n.parse().map_err(|_| format!("bad count {n:?}"))?,
        _ => return Err(USAGE.to_owned()),
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    for _ in 0..children {
        std::process::Command::new(&exe)
            .arg("hang")
            .spawn()
            .map_err(|e| format!("cannot start a child: {e}"))?;
    }
    println!("hanging");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("stdout: {e}"))?;
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

fn write_health_file(path: &Path) -> Result<(), String> {
    // A `FROM scratch` image has no /tmp.
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    fs::write(path, "ok\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// Logs to stdout and, with a data directory, appends to `DIR/log`.
fn log(data: Option<&Path>, message: &str) {
    let line = format!("{} {message}", rfc3339_now());
    println!("{line}");
    if let Some(dir) = data {
        let path = dir.join("log");
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(e) = appended {
            eprintln!("{} cannot append to {}: {e}", rfc3339_now(), path.display());
        }
    }
}

fn log_stderr(message: &str) {
    eprintln!("{} {message}", rfc3339_now());
}

/// `500ms`, `2s`, `1m` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {text:?} (e.g. 500ms, 2s, 1m)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(bad()),
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339_now() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    rfc3339(since_epoch)
}

fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm,
/// restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.123Z, a leap day.
        assert_eq!(
            rfc3339(Duration::from_millis(1_709_251_199_123)),
            "2024-02-29T23:59:59.123Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(951_868_800)),
            "2000-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn serve_refuses_unknown_options() {
        let err = ServeOptions::parse(&["--bogus".to_owned()]).expect_err("unknown option");
        assert!(err.contains("--bogus"), "{err}");
        let err = ServeOptions::parse(&["--data".to_owned()]).expect_err("missing value");
        assert!(err.contains("--data needs a value"), "{err}");
    }
}
