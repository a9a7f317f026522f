//! Why a reading command stopped, and the exit code each reason gets: a closed stdout (`consume
//! | head`) is a normal end (0, nothing on stderr), SIGINT is 130 and SIGTERM 143 as shells
//! expect; either way the command first leaves its group, so no ghost member holds partitions
//! for a session timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitCode;

use futures_util::FutureExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every partition was read to its end (without --follow).
    End,
    /// -n records were printed.
    Count,
    /// Whoever read stdout closed it.
    PipeClosed,
    /// SIGINT or SIGTERM (the signal number).
    Signal(i32),
}

impl Stop {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Stop::Signal(signal) => ExitCode::from(128 + signal as u8),
            _ => ExitCode::SUCCESS,
        }
    }
}

type SignalFuture = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// SIGINT and SIGTERM caught from now on (instead of killing the process), to be awaited
/// alongside the work they interrupt.
pub struct Interrupts {
    interrupt: SignalFuture,
    terminate: SignalFuture,
}

impl Interrupts {
    pub fn install() -> Interrupts {
        let mut interrupts = Interrupts {
            interrupt: Box::pin(crate::runtime::signal(libc::SIGINT)),
            terminate: Box::pin(crate::runtime::signal(libc::SIGTERM)),
        };
        // A signal's handler is installed when its future is first polled.
        let _ = (&mut interrupts.interrupt).now_or_never();
        let _ = (&mut interrupts.terminate).now_or_never();
        interrupts
    }

    /// Runs `work` unless a signal comes first.
    pub async fn run<F: Future>(&mut self, work: F) -> Result<F::Output, Stop> {
        let work = std::pin::pin!(work);
        let signals = futures_util::future::select(&mut self.interrupt, &mut self.terminate);
        match futures_util::future::select(work, signals).await {
            futures_util::future::Either::Left((output, _)) => Ok(output),
            futures_util::future::Either::Right((which, _)) => Err(Stop::Signal(match which {
                futures_util::future::Either::Left(_) => libc::SIGINT,
                futures_util::future::Either::Right(_) => libc::SIGTERM,
            })),
        }
    }
}

/// A write error that means stdout's reader has gone.
pub fn is_closed_pipe(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::BrokenPipe
}
