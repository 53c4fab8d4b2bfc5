//! The keys of the configuration, as the parser knows them, against what the operator reads:
//! `docs/configuration.md` and the sample `deploy/controller.toml`. Also the `[notify]`
//! section's parsing (felhom-notify's config inside ours).

use super::tests::{chain, file, jailed, load, strict};
use super::*;
use figment::providers::{Format, Toml};

/// The sections of the file and the keys of each, asked of the parser itself: an unknown key
/// makes serde list the known ones.
fn sections() -> Vec<(&'static str, Vec<&'static str>)> {
    expected(None)
        .into_iter()
        .map(|section| (section, expected(Some(section))))
        .collect()
}

fn expected(section: Option<&str>) -> Vec<&'static str> {
    let probe = match section {
        None => "zz_probe = 1".to_owned(),
        Some(s) => format!("[{s}]\nzz_probe = 1"),
    };
    let figment = Figment::from(Toml::string(&probe));
    // `[agent]` is read on its own (`AgentOnly`), the rest as the file's sections.
    let err = match section {
        Some("agent") => figment.extract::<AgentOnly>().err(),
        _ => figment.extract::<FileConfig>().err(),
    }
    .expect("an unknown key is refused");
    for e in err {
        if let figment::error::Kind::UnknownField(_, keys) = e.kind {
            return keys.to_vec();
        }
    }
    panic!("no unknown-field error for {section:?}")
}

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn every_key_is_in_the_configuration_docs_and_the_sample() {
    let docs = repo_file("docs/configuration.md");
    let sample = repo_file("deploy/controller.toml");
    let all = sections();
    let names: Vec<&str> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(names, ["agent", "stacks", "quiesce", "status", "notify"]);
    for (section, keys) in all {
        assert!(!keys.is_empty(), "{section}: {keys:?}");
        assert!(
            sample.contains(&format!("#[{section}]")),
            "deploy/controller.toml lacks [{section}]"
        );
        for key in keys {
            let env = format!("FELHOM_{}__{}", section.to_uppercase(), key.to_uppercase());
            assert!(
                docs.contains(&format!("`{section}.{key}`")) && docs.contains(&env),
                "docs/configuration.md lacks `{section}.{key}` or {env}"
            );
            assert!(
                sample.contains(&format!("\n#{key} = ")) && sample.contains(&env),
                "deploy/controller.toml lacks {section}.{key} or {env}"
            );
        }
    }
}

/// The sample with every setting uncommented; `token` stays commented (it is the alternative
/// to `token_file`, and the two together are refused).
fn uncommented_sample() -> String {
    repo_file("deploy/controller.toml")
        .lines()
        .map(|line| {
            let setting = line.strip_prefix('#').filter(|rest| {
                let is_section = rest.starts_with('[');
                let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                (is_section || is_key) && !rest.starts_with("token = ")
            });
            match setting {
                // Drop the trailing comment: `# FELHOM_...`.
                Some(rest) => rest
                    .split("  #")
                    .next()
                    .unwrap_or(rest)
                    .trim_end()
                    .to_owned(),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
fn the_sample_config_parses_as_shipped_and_uncommented() {
    let f = file(&repo_file("deploy/controller.toml"));
    let shipped = jailed(|| Config::load(Some(f.path()))).expect("the sample as shipped");
    assert!(matches!(shipped.agent, AgentSetting::Absent) && shipped.notify.is_none());

    let text = uncommented_sample();
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", &text)?;
        // The sample's pin is a placeholder; the environment gives a real one.
        jail.set_env("FELHOM_AGENT__PIN_SHA256", "ab".repeat(32));
        let c = Config::load(Some(Path::new("c.toml")))
            .and_then(strict)
            .map_err(|e| format!("{}\n{text}", chain(&e)))?;
        let notify = c.notify.as_ref().expect("[notify] uncommented");
        assert!(notify.webhook.is_some() && notify.ntfy.is_some() && notify.ping.is_some());
        assert_eq!(notify.timeout, Duration::from_secs(10));
        assert_eq!(c.quiesce.max_quiesce, Duration::from_secs(30 * 60));
        assert_eq!(c.status.listen, "127.0.0.1:9787");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
fn notify_is_read_from_the_file_and_the_environment() {
    let c = load(
        "[notify]\nwebhook = \"https://hooks.example.net/felhom/s3cret\"\n\
         events = [\"failed\", \"done\"]\ntimeout = \"3s\"\n",
    )
    .expect("parses");
    let notify = c.notify.expect("[notify]");
    assert_eq!(
        notify.events,
        [
            felhom_notify::EventKind::Failed,
            felhom_notify::EventKind::Done
        ]
    );
    assert_eq!(notify.timeout, Duration::from_secs(3));
    assert!(notify.ntfy.is_none());
    // Only the environment: a `[notify]` section appears.
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", "")?;
        jail.set_env("FELHOM_NOTIFY__PING", "http://127.0.0.1:9/ping/abc");
        let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
        assert!(c.notify.and_then(|n| n.ping).is_some());
        Ok(())
    });
    assert!(load("").expect("empty").notify.is_none());
}

#[test]
fn a_bad_notify_value_names_its_key_and_hides_the_url() {
    let err = load("[notify]\nwebhook = \"ftp://hooks.example.net/s3cret-path\"\n")
        .expect_err("ftp is refused");
    let text = chain(&err);
    assert!(text.contains("notify.webhook"), "{text}");
    assert!(
        !text.contains("s3cret-path"),
        "the URL's secret shows: {text}"
    );
    let err = load("[notify]\nwebhok = \"https://x.example\"\n").expect_err("a typo");
    let text = chain(&err);
    assert!(text.contains("webhok") && text.contains("notify"), "{text}");
    let err = load("[notify]\nevents = [\"everything\"]\n").expect_err("an unknown event");
    assert!(chain(&err).contains("everything"), "{}", chain(&err));
}

#[test]
fn the_units_name_the_credential_the_binary_reads_and_dump_no_core() {
    for unit in [
        "deploy/systemd/felhom-controller.service",
        "deploy/systemd/felhom-controller-recover.service",
    ] {
        let text = repo_file(unit);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("LimitCORE=0"), "{unit} lacks LimitCORE=0");
        let example = format!("#LoadCredential={CREDENTIAL}:/etc/felhom/agent.token");
        assert!(has(&example), "{unit} lacks {example}");
    }
}
