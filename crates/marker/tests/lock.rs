//! The single-flight lock within one process. The two-process tests (a holder killed with
//! SIGKILL) are in `lock_processes.rs`.

mod common;

use felhom_marker::{LockError, StateDir, StateLock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn our_pid() -> String {
    std::process::id().to_string()
}

#[test]
fn a_second_taker_in_the_same_process_is_refused_with_our_pid() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let first = StateLock::acquire(&state).expect("the lock is free");

    let err = StateLock::acquire(&state).expect_err("the lock is taken");
    match &err {
        LockError::Held { path, pid } => {
            assert_eq!(path, &tmp.path().join("lock"));
            assert_eq!(pid, &our_pid());
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&our_pid()), "{message}");
    assert!(
        message.contains(&*tmp.path().to_string_lossy()),
        "{message}"
    );

    // A second StateDir on the same directory is no way around it.
    let other = StateDir::open(tmp.path()).expect("the state dir opens again");
    assert!(matches!(
        StateLock::acquire(&other),
        Err(LockError::Held { .. })
    ));

    drop(first);
    let _again = StateLock::acquire(&state).expect("a dropped lock is free");
}

#[test]
fn the_holder_is_reported_without_taking_the_lock() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    assert_eq!(
        StateLock::holder(&state).expect("probes"),
        None,
        "no lock file yet"
    );

    let lock = StateLock::acquire(&state).expect("the lock is free");
    assert_eq!(StateLock::holder(&state).expect("probes"), Some(our_pid()));
    assert_eq!(
        StateLock::holder(&state).expect("probes"),
        Some(our_pid()),
        "a probe leaves the lock held"
    );
    drop(lock);
    assert_eq!(StateLock::holder(&state).expect("probes"), None);
    let _lock = StateLock::acquire(&state).expect("a probe leaves the lock free");
}

#[test]
fn a_stale_pid_is_replaced_by_the_new_holder() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("lock");
    // Longer than any pid, so that a write without truncation would leave a tail.
    std::fs::write(&path, b"4194304\nleft by a dead process\n").expect("a stale lock file");
    assert_eq!(
        StateLock::holder(&state).expect("probes"),
        None,
        "a pid in an unlocked file is not a holder"
    );
    let _lock = StateLock::acquire(&state).expect("an unlocked lock file is free");
    assert_eq!(
        std::fs::read_to_string(&path).expect("the lock file reads"),
        format!("{}\n", our_pid())
    );
}

#[test]
fn a_holder_whose_pid_is_unreadable_is_still_refused() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let _lock = StateLock::acquire(&state).expect("the lock is free");
    std::fs::write(tmp.path().join("lock"), b"garbage").expect("the pid is overwritten");
    match StateLock::acquire(&state) {
        Err(LockError::Held { pid, .. }) => assert_eq!(pid, "unknown"),
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(
        StateLock::holder(&state).expect("probes"),
        Some("unknown".to_owned())
    );
}

#[test]
fn status_probes_do_not_make_a_cycle_fail() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let stop = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicU64::new(0));
    let prober = {
        let state = state.clone();
        let stop = Arc::clone(&stop);
        let probes = Arc::clone(&probes);
        std::thread::spawn(move || {
            // Bounded even if the main thread dies without setting `stop`.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                StateLock::holder(&state).expect("probes");
                probes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while probes.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the prober never started");
        std::thread::yield_now();
    }
    let before = probes.load(Ordering::Relaxed);
    // At least 200 takers, and on until the prober has really run alongside them (on a loaded
    // machine the scheduler may not interleave the two threads during the first 200).
    let mut outcome = Ok(());
    let mut takers = 0u32;
    while outcome.is_ok()
        && (takers < 200 || probes.load(Ordering::Relaxed) - before < 20)
        && Instant::now() < deadline
    {
        outcome = StateLock::acquire(&state).map(drop);
        takers += 1;
    }
    let during = probes.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    prober.join().expect("the prober ends");
    if let Err(e) = outcome {
        panic!("a probe made a taker fail: {e}");
    }
    assert!(
        during > 0,
        "the prober ran while the lock was taken and dropped"
    );
}
