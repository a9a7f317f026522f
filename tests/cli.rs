//! The command line as a user drives it: `ringmq serve` in a child process, `topic create`,
//! `produce` from stdin, `consume` to stdout, SIGTERM for a clean stop, `log verify` after.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::serve;

fn ringmq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringmq"))
}

fn run(command: &mut Command, stdin: &str) -> (i32, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn serve_produce_consume_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve(dir.path());
    let lines: Vec<String> = (0..2000)
        .map(|n| format!("line number {n} with some text"))
        .collect();
    let input = lines.join("\n") + "\n";

    let (code, out, err) = run(
        ringmq().args([
            "topic",
            "create",
            "-b",
            &address,
            "logs",
            "--partitions",
            "1",
        ]),
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(
        ringmq().args(["produce", "-b", &address, "logs", "--acks", "fsynced"]),
        &input,
    );
    assert_eq!(code, 0, "produce: {err}");
    let (code, out, err) = run(ringmq().args(["consume", "-b", &address, "logs"]), "");
    assert_eq!(code, 0, "consume: {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        lines,
        "the same lines, in order"
    );

    // Keys, headers and JSON output.
    let (code, _, err) = run(
        ringmq().args([
            "produce",
            "-b",
            &address,
            "logs",
            "-K",
            ":",
            "-H",
            "origin=cli",
        ]),
        "user-1:hello\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(
        ringmq().args([
            "consume",
            "-b",
            &address,
            "logs",
            "--from",
            "offset:2000",
            "--format",
            "json",
        ]),
        "",
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (
            json["offset"].as_u64(),
            json["key"].as_str(),
            json["value"].as_str()
        ),
        (Some(2000), Some("user-1"), Some("hello"))
    );
    assert_eq!(json["headers"]["origin"], "cli");

    // Errors: an exit code a script can rely on, the reason on stderr.
    let (code, out, err) = run(ringmq().args(["consume", "-b", &address, "nope"]), "");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("unknown_topic"), "{err}");
    let (code, _, err) = run(ringmq().args(["produce", "-b", &address, "nope"]), "x\n");
    assert_eq!(code, 1, "{err}");

    // A consumer group: everything once, then nothing new, then a replay after a reset.
    let all = run(
        ringmq().args(["consume", "-b", &address, "logs", "--group", "readers"]),
        "",
    );
    assert_eq!(all.0, 0, "{}", all.2);
    assert_eq!(all.1.lines().count(), 2001);
    let again = run(
        ringmq().args(["consume", "-b", &address, "logs", "--group", "readers"]),
        "",
    );
    assert_eq!(
        (again.0, again.1.as_str()),
        (0, ""),
        "committed: nothing left for the group"
    );
    let (code, out, _) = run(
        ringmq().args(["group", "describe", "-b", &address, "readers"]),
        "",
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("logs\t0\t2001\t2001\t0"),
        "committed 2001, end 2001, lag 0: {out}"
    );
    let (code, out, _) = run(ringmq().args(["group", "list", "-b", &address]), "");
    assert!(code == 0 && out.contains("readers\tempty\t0"), "{out}");
    let (code, out, err) = run(
        ringmq().args([
            "group",
            "reset-offsets",
            "-b",
            &address,
            "readers",
            "--topic",
            "logs",
            "--to",
            "shift:-5",
        ]),
        "",
    );
    assert_eq!((code, out.as_str()), (0, "logs\t0\t1996\n"), "{err}");
    let replay = run(
        ringmq().args(["consume", "-b", &address, "logs", "--group", "readers"]),
        "",
    );
    assert_eq!(replay.1.lines().count(), 5, "the last five records again");
    let (code, _, err) = run(
        ringmq().args(["group", "delete", "-b", &address, "readers"]),
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        ringmq().args(["group", "describe", "-b", &address, "readers"]),
        "",
    );
    assert!(code == 1 && err.contains("unknown_group"), "{err}");

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");

    let (code, out, _) = run(
        ringmq()
            .arg("log")
            .arg("verify")
            .arg(dir.path().join("topics").join("logs-0")),
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2001 record(s)"), "{out}");
}

#[test]
fn topic_alter_changes_settings_of_a_running_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve(dir.path());
    let (code, out, err) = run(
        ringmq().args([
            "topic",
            "create",
            "-b",
            &address,
            "altered",
            "--config",
            "retention_ms=3600000",
        ]),
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(
        ringmq().args([
            "topic",
            "alter",
            "-b",
            &address,
            "altered",
            "--set",
            "segment_bytes=1048576",
            "--reset",
            "retention_ms",
        ]),
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(
        ringmq().args(["topic", "describe", "-b", &address, "altered"]),
        "",
    );
    assert_eq!(code, 0);
    assert!(out.contains("segment_bytes = 1048576"), "{out}");
    assert!(
        out.contains("retention_ms = 604800000"),
        "back to the default: {out}"
    );
    let (code, _, err) = run(
        ringmq().args([
            "topic",
            "alter",
            "-b",
            &address,
            "altered",
            "--set",
            "cleanup.policy=compact",
        ]),
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("read-only"), "{err}");
    let (code, _, err) = run(
        ringmq().args(["topic", "alter", "-b", &address, "altered"]),
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("nothing to change"), "{err}");
    server.kill().unwrap();
    let _ = server.wait();
}
