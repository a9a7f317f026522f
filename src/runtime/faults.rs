//! Deterministic failure injection for the storage write path, scoped to a directory, so that a
//! test can make one log's writes fail with ENOSPC (or its fdatasync with EIO, or its writes
//! stall) without filling a real disk and without touching other tests' logs.
//!
//! Production code never arms it; disarmed, it costs one relaxed atomic load per write.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ARMED: AtomicBool = AtomicBool::new(false);
static RULES: Mutex<Vec<(PathBuf, Fault)>> = Mutex::new(Vec::new());

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Writes fail with ENOSPC once this many more bytes were asked for.
    FailWritesAfter(u64),
    /// The next this-many fdatasyncs fail with EIO.
    FailSyncs(u32),
    /// Writes wait until the rule is cleared.
    StallWrites,
}

fn add(dir: &Path, fault: Fault) {
    let mut rules = RULES.lock().expect("fault rules lock");
    rules.retain(|(existing, _)| existing != dir);
    rules.push((dir.to_path_buf(), fault));
    ARMED.store(true, Ordering::Release);
}

/// Writes to files under `dir` fail with ENOSPC once `bytes` more bytes were requested.
pub fn fail_writes_after(dir: &Path, bytes: u64) {
    add(dir, Fault::FailWritesAfter(bytes));
}

/// The next `count` fdatasyncs of files under `dir` fail with EIO.
pub fn fail_next_syncs(dir: &Path, count: u32) {
    add(dir, Fault::FailSyncs(count));
}

/// Writes to files under `dir` wait until `clear(dir)`.
pub fn stall_writes(dir: &Path) {
    add(dir, Fault::StallWrites);
}

pub fn clear(dir: &Path) {
    let mut rules = RULES.lock().expect("fault rules lock");
    rules.retain(|(existing, _)| existing != dir);
    ARMED.store(!rules.is_empty(), Ordering::Release);
}

pub(super) async fn before_write(path: &Path, requested_bytes: usize) -> io::Result<()> {
    while ARMED.load(Ordering::Relaxed) {
        {
            let mut rules = RULES.lock().expect("fault rules lock");
            let Some((_, fault)) = rules.iter_mut().find(|(dir, _)| path.starts_with(dir)) else {
                return Ok(());
            };
            match fault {
                Fault::FailWritesAfter(budget) if *budget >= requested_bytes as u64 => {
                    *budget -= requested_bytes as u64;
                    return Ok(());
                }
                Fault::FailWritesAfter(_) => {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                Fault::FailSyncs(_) => return Ok(()),
                Fault::StallWrites => {}
            }
        }
        super::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

pub(super) fn before_sync(path: &Path) -> io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut rules = RULES.lock().expect("fault rules lock");
    match rules.iter_mut().find(|(dir, _)| path.starts_with(dir)) {
        Some((_, Fault::FailSyncs(count))) if *count > 0 => {
            *count -= 1;
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        _ => Ok(()),
    }
}
