//! The layering of ARCHITECTURE.md, checked: every `crate::`, `super::` and `self::` path in
//! src/ is read (grouped imports and aliases included), and a module that names anything its
//! allowlist does not fails the test with the file and the path. Test code (items under
//! `#[cfg(test)]`, `tests.rs` files and `tests/` folders) is left out: tests may reach across
//! layers to set things up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (module, the paths of other modules it may name). A path is allowed when it equals an entry
/// or starts with one followed by `::`; a module may always name its own items. A module
/// missing here fails the test: a new module states what it may depend on. This is
/// ARCHITECTURE.md's code map as an allowlist: layers depend downward only.
const ALLOWED: &[(&str, &[&str])] = &[
    // The leaves.
    ("runtime", &[]),
    ("batch", &[]),
    ("partitioner", &[]),
    ("metrics", &[]),
    // Authentication mechanisms (SCRAM, PLAIN), independent of protocols and of storage.
    ("auth", &[]),
    ("storage", &["runtime", "batch"]),
    ("shard", &["runtime"]),
    // The broker's settings: its own, and the topic defaults that are storage's `LogConfig`.
    (
        "config",
        &["partitioner", "storage::LogConfig", "storage::config"],
    ),
    // The engine: everything below it, nothing of the wire.
    (
        "broker",
        &[
            "runtime",
            "batch",
            "partitioner",
            "metrics",
            "config",
            "auth",
            "storage",
            "shard",
        ],
    ),
    // The native wire format: AckLevel is the one storage type shared with the wire.
    ("protocol", &["storage::AckLevel", "batch"]),
    // The connection layer: the shard's state (its gate and limits) and the topic snapshot
    // for a fetch's worst case, nothing of a protocol's meaning.
    (
        "net",
        &[
            "runtime",
            "metrics",
            "config",
            "shard::ShardId",
            "protocol::codec",
            "broker::ShardState",
            "broker::topics::Topics",
        ],
    ),
    // The Kafka door goes only through the broker service (and is handed the shard's state by
    // `net`, for its limits).
    (
        "kafka",
        &[
            "runtime",
            "batch",
            "partitioner",
            "metrics",
            "config",
            "auth",
            "net",
            "broker::service",
            "broker::BrokerError",
            "broker::BrokerResult",
            "broker::ErrorKind",
            "broker::error",
            "broker::ShardState",
        ],
    ),
    // The SQS door, like the Kafka door, goes only through the broker service; it cuts its
    // HTTP frames for `net` (`protocol::codec::FrameStatus`).
    (
        "sqs",
        &[
            "runtime",
            "batch",
            "metrics",
            "config",
            "auth",
            "net",
            "protocol::codec::FrameStatus",
            "broker::service",
            "broker::BrokerError",
            "broker::ErrorKind",
            "broker::ShardState",
        ],
    ),
    // Start and shutdown compose every layer; its adapter files are held to ADAPTER_MAY_NAME.
    (
        "server",
        &[
            "runtime",
            "batch",
            "partitioner",
            "metrics",
            "config",
            "net",
            "protocol",
            "kafka::Kafka",
            "kafka::describe_metrics",
            "sqs::Sqs",
            "sqs::describe_metrics",
            "auth",
            "broker",
            "shard",
            "storage::log",
            "storage::AckLevel",
        ],
    ),
    // The client speaks the native protocol; the key -> partition rule is `partitioner`'s, the
    // SCRAM client side is `auth`'s.
    (
        "client",
        &[
            "runtime",
            "batch",
            "partitioner",
            "protocol",
            "auth",
            "storage::AckLevel",
        ],
    ),
    // The command line composes the client, the server and the offline storage tools.
    (
        "cli",
        &[
            "runtime",
            "batch",
            "partitioner",
            "config",
            "client",
            "server",
            "protocol",
            "storage::AckLevel",
            "storage::fsck",
            "storage::log",
            "storage::dirsync",
            "broker::fd_budget",
            // `ringmq user` edits users.json offline, as `log verify` reads segments.
            "broker::users",
            "broker::acls",
            "auth",
        ],
    ),
];

/// The native adapter's files: of the broker, storage and shards they name only
/// `ADAPTER_MAY_NAME`, as the Kafka door does.
const NATIVE_ADAPTER: &[&str] = &[
    "server/connection.rs",
    "server/dispatch.rs",
    "server/errors.rs",
    "server/routing.rs",
    "server/replies.rs",
    "server/queues.rs",
];
const ADAPTER_MAY_NAME: &[&str] = &[
    "broker::service",
    "broker::BrokerError",
    "broker::BrokerResult",
    "broker::ErrorKind",
    "broker::error",
    "broker::ShardState",
    "broker::topics::Topics",
    "storage::AckLevel",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The file's code without comments and without the items `#[cfg(test)]` gates (a test
/// module, or a single test-only function or import, wherever it stands in the file).
fn code(text: &str) -> String {
    let text: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut kept = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        rest = skip_item(&rest[at + "#[cfg(test)]".len()..]);
    }
    kept.push_str(rest);
    kept
}

