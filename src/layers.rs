//! The crate doc's map, checked: which top-level modules each module's code may name, and that
//! the pure modules name no client, socket or file. Only the non-test part of each file counts
//! (everything before its first `#[cfg(test)]`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use of the crate (itself always).
const ALLOWED: &[(&str, &[&str])] = &[
    // Wire types; an Image is named after its digest by the one rule in domain::image_name.
    ("api", &["domain"]),
    ("domain", &["api"]),
    ("registry", &["domain"]),
    ("metrics", &["registry"]),
    ("server", &["metrics"]),
    (
        "controller",
        &[
            "admission",
            "api",
            "domain",
            "metrics",
            "registry",
            "server",
        ],
    ),
    ("webhook", &["controller", "domain", "metrics"]),
    ("admission", &["api", "controller", "domain", "webhook"]),
    ("oc", &["api", "controller", "domain"]),
    ("leader", &["controller", "metrics", "server"]),
    (
        "cli",
        &[
            "admission",
            "api",
            "controller",
            "domain",
            "leader",
            "metrics",
            "oc",
            "registry",
            "server",
            "webhook",
        ],
    ),
];

/// What `api` may use of `domain`: only the naming rule of Image objects.
const API_USES_OF_DOMAIN: &[&str] = &["crate::domain::image_name"];

/// Paths pure modules never name: clients, sockets, files, processes.
const IMPURE: &[&str] = &[
    "kube::Client",
    "kube::Api",
    "reqwest",
    "tokio::net",
    "tokio::fs",
    "tokio::process",
    "std::fs",
    "std::net::TcpStream",
    "std::process",
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The Rust files of a top-level module (`src/<name>.rs` or `src/<name>/**`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let root = source_root();
    let single = root.join(format!("{module}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.join(module)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code lines of a file before its tests, without comments.
fn code_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .map(|line| strip_comment(line).to_owned())
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// A line without its `//` comment.
fn strip_comment(line: &str) -> &str {
    line.split("//").next().unwrap_or_default()
}

/// The top-level modules named as `crate::<module>` in `lines`, and the full paths naming them.
fn crate_paths(lines: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for line in lines {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            found.push(tail[..end].trim_end_matches(':').to_owned());
            rest = &tail[end..];
        }
    }
    found
}

fn top_module(path: &str) -> &str {
    path.trim_start_matches("crate::")
        .split("::")
        .next()
        .unwrap_or_default()
}

#[test]
fn every_module_uses_only_what_the_crate_map_allows() {
    let mut violations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut checked_files = 0;
    for (module, allowed) in ALLOWED {
        for file in files_of(module) {
            checked_files += 1;
            for path in crate_paths(&code_lines(&file)) {
                let used = top_module(&path);
                let fine = if used == *module || used.is_empty() {
                    true
                } else if *module == "api" && used == "domain" {
                    API_USES_OF_DOMAIN.iter().any(|p| path.starts_with(p))
                } else {
                    allowed.contains(&used)
                };
                if !fine {
                    violations
                        .entry(file.display().to_string())
                        .or_default()
                        .insert(path);
                }
            }
        }
    }
    assert!(checked_files > 50, "only {checked_files} files were read");
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn every_top_level_module_is_on_the_map() {
    let lib = std::fs::read_to_string(source_root().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|name| name.trim_end_matches(';'))
        .collect();
    let mapped: BTreeSet<&str> = ALLOWED.iter().map(|(module, _)| *module).collect();
    assert_eq!(declared, mapped);
    for module in &declared {
        assert!(
            lib.contains(&format!("[`{module}`]")),
            "the crate doc does not describe {module}"
        );
    }
}

#[test]
fn the_pure_modules_name_no_client_socket_file_or_process() {
    let mut impure = Vec::new();
    for module in ["domain", "api"] {
        for file in files_of(module) {
            if file.components().any(|c| c.as_os_str() == "conformance") {
                continue;
            }
            for line in code_lines(&file) {
                for path in IMPURE {
                    if line.contains(path) {
                        impure.push(format!("{}: {}", file.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(impure.is_empty(), "{impure:#?}");
}

#[test]
fn the_checks_see_a_use_of_another_module() {
    let lines = vec!["use crate::registry::RegistryClient;".to_owned()];
    assert_eq!(crate_paths(&lines), ["crate::registry::RegistryClient"]);
    assert_eq!(top_module("crate::registry::RegistryClient"), "registry");
    let commented = vec![strip_comment("let x = 1; // see crate::controller").to_owned()];
    assert!(crate_paths(&commented).is_empty());
    let two = vec!["f(crate::api::Image, crate::domain::image_name::x)".to_owned()];
    assert_eq!(
        crate_paths(&two),
        ["crate::api::Image", "crate::domain::image_name::x"]
    );
}
