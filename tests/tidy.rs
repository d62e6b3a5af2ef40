//! Tidy: the architecture rules of ARCHITECTURE.md, checked on the source text (TigerBeetle's
//! `tidy.zig` idea). Cheap, and it fails the build the moment a core reaches for IO or a module
//! imports one it must not.
//!
//! Module edges are found from every path in a file — `crate::x`, `super::…::x` (resolved
//! against the file's own module path) and `ketch::x` — in the whole file, tests included.
//! IO and nondeterminism bans apply to production code: everything but the items under
//! `#[cfg(test)]` (wherever they are in the file) and files named `tests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
}

/// The text without comment lines.
fn code_text(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The file's production code: without comment lines and without every item under
/// `#[cfg(test)]` (a `mod x;` line, or an item up to its matching closing brace). Files named
/// `tests.rs` are all test.
fn production_text(path: &Path) -> String {
    // Test-only modules: `tests.rs`, and `*_tests.rs` beside it for a second suite.
    if path
        .file_name()
        .is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs"))
    {
        return String::new();
    }
    let text = code_text(&std::fs::read_to_string(path).unwrap());
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        // The item ends at a `;` before any `{`, or at the brace matching its first `{`.
        let semi = after.find(';');
        let brace = after.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The module path of a source file: `src/broker/handlers/fetch.rs` is
/// `["broker", "handlers", "fetch"]`, `src/broker/mod.rs` is `["broker"]`.
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level modules `path`'s code names, through `crate::`, `super::` or `ketch::`.
fn used_modules(path: &Path, text: &str) -> BTreeSet<String> {
    let me = module_path(path);
    // `super` counts from the module a file is: a `mod.rs`'s parent is one up, as is a
    // plain file's.
    let bytes = text.as_bytes();
    let mut used = BTreeSet::new();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let at_word = i == 0 || !is_ident(bytes[i - 1]);
        let rest = &text[i..];
        if at_word && (rest.starts_with("crate::") || rest.starts_with("ketch::")) {
            let name: String = rest[7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            } else if rest[7..].starts_with('{') {
                // `crate::{a, b::c}`: every first segment inside the braces.
                let inner: String = rest[8..].chars().take_while(|c| *c != '}').collect();
                for part in inner.split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        used.insert(name);
                    }
                }
            }
            i += 7;
            continue;
        }
        if at_word && rest.starts_with("super::") {
            let mut depth = 0;
            let mut r = rest;
            while let Some(t) = r.strip_prefix("super::") {
                depth += 1;
                r = t;
            }
            let base_len = me.len().saturating_sub(depth);
            let name: String = r
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let top = if base_len == 0 {
                Some(name)
            } else {
                me.first().cloned()
            };
            if let Some(top) = top.filter(|t| !t.is_empty()) {
                used.insert(top);
            }
            i += rest.len() - r.len();
            continue;
        }
        i += 1;
    }
    used
}

/// The top-level module a file belongs to (`main` and `lib` are their own).
fn top_module(path: &Path) -> String {
    module_path(path)
        .first()
        .cloned()
        .unwrap_or_else(|| path.file_stem().unwrap().to_string_lossy().to_string())
}

/// Which top-level modules each module may use (ARCHITECTURE.md, "Shape").
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("model", &[][..]),
        ("runtime", &[][..]),
        ("protocol", &["model"][..]),
        ("raft", &["model"][..]),
        ("controller", &["model"][..]),
        ("replication", &["model"][..]),
        ("group", &["model"][..]),
        ("security", &["model"][..]),
        ("log", &["runtime", "protocol", "model"][..]),
        ("metrics", &["runtime", "model"][..]),
        (
            "wire",
            &["runtime", "protocol", "model", "metrics", "security"][..],
        ),
        (
            "quorum",
            &[
                "security",
                "raft",
                "controller",
                "log",
                "protocol",
                "model",
                "runtime",
                "wire",
            ][..],
        ),
        (
            "broker",
            &[
                "security",
                "controller",
                "replication",
                "group",
                "log",
                "protocol",
                "model",
                "runtime",
                "wire",
                "metrics",
            ][..],
        ),
        (
            "node",
            &[
                "security",
                "quorum",
                "broker",
                "controller",
                "group",
                "log",
                "protocol",
                "model",
                "runtime",
                "wire",
                "metrics",
            ][..],
        ),
        (
            "cli",
            &["bench", "protocol", "model", "runtime", "wire", "security"][..],
        ),
    ])
}

