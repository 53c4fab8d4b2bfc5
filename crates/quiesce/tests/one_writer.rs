//! The quiesce crate's architecture invariant (docs/architecture.md): the marker changes in one
//! function. The marker store's `save` and `clear` are called in the writer's `put_on_disk`
//! only; what it writes is handed over by the driver's `apply` only, which is the one caller of
//! `Cycle::apply`. A second writer — a step saving the marker itself, a "quick fix" clearing it
//! from the daemon — fails this test rather than slipping in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where each call of `pattern` stands in `source`, as the function around it; a call in the
/// file's tests (after `#[cfg(test)]`) does not count.
fn callers(source: &str, pattern: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let lines: Vec<&str> = source
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        if !code.contains(pattern)
            || code.contains(&format!("fn {}", pattern.trim_matches(['.', '('])))
        {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let around = lines[..i].iter().rev().find_map(|l| {
            let l_indent = l.len() - l.trim_start().len();
            let name = l.split("fn ").nth(1)?;
            (l_indent < indent && !l.trim_start().starts_with("//"))
                .then(|| name.split(['(', '<']).next().unwrap_or_default().to_owned())
        });
        found.insert(around.unwrap_or_else(|| "(outside any function)".to_owned()));
    }
    found
}

/// Every `.rs` file under `dir`, but the unit-test files (`tests.rs`).
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the source directory reads") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            all.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            all.push(path);
        }
    }
    all
}

/// `file:function` for each call of `pattern` in the crate's sources.
fn calls_of(pattern: &str) -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeSet::new();
    for path in sources(&src) {
        let text = std::fs::read_to_string(&path).expect("a source file reads");
        let file = path
            .strip_prefix(&src)
            .expect("under src")
            .display()
            .to_string();
        for function in callers(&text, pattern) {
            found.insert(format!("{file}:{function}"));
        }
    }
    found
}

#[test]
fn the_marker_is_written_in_one_function() {
    let writes: BTreeSet<String> = calls_of(".save(")
        .union(&calls_of(".clear("))
        .cloned()
        .collect();
    assert_eq!(
        writes.into_iter().collect::<Vec<_>>(),
        ["writer.rs:put_on_disk"],
        "the marker store is written only by the marker writer"
    );
}

#[test]
fn what_the_writer_writes_comes_from_the_drivers_apply_only() {
    assert_eq!(
        calls_of(".hand_over(").into_iter().collect::<Vec<_>>(),
        ["driver.rs:apply"],
        "states reach the writer only through the driver's apply"
    );
    assert_eq!(
        calls_of("cycle.apply(").into_iter().collect::<Vec<_>>(),
        ["driver.rs:apply"],
        "the cycle changes only through the driver's apply"
    );
}

/// The scanner itself: a second writer is found, a call in a file's tests is not.
#[test]
fn a_second_writer_would_be_found() {
    let source = r#"
async fn put_on_disk(store: Store) {
    store.save(&marker);
}

impl Step {
    fn quick_fix(&self) {
        if done {
            self.marker.clear(); // the marker is gone
        }
    }
}

#[cfg(test)]
mod tests {
    fn in_a_test() {
        state.save(&marker);
    }
}
"#;
    let mut found = callers(source, ".save(");
    found.extend(callers(source, ".clear("));
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["put_on_disk", "quick_fix"]
    );
}
