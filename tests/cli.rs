//! The command line as a user drives it: `ringmq serve` in a child process, `topic create`,
//! `produce` from stdin, `consume` to stdout, SIGTERM for a clean stop, `log verify` after.

mod common;

use common::{ringmq_command as ringmq, run_with_stdin as run, serve};

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

#[test]
fn topic_delete_records_moves_the_start_which_consumers_and_a_restart_see() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve(dir.path());
    let topic = |args: &[&str]| {
        let mut command = ringmq();
        command.args(["topic"]).args(args).args(["-b", &address]);
        run(&mut command, "")
    };
    assert_eq!(topic(&["create", "trim", "--partitions", "2"]).0, 0);
    let lines: String = (0..10).map(|n| format!("line {n}\n")).collect();
    let (code, _, err) = run(
        ringmq().args(["produce", "-b", &address, "trim", "-p", "0"]),
        &lines,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = topic(&[
        "delete-records",
        "trim",
        "--partition",
        "0",
        "--before",
        "4",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "topic trim partition 0 now starts at offset 4\n"),
        "{err}"
    );
    let (code, out, _) = run(
        ringmq().args(["consume", "-b", &address, "trim", "-p", "0"]),
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        (4..10).map(|n| format!("line {n}\n")).collect::<String>()
    );
    let (code, _, err) = topic(&[
        "delete-records",
        "trim",
        "--partition",
        "0",
        "--before",
        "11",
    ]);
    assert!(
        code == 1 && err.contains("offset_out_of_range"),
        "{code} {err}"
    );
    let (code, _, err) = topic(&[
        "delete-records",
        "trim",
        "--partition",
        "2",
        "--before",
        "0",
    ]);
    assert!(code == 1 && err.contains("bad_partition"), "{code} {err}");
    let (code, _, err) = topic(&[
        "delete-records",
        "trim",
        "--partition",
        "0",
        "--before",
        "x",
    ]);
    assert!(code != 0 && err.contains("\"x\""), "{code} {err}");
    let (code, out, err) = topic(&[
        "delete-records",
        "trim",
        "--partition",
        "1",
        "--before",
        "end",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "topic trim partition 1 now starts at offset 0\n"),
        "an empty partition's end is 0: {err}"
    );

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(server.wait().unwrap().code(), Some(0));
    let (mut server, address) = serve(dir.path());
    let (code, out, _) = run(
        ringmq().args(["topic", "describe", "-b", &address, "trim"]),
        "",
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("\n0\t4\t10\n"),
        "the start survives a restart: {out}"
    );
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(server.wait().unwrap().code(), Some(0));
}
