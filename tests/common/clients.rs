//! Kafka clients of other projects, run as processes from tests/clients (installed there by
//! tools/test): what more than one test file drives.

use std::path::Path;
use std::process::Command;

/// Runs tests/clients/confluent_sasl_client.py (confluent-kafka: librdkafka built with OpenSSL
/// and SASL); `ca` makes it SASL_SSL. Ok on a clean round trip, Err(stderr) otherwise, None
/// when confluent-kafka is not installed.
pub fn confluent_kafka(
    address: &str,
    (mechanism, user, password): (&str, &str, &str),
    topic: &str,
    ca: Option<&Path>,
) -> Option<Result<(), String>> {
    let python = super::clients_dir().join(".venv/bin/python");
    let mut command = Command::new(&python);
    command
        .arg(super::clients_dir().join("confluent_sasl_client.py"))
        .args([address, mechanism, user, password, topic]);
    if let Some(ca) = ca {
        command.arg(ca);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => {
            super::tool_missing("confluent-kafka (tests/clients/.venv)", &error);
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if stderr.contains("No module named 'confluent_kafka'") {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, stderr);
        super::tool_missing("confluent-kafka (tests/clients/.venv)", &missing);
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Some(if output.status.success() && stdout.contains("ok") {
        Ok(())
    } else {
        Err(stderr)
    })
}
