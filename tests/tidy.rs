//! Tidy: the architecture rules of ARCHITECTURE.md, checked on the source text (TigerBeetle's
//! `tidy.zig` idea). Cheap, and it fails the build the moment a core reaches for IO.

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

/// The file's text up to its first `#[cfg(test)]`: test modules sit at the end of a file and
/// may do what production code may not. Files named `tests.rs` are all test.
fn production_text(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..cut]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files_under(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&src().join(module), &mut files);
    let single = src().join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    files
}

fn check_banned(modules: &[&str], banned: &[&str], why: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for module in modules {
        for file in files_under(module) {
            let text = production_text(&file);
            for word in banned {
                if text.contains(word) {
                    problems.push(format!("{}: uses `{word}` ({why})", file.display()));
                }
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
        "protocol",
        "raft",
        "controller",
        "replication",
        "group",
    ];
    let mut problems = check_banned(&cores, IO_AND_NONDETERMINISM, "a sans-IO core");
    problems.extend(check_banned(
        &cores,
        &["crate::runtime", "crate::broker", "crate::log"],
        "cores depend only on model and each other",
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_log_does_io_only_through_the_disk_trait() {
    let problems = check_banned(
        &["log"],
        IO_AND_NONDETERMINISM,
        "the log goes through runtime::Disk",
    );
    let mut more = check_banned(&["log"], &["crate::broker"], "the log is below the broker");
    more.extend(problems);
    assert!(more.is_empty(), "{}", more.join("\n"));
}

#[test]
fn only_the_runtime_opens_files_and_sockets_or_reads_clocks() {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
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
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
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
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
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
