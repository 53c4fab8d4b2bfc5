//! The compose command lines, for `docker compose` (v2) and `docker-compose` (v1).

use crate::command::CommandLine;
use crate::files::ComposeFiles;
use crate::ComposeChoice;

/// The compose tool actually used (what `auto` resolves to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `docker compose`.
    V2,
    /// `docker-compose`.
    V1,
}

impl Flavor {
    pub(crate) fn choice(self) -> ComposeChoice {
        match self {
            Self::V2 => ComposeChoice::V2,
            Self::V1 => ComposeChoice::V1,
        }
    }

    fn line(self, args: Vec<String>) -> CommandLine {
        match self {
            Self::V2 => {
                CommandLine::new("docker", std::iter::once("compose".to_owned()).chain(args))
            }
            Self::V1 => CommandLine::new("docker-compose", args),
        }
    }

    /// `version`: whether this tool is installed and runs.
    pub(crate) fn version(self) -> CommandLine {
        self.line(vec!["version".to_owned()])
    }

    /// A command on one project: `-p` and `-f` make compose address exactly this stack
    /// whatever `COMPOSE_*` variables or `name:` keys say, and the stack's directory is the
    /// working directory so that its `.env` is read as it was at deployment.
    fn project(
        self,
        project: &str,
        files: &ComposeFiles,
        command: &[&str],
        services: &[String],
    ) -> CommandLine {
        let mut args = vec!["-p".to_owned(), project.to_owned()];
        for file in std::iter::once(&files.main).chain(&files.override_file) {
            args.push("-f".to_owned());
            args.push(file.to_string_lossy().into_owned());
        }
        args.extend(command.iter().map(|s| (*s).to_owned()));
        args.extend(services.iter().cloned());
        let mut line = self.line(args);
        line.cwd = Some(files.dir.clone());
        line
    }

    /// `config`: the project's model as compose reads it (YAML).
    pub(crate) fn config(self, project: &str, files: &ComposeFiles) -> CommandLine {
        self.project(project, files, &["config"], &[])
    }

    /// `up -d --no-recreate --no-deps <services>`: existing containers are started as they
    /// are, missing ones are created; `--no-deps` because every dependency that ran is in
    /// `services` already, and one that did not (a one-shot that had exited) must stay down.
    pub(crate) fn up_no_recreate(
        self,
        project: &str,
        files: &ComposeFiles,
        services: &[String],
    ) -> CommandLine {
        self.project(
            project,
            files,
            &["up", "-d", "--no-recreate", "--no-deps"],
            services,
        )
    }

    /// `up -d --force-recreate --no-deps <services>`: for containers that joined the network
    /// namespace of a container that is gone, so that they join the new one.
    pub(crate) fn up_recreate(
        self,
        project: &str,
        files: &ComposeFiles,
        services: &[String],
    ) -> CommandLine {
        self.project(
            project,
            files,
            &["up", "-d", "--force-recreate", "--no-deps"],
            services,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn files(with_override: bool) -> ComposeFiles {
        ComposeFiles {
            dir: PathBuf::from("/opt/felhom/stacks/app"),
            main: PathBuf::from("/opt/felhom/stacks/app/compose.yaml"),
            override_file: with_override
                .then(|| PathBuf::from("/opt/felhom/stacks/app/compose.override.yml")),
        }
    }

    fn args(line: &CommandLine) -> Vec<&str> {
        line.args.iter().map(String::as_str).collect()
    }

    #[test]
    fn v2_runs_the_docker_plugin() {
        let line = Flavor::V2.config("app", &files(false));
        assert_eq!(line.program, "docker");
        assert_eq!(
            args(&line),
            [
                "compose",
                "-p",
                "app",
                "-f",
                "/opt/felhom/stacks/app/compose.yaml",
                "config",
            ]
        );
        assert_eq!(line.cwd, Some(PathBuf::from("/opt/felhom/stacks/app")));
        assert_eq!(args(&Flavor::V2.version()), ["compose", "version"]);
    }

    #[test]
    fn v1_runs_docker_compose() {
        let line = Flavor::V1.config("app", &files(false));
        assert_eq!(line.program, "docker-compose");
        assert_eq!(
            args(&line),
            [
                "-p",
                "app",
                "-f",
                "/opt/felhom/stacks/app/compose.yaml",
                "config",
            ]
        );
        assert_eq!(line.cwd, Some(PathBuf::from("/opt/felhom/stacks/app")));
        assert_eq!(Flavor::V1.version().program, "docker-compose");
        assert_eq!(args(&Flavor::V1.version()), ["version"]);
    }

    #[test]
    fn start_names_exactly_the_services() {
        let services = vec!["db".to_owned(), "web".to_owned()];
        for (flavor, prefix) in [(Flavor::V2, vec!["compose"]), (Flavor::V1, vec![])] {
            let line = flavor.up_recreate("app", &files(true), &services);
            let mut expected = prefix.clone();
            expected.extend([
                "-p",
                "app",
                "-f",
                "/opt/felhom/stacks/app/compose.yaml",
                "-f",
                "/opt/felhom/stacks/app/compose.override.yml",
                "up",
                "-d",
                "--force-recreate",
                "--no-deps",
                "db",
                "web",
            ]);
            assert_eq!(args(&line), expected, "{flavor:?}");

            let line = flavor.up_no_recreate("app", &files(false), &services);
            let mut expected = prefix;
            expected.extend([
                "-p",
                "app",
                "-f",
                "/opt/felhom/stacks/app/compose.yaml",
                "up",
                "-d",
                "--no-recreate",
                "--no-deps",
                "db",
                "web",
            ]);
            assert_eq!(args(&line), expected, "{flavor:?}");
        }
    }
}
