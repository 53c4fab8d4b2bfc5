//! Which directories under `stacks.root` are deployed stacks, and their compose files.

use std::io;
use std::path::{Path, PathBuf};

use crate::name::check_stack_name;
use crate::StacksError;

/// The compose file names, in the order compose v2 prefers them when a directory holds
/// several (v1's order differs; passing `-f` makes both read the same file).
pub(crate) const COMPOSE_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The override files compose reads next to the compose file when no `-f` is given. With
/// `-f` it reads only what it is given, so the override has to be passed too, or a stack
/// would be stopped and recreated with a different configuration than it was deployed with.
const OVERRIDE_FILE_NAMES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// A deployed stack's directory and the compose files that describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ComposeFiles {
    /// The stack's directory, compose's working directory.
    pub(crate) dir: PathBuf,
    /// The compose file.
    pub(crate) main: PathBuf,
    /// The override file, if there is one.
    pub(crate) override_file: Option<PathBuf>,
}

impl ComposeFiles {
    /// The compose files of the stack in `dir`, or `None` if it holds no compose file.
    pub(crate) fn find(dir: &Path) -> Option<Self> {
        let first = |names: &[&str]| {
            names
                .iter()
                .map(|name| dir.join(name))
                .find(|path| path.is_file())
        };
        let main = first(&COMPOSE_FILE_NAMES)?;
        Some(Self {
            dir: dir.to_path_buf(),
            main,
            override_file: first(&OVERRIDE_FILE_NAMES),
        })
    }
}

/// The names of the deployed stacks under `root`, sorted. A missing root means nothing is
/// deployed yet (a fresh guest); a directory whose name compose would not accept as a
/// project name is skipped with a warning, because its containers carry another name.
pub(crate) fn deployed(root: &Path) -> Result<Vec<String>, StacksError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(root = %root.display(), "the stacks root does not exist: no stack is deployed");
            return Ok(Vec::new());
        }
        Err(source) => {
            return Err(StacksError::Root {
                root: root.to_path_buf(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StacksError::Root {
            root: root.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if !path.is_dir() || ComposeFiles::find(&path).is_none() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(dir = %path.display(), "skipping a stack whose directory name is not UTF-8");
            continue;
        };
        if let Err(e) = check_stack_name(&name) {
            tracing::warn!(dir = %path.display(), "skipping a stack: {e}");
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(path: &Path) {
        fs::write(path, "services: {}\n").expect("write a compose file");
    }

    #[test]
    fn every_compose_file_name_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in COMPOSE_FILE_NAMES {
            let stack = dir.path().join(name.replace('.', "-"));
            fs::create_dir(&stack).expect("mkdir");
            touch(&stack.join(name));
            let files = ComposeFiles::find(&stack).expect("a compose file");
            assert_eq!(files.main, stack.join(name));
            assert_eq!(files.dir, stack);
            assert_eq!(files.override_file, None);
        }
    }

    #[test]
    fn the_preferred_file_wins_and_the_override_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = dir.path();
        for name in ["docker-compose.yaml", "docker-compose.yml", "compose.yml"] {
            touch(&stack.join(name));
        }
        assert_eq!(
            ComposeFiles::find(stack).expect("found").main,
            stack.join("compose.yml")
        );
        touch(&stack.join("compose.yaml"));
        touch(&stack.join("docker-compose.override.yml"));
        let files = ComposeFiles::find(stack).expect("found");
        assert_eq!(files.main, stack.join("compose.yaml"));
        assert_eq!(
            files.override_file,
            Some(stack.join("docker-compose.override.yml"))
        );
    }

    #[test]
    fn no_compose_file_means_not_a_stack() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(&dir.path().join("compose.override.yml"));
        touch(&dir.path().join("Compose.yaml.bak"));
        fs::create_dir(dir.path().join("compose.yaml")).expect("a directory, not a file");
        assert_eq!(ComposeFiles::find(dir.path()), None);
    }

    #[test]
    fn deployed_lists_valid_stack_directories_sorted() {
        let root = tempfile::tempdir().expect("tempdir");
        for (dir, file) in [
            ("zeta", Some("compose.yaml")),
            ("alpha", Some("docker-compose.yml")),
            ("empty", None),
            ("Bad Name", Some("compose.yaml")),
            (".hidden", Some("compose.yaml")),
        ] {
            let path = root.path().join(dir);
            fs::create_dir(&path).expect("mkdir");
            if let Some(file) = file {
                touch(&path.join(file));
            }
        }
        // A compose file directly in the root is not a stack.
        touch(&root.path().join("compose.yaml"));
        assert_eq!(deployed(root.path()).expect("listed"), ["alpha", "zeta"]);
    }

    #[test]
    fn a_missing_root_deploys_nothing_and_a_file_root_is_an_error() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            deployed(&root.path().join("missing")).expect("empty"),
            Vec::<String>::new()
        );
        let file = root.path().join("file");
        touch(&file);
        let err = deployed(&file).expect_err("not a directory");
        let StacksError::Root { root, source } = &err else {
            panic!("expected Root, got {err}");
        };
        assert_eq!(root, &file);
        assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory);
        let shown = err.to_string();
        assert!(shown.contains(&*file.to_string_lossy()), "{shown}");
        assert!(
            !shown.contains(&source.to_string()),
            "the OS error is the source only, not also in the message: {shown}"
        );
    }
}
