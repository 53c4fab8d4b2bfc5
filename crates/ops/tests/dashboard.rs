//! The fleet dashboard (`deploy/grafana/felhom-fleet.json`, issue 23) uses only what
//! `/metrics` exports: every `felhom_*` metric its queries name is in [`Metrics::encode`]'s
//! text (a counter as `_total`, a histogram as `_bucket`/`_sum`/`_count`, an info as
//! `_info`), every panel and query takes its datasource from the dashboard's variable, and
//! the package ships it beside the alert rules.

use felhom_ops::Metrics;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dashboard() -> Value {
    let path = repo().join("deploy/grafana/felhom-fleet.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names a query can use of what `/metrics` exports.
fn exported() -> BTreeSet<String> {
    let text = Metrics::new(Duration::from_secs(1800)).encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `felhom_*` word of `query`.
fn metrics_in(query: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("felhom_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        found.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    found
}

/// Every query of the dashboard: each target's `expr` and each variable's query.
fn queries(dash: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push(target["expr"].as_str().expect("an expr").to_owned());
        }
    }
    for var in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = var["query"]["query"].as_str() {
            out.push(q.to_owned());
        }
    }
    out
}

#[test]
fn every_metric_the_dashboard_queries_is_exported_by_metrics() {
    let exported = exported();
    assert!(exported.contains("felhom_cycles_total"), "{exported:?}");
    let dash = dashboard();
    let mut used = BTreeSet::new();
    for query in queries(&dash) {
        let names = metrics_in(&query);
        assert!(!names.is_empty(), "a query of no felhom metric: {query}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {query:?}) is not exported by /metrics: {exported:?}"
            );
            used.insert(name);
        }
    }
    // What the issue asks of it, per guest.
    for needed in [
        "felhom_last_success_timestamp_seconds",
        "felhom_stack_capture",
        "felhom_stranded_stacks",
        "felhom_stack_last_downtime_seconds",
        "felhom_engine_reachable",
    ] {
        assert!(used.contains(needed), "the dashboard shows no {needed}");
    }
}

#[test]
fn the_datasource_is_a_variable_and_every_panel_and_query_takes_it() {
    let dash = dashboard();
    let vars = dash["templating"]["list"].as_array().expect("variables");
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus");
    let name = ds["name"].as_str().expect("named");
    let uid = format!("${{{name}}}");
    let guest = vars
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("a guest variable");
    assert_eq!(guest["datasource"]["uid"], uid.as_str());
    for panel in dash["panels"].as_array().expect("panels") {
        assert_eq!(
            panel["datasource"]["uid"],
            uid.as_str(),
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(
                target["datasource"]["uid"],
                uid.as_str(),
                "{}",
                panel["title"]
            );
            let expr = target["expr"].as_str().expect("an expr");
            assert!(
                expr.contains("instance=~\"$instance\""),
                "every query is per the guests chosen: {expr}"
            );
        }
    }
    // No datasource of one Grafana's: nothing names a fixed uid.
    let text = dash.to_string();
    assert!(!text.contains("__inputs\":[{"), "no import-time input");
}

#[test]
fn the_package_ships_the_dashboard_beside_the_alert_rules() {
    let manifest = std::fs::read_to_string(repo().join("bins/felhom-controller/Cargo.toml"))
        .expect("the binary's manifest");
    assert!(
        manifest.contains(
            r#"["../../deploy/grafana/felhom-fleet.json", "usr/share/felhom-controller/", "644"]"#
        ),
        "the deb's assets ship the dashboard"
    );
    let package = std::fs::read_to_string(repo().join("scripts/package.sh")).expect("package.sh");
    assert!(package.contains("./usr/share/felhom-controller/felhom-fleet.json"));
}

#[test]
fn the_metric_scanner_finds_each_name_once_per_use() {
    assert_eq!(
        metrics_in("time() - (felhom_a_b{x=\"y\"} > 0) / felhom_c"),
        ["felhom_a_b", "felhom_c"]
    );
    assert!(metrics_in("up").is_empty());
}
