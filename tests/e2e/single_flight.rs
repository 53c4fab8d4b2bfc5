//! Single flight across processes (SPEC §2 rule 4): while one `once` holds the stacks down, a
//! second one is refused and stops nothing.

use felhom_devagent::{EventKind, Fault};
use felhom_e2e::{container, run_controller, Agent, Controller, Env, StackSpec};
use felhom_marker::Outcome;

use crate::{assert_run_again, assert_untouched, states};

#[test]
fn a_second_once_is_refused_while_a_cycle_holds_the_stacks_down() {
    let mut env = Env::new("sfl");
    let apps = vec![
        env.deploy("notes", &StackSpec::app()),
        env.deploy("photos", &StackSpec::app()),
    ];
    // Deployed now, started only once the first cycle has its list: a second cycle that got
    // past the lock would find it running and stop it.
    let late = env.deploy("late", &StackSpec::app());
    for name in &apps {
        env.up(name);
    }
    let before = states(&apps);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();

    let mut first = Controller::spawn(&config, &["once", "--force"]);
    first.wait_log("backup started");
    env.up(&late);
    let late_before = container(&late);

    let second = run_controller(&config, &["once", "--force"]);
    assert_eq!(second.code, Some(1), "{second}");
    assert!(
        second.stderr.contains(&format!("pid {}", first.pid())),
        "the refusal names the holder's pid {}: {second}",
        first.pid()
    );
    assert_untouched(&late, &late_before, "the refused second cycle");
    for name in &apps {
        assert!(
            !container(name).running,
            "the refused second cycle started {name} under the first one's backup"
        );
    }

    agent.clear_faults();
    let first = first.wait();
    assert_eq!(first.code, Some(0), "{first}");
    let record = first.record();
    assert_eq!(record.outcome, Outcome::Done, "{first}");
    assert_eq!(
        record.stacks.iter().map(|s| &s.name).collect::<Vec<_>>(),
        apps.iter().collect::<Vec<_>>(),
        "{first}"
    );
    assert_run_again(&before, "after the first cycle");
    assert_untouched(&late, &late_before, "after the first cycle");
    let backups = agent
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::BackupRequested { .. }))
        .count();
    assert_eq!(backups, 1, "{:#?}", agent.events());
}
