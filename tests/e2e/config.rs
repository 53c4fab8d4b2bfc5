//! A bad configuration: exit 2, and the error names the key and the file.

use felhom_e2e::{run_controller, Finished};

/// `check` with a config file holding `text`.
fn check_with(text: &str) -> (tempfile::TempDir, std::path::PathBuf, Finished) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("controller.toml");
    std::fs::write(&file, text).expect("writing the config");
    let check = run_controller(&file, &["check"]);
    (dir, file, check)
}

#[test]
fn a_bad_value_names_the_key_and_the_file() {
    let (_dir, file, check) = check_with("[quiesce]\nmax_quiesce = \"soon\"\n");
    assert_eq!(check.code, Some(2), "{check}");
    assert!(check.stderr.contains("quiesce.max_quiesce"), "{check}");
    assert!(
        check.stderr.contains(&file.display().to_string()),
        "the file is named: {check}"
    );
}

#[test]
fn an_unknown_key_is_refused() {
    let (_dir, file, check) = check_with("[quiesce]\nmax_quiesse = \"10m\"\n");
    assert_eq!(check.code, Some(2), "{check}");
    assert!(check.stderr.contains("max_quiesse"), "{check}");
    assert!(
        check.stderr.contains(&file.display().to_string()),
        "the file is named: {check}"
    );
}

#[test]
fn a_missing_config_file_is_refused() {
    let missing = std::path::Path::new("/nonexistent/felhom/controller.toml");
    let check = run_controller(missing, &["check"]);
    assert_eq!(check.code, Some(2), "{check}");
    assert!(
        check.stderr.contains(&missing.display().to_string()),
        "{check}"
    );
}
