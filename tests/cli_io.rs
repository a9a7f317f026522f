//! The CLI as a lossless, kcat-grade tool, each defect of issue 12 driven through the real
//! binary against a real `ringmq serve`: binary-safe input and output, bounded memory while
//! producing, an oversized record refused alone, `-n` with a group, SIGINT and a closed pipe
//! leaving the group, `--follow` across a broker restart, the out-of-range reset policy.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use common::{ringmq_command as ringmq, run_with_bytes as run, serve, serve_listening};

fn ok(command: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let (code, out, err) = run(command, stdin);
    assert_eq!(code, 0, "stderr: {err}");
    out
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn create(address: &str, topic: &str, partitions: u32) {
    let partitions = partitions.to_string();
    ok(
        ringmq().args(["topic", "create", "-b", address, topic, "-p", &partitions]),
        b"",
    );
}

/// The group's committed offset per partition of `topic`, from `group describe`.
fn committed(address: &str, group: &str, topic: &str) -> Vec<(u32, u64)> {
    let out = text(ok(
        ringmq().args(["group", "describe", "-b", address, group]),
        b"",
    ));
    out.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields.len() == 5 && fields[0] == topic)
                .then(|| (fields[1].parse().unwrap(), fields[2].parse().unwrap()))
        })
        .collect()
}

/// A `ringmq serve` child, killed if a failed assertion unwinds past it (so no broker outlives
/// its test), stopped with SIGTERM by `stop`.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &std::path::Path) -> (Server, String) {
    let (child, address) = serve(dir);
    (Server(Some(child)), address)
}

fn stop(mut server: Server) {
    let mut child = server.0.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "SIGTERM is a clean stop"
    );
}

#[test]
fn every_byte_value_round_trips_with_nul_and_custom_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "bin", 1);

    // -0: every byte but NUL alone, then all of them together (newlines, \r, 0xff ...).
    let mut records: Vec<Vec<u8>> = (1..=255u8).map(|byte| vec![byte]).collect();
    records.push((1..=255u8).collect());
    let mut input = Vec::new();
    for record in &records {
        input.extend(record);
        input.push(0);
    }
    let (code, _, err) = run(
        ringmq().args(["produce", "-b", &address, "bin", "-0", "-v"]),
        &input,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("produced 256 record(s)")
            && err.contains("partition 0: 256 record(s), offsets 0..=255"),
        "-v summary: {err}"
    );
    let out = ok(ringmq().args(["consume", "-b", &address, "bin", "-0"]), b"");
    assert_eq!(out, input, "the same bytes back, NUL-separated");

    // -D with a two-byte delimiter: records holding every value 0..=255, NUL included.
    let every: Vec<u8> = (0..=255u8).collect();
    let reversed: Vec<u8> = every.iter().rev().copied().collect();
    let mut input = Vec::new();
    for record in [&every, &reversed, &every] {
        input.extend(record.iter());
        input.extend(b"\xff\xfe");
    }
    // "\xfe\xff" occurs in `every` and `reversed` ends "\x01\x00": neither holds "\xff\xfe".
    ok(
        ringmq().args(["produce", "-b", &address, "bin", "-D", r"\xff\xfe"]),
        &input,
    );
    let out = ok(
        ringmq().args([
            "consume",
            "-b",
            &address,
            "bin",
            "--from",
            "256",
            "-D",
            r"\xff\xfe",
        ]),
        b"",
    );
    assert_eq!(out, input);
    stop(server);
}

