//! Request/reply from the command line over TCP: `ringmq serve` in a child process, `ringmq
//! respond` (echoing, or with `--exec`) in another, and `ringmq request` with its message as an
//! argument or on stdin; a request nobody answers times out with exit code 1, and stdin past
//! `--bytes-max` is refused before anything is sent; a request through an exchange reaches the
//! responder of the topic its routing key is bound to, and an unroutable one is refused.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::{ringmq_command as ringmq, run_with_stdin as run, serve};

/// Starts `ringmq respond` with `args` and waits until it says it is answering.
fn respond(address: &str, args: &[&str]) -> Child {
    let mut child = ringmq()
        .args(["respond", "-b", address])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ringmq respond: answering requests on "),
        "{line}"
    );
    child
}

fn create_topic(address: &str, topic: &str) {
    let (code, out, err) = run(
        ringmq().args(["topic", "create", "-b", address, topic, "--partitions", "2"]),
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn request_and_respond_with_a_command_and_with_echo() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve(dir.path());
    create_topic(&address, "upper");
    create_topic(&address, "echo");

    let mut upper = respond(&address, &["upper", "--exec", "tr a-z A-Z", "--count", "2"]);
    let (code, out, err) = run(
        ringmq().args(["request", "-b", &address, "upper", "hello"]),
        "",
    );
    assert_eq!((code, out.as_str()), (0, "HELLO\n"), "{err}");
    // From stdin, one trailing newline removed (the command's too).
    let (code, out, err) = run(
        ringmq().args(["request", "-b", &address, "upper", "-k", "k1"]),
        "from stdin\n",
    );
    assert_eq!((code, out.as_str()), (0, "FROM STDIN\n"), "{err}");
    let status = upper.wait().unwrap();
    assert_eq!(status.code(), Some(0), "it stops after --count replies");

    // Through a topic exchange: `rpc.upper.*` routes to `upper`; an unbound key is refused.
    let mut upper = respond(&address, &["upper", "--exec", "tr a-z A-Z", "--count", "1"]);
    let setup: [&[&str]; 2] = [
        &["exchange", "create", "rpc", "--type", "topic"],
        &["exchange", "bind", "rpc", "upper", "-k", "rpc.upper.*"],
    ];
    for args in setup {
        let (code, out, err) = run(ringmq().args(args).args(["-b", &address]), "");
        assert_eq!(code, 0, "{out}{err}");
    }
    let via = |key: &str| {
        let args = [
            "request",
            "-b",
            &address,
            "--exchange",
            "rpc",
            key,
            "routed",
        ];
        run(ringmq().args(args), "")
    };
    let (code, out, err) = via("rpc.upper.now");
    assert_eq!((code, out.as_str()), (0, "ROUTED\n"), "{err}");
    assert_eq!(upper.wait().unwrap().code(), Some(0));
    let (code, out, err) = via("rpc.lower.now");
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("unroutable"), "{err}");

    let mut echo = respond(&address, &["echo", "--count", "1"]);
    let (code, out, err) = run(
        ringmq().args(["request", "-b", &address, "echo", "--timeout-ms", "10000"]),
        "two\nlines\n",
    );
    assert_eq!((code, out.as_str()), (0, "two\nlines\n"), "{err}");
    assert_eq!(echo.wait().unwrap().code(), Some(0));

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(server.wait().unwrap().code(), Some(0));
}

#[test]
fn an_unanswered_request_times_out_and_big_stdin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve(dir.path());
    create_topic(&address, "silent");

    let started = std::time::Instant::now();
    let (code, out, err) = run(
        ringmq().args([
            "request",
            "-b",
            &address,
            "silent",
            "anyone?",
            "--timeout-ms",
            "300",
        ]),
        "",
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "ringmq request: timed out after 300 ms\n")
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));

    let (code, out, err) = run(
        ringmq().args(["request", "-b", &address, "silent", "--bytes-max", "4"]),
        "12345",
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "ringmq request: stdin is over 4 bytes\n")
    );

    // A request to a topic that does not exist: the broker's error, exit code 1.
    let (code, _, err) = run(
        ringmq().args(["request", "-b", &address, "nowhere", "x"]),
        "",
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("ringmq request: "), "{err}");

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(server.wait().unwrap().code(), Some(0));
}
