//! The served certificate and its pin, checked with openssl and curl; loading PEM files; start-up
//! errors that must name their culprit.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use felhom_devagent::{AgentConfig, DevAgent, DevAgentError};
use support::{bounded, start_agent, write_sample_data, TOKEN};

/// `openssl s_client` fetches the certificate the server presents; `openssl x509` and
/// `sha256sum` hash its DER — none of it shares code with the agent.
async fn served_certificate_sha256(addr: std::net::SocketAddr) -> String {
    let script = format!(
        "openssl s_client -connect {addr} </dev/null 2>/dev/null \
         | openssl x509 -outform der | sha256sum | cut -d' ' -f1"
    );
    run_shell(&script).await
}

async fn run_shell(script: &str) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {script}")])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the shell pipeline finished")
    .expect("run bash");
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

fn bare(pin: &str) -> String {
    pin.replace(':', "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pin_is_the_sha256_of_the_served_certificate() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let pin = fx.agent.pin();
        assert_eq!(pin.len(), 32 * 3 - 1, "{pin}");
        assert!(pin
            .chars()
            .all(|c| c == ':' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_eq!(
            served_certificate_sha256(fx.agent.local_addr()).await,
            bare(&pin)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_certificate_is_valid_for_127_0_0_1_and_localhost() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let ca = fx.dir.path().join("agent.pem");
        std::fs::write(&ca, fx.agent.certificate_pem()).expect("write the certificate");
        let port = fx.agent.local_addr().port();
        // Without -k: curl verifies the chain (the certificate is its own CA) and the name.
        for (url, resolve) in [
            (format!("https://127.0.0.1:{port}/backup/due"), None),
            (
                format!("https://localhost:{port}/backup/due"),
                Some(format!("localhost:{port}:127.0.0.1")),
            ),
        ] {
            let mut cmd = tokio::process::Command::new("/usr/bin/curl");
            cmd.args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
            if let Some(resolve) = resolve {
                cmd.args(["--resolve", &resolve]);
            }
            let out = cmd.arg(&url).output().await.expect("run curl");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "200",
                "{url}: {out:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_made_by_openssl_is_loaded_served_and_pinned() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        run_shell(&format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -days 2 -subj /CN=devagent -keyout {} -out {} 2>/dev/null",
            key.display(),
            cert.display()
        ))
        .await;
        let file_sha = run_shell(&format!(
            "openssl x509 -in {} -outform der | sha256sum | cut -d' ' -f1",
            cert.display()
        ))
        .await;

        write_sample_data(&dir.path().join("source"));
        let mut cfg = AgentConfig::new(TOKEN, dir.path().join("source"), dir.path().join("out"));
        cfg.tls = Some((cert.clone(), key));
        let agent = DevAgent::start(cfg)
            .await
            .expect("start with the loaded certificate");
        assert_eq!(bare(&agent.pin()), file_sha);
        assert_eq!(
            served_certificate_sha256(agent.local_addr()).await,
            file_sha
        );
        let loaded = std::fs::read_to_string(&cert).expect("read cert");
        assert_eq!(agent.certificate_pem().trim(), loaded.trim());
        agent.shutdown().await;
    })
    .await;
}

async fn start_error(dir: &Path, configure: impl FnOnce(&mut AgentConfig)) -> DevAgentError {
    let mut cfg = AgentConfig::new(TOKEN, dir.join("source"), dir.join("out"));
    configure(&mut cfg);
    DevAgent::start(cfg).await.expect_err("start must fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_bad_settings_naming_the_culprit() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("not-a-cert.pem"), "hello\n").expect("write");
        std::fs::write(d.join("a-file"), "x").expect("write");

        let err = start_error(d, |_| {}).await;
        assert!(matches!(err, DevAgentError::Source { .. }), "{err}");
        assert!(err.to_string().contains("source"), "{err}");

        write_sample_data(&d.join("source"));
        let err = start_error(d, |cfg| cfg.source = d.join("a-file")).await;
        assert!(
            err.to_string().contains("a-file") && err.to_string().contains("not a directory"),
            "{err}"
        );

        let err = start_error(d, |cfg| cfg.token = "  ".into()).await;
        assert!(matches!(err, DevAgentError::EmptyToken), "{err}");

        let err = start_error(d, |cfg| cfg.out_dir = d.join("a-file/out")).await;
        assert!(matches!(err, DevAgentError::OutDir { .. }), "{err}");
        assert!(err.to_string().contains("a-file/out"), "{err}");
        // The OS error is the source only, not also in the message.
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.contains("Not a directory")),
            "{cause:?}"
        );
        assert!(!err.to_string().contains("Not a directory"), "{err}");

        let err = start_error(d, |cfg| {
            cfg.tls = Some((d.join("missing.pem"), d.join("missing-key.pem")));
        })
        .await;
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let err = start_error(d, |cfg| {
            cfg.tls = Some((d.join("not-a-cert.pem"), d.join("not-a-cert.pem")));
        })
        .await;
        assert!(
            err.to_string().contains("not-a-cert.pem") && err.to_string().contains("CERTIFICATE"),
            "{err}"
        );

        // A good certificate with a key file that holds none.
        let fx_cert = d.join("cert.pem");
        run_shell(&format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -days 2 -subj /CN=x -keyout /dev/null -out {} 2>/dev/null",
            fx_cert.display()
        ))
        .await;
        let err = start_error(d, |cfg| {
            cfg.tls = Some((fx_cert.clone(), d.join("not-a-cert.pem")))
        })
        .await;
        assert!(
            err.to_string().contains("not-a-cert.pem") && err.to_string().contains("PRIVATE KEY"),
            "{err}"
        );

        // The port is taken: the error names the address.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken = holder.local_addr().expect("addr");
        let err = start_error(d, |cfg| cfg.listen = taken).await;
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
    })
    .await;
}
