//! How fast a topic exchange decides where a message goes: routing decisions per second on one
//! core with 1, 100 and 10,000 bindings, through the matcher alone (`Matcher::matches`) and the
//! whole decision a publish makes (`publish::route`: lookups, alternate exchange, dedup of
//! topics). Storage is not involved: the appends are the produce path's, measured elsewhere.
//!
//! `cargo bench --bench routing [-- --seconds S]`
//!
//! Patterns are three or four words over a 1,000-word vocabulary, 70% literal, 20% with one
//! `*`, 10% with a `#`; keys are three or four words from the same vocabulary, a third of them
//! built from a bound pattern so that some match. Not a test: nothing here asserts speed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmq::broker::routing::matcher::Matcher;
use ringmq::broker::routing::model::{
    Binding, Destination, ExchangeKind, ExchangeMeta, HeaderMatch,
};
use ringmq::broker::routing::publish::route;
use ringmq::broker::routing::store::{Exchange, Exchanges};

/// SplitMix64: the same patterns and keys every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn word(rng: &mut Rng) -> String {
    format!("w{}", rng.below(1000))
}

fn pattern(rng: &mut Rng) -> String {
    let count = 3 + rng.below(2);
    let mut words: Vec<String> = (0..count).map(|_| word(rng)).collect();
    match rng.below(10) {
        0 => words[rng.below(count)] = "#".into(),
        1 | 2 => words[rng.below(count)] = "*".into(),
        _ => {}
    }
    words.join(".")
}

fn key(rng: &mut Rng, patterns: &[String]) -> String {
    if rng.below(3) == 0 {
        let from = &patterns[rng.below(patterns.len())];
        return from
            .split('.')
            .map(|w| {
                if w == "*" || w == "#" {
                    word(rng)
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(".");
    }
    let count = 3 + rng.below(2);
    (0..count).map(|_| word(rng)).collect::<Vec<_>>().join(".")
}

fn measure(seconds: f64, mut decide: impl FnMut(usize) -> usize) -> (f64, f64) {
    let (started, mut decisions, mut matched) = (Instant::now(), 0usize, 0usize);
    let budget = Duration::from_secs_f64(seconds);
    while started.elapsed() < budget {
        for _ in 0..10_000 {
            matched += decide(decisions);
            decisions += 1;
        }
    }
    let rate = decisions as f64 / started.elapsed().as_secs_f64();
    (rate, matched as f64 / decisions as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|arg| arg == "--seconds")
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(3.0);
    println!("bindings\tpath\tdecisions/s\tmean matches");
    for bindings in [1usize, 100, 10_000] {
        let mut rng = Rng(18);
        let patterns: Vec<String> = (0..bindings).map(|_| pattern(&mut rng)).collect();
        let keys: Vec<String> = (0..65_536).map(|_| key(&mut rng, &patterns)).collect();
        let meta = ExchangeMeta {
            name: "bench".into(),
            kind: ExchangeKind::Topic,
            alternate_exchange: None,
            bindings: patterns
                .iter()
                .enumerate()
                .map(|(index, pattern)| Binding {
                    destination: Destination::Topic(format!("t{}", index % 64)),
                    key: pattern.clone(),
                    headers: Vec::new(),
                    header_match: HeaderMatch::All,
                })
                .collect(),
            created_ms: 0,
        };
        let built = Instant::now();
        let matcher = Matcher::new(ExchangeKind::Topic, &meta.bindings);
        let build_ms = built.elapsed().as_secs_f64() * 1000.0;
        let mut out = Vec::new();
        let (rate, mean) = measure(seconds, |i| {
            matcher.matches(&keys[i % keys.len()], &[], &mut out);
            out.len()
        });
        println!("{bindings}\tmatcher\t{rate:.0}\t{mean:.2}\t(built in {build_ms:.1} ms)");
        let exchanges = Exchanges {
            by_name: BTreeMap::from([("bench".to_string(), Arc::new(Exchange::new(meta)))]),
        };
        let (rate, mean) = measure(seconds, |i| {
            route(&exchanges, "bench", &keys[i % keys.len()], &[], &mut out).len()
        });
        println!("{bindings}\troute\t{rate:.0}\t{mean:.2}");
    }
}
