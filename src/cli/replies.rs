//! `ringmq request DESTINATION [MESSAGE]` and `ringmq respond TOPIC [--exec CMD]`: request/reply
//! from a shell. `request` sends one message (the argument, or stdin read up to a bound) over
//! the connection's direct reply-to and prints the reply; `respond` answers a topic's requests,
//! echoing each or with what a command prints when given the request on its stdin.
//!
//! Every input is bounded before it is held: stdin and a command's output are read up to
//! `--bytes-max` (more is an error, nothing is sent), and a command that runs past
//! `--exec-timeout-ms` is killed and its request left unanswered (its requester times out).

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::topic::connect;
use super::{BrokerAddress, run_client, run_client_code};
use crate::batch::Record;
use crate::client::replies::reply_value;
use crate::protocol::ErrorCode;

/// A message or reply's size limit when `--bytes-max` is not given (the broker's default
/// record limit).
const BYTES_MAX_DEFAULT: usize = 1 << 20;

#[derive(clap::Args)]
pub struct RequestArgs {
    #[command(flatten)]
    address: BrokerAddress,
    /// The topic the request goes to (with --exchange: its routing key).
    destination: String,
    /// The request's value; without it, stdin (one trailing newline removed).
    message: Option<String>,
    /// The request's key (it picks the partition).
    #[arg(short, long)]
    key: Option<String>,
    /// Publish the request through this exchange, DESTINATION being its routing key; the
    /// first reply of any topic it reaches is printed.
    #[arg(long)]
    exchange: Option<String>,
    /// How long to wait for the reply; exit code 1 and "timed out" on stderr after.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// The largest request read from stdin, in bytes.
    #[arg(long, default_value_t = BYTES_MAX_DEFAULT)]
    bytes_max: usize,
}

#[derive(clap::Args)]
pub struct RespondArgs {
    #[command(flatten)]
    address: BrokerAddress,
    /// The topic whose requests to answer (those appended from now on, every partition).
    topic: String,
    /// Answer each request with what `sh -c CMD` prints given the request's value on stdin;
    /// a request whose command fails (or runs past --exec-timeout-ms) gets no reply.
    /// Without it, each request is answered with its own value.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Stop after this many replies.
    #[arg(long)]
    count: Option<u64>,
    /// The longest a command may run.
    #[arg(long, default_value_t = 10_000, requires = "exec")]
    exec_timeout_ms: u64,
    /// The largest reply a command may print, in bytes (more: no reply).
    #[arg(long, default_value_t = BYTES_MAX_DEFAULT)]
    bytes_max: usize,
}

pub fn request(args: RequestArgs) -> ExitCode {
    run_client("request", async move {
        let value = match args.message {
            Some(message) => message.into_bytes(),
            None => read_bounded(&mut std::io::stdin().lock(), args.bytes_max, "stdin")?,
        };
        let value = strip_newline(value);
        let mut record = Record::new(0, args.key.as_deref().map(str::as_bytes), None);
        record.value = Some(Bytes::from(value));
        let client = connect(&args.address).await?;
        let timeout = Duration::from_millis(args.timeout_ms);
        let reply = match &args.exchange {
            Some(exchange) => {
                let route = (exchange.as_str(), args.destination.as_str());
                client.request_via_exchange(route, record, timeout).await
            }
            None => client.request(&args.destination, record, timeout).await,
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) if error.code() == Some(ErrorCode::TimedOut) => {
                return Err(format!("timed out after {} ms", args.timeout_ms));
            }
            Err(error) => return Err(error.to_string()),
        };
        let mut stdout = std::io::stdout().lock();
        let written = stdout
            .write_all(reply.value.as_deref().unwrap_or_default())
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush());
        written.map_err(|error| format!("stdout: {error}"))
    })
}

