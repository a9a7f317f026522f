//! The layering of ARCHITECTURE.md, checked: every `crate::` path in src/ is read (grouped
//! imports included), and a module that names a layer it must not depend on fails the test with
//! the file and the path. Test code (`#[cfg(test)]` modules, `tests.rs` files) is left out:
//! tests may reach across layers to set things up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (module, paths it must not name). A path matches when it equals a rule or starts with it
/// followed by `::`.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "runtime",
        &[
            "batch", "storage", "shard", "broker", "protocol", "net", "server", "kafka", "client",
            "cli",
        ],
    ),
    (
        "batch",
        &[
            "runtime", "storage", "shard", "broker", "protocol", "net", "server", "kafka",
            "client", "cli",
        ],
    ),
    (
        "storage",
        &[
            "shard", "broker", "protocol", "net", "server", "kafka", "client", "cli",
        ],
    ),
    (
        "shard",
        &[
            "storage", "broker", "protocol", "net", "server", "kafka", "client", "cli",
        ],
    ),
    // The broker renders nothing: no wire type or wire error reaches it.
    (
        "broker",
        &["protocol", "net", "server", "kafka", "client", "cli"],
    ),
    (
        "protocol",
        &[
            "shard",
            "broker",
            "net",
            "server",
            "kafka",
            "client",
            "cli",
            // Protocol errors must not name storage errors; AckLevel is the one storage type
            // shared with the wire.
            "storage::StorageError",
            "storage::error",
        ],
    ),
    ("net", &["storage", "server", "kafka", "client", "cli"]),
    // The Kafka door goes only through the broker service.
    (
        "kafka",
        &[
            "storage",
            "shard",
            "protocol",
            "server",
            "client",
            "cli",
            "broker::groups",
            "broker::partition",
            "broker::admin",
            "broker::topics",
            "broker::fd_budget",
            "broker::producer_ids",
        ],
    ),
    // The key → partition rules, shared by the client, the CLI and the broker: a leaf.
    (
        "partitioner",
        &[
            "runtime", "batch", "storage", "shard", "broker", "protocol", "net", "server", "kafka",
            "client", "cli", "config", "metrics",
        ],
    ),
    // The client shares the key → partition rule through `partitioner`, not the broker.
    (
        "client",
        &[
            "server",
            "kafka",
            "net",
            "shard",
            "cli",
            "broker",
            "storage::log",
            "storage::error",
        ],
    ),
];

/// The native adapter's files, held to the same rule as the Kafka door towards the broker.
const NATIVE_ADAPTER: &[&str] = &[
    "server/connection.rs",
    "server/dispatch.rs",
    "server/errors.rs",
    "server/queues.rs",
];
const BROKER_INTERNALS: &[&str] = &[
    "storage",
    "shard",
    "broker::groups",
    "broker::partition",
    "broker::admin",
    "broker::topics",
    "broker::fd_budget",
    "broker::producer_ids",
    "broker::queues",
    "broker::compaction",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The file's text before its `#[cfg(test)]` module, comments removed.
fn code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path after `crate::`, grouped imports expanded: `crate::a::{b, c::{d}}` gives a::b,
/// a::c::d.
fn paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        expand("", rest, &mut found);
    }
    found
}

/// Reads one path (or brace group) at the start of `text`, under `prefix`.
fn expand(prefix: &str, text: &str, found: &mut BTreeSet<String>) {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        for item in split_group(group) {
            expand(prefix, item, found);
        }
        return;
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let (path, after) = text.split_at(end);
    let path = path.trim_end_matches(':');
    let full = match (prefix.is_empty(), path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path.to_string(),
        (false, false) => format!("{prefix}::{path}"),
    };
    if after.starts_with('{') {
        expand(&full, after, found);
    } else if !full.is_empty() && full != "self" {
        found.insert(full.trim_end_matches("::self").to_string());
    }
}

/// The top-level items of a brace group whose opening brace was just consumed.
fn split_group(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0usize, Vec::new());
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&text[start..index]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items
}

fn matches(path: &str, rule: &str) -> bool {
    path == rule || path.starts_with(&format!("{rule}::"))
}

#[test]
fn every_module_depends_only_on_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut broken = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let mut rules: Vec<&str> = FORBIDDEN
            .iter()
            .filter(|(name, _)| *name == module)
            .flat_map(|(_, rules)| rules.iter().copied())
            .collect();
        if NATIVE_ADAPTER.contains(&relative.as_str()) {
            rules.extend(BROKER_INTERNALS);
        }
        let text = std::fs::read_to_string(file).unwrap();
        for path in paths(&code(&text)) {
            if let Some(rule) = rules.iter().find(|rule| matches(&path, rule)) {
                broken.push(format!("src/{relative} names crate::{path} (rule: {rule})"));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_path_reader_expands_grouped_imports() {
    let found = paths(
        "use crate::broker::{self, service::{Service, RequestContext}, ShardState};\nlet x = crate::storage::log::now_ms();",
    );
    let expected: BTreeSet<String> = [
        "broker",
        "broker::service::Service",
        "broker::service::RequestContext",
        "broker::ShardState",
        "storage::log::now_ms",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_forbidden_path_is_caught() {
    let found = paths("use crate::storage::AckLevel;");
    assert!(found.iter().any(|path| matches(path, "storage")));
    assert!(!found.iter().any(|path| matches(path, "storage::log")));
}
