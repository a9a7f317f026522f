//! Metadata and committed offsets survive what a crash or a refused change leaves behind, with
//! the broker as a child process: a SIGKILL (through the test-only fault hook) at every step of
//! the offsets log's compaction loses no committed offset; a topic creation that fails leaves
//! topics.json as it was, and the broker starts again; one that cannot fit in RLIMIT_NOFILE is
//! refused up front; `log verify` checks a whole data directory and refuses anything else.

mod common;

use common::TestBroker;
use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ringmq::broker::groups::CRASH_AT_ENV;
use ringmq::client::Client;
use ringmq::protocol::ErrorCode;
use ringmq::runtime::{self, faults};

/// The broker binary: cargo's, unless `RINGMQ_TEST_BIN` names another build of it (a shared
/// target directory may hold another checkout's binary by the time the test runs).
fn ringmq() -> Command {
    let binary = std::env::var("RINGMQ_TEST_BIN").unwrap_or(env!("CARGO_BIN_EXE_ringmq").into());
    Command::new(binary)
}

fn serve_command(dir: &Path) -> Command {
    let mut command = ringmq();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "",
            "--kafka-listen",
            "",
            "--sqs-listen",
            "",
            "--shards",
            "2",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stderr(Stdio::piped());
    command
}

/// Starts the broker; returns it and its address, or None with its exit status if it ended
/// before listening.
fn start(mut command: Command) -> (Child, Option<String>) {
    let mut child = command.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let Some(Ok(line)) = lines.next() else {
            break None;
        };
        if let Some(rest) = line.split("address=").nth(1) {
            break Some(rest.split_whitespace().next().unwrap().to_string());
        }
    };
    // The broker's log shows with a failed test's output.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("broker: {line}");
        }
    });
    (child, address)
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn committed(address: &str, group: &str) -> Vec<(String, u32, u64)> {
    runtime::block_on(async {
        let client = Client::connect(address).await.unwrap();
        client.fetch_offsets(group, Vec::new()).await.unwrap()
    })
}

#[test]
fn a_sigkill_at_any_step_of_offsets_log_compaction_loses_no_committed_offset() {
    for step in ["written", "marked", "retired", "switched"] {
        let dir = tempfile::tempdir().unwrap();
        let (child, address) = start(serve_command(dir.path()));
        let address = address.unwrap();
        let groups = ["alpha", "beta", "gamma"];
        runtime::block_on(async {
            let client = Client::connect(&address).await.unwrap();
            client.create_topic("t", 2, &[]).await.unwrap();
            // Many superseded commits, so the next start compacts every partition they are in.
            for round in 1..=150u64 {
                for group in groups {
                    let offsets =
                        vec![("t".to_string(), 0, round), ("t".to_string(), 1, round * 2)];
                    client.commit_offsets(group, "", 0, offsets).await.unwrap();
                }
            }
        });
        let expected: Vec<_> = groups.iter().map(|g| committed(&address, g)).collect();
        assert_eq!(
            expected[0],
            vec![("t".to_string(), 0, 150), ("t".to_string(), 1, 300)]
        );
        stop(child);

        let mut crashing = serve_command(dir.path());
        crashing.env(CRASH_AT_ENV, format!("offsets_compaction:{step}"));
        let (mut child, address) = start(crashing);
        assert_eq!(address, None, "step {step}: the fault hook kills the start");
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "step {step}: {status:?}"
        );

        let (child, address) = start(serve_command(dir.path()));
        let address = address.unwrap_or_else(|| panic!("step {step}: the broker restarts"));
        for (group, expected) in groups.iter().zip(&expected) {
            assert_eq!(
                &committed(&address, group),
                expected,
                "step {step}, {group}"
            );
        }
        stop(child);
        // Nothing is left of the switch but the partitions themselves.
        let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("__consumer_offsets"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains('.'))
            .collect();
        assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
    }
}

