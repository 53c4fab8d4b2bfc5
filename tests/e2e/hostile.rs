//! The guest around the controller misbehaves (issue 19), on real containers: the apps come
//! back first; the controller may refuse new cycles, never leave an app down over its state.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use felhom_devagent::EventKind;
use felhom_e2e::{run_controller, Agent, Controller, Env};

use crate::{assert_run_again, running_apps};

/// Before: `run` exited at once on a state directory of any mode but 0700 ("… of mode 0770;
/// expected …"), systemd restarted it every 5 s, and both apps stayed down.
#[test]
fn a_state_dir_others_may_write_still_brings_the_apps_back_and_takes_no_backup() {
    let mut env = Env::new("mode");
    let (apps, before) = running_apps(&mut env);
    // What a controller killed mid-cycle leaves: both apps stopped, their marker.
    for name in &apps {
        env.stop(name);
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(env.state_dir())
        .expect("the state dir, 0700");
    let entries: Vec<String> = apps
        .iter()
        .map(|a| format!(r#"{{"name":"{a}","services":["app"],"restart_attempts":0}}"#))
        .collect();
    let marker = format!(
        r#"{{"version":1,"cycle_id":"c-died","phase":"backing_up","started_at":"{}","pid":999999,"stacks":[{}]}}"#,
        chrono::Utc::now().to_rfc3339(),
        entries.join(",")
    );
    std::fs::write(env.marker_path(), marker).expect("marker");
    // Then someone made it writable for a group.
    std::fs::set_permissions(env.state_dir(), std::fs::Permissions::from_mode(0o770))
        .expect("chmod");

    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();
    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("the start-up recovery is done");
    assert_run_again(&before, "recovered from a state dir of mode 0770");
    assert!(env.marker().is_none(), "the marker is cleared");
    run.wait_log_where("the refusal", |l| {
        l.message
            .contains("no new cycle starts until the state directory is fixed")
            && l.message.contains("of mode 0770 (writable by its group)")
    });
    run.terminate();
    let end = run.wait();
    assert_eq!(end.code, Some(0), "{end}");

    // A cycle now, due or not: refused, naming the directory; nothing stopped.
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "{once}");
    let said = once.to_string();
    assert!(
        said.contains("no new cycle starts") && said.contains(&*env.state_dir().to_string_lossy()),
        "{said}"
    );
    let posted = agent
        .events()
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Request { method, .. } if method == "POST"));
    assert!(!posted, "no backup was started: {:#?}", agent.events());
    assert_run_again(&before, "no cycle stopped them");
}