#[test]
fn modules_use_only_what_the_architecture_allows() {
    let rules = allowed();
    let mut problems = Vec::new();
    for file in all_files() {
        let module = top_module(&file);
        let Some(may) = rules.get(module.as_str()) else {
            continue; // main, lib, bench and fuzzing are harnesses or roots: anything goes
        };
        let text = code_text(&std::fs::read_to_string(&file).unwrap());
        for used in used_modules(&file, &text) {
            if used != module && rules.contains_key(used.as_str()) && !may.contains(&used.as_str())
            {
                problems.push(format!("{}: {module} uses {used}", file.display()));
            }
            if used == "bench" && module != "cli" {
                problems.push(format!(
                    "{}: {module} uses the bench harness",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_module_checker_resolves_paths() {
    let f = src().join("broker/handlers/fetch.rs");
    let used = used_modules(
        &f,
        "use super::super::partitions::X; use crate::{quorum::a, model}; ketch::node::run();",
    );
    assert_eq!(
        used,
        ["broker", "model", "node", "quorum"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let m = src().join("quorum/mod.rs");
    assert_eq!(
        used_modules(&m, "use super::broker::x;"),
        ["broker".to_string()].into_iter().collect()
    );
    let cut = production_text(&src().join("raft/mod.rs"));
    assert!(
        cut.contains("pub trait RaftLog"),
        "code after a #[cfg(test)] mod is kept"
    );
}

fn check_banned(modules: &[&str], banned: &[&str], why: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for file in all_files() {
        if !modules.contains(&top_module(&file).as_str()) {
            continue;
        }
        let text = production_text(&file);
        for word in banned {
            if text.contains(word) {
                problems.push(format!("{}: uses `{word}` ({why})", file.display()));
            }
        }
    }
    problems
}

const IO_AND_NONDETERMINISM: &[&str] = &[
    "tokio::",
    "madsim::",
    "std::fs",
    "std::net",
    "Instant::now",
    "SystemTime::now",
    "thread::spawn",
    "thread_rng",
    "HashMap",
    "HashSet",
];

#[test]
fn sans_io_cores_touch_no_io_clocks_threads_or_random_order() {
    let cores = [
        "model",
        "security",
        "protocol",
        "raft",
        "controller",
        "replication",
        "group",
    ];
    let problems = check_banned(&cores, IO_AND_NONDETERMINISM, "a sans-IO core");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_log_does_io_only_through_the_disk_trait() {
    let problems = check_banned(
        &["log"],
        IO_AND_NONDETERMINISM,
        "the log goes through runtime::Disk",
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_runtime_opens_files_and_sockets_or_reads_clocks() {
    let mut problems = Vec::new();
    for file in all_files() {
        if file.starts_with(src().join("runtime")) {
            continue;
        }
        let text = production_text(&file);
        for word in [
            "std::fs",
            "std::net",
            "Instant::now",
            "SystemTime::now",
            "thread::spawn",
            "tokio::runtime",
        ] {
            if text.contains(word) {
                problems.push(format!(
                    "{}: uses `{word}` outside src/runtime",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_unwrap_or_expect_in_production_code() {
    // Disk and network input must never panic the broker; harness modules are exempt.
    let exempt = ["bench.rs", "fuzzing.rs"];
    let mut problems = Vec::new();
    for file in all_files() {
        if file
            .file_name()
            .is_some_and(|n| exempt.iter().any(|e| n == *e))
        {
            continue;
        }
        let text = production_text(&file);
        for (i, line) in text.lines().enumerate() {
            if line.contains(".unwrap()") || line.contains(".expect(") {
                problems.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_module_says_what_it_owns() {
    let mut problems = Vec::new();
    for file in all_files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not open with a //! comment",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