#[test]
fn a_topic_creation_that_fails_leaves_no_trace_and_the_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let topics_before = runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("kept", 1, &[]).await.unwrap();
        std::fs::read(dir.path().join("topics.json")).unwrap()
    });
    // One partition of the new topic cannot open: its first fdatasync fails.
    let doomed = dir.path().join("topics/blocked-2");
    faults::fail_next_syncs(&doomed, 1);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        let error = client.create_topic("blocked", 4, &[]).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::StorageFailed), "{error}");
        let names: Vec<String> = client
            .metadata(&[])
            .await
            .unwrap()
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        assert_eq!(names, vec!["kept".to_string()]);
    });
    faults::clear(&doomed);
    assert_eq!(
        std::fs::read(dir.path().join("topics.json")).unwrap(),
        topics_before,
        "the refused topic is not in the metadata"
    );
    broker.restart();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        let names: Vec<String> = client
            .metadata(&[])
            .await
            .unwrap()
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        assert_eq!(names, vec!["kept".to_string()]);
        client.create_topic("blocked", 4, &[]).await.unwrap();
    });
    let partitions = std::fs::read_dir(dir.path().join("topics"))
        .unwrap()
        .count();
    assert_eq!(partitions, 5, "kept-0 and blocked-0..3");
}

/// Runs the command with RLIMIT_NOFILE `limit` (soft and hard).
fn limit_fds(command: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn a_topic_whose_partitions_do_not_fit_rlimit_nofile_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(dir.path());
    limit_fds(&mut command, 512);
    let (child, address) = start(command);
    let address = address.unwrap();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let error = client.create_topic("wide", 400, &[]).await.unwrap_err();
        // A limit, not a passing failure: not the retriable StorageFailed.
        assert_eq!(error.code(), Some(ErrorCode::InvalidConfig), "{error}");
        assert!(error.to_string().contains("RLIMIT_NOFILE"), "{error}");
        client.create_topic("narrow", 4, &[]).await.unwrap();
    });
    let topics = std::fs::read_to_string(dir.path().join("topics.json")).unwrap();
    assert!(
        topics.contains("\"narrow\"") && !topics.contains("\"wide\""),
        "{topics}"
    );
    stop(child);
    // Partitions that cannot all be opened under the limit: the start is refused, saying why.
    let (child, address) = start(serve_command(dir.path()));
    runtime::block_on(async {
        let client = Client::connect(&address.unwrap()).await.unwrap();
        client.create_topic("wide", 200, &[]).await.unwrap();
    });
    stop(child);
    let mut command = serve_command(dir.path());
    limit_fds(&mut command, 512);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("raise LimitNOFILE"), "{stderr}");
    let (child, address) = start(serve_command(dir.path()));
    let address = address.expect("the broker starts again");
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let names: Vec<String> = client
            .metadata(&[])
            .await
            .unwrap()
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        assert_eq!(names, vec!["narrow".to_string(), "wide".to_string()]);
    });
    stop(child);
}

#[test]
fn log_verify_checks_a_data_directory_and_refuses_other_directories() {
    let dir = tempfile::tempdir().unwrap();
    let (child, address) = start(serve_command(dir.path()));
    let address = address.unwrap();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("a", 2, &[]).await.unwrap();
        client
            .commit_offsets("g", "", 0, vec![("a".to_string(), 0, 1)])
            .await
            .unwrap();
    });
    stop(child);
    let output = ringmq()
        .args(["log", "verify"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    // Two topic partitions and the eight of the offsets log.
    assert!(text.contains("10 partition(s)"), "{text}");
    assert!(text.trim_end().ends_with(": ok"), "{text}");

    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("notes.txt"), b"hello").unwrap();
    for path in [elsewhere.path().to_path_buf(), dir.path().join("topics")] {
        let output = ringmq()
            .args(["log", "verify"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", path.display());
        assert!(String::from_utf8_lossy(&output.stderr).contains("neither"));
        assert!(!String::from_utf8_lossy(&output.stdout).contains("ok"));
    }
}
