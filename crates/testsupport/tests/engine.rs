//! The engine helpers against the real engine: a container is found by its compose labels
//! and read back as the engine says.

use std::process::Command;
use std::time::Duration;

use felhom_testsupport::engine::{container, container_ids, ensure_image, IMAGE};
use felhom_testsupport::process;

const BOUND: Duration = Duration::from_secs(60);

/// Containers made for one test, removed when dropped (even when the test fails).
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let mut rm = Command::new("docker");
            rm.args(["rm", "-f"]).args(&self.0);
            let _ = process::run(&mut rm, BOUND);
        }
    }
}

fn create(made: &mut Made, project: &str, service: &str) -> String {
    let mut cmd = Command::new("docker");
    cmd.args(["create", "--label"])
        .arg(format!("com.docker.compose.project={project}"))
        .arg("--label")
        .arg(format!("com.docker.compose.service={service}"))
        .arg(IMAGE);
    let id = process::checked(&mut cmd, BOUND)
        .expect("docker create works")
        .trim()
        .to_owned();
    made.0.push(id.clone());
    id
}

#[test]
fn a_compose_container_is_found_by_its_labels_and_read_back() {
    ensure_image().expect("the engine and the test image are there");
    let project = format!("tsengine{}", std::process::id());
    let mut made = Made(Vec::new());
    let app = create(&mut made, &project, "app");

    let state = container(&project, Some("app")).expect("one container of app");
    assert_eq!(state.id, app);
    assert!(!state.running, "created, not started");
    assert_eq!(state.status, "created");
    assert_eq!(state.health, "", "no health check");
    assert_eq!(
        container(&project, None).expect("the project's one container"),
        state
    );

    let err = container(&project, Some("db")).expect_err("no db container");
    assert!(err.contains(&format!("{project}/db")), "{err}");

    let db = create(&mut made, &project, "db");
    let mut ids = container_ids(&project, None).expect("lists");
    ids.sort();
    let mut expected = vec![app, db];
    expected.sort();
    assert_eq!(ids, expected);
    let err = container(&project, None).expect_err("two containers are not one");
    assert!(err.contains("exactly one"), "{err}");
}
