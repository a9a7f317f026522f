//! Crash-only shards: a panic on a shard thread ends the whole process at once, with the panic in
//! the log.
//!
//! Why: compio catches a panicking task's unwind and keeps the thread running, and a shard thread
//! that does unwind leaves its partitions without an owner. Either way the broker would be half
//! alive: some partitions wedged, shutdown hanging on them, requests forwarded to them waiting.
//! Recovery on start is the one tested path back to a consistent state, so a panic takes that
//! path: the process aborts (exit by SIGABRT), the supervisor (systemd's `Restart=on-failure`)
//! starts it again, and recovery checks every log.
//!
//! Threads that are not shards (tests, the CLI, an embedding program) keep Rust's default
//! behaviour.
//!
//! It also holds the one test-only fault point that makes a shard panic on purpose, armed by the
//! environment variable `RINGMQ_TEST_PANIC_ON_PRODUCE=<topic>` in a spawned broker process;
//! production never sets it, and disarmed it costs one load of a `OnceLock`.

use std::sync::{Once, OnceLock};

/// Shard threads are named with this prefix (see `spawn_threads`).
pub const SHARD_THREAD_PREFIX: &str = "ringmq-shard-";

/// Installs the process-wide panic hook once; idempotent.
pub fn install_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            // Rust's own hook first: it prints the message, the location and (with
            // RUST_BACKTRACE) the backtrace to stderr, which the journal keeps.
            previous(info);
            if name.starts_with(SHARD_THREAD_PREFIX) {
                tracing::error!(
                    thread = name,
                    panic = %info,
                    "a shard panicked: ending the process so that recovery restores a consistent state"
                );
                std::process::abort();
            }
        }));
    });
}

/// Test-only: panics when a produce for `topic` reaches its owner and the broker was started with
/// `RINGMQ_TEST_PANIC_ON_PRODUCE=<topic>`.
pub fn test_panic_point(topic: &str) {
    static ARMED_TOPIC: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED_TOPIC.get_or_init(|| std::env::var("RINGMQ_TEST_PANIC_ON_PRODUCE").ok());
    if armed.as_deref() == Some(topic) {
        panic!("test fault: RINGMQ_TEST_PANIC_ON_PRODUCE={topic}");
    }
}
