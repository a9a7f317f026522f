//! The exchanges, durable: every exchange with its bindings in `<data_dir>/exchanges.json`,
//! written as the topic metadata is (`json_file`: checksum, temp file, fsync, rename, fsync
//! of the directory), and each exchange's matcher compiled on load. A shard reads an immutable
//! snapshot; shard 0 makes a new one for every change and hands it to every shard.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::matcher::Matcher;
use super::model::{self, ExchangeMeta};
use crate::broker::json_file;

pub const EXCHANGES_FILE: &str = "exchanges.json";
/// The file is refused past this size before it is read: it is read from disk, so hostile.
/// 1,000 exchanges of 10,000 bindings of 255-byte keys would not fit; the limits' defaults do.
const EXCHANGES_FILE_BYTES_MAX: u64 = 1 << 30;
/// What a saved binding may hold whatever the configuration says (a file from disk is checked
/// against these, not against limits that may have changed since it was written).
const KEY_BYTES_HARD_MAX: usize = 64 * 1024;
const BINDING_HEADERS_HARD_MAX: usize = 1024;

/// One exchange, with its bindings compiled.
#[derive(Debug)]
pub struct Exchange {
    pub meta: ExchangeMeta,
    pub matcher: Matcher,
}

impl Exchange {
    pub fn new(meta: ExchangeMeta) -> Exchange {
        let matcher = Matcher::new(meta.kind, &meta.bindings);
        Exchange { meta, matcher }
    }
}

/// An immutable snapshot of every exchange.
#[derive(Debug, Default)]
pub struct Exchanges {
    pub by_name: BTreeMap<String, Arc<Exchange>>,
}

impl Exchanges {
    pub fn get(&self, name: &str) -> Option<&Arc<Exchange>> {
        self.by_name.get(name)
    }

    /// Every binding of every exchange.
    pub fn bindings(&self) -> usize {
        self.by_name
            .values()
            .map(|exchange| exchange.meta.bindings.len())
            .sum()
    }

    /// Reads `exchanges.json` in `data_dir`; a missing file is a broker without exchanges.
    pub fn load(data_dir: &Path) -> Result<Exchanges, String> {
        let path = data_dir.join(EXCHANGES_FILE);
        let Some(body) =
            json_file::load_checked(data_dir, EXCHANGES_FILE, EXCHANGES_FILE_BYTES_MAX)?
        else {
            return Ok(Exchanges::default());
        };
        let metas: Vec<ExchangeMeta> =
            serde_json::from_str(&body).map_err(|error| format!("{}: {error}", path.display()))?;
        let mut by_name = BTreeMap::new();
        for meta in metas {
            check_saved(&meta).map_err(|why| format!("{}: {why}", path.display()))?;
            let name = meta.name.clone();
            if by_name
                .insert(name.clone(), Arc::new(Exchange::new(meta)))
                .is_some()
            {
                return Err(format!("{}: exchange {name:?} twice", path.display()));
            }
        }
        Ok(Exchanges { by_name })
    }

    /// Writes the snapshot so that a crash leaves either the old or the new file.
    pub fn save(&self, data_dir: &Path) -> io::Result<()> {
        let metas: Vec<&ExchangeMeta> = self.by_name.values().map(|x| &x.meta).collect();
        let body = serde_json::to_string(&metas).map_err(io::Error::other)?;
        json_file::save_checked(data_dir, EXCHANGES_FILE, &body)
    }
}

/// What any saved exchange must be, whatever the limits: names that are names, and keys and
/// headers within the hard caps.
fn check_saved(meta: &ExchangeMeta) -> Result<(), String> {
    model::validate_name(&meta.name).map_err(|error| error.message)?;
    if let Some(alternate) = &meta.alternate_exchange {
        model::validate_name(alternate).map_err(|error| error.message)?;
    }
    for binding in &meta.bindings {
        let too_large = binding.key.len() > KEY_BYTES_HARD_MAX
            || binding.headers.len() > BINDING_HEADERS_HARD_MAX
            || binding.headers.iter().any(|(name, value)| {
                name.len() > KEY_BYTES_HARD_MAX
                    || value.as_ref().is_some_and(|v| v.len() > KEY_BYTES_HARD_MAX)
            });
        if too_large || binding.destination.name().is_empty() {
            return Err(format!(
                "exchange {:?} has a binding past the hard limits",
                meta.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::routing::model::{Binding, Destination, ExchangeKind, HeaderMatch};

    fn sample() -> ExchangeMeta {
        ExchangeMeta {
            name: "orders".into(),
            kind: ExchangeKind::Topic,
            alternate_exchange: Some("lost".into()),
            bindings: vec![Binding {
                destination: Destination::Topic("audit".into()),
                key: "order.#".into(),
                headers: vec![],
                header_match: HeaderMatch::All,
            }],
            created_ms: 7,
        }
    }

    #[test]
    fn exchanges_round_trip_and_hostile_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Exchanges::load(dir.path()).unwrap().by_name.is_empty());
        let mut exchanges = Exchanges::default();
        exchanges
            .by_name
            .insert("orders".into(), Arc::new(Exchange::new(sample())));
        exchanges.save(dir.path()).unwrap();
        let loaded = Exchanges::load(dir.path()).unwrap();
        assert_eq!(loaded.get("orders").unwrap().meta, sample());

        let mut bad = sample();
        bad.name = "../etc".into();
        let body = serde_json::to_string(&vec![bad]).unwrap();
        json_file::save_checked(dir.path(), EXCHANGES_FILE, &body).unwrap();
        assert!(Exchanges::load(dir.path()).is_err());
        let body = serde_json::to_string(&vec![sample(), sample()]).unwrap();
        json_file::save_checked(dir.path(), EXCHANGES_FILE, &body).unwrap();
        assert!(Exchanges::load(dir.path()).unwrap_err().contains("twice"));
        json_file::save_checked(dir.path(), EXCHANGES_FILE, "{\"not\": \"a list\"}").unwrap();
        assert!(Exchanges::load(dir.path()).is_err());
    }
}
