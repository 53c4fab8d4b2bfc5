//! `docs/architecture.md` names the code it describes, and every name it gives still exists:
//! a renamed type, a moved file or a removed function makes this test fail, naming the span.
//!
//! The rule, for each inline code span outside code blocks:
//! - a path (it has a `/` or ends in a source or config file's extension, and is not a URL nor
//!   an absolute system path): the file exists, relative to the repository, to a crate of it,
//!   or — a bare file name — somewhere in it; `file.rs::name` also needs `name` defined in a
//!   file of that name;
//! - a Rust path (`a::b`, `Type::method()`): its last segment is defined in the workspace's
//!   Rust sources, and each CamelCase segment is a type (a crate name counts for its first);
//! - a CamelCase or SCREAMING_CASE identifier: defined (a type, trait, variant or constant);
//! - a call (`name()`): a function of that name is defined;
//! - a snake_case identifier with an underscore (a function, a field, a config key, a metric):
//!   the word appears in the workspace's sources, config or deploy files;
//! - anything else (a command line, a value, a plain word) is prose and not checked.
//!
//! "Defined" means declared by `fn`, `struct`, `enum`, `trait`, `type`, `const`, `static` or
//! `mod`, or a line that declares a field or a variant.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file of the repository (without `target/` and hidden directories).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // `.ci` is the repository's; `.git` and the build's output are not.
        if name == ".git" || name == "target" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_ident_char(c))
        .filter(|w| !w.is_empty())
}

/// What the tree holds: its files, the identifiers its Rust sources define, every word of its
/// sources and config, and its crates' names.
struct Tree {
    files: Vec<PathBuf>,
    defined: HashSet<String>,
    /// Per Rust file name (`cycle.rs`), the identifiers defined in files of that name.
    defined_in: std::collections::HashMap<String, HashSet<String>>,
    words: HashSet<String>,
    crates: HashSet<String>,
}

const KEYWORDS: [&str; 8] = [
    "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
];

/// The identifiers a line of Rust defines: after a keyword, or a field's or variant's own line.
fn definitions(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous = "";
    for word in words(line) {
        if KEYWORDS.contains(&previous) {
            found.push(word.to_owned());
        }
        previous = word;
    }
    // `name: Type,` / `pub name: Type` (a field), `Name,` / `Name {` / `Name(` (a variant).
    let trimmed = line.trim_start();
    let trimmed = trimmed
        .strip_prefix("pub(crate) ")
        .or_else(|| trimmed.strip_prefix("pub "))
        .unwrap_or(trimmed);
    let head: String = trimmed.chars().take_while(|c| is_ident_char(*c)).collect();
    let rest = trimmed[head.len()..].trim_start();
    let declares = rest.starts_with(':') && !rest.starts_with("::")
        || (head.starts_with(|c: char| c.is_ascii_uppercase())
            && (rest.is_empty() || rest.starts_with([',', '{', '('])));
    if !head.is_empty() && declares {
        found.push(head);
    }
    found
}

impl Tree {
    fn read() -> Tree {
        let root = repo();
        let mut all = Vec::new();
        files(&root, &mut all);
        let mut tree = Tree {
            files: Vec::new(),
            defined: HashSet::new(),
            defined_in: Default::default(),
            words: HashSet::new(),
            crates: HashSet::new(),
        };
        for path in all {
            let relative = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            // This file names what must not be found: its words are not the tree's.
            let this = path.ends_with(file!());
            if !this && ["rs", "toml", "yml", "yaml", "sh", "service", "timer"].contains(&ext) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                // Words of comments do not count: a name only a comment still holds is gone.
                for line in text.lines() {
                    let code = match line.split_once("//") {
                        Some((code, _)) if ext == "rs" => code,
                        _ => line,
                    };
                    tree.words.extend(words(code).map(str::to_owned));
                }
                if ext == "rs" {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    for line in text.lines() {
                        for d in definitions(line) {
                            tree.defined_in
                                .entry(name.clone())
                                .or_default()
                                .insert(d.clone());
                            tree.defined.insert(d);
                        }
                    }
                }
                if relative.file_name().is_some_and(|n| n == "Cargo.toml") {
                    for line in text.lines() {
                        if let Some(name) = line.strip_prefix("name = \"") {
                            tree.crates
                                .insert(name.trim_end_matches('"').replace('-', "_"));
                        }
                    }
                }
            }
            tree.files.push(relative);
        }
        tree
    }

    /// `path` exists relative to the repository or to a crate of it; a bare file name,
    /// anywhere.
    fn has_file(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        if !path.contains('/') {
            return self
                .files
                .iter()
                .any(|f| f.components().any(|c| c.as_os_str() == path));
        }
        self.files
            .iter()
            .any(|f| f.ends_with(path) || f.to_string_lossy().contains(&format!("{path}/")))
    }
}

