//! The backup job: a real copy of the source directory as the "snapshot", then a tar of that copy
//! as the "archive" — the two steps of a vzdump that matter to the controller.

use std::fs::{self, File, FileTimes};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;

use crate::config::Fault;
use crate::events::EventKind;
use crate::state::{AgentState, Phase};

/// Runs one backup to its end, updating what status reports and the timeline.
pub(crate) async fn run(state: Arc<AgentState>, id: String) {
    let backup_dir = state.out_dir.join(&id);
    let snapshot_dir = backup_dir.join("snapshot");
    let archive = state.out_dir.join(format!("{id}.tar"));

    tokio::time::sleep(state.snapshot_delay).await;
    state.wait_while_hanging().await;
    let (source, dir) = (state.source.clone(), backup_dir.clone());
    let snapshot = tokio::task::spawn_blocking(move || take_snapshot(&source, &dir)).await;
    if let Err(error) = flatten(snapshot) {
        fail(&state, &id, format!("snapshot: {error}"));
        return;
    }
    if state.has_fault(&Fault::FailBackup) {
        fail(&state, &id, "injected failure".into());
        return;
    }
    state.update(&id, |b| {
        b.phase = Phase::Snapshotted;
        b.snapshot_at = Some(Utc::now());
    });
    state
        .events
        .record(EventKind::SnapshotTaken { id: id.clone() });
    tracing::info!(%id, snapshot = %snapshot_dir.display(), "snapshot taken");

    tokio::time::sleep(state.archive_delay).await;
    state.wait_while_hanging().await;
    let (from, to) = (snapshot_dir, archive.clone());
    let written = tokio::task::spawn_blocking(move || write_archive(&from, &to)).await;
    if let Err(error) = flatten(written) {
        fail(&state, &id, format!("archive: {error}"));
        return;
    }
    state.update(&id, |b| {
        b.phase = Phase::Done;
        b.finished_at = Some(Utc::now());
    });
    state.events.record(EventKind::ArchiveFinished {
        id: id.clone(),
        path: archive.clone(),
    });
    tracing::info!(%id, archive = %archive.display(), "backup done");
}

fn flatten(r: Result<Result<(), String>, tokio::task::JoinError>) -> Result<(), String> {
    r.unwrap_or_else(|e| Err(format!("the worker thread ended: {e}")))
}

fn fail(state: &AgentState, id: &str, error: String) {
    tracing::warn!(%id, %error, "backup failed");
    state.update(id, |b| {
        b.phase = Phase::Failed;
        b.finished_at = Some(Utc::now());
        b.error = Some(error.clone());
    });
    state.events.record(EventKind::BackupFailed {
        id: id.to_owned(),
        error,
    });
}

/// Copies `source` to `<backup_dir>/snapshot`, replacing what an earlier backup under the same id
/// (fault `conflict`) left there.
fn take_snapshot(source: &Path, backup_dir: &Path) -> Result<(), String> {
    if fs::symlink_metadata(backup_dir).is_ok() {
        fs::remove_dir_all(backup_dir)
            .map_err(|e| format!("removing the stale {}: {e}", backup_dir.display()))?;
    }
    fs::create_dir_all(backup_dir)
        .map_err(|e| format!("creating {}: {e}", backup_dir.display()))?;
    let meta = fs::metadata(source).map_err(|e| format!("{}: {e}", source.display()))?;
    if !meta.is_dir() {
        return Err(format!("{}: not a directory", source.display()));
    }
    copy_tree(source, &backup_dir.join("snapshot"))
}

/// A faithful copy for a restore test: contents, modes, owners, modification times; symlinks
/// stay symlinks (following one could copy the host's files into the backup). Sockets, FIFOs
/// and devices are left out — a restored app recreates them.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let ft = meta.file_type();
    let ctx = |what: &str, e: std::io::Error| {
        format!("{what} {} to {}: {e}", src.display(), dst.display())
    };
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| format!("{}: {e}", src.display()))?;
        std::os::unix::fs::symlink(&target, dst).map_err(|e| ctx("copying the symlink", e))?;
        lchown(dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| ctx("copying the owner of", e))?;
    } else if ft.is_dir() {
        fs::create_dir(dst).map_err(|e| ctx("copying the directory", e))?;
        for child in sorted_entries(src)? {
            copy_tree(&src.join(&child), &dst.join(&child))?;
        }
        // After the children: a read-only mode would keep them out, and adding them would
        // change the time.
        finish_metadata(&meta, dst).map_err(|e| ctx("copying the metadata of", e))?;
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(|e| ctx("copying", e))?;
        finish_metadata(&meta, dst).map_err(|e| ctx("copying the metadata of", e))?;
    } else {
        tracing::warn!(path = %src.display(), "not a file, directory or symlink: left out of the snapshot");
    }
    Ok(())
}

