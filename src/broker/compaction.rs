//! Compaction of the broker's internal logs (the offsets log, the queue journals): a log whose
//! records are mostly superseded is rewritten with only what is in force, and switched in so
//! that a crash at any moment leaves one complete log readable.
//!
//! The switch is a sequence of renames, each made durable (directory fsync) before the next:
//! the compacted copy is written whole in `<p>.compacting`, renamed to `<p>.compacted` (now it
//! is known complete), the old log is renamed to `<p>.retired`, the copy to `<p>`, and the
//! retired log is deleted. `recover` runs before the log opens and rolls any interrupted
//! switch forward deterministically: a `.compacting` copy is incomplete and deleted; a
//! `.compacted` copy is complete and replaces `<p>`; a `.retired` log is the old one, kept only
//! when `<p>` is missing. At every step one complete log (old or compacted) is found.
//!
//! For tests, the environment variable `RINGMQ_FAULT_CRASH_AT=<kind>_compaction:<step>` makes
//! the process SIGKILL itself at that step (`written`, `marked`, `retired`, `switched`), so a
//! test can prove that a crash there loses nothing.

use std::io;
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use crate::storage::dirsync;
use crate::storage::{AckLevel, LogConfig, PartitionLog};

/// The environment variable naming a step at which the process kills itself (tests only).
pub const CRASH_AT_ENV: &str = "RINGMQ_FAULT_CRASH_AT";

struct Paths {
    compacting: PathBuf,
    compacted: PathBuf,
    retired: PathBuf,
}

fn paths(dir: &Path) -> Paths {
    Paths {
        compacting: dir.with_extension("compacting"),
        compacted: dir.with_extension("compacted"),
        retired: dir.with_extension("retired"),
    }
}

/// Finishes or undoes a switch that a crash interrupted, before the log at `dir` opens.
pub fn recover(dir: &Path) -> io::Result<()> {
    let paths = paths(dir);
    if paths.compacting.exists() {
        tracing::warn!(dir = %paths.compacting.display(), "removing an unfinished compaction");
        dirsync::remove_all_durable(&paths.compacting)?;
    }
    if paths.compacted.exists() {
        tracing::warn!(dir = %dir.display(), "finishing an interrupted compaction");
        if dir.exists() {
            dirsync::remove_all_durable(&paths.retired)?;
            dirsync::rename_durable(dir, &paths.retired)?;
        }
        dirsync::rename_durable(&paths.compacted, dir)?;
    }
    if paths.retired.exists() {
        if dir.exists() {
            dirsync::remove_all_durable(&paths.retired)?;
        } else {
            tracing::warn!(dir = %dir.display(), "restoring a log from before an interrupted compaction");
            dirsync::rename_durable(&paths.retired, dir)?;
        }
    }
    Ok(())
}

/// The compacted log: what goes in it, and how it is named in the fault hook.
pub struct Rewrite {
    pub batches: Vec<BytesMut>,
    pub config: LogConfig,
    pub labels: Vec<(String, String)>,
    /// `offsets` or `queue`: the hook's step names are `<kind>_compaction:<step>`.
    pub kind: &'static str,
}

/// Writes `rewrite`'s batches to a fresh log beside `dir` and switches it in for `old`,
/// returning the reopened log.
pub async fn compact(
    dir: &Path,
    old: PartitionLog,
    rewrite: Rewrite,
) -> Result<PartitionLog, String> {
    let Rewrite {
        batches,
        config,
        labels,
        kind,
    } = rewrite;
    let paths = paths(dir);
    let failed = |what: &str, error: &dyn std::fmt::Display| format!("{what}: {error}");
    dirsync::remove_all_durable(&paths.compacting)
        .map_err(|e| failed("removing an old copy", &e))?;
    let fresh = PartitionLog::open(&paths.compacting, config.clone(), labels.clone())
        .await
        .map_err(|e| failed("opening the copy", &e))?;
    for batch in batches {
        fresh
            .append(batch, AckLevel::Fsynced)
            .await
            .map_err(|e| failed("writing the copy", &e))?;
    }
    fresh
        .close()
        .await
        .map_err(|e| failed("closing the copy", &e))?;
    old.close()
        .await
        .map_err(|e| failed("closing the old log", &e))?;
    crash_point(kind, "written");
    let switch = || -> io::Result<()> {
        dirsync::rename_durable(&paths.compacting, &paths.compacted)?;
        crash_point(kind, "marked");
        dirsync::remove_all_durable(&paths.retired)?;
        dirsync::rename_durable(dir, &paths.retired)?;
        crash_point(kind, "retired");
        dirsync::rename_durable(&paths.compacted, dir)?;
        crash_point(kind, "switched");
        dirsync::remove_all_durable(&paths.retired)
    };
    switch().map_err(|e| failed("switching to the compacted log", &e))?;
    PartitionLog::open(dir, config, labels)
        .await
        .map_err(|e| failed("reopening the compacted log", &e))
}

/// Kills the process at `step` when the test fault variable names it.
fn crash_point(kind: &str, step: &str) {
    let Ok(wanted) = std::env::var(CRASH_AT_ENV) else {
        return;
    };
    let Some(rest) = wanted.strip_prefix(kind) else {
        return;
    };
    if rest.strip_prefix("_compaction:") == Some(step) {
        tracing::error!(
            kind,
            step,
            "fault hook: killing the process during a compaction"
        );
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_dir(root: &Path, name: &str, marker: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("marker"), marker).unwrap();
        dir
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("marker")).unwrap()
    }

    #[test]
    fn recovery_rolls_every_interrupted_state_forward_to_one_whole_log() {
        // (directories present, marker expected in <p> afterwards)
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("0", "old"), ("0.compacting", "partial")], "old"),
            (&[("0", "old"), ("0.compacted", "new")], "new"),
            (&[("0.retired", "old"), ("0.compacted", "new")], "new"),
            (&[("0", "new"), ("0.retired", "old")], "new"),
            (&[("0.retired", "old"), ("0.compacting", "new")], "old"),
            (&[("0", "old")], "old"),
        ];
        for (present, expected) in cases {
            let root = tempfile::tempdir().unwrap();
            for (name, content) in present {
                log_dir(root.path(), name, content);
            }
            let dir = root.path().join("0");
            recover(&dir).unwrap();
            assert_eq!(marker(&dir), expected, "{present:?}");
            let left: Vec<String> = std::fs::read_dir(root.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(left, vec!["0".to_string()], "{present:?}");
        }
    }
}
