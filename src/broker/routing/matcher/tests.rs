//! The matcher against a naive reference on random patterns and keys (a fixed seed, so a
//! failure repeats), and RabbitMQ's documented edge cases.

use super::*;
use crate::broker::routing::model::Destination;

/// RabbitMQ's topic rule, written the obvious way: exponential, and obviously right.
fn naive(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| naive(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && naive(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && naive(rest, &key[1..]),
    }
}

fn naive_str(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = words(pattern).collect();
    let key: Vec<&str> = words(key).collect();
    naive(&pattern, &key)
}

fn trie_matches(patterns: &[&str], key: &str) -> Vec<u32> {
    let mut out = Vec::new();
    TopicTrie::new(patterns.iter().copied()).matches(key, &mut out);
    out
}

/// SplitMix64: a deterministic stream for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_words(rng: &mut Rng, alphabet: &[&str], words_max: u64) -> String {
    let count = rng.below(words_max + 1);
    (0..count)
        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(".")
}

#[test]
fn rabbitmqs_edge_cases() {
    let cases: &[(&str, &str, bool)] = &[
        ("#", "", true),
        ("#", "a", true),
        ("#", "a.b.c", true),
        ("a.#", "a", true),
        ("a.#", "a.b.c", true),
        ("a.#", "b", false),
        ("#.a", "a", true),
        ("#.a", "x.y.a", true),
        ("a.#.b", "a.b", true),
        ("a.#.b", "a.x.y.b", true),
        ("*", "", false),
        ("*", "a", true),
        ("*", "a.b", false),
        ("a.*", "a", false),
        ("a.*", "a.b", true),
        ("", "", true),
        ("", "a", false),
        ("a..b", "a..b", true),
        ("a.*.b", "a..b", true),
        ("#.#", "", true),
        ("#.*", "", false),
        ("#.*", "a", true),
        ("*.#", "a.b", true),
        ("order.eu.*", "order.eu.paid", true),
        ("order.eu.*", "order.us.paid", false),
        ("order.#", "order", true),
    ];
    for (pattern, key, expected) in cases {
        assert_eq!(
            naive_str(pattern, key),
            *expected,
            "naive {pattern:?} {key:?}"
        );
        let found = !trie_matches(&[pattern], key).is_empty();
        assert_eq!(found, *expected, "trie {pattern:?} {key:?}");
    }
}

#[test]
fn the_trie_agrees_with_the_naive_rule_on_random_patterns() {
    let mut rng = Rng(0x5eed_0018);
    let pattern_alphabet = ["a", "b", "c", "", "*", "#"];
    let key_alphabet = ["a", "b", "c", ""];
    for _round in 0..300 {
        let patterns: Vec<String> = (0..rng.below(40) + 1)
            .map(|_| random_words(&mut rng, &pattern_alphabet, 5))
            .collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let trie = TopicTrie::new(refs.iter().copied());
        for _ in 0..50 {
            let key = random_words(&mut rng, &key_alphabet, 6);
            let mut found = Vec::new();
            trie.matches(&key, &mut found);
            let expected: Vec<u32> = (0..refs.len() as u32)
                .filter(|index| naive_str(refs[*index as usize], &key))
                .collect();
            assert_eq!(found, expected, "patterns {refs:?} key {key:?}");
        }
    }
}

#[test]
fn many_hashes_stay_fast() {
    // 2^60 paths for the naive walk; the remembered states make it a few thousand.
    let pattern = ["#.a"; 30].join(".");
    let key = ["a"; 60].join(".");
    assert_eq!(trie_matches(&[&pattern], &key), vec![0]);
    assert!(trie_matches(&[&pattern], &["b"; 60].join(".")).is_empty());
}

fn binding(key: &str, headers: &[(&str, Option<&str>)], mode: HeaderMatch) -> Binding {
    Binding {
        destination: Destination::Topic("t".into()),
        key: key.into(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.map(str::to_string)))
            .collect(),
        header_match: mode,
    }
}

fn header(key: &str, value: &str) -> Header {
    Header {
        key: key.into(),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
    }
}

#[test]
fn direct_fanout_and_headers() {
    let direct = Matcher::new(
        ExchangeKind::Direct,
        &[
            binding("a", &[], HeaderMatch::All),
            binding("b", &[], HeaderMatch::All),
            binding("a", &[], HeaderMatch::All),
        ],
    );
    let mut out = Vec::new();
    direct.matches("a", &[], &mut out);
    assert_eq!(out, vec![0, 2]);
    direct.matches("a.b", &[], &mut out);
    assert!(out.is_empty());
    let fanout = Matcher::new(
        ExchangeKind::Fanout,
        &vec![binding("x", &[], HeaderMatch::All); 3],
    );
    fanout.matches("anything", &[], &mut out);
    assert_eq!(out, vec![0, 1, 2]);

    let all = binding(
        "",
        &[("format", Some("pdf")), ("type", Some("report"))],
        HeaderMatch::All,
    );
    let any = binding(
        "",
        &[("format", Some("pdf")), ("type", Some("log"))],
        HeaderMatch::Any,
    );
    let present = binding("", &[("urgent", None)], HeaderMatch::All);
    let x_only = binding("", &[("x-kind", Some("a"))], HeaderMatch::AnyWithX);
    let headers = Matcher::new(ExchangeKind::Headers, &[all, any, present, x_only]);
    headers.matches(
        "",
        &[header("format", "pdf"), header("type", "report")],
        &mut out,
    );
    assert_eq!(out, vec![0, 1]);
    headers.matches("", &[header("type", "log"), header("urgent", "")], &mut out);
    assert_eq!(out, vec![1, 2]);
    headers.matches("", &[header("x-kind", "a")], &mut out);
    assert_eq!(out, vec![3]);
    // `x-` headers do not count for plain all/any: all with only x- names matches everything.
    assert!(headers_match(
        &[("x-a".into(), Some("1".into()))],
        HeaderMatch::All,
        &[]
    ));
    assert!(!headers_match(
        &[("x-a".into(), Some("1".into()))],
        HeaderMatch::Any,
        &[]
    ));
    assert!(!headers_match(
        &[("x-a".into(), Some("1".into()))],
        HeaderMatch::AllWithX,
        &[]
    ));
}