fn finish_metadata(meta: &fs::Metadata, dst: &Path) -> std::io::Result<()> {
    lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    // chown clears set-uid/set-gid bits, so the mode goes after it.
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let mut times = FileTimes::new();
    if let Ok(t) = meta.modified() {
        times = times.set_modified(t);
    }
    if let Ok(t) = meta.accessed() {
        times = times.set_accessed(t);
    }
    File::open(dst)?.set_times(times)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let read = |e: std::io::Error| format!("reading the directory {}: {e}", dir.display());
    let mut names = fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| PathBuf::from(e.file_name())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    names.sort();
    Ok(names)
}

/// Writes a tar of `snapshot` (paths relative to it) to `archive`, through a temporary name so
/// that a file named `<id>.tar` is always complete.
fn write_archive(snapshot: &Path, archive: &Path) -> Result<(), String> {
    let partial = archive.with_extension("tar.partial");
    let file =
        File::create(&partial).map_err(|e| format!("creating {}: {e}", partial.display()))?;
    let mut builder = tar::Builder::new(BufWriter::new(file));
    builder.follow_symlinks(false);
    append_tree(&mut builder, snapshot, Path::new(""))?;
    let writing = |e: std::io::Error| format!("writing {}: {e}", partial.display());
    let mut out = builder.into_inner().map_err(writing)?;
    out.flush().map_err(writing)?;
    out.get_ref().sync_all().map_err(writing)?;
    drop(out);
    fs::rename(&partial, archive).map_err(|e| {
        format!(
            "renaming {} to {}: {e}",
            partial.display(),
            archive.display()
        )
    })
}

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
) -> Result<(), String> {
    let abs = root.join(rel);
    for child in sorted_entries(&abs)? {
        let child_rel = rel.join(&child);
        let child_abs = root.join(&child_rel);
        builder
            .append_path_with_name(&child_abs, &child_rel)
            .map_err(|e| format!("archiving {}: {e}", child_abs.display()))?;
        let is_dir = fs::symlink_metadata(&child_abs)
            .map_err(|e| format!("{}: {e}", child_abs.display()))?
            .is_dir();
        if is_dir {
            append_tree(builder, root, &child_rel)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn sample_tree(root: &Path) {
        fs::create_dir_all(root.join("db/pg")).expect("mkdir");
        fs::write(root.join("db/pg/PG_VERSION"), "16\n").expect("write");
        fs::write(root.join("app.env"), "KEY=value\n").expect("write");
        fs::set_permissions(root.join("app.env"), fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::os::unix::fs::symlink("db/pg/PG_VERSION", root.join("version")).expect("symlink");
        // A dangling link must be copied as a link, not followed (which would fail).
        std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).expect("symlink");
    }

    #[test]
    fn snapshot_copies_contents_modes_and_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        sample_tree(&src);
        take_snapshot(&src, &tmp.path().join("b-1")).expect("snapshot");
        let snap = tmp.path().join("b-1/snapshot");
        assert_eq!(
            fs::read_to_string(snap.join("db/pg/PG_VERSION")).expect("read"),
            "16\n"
        );
        let mode = fs::metadata(snap.join("app.env")).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_link(snap.join("version")).expect("still a symlink"),
            Path::new("db/pg/PG_VERSION")
        );
        assert_eq!(
            fs::read_link(snap.join("dangling")).expect("still a symlink"),
            Path::new("/nonexistent/target")
        );
        let src_mtime = fs::metadata(src.join("db/pg/PG_VERSION"))
            .expect("stat")
            .modified()
            .expect("mtime");
        let dst_mtime = fs::metadata(snap.join("db/pg/PG_VERSION"))
            .expect("stat")
            .modified()
            .expect("mtime");
        assert_eq!(src_mtime, dst_mtime);
    }

    #[test]
    fn snapshot_of_a_missing_source_names_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let missing = tmp.path().join("no-such-dir");
        let err = take_snapshot(&missing, &tmp.path().join("b-1")).expect_err("must fail");
        assert!(err.contains("no-such-dir"), "{err}");
    }

    #[test]
    fn archive_holds_every_entry_with_relative_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        sample_tree(&src);
        let archive = tmp.path().join("b-1.tar");
        write_archive(&src, &archive).expect("archive");
        assert!(!tmp.path().join("b-1.tar.partial").exists());

        let mut entries = BTreeMap::new();
        let mut reader = tar::Archive::new(File::open(&archive).expect("open"));
        for entry in reader.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            let kind = entry.header().entry_type();
            let mut body = String::new();
            if kind.is_file() {
                entry.read_to_string(&mut body).expect("read");
            } else if kind.is_symlink() {
                body = entry
                    .link_name()
                    .expect("link name")
                    .expect("a symlink has a target")
                    .display()
                    .to_string();
            }
            entries.insert(path, body);
        }
        let expected: BTreeMap<String, String> = [
            ("app.env", "KEY=value\n"),
            ("dangling", "/nonexistent/target"),
            ("db", ""),
            ("db/pg", ""),
            ("db/pg/PG_VERSION", "16\n"),
            ("version", "db/pg/PG_VERSION"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(entries, expected);
    }
}
