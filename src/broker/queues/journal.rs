//! The queue journal of one partition: every queue group's durable state on that partition, as
//! records in an internal log beside the topic's (`<data_dir>/__queues/<topic>-<partition>`),
//! owned by the partition's owner shard like the partition itself.
//!
//! A record's key is the group's name; its value one `Entry`: the group defined (its settings
//! and start offset) or dropped, messages acquired (with their delivery count and delivery
//! times), or messages settled (acknowledged or archived). Appends wait for `fsynced`, so the
//! log's group commit makes one fdatasync cover every settle and receive of the moment. At start
//! the journal is folded in order (`QueueState::restore`): what was acquired is available again
//! with its count; and rewritten compacted (`broker::compaction`, fault-hook kind `queue`) when
//! mostly superseded, so its size follows the window, not the history.
//!
//! Values are little-endian; the journal is read from disk, so the decoder treats it as hostile:
//! lengths are checked before use and an undecodable record is skipped with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::settings::{FifoKey, QueueSettings};
use super::state::QueueState;
use crate::batch::{BatchBuilder, Compression, Record, records};
use crate::broker::BrokerResult;
use crate::broker::compaction::{self, Rewrite};
use crate::storage::{AckLevel, LogConfig, PartitionLog};

pub const JOURNALS_DIR: &str = "__queues";
/// Offsets a journal entry may name: far past any real log, and room to add 1 without overflow.
pub const OFFSET_MAX: u64 = 1 << 62;
/// Entries per record batch when writing (a compaction's copy).
const ENTRIES_PER_BATCH: usize = 1000;

/// One change to one queue group's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The group exists with `settings`, reading from `start`.
    Define { start: u64, settings: QueueSettings },
    /// The group's settings changed (SQS's SetQueueAttributes); its state stays.
    Configure { settings: QueueSettings },
    /// The group is gone.
    Drop,
    /// `first..=last` were delivered, the latest time as delivery number `deliveries`.
    Acquired {
        first: u64,
        last: u64,
        deliveries: u32,
        first_delivery_ms: u64,
        last_delivery_ms: u64,
    },
    /// `first..=last` were acknowledged, or archived (dead-lettered, lost).
    Settled {
        first: u64,
        last: u64,
        archived: bool,
    },
}

const DEFINE: u8 = 1;
const DROP: u8 = 2;
const ACQUIRED: u8 = 3;
const ACKED: u8 = 4;
const ARCHIVED: u8 = 5;
const CONFIGURE: u8 = 6;