pub fn respond(args: RespondArgs) -> ExitCode {
    run_client_code("respond", async move {
        let client = connect(&args.address).await?;
        let mut responder = client
            .responder(&args.topic)
            .await
            .map_err(|error| error.to_string())?;
        eprintln!("ringmq respond: answering requests on {}", args.topic);
        let limit = Limits {
            bytes_max: args.bytes_max,
            timeout: Duration::from_millis(args.exec_timeout_ms),
        };
        let mut replied = 0u64;
        while args.count.is_none_or(|count| replied < count) {
            let left = args.count.map_or(u64::MAX, |count| count - replied);
            let mut answered = 0u64;
            let sent = responder
                .serve_once(|request| {
                    // Past --count: leave the rest unanswered (their requesters time out).
                    if answered >= left {
                        return None;
                    }
                    let value = request.value.as_deref().unwrap_or_default();
                    let reply = match &args.exec {
                        None => Some(value.to_vec()),
                        Some(command) => run_command(command, value, limit)
                            .map_err(|error| eprintln!("ringmq respond: {command}: {error}"))
                            .ok(),
                    };
                    answered += u64::from(reply.is_some());
                    reply.map(reply_value)
                })
                .await
                .map_err(|error| error.to_string())?;
            replied += sent as u64;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// What a responder's command may use.
#[derive(Clone, Copy)]
struct Limits {
    bytes_max: usize,
    timeout: Duration,
}

/// Runs `sh -c command` with `input` on its stdin: its stdout, if it exits 0 in time and
/// prints at most `limits.bytes_max` bytes.
fn run_command(command: &str, input: &[u8], limits: Limits) -> Result<Vec<u8>, String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .args(["-c", command])
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| format!("cannot start: {error}"))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no pipes to the command".into());
    };
    let deadline = Instant::now() + limits.timeout;
    let output = std::thread::scope(|scope| {
        // A command that never reads its stdin only closes the pipe: not an error.
        scope.spawn(move || drop(stdin.write_all(input)));
        let reader = scope.spawn(move || read_bounded(&mut stdout, limits.bytes_max, "output"));
        let waited = wait_until(&mut child, deadline);
        if waited.is_err() {
            kill_group(&mut child);
        }
        let output = reader
            .join()
            .unwrap_or_else(|_| Err("the reader failed".into()));
        // Too much output first: the command may have died of the pipe closed on it.
        output.and_then(|output| waited.map(|()| output))
    })?;
    Ok(strip_newline(output))
}

/// Kills `child`'s process group (the shell and what it started), so its stdout closes.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(group) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for `child` to exit 0 by `deadline`.
fn wait_until(child: &mut std::process::Child, deadline: Instant) -> Result<(), String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if Instant::now() >= deadline => return Err("timed out".into()),
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// All of `input` if it is at most `max` bytes; an error (having read `max + 1`) if more.
fn read_bounded(input: &mut impl Read, max: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    input
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("{what}: {error}"))?;
    if bytes.len() > max {
        return Err(format!("{what} is over {max} bytes"));
    }
    Ok(bytes)
}

/// `bytes` without one trailing newline (what `echo` and most commands end with).
fn strip_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_one_newline_goes() {
        assert_eq!(read_bounded(&mut &b"abc"[..], 3, "x").unwrap(), b"abc");
        assert_eq!(
            read_bounded(&mut &b"abcd"[..], 3, "stdin").unwrap_err(),
            "stdin is over 3 bytes"
        );
        assert_eq!(strip_newline(b"a\n\n".to_vec()), b"a\n");
        assert_eq!(strip_newline(Vec::new()), b"");
    }

    #[test]
    fn a_command_answers_with_its_output_within_its_limits() {
        let limits = Limits {
            bytes_max: 16,
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            run_command("tr a-z A-Z", b"hello", limits).unwrap(),
            b"HELLO"
        );
        assert_eq!(
            run_command("exit 3", b"", limits).unwrap_err(),
            "exited with exit status: 3"
        );
        assert_eq!(
            run_command("yes", b"", limits).unwrap_err(),
            "output is over 16 bytes"
        );
        let quick = Limits {
            timeout: Duration::from_millis(100),
            ..limits
        };
        assert_eq!(run_command("sleep 5", b"", quick).unwrap_err(), "timed out");
    }
}