#[test]
fn nul_newline_and_invalid_utf8_survive_templates_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "mixed", 1);
    let records: [&[u8]; 4] = [
        b"k1=line one\nline two",
        b"k\x002=nul\x00inside",
        b"k3=bad \xff\xfe utf8",
        b"no key\r",
    ];
    let input = records.join(&b'|');
    ok(
        ringmq().args(["produce", "-b", &address, "mixed", "-D", "|", "-K", "="]),
        &input,
    );

    let out = ok(
        ringmq().args([
            "consume",
            "-b",
            &address,
            "mixed",
            "--format",
            r"%t/%p/%o %k=%v (%s)\0",
        ]),
        b"",
    );
    let expected: Vec<u8> = [
        &b"mixed/0/0 k1=line one\nline two (17)\0"[..],
        b"mixed/0/1 k\x002=nul\x00inside (10)\0",
        b"mixed/0/2 k3=bad \xff\xfe utf8 (11)\0",
        b"mixed/0/3 =no key\r (7)\0",
    ]
    .concat();
    assert_eq!(out, expected, "{:?}", String::from_utf8_lossy(&out));

    let out = text(ok(
        ringmq().args(["consume", "-b", &address, "mixed", "--format", "json"]),
        b"",
    ));
    assert!(!out.contains('\u{fffd}'), "nothing replaced: {out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        4,
        "one JSON line per record, newlines escaped: {out}"
    );
    assert_eq!(lines[0]["value"], "line one\nline two");
    assert_eq!(lines[1]["key"], "k\u{0}2");
    assert_eq!(lines[1]["value"], "nul\u{0}inside");
    assert_eq!(lines[2]["key"], "k3");
    assert!(lines[2].get("value").is_none(), "{}", lines[2]);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(lines[2]["value_b64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, b"bad \xff\xfe utf8");
    assert_eq!(lines[3]["key"], serde_json::Value::Null);
    assert_eq!(lines[3]["topic"], "mixed");
    stop(server);
}

/// The peak resident set of a child that has exited, from wait4's rusage, in bytes.
fn wait_peak_rss(child: &Child) -> (i32, u64) {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_100_mb_produce_streams_in_bounded_memory() {
    const LINE_BYTES: usize = 1000;
    const LINES: usize = 100 << 20 >> 10; // 102,400 lines of 1000 bytes + newline: 100 MiB+
    const RSS_BYTES_MAX: u64 = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "big", 2);
    // `wait_peak_rss` reaps it (wait4, for its peak RSS), which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    let mut child = ringmq()
        .args(["produce", "-b", &address, "big", "--acks", "written"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut line = vec![b'a'; LINE_BYTES];
        line.push(b'\n');
        for number in 0..LINES {
            let tag = format!("{number:08}");
            line[..8].copy_from_slice(tag.as_bytes());
            stdin.write_all(&line).unwrap();
        }
    });
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let (code, peak) = wait_peak_rss(&child);
    writer.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    eprintln!("peak RSS of produce: {} KiB", peak >> 10);
    assert!(
        peak < RSS_BYTES_MAX,
        "produce of {} MiB peaked at {} MiB",
        (LINES * (LINE_BYTES + 1)) >> 20,
        peak >> 20
    );
    let out = text(ok(
        ringmq().args(["topic", "describe", "-b", &address, "big"]),
        b"",
    ));
    let stored: u64 = out
        .lines()
        .skip_while(|line| !line.starts_with("partition\t"))
        .skip(1)
        .map(|line| line.split('\t').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(stored, LINES as u64, "{out}");
    stop(server);
}

#[test]
fn an_oversized_record_is_refused_alone_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "sizes", 1);
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for number in 1..=9 {
        let line = if number == 5 {
            vec![b'x'; 2 << 20]
        } else {
            // Invalid UTF-8 is not an error: bytes are bytes.
            format!("line {number} \u{e9}")
                .into_bytes()
                .into_iter()
                .chain([0xff])
                .collect()
        };
        if number != 5 {
            expected.extend(&line);
            expected.push(b'\n');
        }
        input.extend(line);
        input.push(b'\n');
    }
    let (code, _, err) = run(ringmq().args(["produce", "-b", &address, "sizes"]), &input);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 5: record_too_large"), "{err}");
    assert_eq!(
        err.matches("record_too_large").count(),
        1,
        "only line 5: {err}"
    );
    assert!(err.contains("1 of 9 record(s) not stored"), "{err}");
    let out = ok(ringmq().args(["consume", "-b", &address, "sizes"]), b"");
    assert_eq!(out, expected, "the eight others, stored in order");

    // Records that fit alone but not together (200 KB, then 900 KB, under a 1 MiB batch
    // limit) go in separate batches, instead of failing together.
    let pair = [
        vec![b'a'; 200_000],
        b"\n".to_vec(),
        vec![b'b'; 900_000],
        b"\n".to_vec(),
    ]
    .concat();
    ok(ringmq().args(["produce", "-b", &address, "sizes"]), &pair);
    let out = ok(
        ringmq().args(["consume", "-b", &address, "sizes", "--from", "8"]),
        b"",
    );
    assert_eq!(out, pair);

    // The limit is the topic's own (here smaller), or --record-bytes-max.
    create(&address, "small", 1);
    let (code, _, err) = run(
        ringmq().args([
            "topic",
            "create",
            "-b",
            &address,
            "tiny",
            "-c",
            "record_bytes_max=100",
        ]),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let input = [
        b"short\n".to_vec(),
        vec![b'y'; 200],
        b"\nshort again\n".to_vec(),
    ]
    .concat();
    let (code, _, err) = run(ringmq().args(["produce", "-b", &address, "tiny"]), &input);
    assert!(
        code == 1 && err.contains("line 2: record_too_large"),
        "{err}"
    );
    let (code, _, err) = run(
        ringmq().args([
            "produce",
            "-b",
            &address,
            "small",
            "--record-bytes-max",
            "100",
        ]),
        &input,
    );
    assert!(
        code == 1 && err.contains("line 2: record_too_large"),
        "{err}"
    );
    let out = ok(ringmq().args(["consume", "-b", &address, "small"]), b"");
    assert_eq!(out, b"short\nshort again\n");
    stop(server);
}

#[test]
fn n_with_a_group_commits_only_what_was_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "numbers", 1);
    let input: String = (0..5000).map(|n| format!("{n}\n")).collect();
    ok(
        ringmq().args(["produce", "-b", &address, "numbers"]),
        input.as_bytes(),
    );
    let consume = |n: &str| {
        text(ok(
            ringmq().args([
                "consume", "-b", &address, "numbers", "--group", "g", "-n", n,
            ]),
            b"",
        ))
    };
    assert_eq!(consume("2"), "0\n1\n");
    assert_eq!(committed(&address, "g", "numbers"), [(0, 2)]);
    assert_eq!(consume("0"), "", "-n 0 prints nothing");
    assert_eq!(committed(&address, "g", "numbers"), [(0, 2)]);
    assert_eq!(
        consume("3"),
        "2\n3\n4\n",
        "the next member starts after what was printed"
    );
    assert_eq!(committed(&address, "g", "numbers"), [(0, 5)]);

    // One offset vocabulary, with a dry run that changes nothing.
    let reset = |to: &str, dry: bool| {
        let mut command = ringmq();
        command.args([
            "group",
            "reset-offsets",
            "-b",
            &address,
            "g",
            "--topic",
            "numbers",
            "--to",
            to,
        ]);
        if dry {
            command.arg("--dry-run");
        }
        text(ok(&mut command, b""))
    };
    assert_eq!(
        reset("-10", true),
        "topic\tpartition\tcommitted\twould_set\nnumbers\t0\t5\t4990\n"
    );
    assert_eq!(committed(&address, "g", "numbers"), [(0, 5)]);
    assert_eq!(reset("-10", false), "numbers\t0\t4990\n");
    assert_eq!(reset("+7", false), "numbers\t0\t7\n");
    assert_eq!(reset("shift:3", false), "numbers\t0\t10\n");
    assert_eq!(reset("42", false), "numbers\t0\t42\n");
    assert_eq!(reset("offset:43", false), "numbers\t0\t43\n");
    assert_eq!(reset("latest", false), "numbers\t0\t5000\n");
    assert_eq!(reset("beginning", false), "numbers\t0\t0\n");
    let tail = text(ok(
        ringmq().args(["consume", "-b", &address, "numbers", "--from", "-2"]),
        b"",
    ));
    assert_eq!(tail, "4998\n4999\n");
    let head = text(ok(
        ringmq().args(["consume", "-b", &address, "numbers", "-o", "+4998"]),
        b"",
    ));
    assert_eq!(head, "4998\n4999\n");
    stop(server);
}

