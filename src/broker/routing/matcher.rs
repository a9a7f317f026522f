//! Which bindings of one exchange a message matches. Built once per change of the exchange and
//! shared read-only by every shard, so a publish decides on its own shard without a lock.
//!
//! A topic exchange is a trie over words, not a scan of its bindings: a key of n words visits at
//! most the trie paths its words spell, plus the `*` and `#` branches beside them. `#` matches
//! zero or more words, so from a `#` node the walk resumes at every later word; the states
//! (node, word) already walked from a `#` are remembered, which keeps a pattern such as
//! `#.a.#.a.#` from taking time exponential in the key's length (RabbitMQ's trie walks them
//! again). A direct exchange is a hash map of keys, fanout takes every binding, and a headers
//! exchange checks each binding (its bindings are few: the limit is `exchange_bindings_max`).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::model::{Binding, ExchangeKind, HeaderMatch};
use crate::batch::Header;

/// The words of a topic key or pattern: the empty key has none (as in RabbitMQ), and empty
/// words between dots are words.
fn words(key: &str) -> impl Iterator<Item = &str> {
    let mut split = key.split('.');
    if key.is_empty() {
        split.next();
    }
    split
}

#[derive(Default, Debug)]
struct Node {
    children: HashMap<Box<str>, u32>,
    star: Option<u32>,
    hash: Option<u32>,
    /// The bindings whose pattern ends here.
    ends: Vec<u32>,
}

/// The trie of a topic exchange's patterns.
#[derive(Debug)]
pub struct TopicTrie {
    nodes: Vec<Node>,
}

impl TopicTrie {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> TopicTrie {
        let mut trie = TopicTrie {
            nodes: vec![Node::default()],
        };
        for (index, pattern) in patterns.into_iter().enumerate() {
            trie.insert(pattern, index as u32);
        }
        trie
    }

    fn insert(&mut self, pattern: &str, binding: u32) {
        let mut node = 0usize;
        let mut previous_hash = false;
        for word in words(pattern) {
            // `#.#` matches what `#` matches: one node for both keeps the walk linear.
            if word == "#" && previous_hash {
                continue;
            }
            previous_hash = word == "#";
            let next = self.nodes.len() as u32;
            let slot = match word {
                "*" => self.nodes[node].star.get_or_insert(next),
                "#" => self.nodes[node].hash.get_or_insert(next),
                _ => self.nodes[node].children.entry(word.into()).or_insert(next),
            };
            let child = *slot;
            if child == next {
                self.nodes.push(Node::default());
            }
            node = child as usize;
        }
        self.nodes[node].ends.push(binding);
    }

    /// The bindings whose pattern matches `key`, in no particular order, each once.
    pub fn matches(&self, key: &str, out: &mut Vec<u32>) {
        let words: Vec<&str> = words(key).collect();
        let mut walk = Walk {
            trie: self,
            words: &words,
            out,
            seen: HashSet::new(),
        };
        walk.from(0, 0);
        out.sort_unstable();
        out.dedup();
    }
}

struct Walk<'a> {
    trie: &'a TopicTrie,
    words: &'a [&'a str],
    out: &'a mut Vec<u32>,
    /// (node, word) states entered from a `#` node; they are walked once.
    seen: HashSet<(u32, usize)>,
}

impl Walk<'_> {
    fn from(&mut self, node: u32, word: usize) {
        let Some(current) = self.trie.nodes.get(node as usize) else {
            return;
        };
        if let Some(hash) = current.hash {
            for next in word..=self.words.len() {
                if self.seen.insert((hash, next)) {
                    self.from(hash, next);
                }
            }
        }
        let Some(text) = self.words.get(word) else {
            self.out.extend_from_slice(&current.ends);
            return;
        };
        if let Some(child) = current.children.get(*text) {
            self.from(*child, word + 1);
        }
        if let Some(star) = current.star {
            self.from(star, word + 1);
        }
    }
}

/// A headers binding's named headers (value None: present with any value) and how they combine.
type HeadersBinding = (Vec<(String, Option<String>)>, HeaderMatch);

/// One exchange's bindings, compiled for its type.
#[derive(Debug)]
pub enum Matcher {
    Direct(HashMap<String, Vec<u32>>),
    Topic(TopicTrie),
    Fanout(u32),
    Headers(Vec<HeadersBinding>),
}

impl Matcher {
    pub fn new(kind: ExchangeKind, bindings: &[Binding]) -> Matcher {
        match kind {
            ExchangeKind::Direct => {
                let mut keys: HashMap<String, Vec<u32>> = HashMap::new();
                for (index, binding) in bindings.iter().enumerate() {
                    keys.entry(binding.key.clone())
                        .or_default()
                        .push(index as u32);
                }
                Matcher::Direct(keys)
            }
            ExchangeKind::Topic => {
                Matcher::Topic(TopicTrie::new(bindings.iter().map(|b| b.key.as_str())))
            }
            ExchangeKind::Fanout => Matcher::Fanout(bindings.len() as u32),
            ExchangeKind::Headers => Matcher::Headers(
                bindings
                    .iter()
                    .map(|binding| (binding.headers.clone(), binding.header_match))
                    .collect(),
            ),
        }
    }

    /// The indices of the bindings that `key` and `headers` match, ascending, each once.
    pub fn matches(&self, key: &str, headers: &[Header], out: &mut Vec<u32>) {
        out.clear();
        match self {
            Matcher::Direct(keys) => {
                if let Some(found) = keys.get(key) {
                    out.extend_from_slice(found);
                }
            }
            Matcher::Topic(trie) => trie.matches(key, out),
            Matcher::Fanout(count) => out.extend(0..*count),
            Matcher::Headers(bindings) => {
                for (index, (wanted, mode)) in bindings.iter().enumerate() {
                    if headers_match(wanted, *mode, headers) {
                        out.push(index as u32);
                    }
                }
            }
        }
    }
}

/// RabbitMQ's headers rule: `all` needs every named header present (with the value, when one is
/// given); `any` needs one of them. Names starting `x-` count only in the `-with-x` forms; a
/// binding that names no header matches everything under `all` and nothing under `any`.
pub fn headers_match(
    wanted: &[(String, Option<String>)],
    mode: HeaderMatch,
    headers: &[Header],
) -> bool {
    let with_x = matches!(mode, HeaderMatch::AllWithX | HeaderMatch::AnyWithX);
    let considered = wanted
        .iter()
        .filter(|(name, _)| with_x || !name.starts_with("x-"));
    let satisfied = |(name, value): &(String, Option<String>)| {
        headers.iter().any(|header| {
            header.key == *name
                && value.as_ref().is_none_or(|value| {
                    header.value.as_ref().map(Bytes::as_ref) == Some(value.as_bytes())
                })
        })
    };
    match mode {
        HeaderMatch::All | HeaderMatch::AllWithX => considered.into_iter().all(satisfied),
        HeaderMatch::Any | HeaderMatch::AnyWithX => considered.into_iter().any(satisfied),
    }
}

#[cfg(test)]
mod tests;