/// A definition's start and settings, as `decode` reads them back.
fn encode_settings(out: &mut Vec<u8>, start: u64, settings: &QueueSettings) {
    out.extend_from_slice(&start.to_le_bytes());
    for value in [
        settings.visibility_timeout_ms,
        settings.max_deliveries,
        settings.max_in_flight,
        settings.max_unacked,
        settings.window_messages_max,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    let name = settings.dead_letter_topic.as_bytes();
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&settings.delay_ms.to_le_bytes());
    out.push(settings.fifo.to_byte());
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        match self {
            Entry::Define { start, settings } => {
                out.push(DEFINE);
                encode_settings(&mut out, *start, settings);
            }
            Entry::Configure { settings } => {
                out.push(CONFIGURE);
                // The layout of a definition, with no start.
                encode_settings(&mut out, 0, settings);
            }
            Entry::Drop => out.push(DROP),
            Entry::Acquired {
                first,
                last,
                deliveries,
                first_delivery_ms,
                last_delivery_ms,
            } => {
                out.push(ACQUIRED);
                out.extend_from_slice(&first.to_le_bytes());
                out.extend_from_slice(&last.to_le_bytes());
                out.extend_from_slice(&deliveries.to_le_bytes());
                out.extend_from_slice(&first_delivery_ms.to_le_bytes());
                out.extend_from_slice(&last_delivery_ms.to_le_bytes());
            }
            Entry::Settled {
                first,
                last,
                archived,
            } => {
                out.push(if *archived { ARCHIVED } else { ACKED });
                out.extend_from_slice(&first.to_le_bytes());
                out.extend_from_slice(&last.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a value; `Err` says what is wrong with it. Every read is bounds-checked.
    pub fn decode(value: &[u8]) -> Result<Entry, String> {
        let mut reader = Reader(value);
        let entry = match reader.u8()? {
            kind @ (DEFINE | CONFIGURE) => {
                let start = reader.u64()?;
                let mut numbers = [0u32; 5];
                for number in &mut numbers {
                    *number = reader.u32()?;
                }
                let length = usize::from(reader.u16()?);
                let name = std::str::from_utf8(reader.take(length)?)
                    .map_err(|_| "the dead-letter topic is not UTF-8".to_string())?;
                let delay_ms = reader.u64()?;
                let byte = reader.u8()?;
                let fifo = FifoKey::from_byte(byte)
                    .ok_or_else(|| format!("fifo key kind {byte} is unknown"))?;
                let [
                    visibility_timeout_ms,
                    max_deliveries,
                    max_in_flight,
                    max_unacked,
                    window,
                ] = numbers;
                let settings = QueueSettings {
                    visibility_timeout_ms,
                    max_deliveries,
                    max_in_flight,
                    max_unacked,
                    window_messages_max: window,
                    dead_letter_topic: name.to_string(),
                    delay_ms,
                    fifo,
                };
                if kind == DEFINE {
                    Entry::Define {
                        start: checked_offset(start)?,
                        settings,
                    }
                } else {
                    Entry::Configure { settings }
                }
            }
            DROP => Entry::Drop,
            ACQUIRED => {
                let (first, last) = reader.range()?;
                Entry::Acquired {
                    first,
                    last,
                    deliveries: reader.u32()?,
                    first_delivery_ms: reader.u64()?,
                    last_delivery_ms: reader.u64()?,
                }
            }
            kind @ (ACKED | ARCHIVED) => {
                let (first, last) = reader.range()?;
                Entry::Settled {
                    first,
                    last,
                    archived: kind == ARCHIVED,
                }
            }
            other => return Err(format!("unknown entry kind {other}")),
        };
        if !reader.0.is_empty() {
            return Err(format!("{} bytes after the entry", reader.0.len()));
        }
        Ok(entry)
    }
}

fn checked_offset(offset: u64) -> Result<u64, String> {
    if offset >= OFFSET_MAX {
        return Err(format!("offset {offset} is past {OFFSET_MAX}"));
    }
    Ok(offset)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        if self.0.len() < count {
            return Err(format!("{} bytes where {count} were due", self.0.len()));
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn range(&mut self) -> Result<(u64, u64), String> {
        let (first, last) = (checked_offset(self.u64()?)?, checked_offset(self.u64()?)?);
        if first > last {
            return Err(format!("range {first}..={last} is empty"));
        }
        Ok((first, last))
    }
}

pub fn dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir
        .join(JOURNALS_DIR)
        .join(format!("{topic}-{partition}"))
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        retention_ms: None,
        retention_bytes_max: None,
        // Internal records carry no deduplication ids: no scan at open.
        dedup_window_ms: 0,
        ..LogConfig::default()
    }
}

fn labels(topic: &str, partition: u32) -> Vec<(String, String)> {
    vec![
        ("topic".into(), format!("{JOURNALS_DIR}/{topic}")),
        ("partition".into(), partition.to_string()),
    ]
}

fn batch(entries: &[(String, Entry)]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    let now = crate::storage::log::now_ms();
    for (group, entry) in entries {
        let value = entry.encode();
        builder.push(Record::new(now, Some(group.as_bytes()), Some(&value)));
    }
    BytesMut::from(&builder.build()[..])
}

/// Appends `entries` (group, entry) and returns once they are fsynced.
pub async fn append(log: &PartitionLog, entries: &[(String, Entry)]) -> BrokerResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    for chunk in entries.chunks(ENTRIES_PER_BATCH) {
        log.append(batch(chunk), AckLevel::Fsynced).await?;
    }
    Ok(())
}

/// The queue groups of one partition, by name.
pub type Groups = BTreeMap<String, QueueState>;

/// Opens the journal of `topic`/`partition` (creating it when `create`, else only if it
/// exists), after finishing a compaction a crash interrupted, and returns it with the groups'
/// states; compacts it first when most of its records are superseded.
pub async fn open(
    data_dir: &Path,
    topic: &str,
    partition: u32,
    create: bool,
) -> Result<Option<(PartitionLog, Groups)>, String> {
    let dir = dir(data_dir, topic, partition);
    let failed = |error: &dyn std::fmt::Display| format!("{}: {error}", dir.display());
    let recover_dir = dir.clone();
    crate::runtime::blocking(move || compaction::recover(&recover_dir))
        .await
        .map_err(|e| failed(&e))?;
    if !create
        && !crate::runtime::blocking({
            let dir = dir.clone();
            move || dir.exists()
        })
        .await
    {
        return Ok(None);
    }
    let mut log = PartitionLog::open(&dir, config(), labels(topic, partition))
        .await
        .map_err(|e| failed(&e))?;
    let (groups, records_total) = read(&log).await.map_err(|e| failed(&e))?;
    let snapshot: Vec<(String, Entry)> = groups
        .iter()
        .flat_map(|(name, state)| state.snapshot().into_iter().map(|e| (name.clone(), e)))
        .collect();
    if records_total > 2 * snapshot.len() as u64 + 64 {
        let rewrite = Rewrite {
            batches: snapshot.chunks(ENTRIES_PER_BATCH).map(batch).collect(),
            config: config(),
            labels: labels(topic, partition),
            kind: "queue",
        };
        log = compaction::compact(&dir, log, rewrite).await?;
        tracing::info!(
            topic,
            partition,
            records_before = records_total,
            records_after = snapshot.len(),
            "compacted a queue journal"
        );
    }
    Ok(Some((log, groups)))
}

/// Folds `entry` of `group` into `groups`.
pub fn fold(groups: &mut Groups, group: &str, entry: Entry, topic: &str) {
    match entry {
        Entry::Define { start, settings } => match settings.validate(topic) {
            Ok(()) => {
                groups.insert(group.to_string(), QueueState::new(settings, start));
            }
            Err(error) => {
                tracing::warn!(topic, group, %error, "skipping a queue group with invalid settings in its journal")
            }
        },
        Entry::Configure { settings } => match (settings.validate(topic), groups.get_mut(group)) {
            (Ok(()), Some(state)) => state.configure(settings),
            (Ok(()), None) => {}
            (Err(error), _) => {
                tracing::warn!(topic, group, %error, "skipping queue group settings that are invalid in its journal")
            }
        },
        Entry::Drop => {
            groups.remove(group);
        }
        entry => {
            if let Some(state) = groups.get_mut(group) {
                state.restore(&entry);
            }
        }
    }
}

/// Every group's state folded from the whole journal, and how many records it holds.
async fn read(log: &PartitionLog) -> Result<(Groups, u64), String> {
    let topic = log.dir().display().to_string();
    let mut groups = Groups::new();
    let mut records_total = 0;
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log.read(offset, 1 << 20).await.map_err(|e| e.to_string())?;
        let before = offset;
        for chunk in &read.chunks {
            for (_, batch) in crate::batch::iter_framed(chunk) {
                for stored in records::decode(batch).map_err(|e| e.to_string())? {
                    offset = u64::try_from(stored.offset).map_or(offset, |o| o.saturating_add(1));
                    records_total += 1;
                    let key = stored.record.key.as_deref().unwrap_or_default();
                    let (Ok(group), Some(value)) =
                        (std::str::from_utf8(key), stored.record.value.as_deref())
                    else {
                        tracing::warn!(journal = %topic, offset, "skipping a queue journal record without a group or value");
                        continue;
                    };
                    match Entry::decode(value) {
                        Ok(entry) => fold(&mut groups, group, entry, &topic),
                        Err(error) => {
                            tracing::warn!(journal = %topic, offset, %error, "skipping an undecodable queue journal record")
                        }
                    }
                }
            }
        }
        if offset == before {
            break;
        }
    }
    Ok((groups, records_total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> QueueSettings {
        QueueSettings {
            visibility_timeout_ms: 1000,
            max_deliveries: 3,
            max_in_flight: 10,
            max_unacked: 5,
            window_messages_max: 100,
            dead_letter_topic: "t.g.dlq".into(),
            delay_ms: 0,
            fifo: crate::broker::queues::settings::FifoKey::Off,
        }
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry::Define {
                start: 7,
                settings: settings(),
            },
            Entry::Acquired {
                first: 7,
                last: 9,
                deliveries: 2,
                first_delivery_ms: 1,
                last_delivery_ms: 2,
            },
            Entry::Settled {
                first: 7,
                last: 7,
                archived: false,
            },
            Entry::Settled {
                first: 8,
                last: 8,
                archived: true,
            },
            Entry::Configure {
                settings: QueueSettings {
                    max_deliveries: 9,
                    dead_letter_topic: "elsewhere".into(),
                    ..settings()
                },
            },
            Entry::Drop,
        ]
    }

    #[test]
    fn a_configure_changes_settings_and_keeps_the_state() {
        let mut groups = Groups::default();
        let all = entries();
        for entry in all.iter().take(5).cloned() {
            fold(&mut groups, "g", entry, "t");
        }
        let state = groups.get("g").expect("defined");
        assert_eq!(state.settings().max_deliveries, 9);
        assert_eq!(state.settings().dead_letter_topic, "elsewhere");
        assert_eq!(state.settled_below(), 9, "the settled prefix stays");
        // A configure for a group not defined is nothing; a drop still drops.
        fold(&mut groups, "h", all[4].clone(), "t");
        assert!(!groups.contains_key("h"));
    }

    #[test]
    fn entries_round_trip() {
        for entry in entries() {
            assert_eq!(Entry::decode(&entry.encode()), Ok(entry));
        }
    }

    #[test]
    fn damaged_values_are_refused_never_panic() {
        for entry in entries() {
            let good = entry.encode();
            // Every truncation and every extension is refused.
            for cut in 0..good.len() {
                assert!(
                    Entry::decode(&good[..cut]).is_err(),
                    "{entry:?} cut at {cut}"
                );
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(Entry::decode(&longer).is_err());
            // Every single-byte corruption either decodes to something or is refused: no panic.
            for at in 0..good.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = good.clone();
                    bad[at] ^= flip;
                    let _ = Entry::decode(&bad);
                }
            }
        }
        let hostile = [
            vec![9u8],
            vec![ACKED, 5, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0],
            [
                &[ACKED][..],
                &u64::MAX.to_le_bytes(),
                &u64::MAX.to_le_bytes(),
            ]
            .concat(),
            [&[DEFINE][..], &[0; 28], &u16::MAX.to_le_bytes()].concat(),
        ];
        for value in hostile {
            assert!(Entry::decode(&value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn folding_replays_groups_and_forgets_dropped_ones() {
        let mut groups = Groups::new();
        for entry in entries().into_iter().take(4) {
            fold(&mut groups, "g", entry, "t");
        }
        let state = &groups["g"];
        // 7 acked and 8 archived collapse; 9 is available again with its count.
        assert_eq!(state.settled_below(), 9);
        let view = state.view(10);
        assert_eq!((view.available, view.in_flight), (1, 0));
        fold(&mut groups, "g", Entry::Drop, "t");
        assert!(groups.is_empty());
        let mut bad = settings();
        bad.max_deliveries = 0;
        fold(
            &mut groups,
            "g",
            Entry::Define {
                start: 0,
                settings: bad,
            },
            "t",
        );
        assert!(groups.is_empty(), "invalid settings from disk are skipped");
    }

    #[test]
    fn a_mostly_superseded_journal_is_compacted_at_open_and_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        crate::runtime::block_on(async {
            let (log, groups) = open(dir.path(), "t", 0, true).await.unwrap().unwrap();
            assert!(groups.is_empty());
            let define = Entry::Define {
                start: 0,
                settings: settings(),
            };
            let mut entries = vec![("g".to_string(), define)];
            for offset in 0..500 {
                let acquired = Entry::Acquired {
                    first: offset,
                    last: offset,
                    deliveries: 1,
                    first_delivery_ms: 5,
                    last_delivery_ms: 5,
                };
                let acked = Entry::Settled {
                    first: offset,
                    last: offset,
                    archived: false,
                };
                entries.extend([("g".to_string(), acquired), ("g".to_string(), acked)]);
            }
            let held = Entry::Acquired {
                first: 500,
                last: 509,
                deliveries: 2,
                first_delivery_ms: 5,
                last_delivery_ms: 6,
            };
            entries.push(("g".to_string(), held));
            append(&log, &entries).await.unwrap();
            log.close().await.unwrap();
            for _ in 0..2 {
                let (log, groups) = open(dir.path(), "t", 0, false).await.unwrap().unwrap();
                assert!(
                    log.high_watermark() < 10,
                    "compacted to {}",
                    log.high_watermark()
                );
                let view = groups["g"].view(510);
                assert_eq!((view.settled_below, view.cursor), (500, 510));
                assert_eq!((view.available, view.in_flight, view.spans), (10, 0, 1));
                log.close().await.unwrap();
            }
            assert!(!dir.path().join(JOURNALS_DIR).join("t-0.retired").exists());
        });
    }
}