/// Reads `child`'s stdout lines on a thread, handing them over a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn group_members(address: &str, group: &str) -> String {
    let out = text(ok(ringmq().args(["group", "list", "-b", address]), b""));
    out.lines()
        .find(|line| line.starts_with(&format!("{group}\t")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn sigint_and_a_closed_pipe_leave_the_group_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "events", 1);
    let input: String = (0..50_000).map(|n| format!("event {n}\n")).collect();
    ok(
        ringmq().args(["produce", "-b", &address, "events", "--acks", "written"]),
        input.as_bytes(),
    );

    // SIGINT while following: exit 130, nothing on stderr, the group empty right after.
    let mut child = ringmq()
        .args([
            "consume", "-b", &address, "events", "--group", "int", "--follow",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(30)).unwrap(),
        "event 0"
    );
    // Let it reach the end of the log and wait there.
    while lines.recv_timeout(Duration::from_millis(500)).is_ok() {}
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(
        group_members(&address, "int").starts_with("int\tempty\t0\t"),
        "no ghost member"
    );
    assert_eq!(committed(&address, "int", "events"), [(0, 50_000)]);
    let (code, _, err) = run(
        ringmq().args([
            "group",
            "reset-offsets",
            "-b",
            &address,
            "int",
            "--topic",
            "events",
            "--to",
            "earliest",
        ]),
        b"",
    );
    assert_eq!(code, 0, "a reset right after: {err}");

    // A reader that takes one line and closes the pipe: exit 0, nothing on stderr.
    let mut child = ringmq()
        .args(["consume", "-b", &address, "events", "--group", "pipe"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "event 0\n");
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(group_members(&address, "pipe").starts_with("pipe\tempty\t0\t"));
    let (code, _, err) = run(
        ringmq().args(["group", "delete", "-b", &address, "pipe"]),
        b"",
    );
    assert_eq!(code, 0, "a delete right after: {err}");

    // The same without a group: `consume | head -1`.
    let mut child = ringmq()
        .args(["consume", "-b", &address, "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    stop(server);
}

#[test]
fn follow_reconnects_across_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "live", 1);
    ok(
        ringmq().args(["produce", "-b", &address, "live"]),
        b"before 1\nbefore 2\n",
    );
    let mut child = ringmq()
        .args(["consume", "-b", &address, "live", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let next = || lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!((next(), next()), ("before 1".into(), "before 2".into()));
    // A group member following too: it joins again and keeps its positions.
    let mut member = ringmq()
        .args([
            "consume", "-b", &address, "live", "--follow", "--group", "g",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let member_lines = lines_of(&mut member);
    let member_next = || member_lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(
        (member_next(), member_next()),
        ("before 1".into(), "before 2".into())
    );

    stop(server);
    let (server, _) = serve_listening(dir.path(), &address);
    let server = Server(Some(server));
    ok(
        ringmq().args(["produce", "-b", &address, "live"]),
        b"after 1\nafter 2\n",
    );
    assert_eq!(
        (next(), next()),
        ("after 1".into(), "after 2".into()),
        "resumed at the next offset: nothing repeated, nothing skipped"
    );
    assert_eq!(
        (member_next(), member_next()),
        ("after 1".into(), "after 2".into())
    );
    for child in [&mut child, &mut member] {
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        assert_eq!(child.wait().unwrap().code(), Some(130));
    }
    assert_eq!(committed(&address, "g", "live"), [(0, 4)]);
    stop(server);
}

#[test]
fn out_of_range_committed_offsets_follow_the_reset_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "again", 1);
    let ten: String = (0..10).map(|n| format!("old {n}\n")).collect();
    ok(
        ringmq().args(["produce", "-b", &address, "again"]),
        ten.as_bytes(),
    );
    let consume = |extra: &[&str]| {
        run(
            ringmq()
                .args(["consume", "-b", &address, "again", "--group", "g"])
                .args(extra),
            b"",
        )
    };
    assert_eq!(text(consume(&[]).1).lines().count(), 10);
    let recreate = |records: &str| {
        ok(
            ringmq().args(["topic", "delete", "-b", &address, "again"]),
            b"",
        );
        create(&address, "again", 1);
        ok(
            ringmq().args(["produce", "-b", &address, "again"]),
            records.as_bytes(),
        );
    };
    recreate("new 0\nnew 1\nnew 2\n");

    let (code, out, err) = consume(&[]);
    assert_eq!(
        (code, out.as_slice()),
        (1, &b""[..]),
        "the default is error"
    );
    assert!(
        err.contains("offset_out_of_range") && err.contains("--reset"),
        "{err}"
    );
    let (code, out, err) = consume(&["--reset", "earliest"]);
    assert_eq!(
        (code, text(out)),
        (0, "new 0\nnew 1\nnew 2\n".into()),
        "{err}"
    );
    assert_eq!(committed(&address, "g", "again"), [(0, 3)]);

    ok(
        ringmq().args(["produce", "-b", &address, "again"]),
        b"x\n".repeat(10).as_slice(),
    );
    recreate("newer 0\nnewer 1\n");
    let (code, out, err) = consume(&["--reset", "latest"]);
    assert_eq!((code, out.as_slice()), (0, &b""[..]), "{err}");
    assert_eq!(committed(&address, "g", "again"), [(0, 2)]);
    stop(server);
}

#[test]
fn completion_scripts_and_the_client_config_file() {
    for shell in ["bash", "zsh", "fish"] {
        let out = text(ok(ringmq().args(["completion", shell]), b""));
        assert!(
            out.contains("reset-offsets") && out.contains("record-bytes-max"),
            "{shell}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(dir.path());
    create(&address, "configured", 1);
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!("broker = \"{address}\"\nacks = \"written\"\nformat = \"%o:%v\\n\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    ok(
        ringmq().args(["produce", "configured", "--client-config", config]),
        b"a\nb\n",
    );
    let out = ok(
        ringmq()
            .args(["consume", "configured"])
            .env("RINGMQ_CLIENT_CONFIG", config),
        b"",
    );
    assert_eq!(out, b"0:a\n1:b\n");
    stop(server);
}
