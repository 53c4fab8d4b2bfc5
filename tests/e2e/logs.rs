//! Logs (SPEC §7): every line of a cycle, the stacks manager's included, carries the cycle's
//! id in its `cycle` span, so that one cycle can be found in journald or Loki.

use felhom_e2e::{run_controller, AgentProcess, Env};

use crate::running_apps;

#[test]
fn every_line_of_a_cycle_carries_its_id() {
    let mut env = Env::new("lgs");
    let (_apps, _before) = running_apps(&mut env);
    let agent = AgentProcess::spawn(&env, &[]);
    let config = env.config(&agent.access()).write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(0), "{once}");
    let id = once.record().cycle_id;
    let logs = once.logs();
    let first = logs
        .iter()
        .position(|l| l.message == "cycle started: marker written")
        .unwrap_or_else(|| panic!("no start line: {once}"));
    let last = logs
        .iter()
        .position(|l| l.message == "cycle finished")
        .unwrap_or_else(|| panic!("no end line: {once}"));
    let cycle = &logs[first..=last];
    for line in cycle {
        let in_span = line.spans().iter().any(|s| {
            s.get("name").and_then(|n| n.as_str()) == Some("cycle")
                && s.get("cycle").and_then(|c| c.as_str()) == Some(id.as_str())
        });
        assert!(in_span, "a line of cycle {id} without its id: {}", line.raw);
    }
    assert!(
        cycle
            .iter()
            .any(|l| l.raw.contains("\"target\":\"felhom_stacks")),
        "the stacks manager's lines are among them: {once}"
    );
}