/// Names of the standard library, serde and tokio the doc uses: not the workspace's to define.
const EXTERNAL: [&str; 7] = [
    "Debug",
    "Display",
    "Serialize",
    "Deserialize",
    "Send",
    "Sync",
    "TcpListener",
];

const EXTENSIONS: [&str; 9] = [
    ".rs", ".md", ".toml", ".yml", ".yaml", ".sh", ".service", ".timer", ".svg",
];

/// Why `span` names nothing that exists; `None` when it does, or is not a name of code.
fn missing(tree: &Tree, span: &str) -> Option<String> {
    let span = span.trim();
    let prose = |c: char| c.is_whitespace() || "\"'=<>{}$@#,|*+?!".contains(c);
    if span.is_empty()
        || span.contains(prose)
        || span.starts_with(['-', '_'])
        || span.contains("://")
        || EXTERNAL.contains(&span)
    {
        return None;
    }
    let call = span.strip_suffix("()");
    let span = call.unwrap_or(span);
    let (file, item) = match span.split_once(".rs::") {
        Some((file, item)) => (Some(format!("{file}.rs")), Some(item)),
        None => (None, None),
    };
    let pathlike = span.contains('/') || EXTENSIONS.iter().any(|e| span.ends_with(e));
    if let (Some(file), Some(item)) = (file, item) {
        if !tree.has_file(&file) {
            return Some(format!("no file {file}"));
        }
        let name = Path::new(&file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let defined = tree.defined_in.get(&name).is_some_and(|d| d.contains(item));
        return (!defined).then(|| format!("no {item} in a file {name}"));
    }
    if pathlike {
        if span.starts_with('/') || span.starts_with("~/") {
            return None; // a path of the installed system, or an endpoint
        }
        return (!tree.has_file(span)).then(|| "no such file or directory".to_owned());
    }
    if span.contains("::") {
        let segments: Vec<&str> = span.split("::").collect();
        for (i, segment) in segments.iter().enumerate() {
            if !segment.chars().all(is_ident_char) {
                return None;
            }
            let last = i + 1 == segments.len();
            let camel = segment.starts_with(|c: char| c.is_ascii_uppercase());
            let known =
                tree.defined.contains(*segment) || (i == 0 && tree.crates.contains(*segment));
            if (last || camel) && !known {
                return Some(format!("{segment} is defined nowhere"));
            }
        }
        return None;
    }
    if !span.chars().all(is_ident_char) || span.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let upper = span.starts_with(|c: char| c.is_ascii_uppercase());
    let shouting = span
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if shouting && span.contains('_') {
        // A constant, or a word of a protocol (`EXTEND_TIMEOUT_USEC`): in the code.
        return (!tree.words.contains(span))
            .then(|| "in no source, config or deploy file".to_owned());
    }
    if call.is_some() || (upper && (span.len() > 1)) {
        // A type, a variant, a constant, a function.
        return (!tree.defined.contains(span)).then(|| "defined nowhere".to_owned());
    }
    if span.contains('_') && !shouting {
        return (!tree.words.contains(span))
            .then(|| "in no source, config or deploy file".to_owned());
    }
    None
}

/// The inline code spans of `markdown`, outside fenced code blocks.
fn spans(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        // Odd parts are inside backticks (a span does not cross lines here).
        out.extend(parts.iter().skip(1).step_by(2).map(|s| (*s).to_owned()));
    }
    out
}

#[test]
fn every_code_name_in_the_architecture_doc_exists() {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).expect("the doc");
    let tree = Tree::read();
    let broken: BTreeSet<String> = spans(&doc)
        .iter()
        .filter_map(|span| missing(&tree, span).map(|why| format!("`{span}`: {why}")))
        .collect();
    assert!(
        broken.is_empty(),
        "docs/architecture.md names what is not in the tree:\n{}",
        broken.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_rule_catches_a_renamed_type_a_moved_file_and_a_removed_function() {
    let tree = Tree::read();
    for (span, exists) in [
        ("OpsObserver", true),
        ("Watch", false),
        ("crates/ops/src/observer.rs", true),
        ("bins/felhom-controller/src/watch.rs", false),
        ("Driver::drive", true),
        ("Driver::drive_on", false),
        ("felhom_stacks::protected_stacks", true),
        ("max_downtime_ms()", true),
        ("engine_gone_since", false),
        ("engine_stacks/", true),
        ("Debug", true),
        ("strand.rs::recover_tries_the_stranded_stacks_at_once", true),
        ("strand.rs::recover_tries_nothing", false),
        ("MIN_CYCLE_GAP", true),
        ("recover --if-stale", true),
        ("/etc/felhom/controller.toml", true),
    ] {
        assert_eq!(
            missing(&tree, span).is_none(),
            exists,
            "{span}: {:?}",
            missing(&tree, span)
        );
    }
}
