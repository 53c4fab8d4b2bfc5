//! The `[notify]` block of the shipped sample config (`deploy/controller.toml`), uncommented,
//! parses and says what SPEC §5 says: a sample that drifted from the code would mislead every
//! operator who copies it.

use felhom_notify::{EventKind, NotifyConfig};
use figment::providers::{Format, Toml};
use std::time::Duration;

#[test]
fn the_sample_notify_section_uncommented_parses_with_the_documented_values() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/controller.toml");
    let sample = std::fs::read_to_string(path).expect("deploy/controller.toml is readable");
    let start = sample
        .find("#[notify]")
        .expect("the sample has a commented [notify] section");
    // Uncomment the section's lines; the continuation comments (`#   …`) stay comments.
    let section: String = sample[start..]
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.starts_with(' ') => format!("{rest}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let config: NotifyConfig = figment::Figment::from(Toml::string(&section))
        .extract_inner("notify")
        .unwrap_or_else(|e| panic!("the sample's [notify] does not parse: {e}\n{section}"));
    assert_eq!(
        config.webhook.map(|e| e.to_string()).as_deref(),
        Some("https://hooks.example.net/…")
    );
    assert!(config.ntfy.is_some() && config.ping.is_some());
    assert_eq!(config.events, NotifyConfig::default().events);
    assert_eq!(
        config.events,
        [
            EventKind::Failed,
            EventKind::Stranded,
            EventKind::Inconsistent,
            EventKind::Recovered,
            EventKind::EngineUnreachable,
            EventKind::MarkerCorrupt
        ]
    );
    assert_eq!(config.timeout, Duration::from_secs(10));
    for key in ["WEBHOOK", "NTFY", "PING", "EVENTS", "TIMEOUT"] {
        assert!(
            sample.contains(&format!("FELHOM_NOTIFY__{key}")),
            "the sample names FELHOM_NOTIFY__{key}"
        );
    }
}
