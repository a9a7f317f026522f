//! File descriptors as a budget. Each open partition holds `FDS_PER_PARTITION` descriptors (its
//! active segment's data and two index files, plus the O_DIRECT write handle with `direct_io`);
//! sealed segments hold one only while in the partition's LRU of read handles
//! (`open_segment_files_max`). Running out (EMFILE) in the middle of opening a topic's
//! partitions is a failure found too late, so a topic creation is refused up front, with a clear
//! error, when its partitions would not fit in what RLIMIT_NOFILE leaves; and `ringmq serve`
//! raises its soft limit to the hard limit at start, warning when even that cannot hold
//! `topics_max` partitions.

use std::io;

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

/// Raises the soft limit and says, at start, whether `topics_max` single-partition topics fit.
pub fn check_at_start(config: &BrokerConfig) {
    let limit = match raise_to_hard_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not read or raise RLIMIT_NOFILE");
            return;
        }
    };
    let needed =
        config.topics_max as u64 * fds_per_partition(&config.topic_defaults) + reserve(limit);
    if needed > limit {
        tracing::warn!(
            limit,
            needed,
            topics_max = config.topics_max,
            "RLIMIT_NOFILE cannot hold topics_max partitions: topic creation is refused once descriptors run short; raise LimitNOFILE (or ulimit -n) to at least {needed}, or lower topics_max"
        );
    }
}
