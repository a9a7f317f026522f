//! The `ringmq` binary: everything lives in `ringmq::cli`.

fn main() -> std::process::ExitCode {
    ringmq::cli::main()
}