/// The text after the item at the start of `text`: after its `;` or its matching `}`, whichever
/// comes first outside braces.
fn skip_item(text: &str) -> &str {
    let mut depth = 0usize;
    for (index, c) in text.char_indices() {
        match c {
            ';' if depth == 0 => return &text[index + 1..],
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &text[index + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// The module path of a file under src/: `broker/groups/mod.rs` is broker::groups,
/// `kafka/fetch.rs` is kafka::fetch.
fn module_path(relative: &str) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts
}

/// Whether the text before a match ends a word, so the match starts a path of its own.
fn starts_word(before: &str) -> bool {
    before
        .chars()
        .last()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
}

/// `code` with every `super::` and `self::` path rewritten as the `crate::` path it names, so a
/// relative path cannot slip past the rules.
fn absolute(code: &str, module: &[String]) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    loop {
        let next = ["super::", "self::"]
            .iter()
            .filter_map(|word| {
                let mut from = 0;
                while let Some(at) = rest[from..].find(word) {
                    if starts_word(&rest[..from + at]) {
                        return Some(from + at);
                    }
                    from += at + word.len();
                }
                None
            })
            .min();
        let Some(at) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let mut base = module.to_vec();
        let mut tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("self::") {
            tail = after;
        }
        while let Some(after) = tail.strip_prefix("super::") {
            base.pop();
            tail = after;
        }
        out.push_str("crate::");
        for part in &base {
            out.push_str(part);
            out.push_str("::");
        }
        rest = tail;
    }
}

/// Every path after `crate::`, grouped imports expanded (`crate::a::{b, c::{d}}` gives a::b,
/// a::c::d), and every path through an alias (`use crate::broker as b;`, then `b::groups::x`
/// gives broker::groups::x).
fn paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut aliases = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        expand("", rest, &mut found, &mut aliases);
    }
    for (alias, target) in aliases {
        let pattern = format!("{alias}::");
        let mut from = 0;
        while let Some(at) = code[from..].find(&pattern) {
            let start = from + at;
            from = start + pattern.len();
            if starts_word(&code[..start]) {
                expand(&target, &code[from..], &mut found, &mut Vec::new());
            }
        }
    }
    found
}

/// Reads one path (or brace group) at the start of `text`, under `prefix`; a `use ... as name`
/// is remembered in `aliases`.
fn expand(
    prefix: &str,
    text: &str,
    found: &mut BTreeSet<String>,
    aliases: &mut Vec<(String, String)>,
) {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        for item in split_group(group) {
            expand(prefix, item, found, aliases);
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
        expand(&full, after, found, aliases);
        return;
    }
    let full = full.trim_end_matches("::self").to_string();
    if let Some(alias) = after.trim_start().strip_prefix("as ") {
        let alias: String = alias
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !alias.is_empty() && alias != "_" {
            aliases.push((alias, full.clone()));
        }
    }
    if !full.is_empty() && full != "self" {
        found.insert(full);
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

/// What `relative` (a file under src/) names that its rules do not allow.
fn violations(relative: &str, text: &str) -> Vec<String> {
    let module = module_path(relative);
    let top = module[0].as_str();
    if top == "lib" || top == "main" {
        return Vec::new();
    }
    let Some((_, allowed)) = ALLOWED.iter().find(|(name, _)| *name == top) else {
        return vec![format!(
            "src/{relative}: module {top} is not in ALLOWED (say what it may depend on)"
        )];
    };
    let adapter = NATIVE_ADAPTER.contains(&relative);
    let mut broken = Vec::new();
    for path in paths(&absolute(&code(text), &module)) {
        let own = matches(&path, top);
        let permitted = own || allowed.iter().any(|rule| matches(&path, rule));
        let internal = ["broker", "storage", "shard"]
            .iter()
            .any(|layer| matches(&path, layer));
        let adapter_refused =
            adapter && internal && !ADAPTER_MAY_NAME.iter().any(|rule| matches(&path, rule));
        if !permitted || adapter_refused {
            broken.push(format!("src/{relative} names crate::{path}"));
        }
    }
    broken
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
        let text = std::fs::read_to_string(file).unwrap();
        broken.extend(violations(&relative, &text));
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

/// The ways around a path reader that only looked for `crate::` in a file's first part.
#[test]
fn relative_paths_aliases_and_late_test_items_are_all_read() {
    // An alias, then a path through it.
    let aliased = "use crate::broker as engine;\nfn f() { engine::groups::commit(); }";
    assert_eq!(
        violations("kafka/x.rs", aliased),
        vec![
            "src/kafka/x.rs names crate::broker",
            "src/kafka/x.rs names crate::broker::groups::commit"
        ]
    );
    // `super::` out of the Kafka door into the broker's internals.
    let relative = "use super::super::broker::groups::Group;";
    assert_eq!(
        violations("kafka/x.rs", relative),
        vec!["src/kafka/x.rs names crate::broker::groups::Group"]
    );
    // `super::` within the module is its own business.
    assert!(violations("kafka/fetch.rs", "use super::errors::code_of;").is_empty());
    // A test-only function early in the file hides nothing after it.
    let early_test = "#[cfg(test)]\nfn helper() { crate::storage::log::now_ms(); }\nuse crate::storage::PartitionLog;";
    assert_eq!(
        violations("kafka/x.rs", early_test),
        vec!["src/kafka/x.rs names crate::storage::PartitionLog"]
    );
    // A module without rules is refused until it says what it may use.
    assert_eq!(violations("queues/mod.rs", "").len(), 1);
    // The native adapter files may not reach the broker's internals that `server` may.
    assert_eq!(
        violations("server/dispatch.rs", "use crate::broker::groups::Group;"),
        vec!["src/server/dispatch.rs names crate::broker::groups::Group"]
    );
    assert!(violations("server/mod.rs", "use crate::broker::groups::Group;").is_empty());
}
