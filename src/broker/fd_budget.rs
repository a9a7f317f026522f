//! File descriptors as a budget. Each open partition holds `FDS_PER_PARTITION` descriptors (its
//! active segment's data and two index files, plus the O_DIRECT write handle with `direct_io`);
//! sealed segments hold one only while in the partition's LRU of read handles
//! (`open_segment_files_max`). Running out (EMFILE) in the middle of opening a topic's
//! partitions is a failure found too late, so a topic creation is refused up front, with a clear
//! error, when its partitions would not fit in what RLIMIT_NOFILE leaves; and `ringmq serve`
//! raises its soft limit to the hard limit at start, refuses to start when the partitions it
//! holds cannot all be opened (saying what to raise), and warns when `topics_max` partitions
//! would not fit.

use std::io;

use super::groups::OFFSETS_PARTITIONS;
use super::topics::Topics;
use crate::config::BrokerConfig;
use crate::storage::LogConfig;

/// Descriptors kept free for connections, listeners, io_uring and the files of a read.
const RESERVE_FRACTION: u64 = 8;
const RESERVE_MIN: u64 = 32;

/// Descriptors one open partition holds outside its LRU of sealed-segment read handles.
pub fn fds_per_partition(config: &LogConfig) -> u64 {
    3 + u64::from(config.direct_io)
}

/// The soft RLIMIT_NOFILE.
pub fn limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_to_hard_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Descriptors this process has open now.
pub fn open_now() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

fn reserve(limit: u64) -> u64 {
    (limit / RESERVE_FRACTION).max(RESERVE_MIN)
}

/// Whether `partitions` more partitions with `config` fit; Err says what to raise.
pub fn check_room(partitions: u32, config: &LogConfig) -> Result<(), String> {
    let (Ok(limit), Ok(open)) = (limit(), open_now()) else {
        return Ok(());
    };
    let needed = u64::from(partitions) * fds_per_partition(config);
    let room = limit.saturating_sub(open).saturating_sub(reserve(limit));
    if needed > room {
        return Err(format!(
            "{partitions} partition(s) need {needed} file descriptors; {open} of RLIMIT_NOFILE {limit} are open and {} are kept in reserve: raise the limit (LimitNOFILE in the systemd unit, ulimit -n) or create fewer partitions",
            reserve(limit)
        ));
    }
    Ok(())
}

/// At start: raises the soft limit to the hard one, refuses (Err, saying what to raise) when the
/// partitions already in the data directory cannot all be opened, and warns when `topics_max`
/// single-partition topics would not fit.
pub fn check_at_start(config: &BrokerConfig) -> Result<(), String> {
    let limit = match raise_to_hard_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not read or raise RLIMIT_NOFILE");
            return Ok(());
        }
    };
    let topics = Topics::load(&config.data_dir)?;
    let existing: u64 = topics
        .by_name
        .values()
        .map(|topic| u64::from(topic.partitions) * fds_per_partition(&topic.config))
        .sum();
    let offsets_log = u64::from(OFFSETS_PARTITIONS) * fds_per_partition(&LogConfig::default());
    let open = open_now().unwrap_or(0);
    let needed = existing + offsets_log + open + reserve(limit);
    if needed > limit {
        return Err(format!(
            "the {} topic(s) in {} need {needed} file descriptors with the reserve, more than RLIMIT_NOFILE {limit}: raise LimitNOFILE (systemd) or ulimit -n to at least {needed}",
            topics.by_name.len(),
            config.data_dir.display()
        ));
    }
    let wanted = config.topics_max as u64 * fds_per_partition(&config.topic_defaults)
        + offsets_log
        + reserve(limit);
    if wanted > limit {
        tracing::warn!(
            limit,
            wanted,
            topics_max = config.topics_max,
            "RLIMIT_NOFILE cannot hold topics_max partitions: topic creation is refused once descriptors run short; raise LimitNOFILE (or ulimit -n) to at least {wanted}, or lower topics_max"
        );
    }
    Ok(())
}
