//! SigV4 as AWS's own SDK signs: botocore (boto3's core, a signer we did not write) signs SQS
//! requests, and the broker's verifier (`ringmq::auth::sigv4`) must accept exactly those and
//! refuse them once anything signed is changed.

mod common;

use std::process::Command;
use std::time::SystemTime;

use ringmq::auth::sigv4::{Request, SigV4Error, check_scope, parse_authorization, verify};

const SECRET: &str = "test-secret-key";

/// What botocore signed: (method, path, query, headers, body).
type Signed = (String, String, String, Vec<(String, String)>, Vec<u8>);

/// Has botocore sign `method url` with `body`; None when boto3 is not installed.
fn botocore_signs(method: &str, url: &str, body: &str) -> Option<Signed> {
    let script = r#"
import json, sys
from urllib.parse import urlsplit
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
method, url, body, secret = sys.argv[1:5]
request = AWSRequest(method=method, url=url, data=body.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
SigV4Auth(Credentials("AKIDRINGMQ", secret), "sqs", "us-east-1").add_auth(request)
parts = urlsplit(url)
print(json.dumps({"path": parts.path, "query": parts.query,
                  "headers": [[k, v] for k, v in request.headers.items()]
                             + [["Host", parts.netloc]]}))
"#;
    let python = common::clients_dir().join(".venv/bin/python");
    let output = match Command::new(&python)
        .args(["-c", script, method, url, body, SECRET])
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            common::tool_missing("boto3 (tests/clients/.venv)", &error);
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'botocore'") {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, stderr.to_string());
        common::tool_missing("boto3 (tests/clients/.venv)", &missing);
        return None;
    }
    assert!(output.status.success(), "{stderr}");
    let signed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let headers = signed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_string(),
                pair[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Some((
        method.to_string(),
        signed["path"].as_str().unwrap().to_string(),
        signed["query"].as_str().unwrap().to_string(),
        headers,
        body.as_bytes().to_vec(),
    ))
}

fn check(signed: &Signed, secret: &str) -> Result<(), SigV4Error> {
    let (method, path, query, headers, body) = signed;
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let authorization = pairs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| *value)
        .unwrap();
    let request = Request {
        method,
        path,
        query,
        headers: &pairs,
        body,
    };
    verify(
        &request,
        &parse_authorization(authorization)?,
        secret,
        SystemTime::now(),
    )
}

#[test]
fn requests_botocore_signs_verify_and_changed_ones_do_not() {
    let cases = [
        (
            "POST",
            "http://localhost:9324/",
            "Action=ListQueues&Version=2012-11-05",
        ),
        (
            "POST",
            "http://localhost:9324/000000000000/orders",
            "Action=SendMessage&MessageBody=caf%C3%A9+%26+more&QueueUrl=x",
        ),
        (
            "GET",
            "http://localhost:9324/000000000000/orders?Action=ReceiveMessage&WaitTimeSeconds=2&A%20b=c~d",
            "",
        ),
    ];
    for (method, url, body) in cases {
        let Some(signed) = botocore_signs(method, url, body) else {
            return;
        };
        check(&signed, SECRET).unwrap_or_else(|error| panic!("{method} {url}: {error}"));
        assert_eq!(check(&signed, "another-secret"), Err(SigV4Error::Mismatch));
        let mut tampered = signed.clone();
        tampered.4.extend_from_slice(b"&DelaySeconds=900");
        assert_eq!(
            check(&tampered, SECRET),
            Err(SigV4Error::Mismatch),
            "{url}: the body"
        );
        // The body swapped, with an unsigned header claiming the signed body's hash.
        let mut claimed = tampered.clone();
        let hash = ring::digest::digest(&ring::digest::SHA256, &signed.4);
        let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        claimed.3.push(("X-Amz-Content-SHA256".into(), hex));
        assert_eq!(
            check(&claimed, SECRET),
            Err(SigV4Error::Mismatch),
            "{url}: a claimed body hash"
        );
        let mut moved = signed.clone();
        moved.1.push_str("other");
        assert_eq!(
            check(&moved, SECRET),
            Err(SigV4Error::Mismatch),
            "{url}: the path"
        );
    }
}

#[test]
fn a_scope_of_another_date_region_or_service_is_refused() {
    let Some(signed) = botocore_signs("POST", "http://localhost:9324/", "Action=ListQueues") else {
        return;
    };
    let header = signed
        .3
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.clone())
        .unwrap();
    let authorization = parse_authorization(&header).unwrap();
    assert_eq!(check_scope(&authorization, "us-east-1", "sqs"), Ok(()));
    assert_eq!(
        check_scope(&authorization, "eu-west-1", "sqs"),
        Err(SigV4Error::Scope(
            "Credential should be scoped to a valid region, not 'us-east-1'.".into()
        ))
    );
    assert_eq!(
        check_scope(&authorization, "us-east-1", "sns"),
        Err(SigV4Error::Scope(
            "Credential should be scoped to correct service: 'sns'.".into()
        ))
    );
    // The scope's date a day off X-Amz-Date's: refused before any signature is computed.
    let mut other_day = authorization.clone();
    other_day.date = "19991231".into();
    let (method, path, query, headers, body) = &signed;
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let request = Request {
        method,
        path,
        query,
        headers: &pairs,
        body,
    };
    let refused = verify(&request, &other_day, SECRET, SystemTime::now()).unwrap_err();
    let SigV4Error::Scope(message) = refused else {
        panic!("{refused:?}");
    };
    assert!(
        message.starts_with("Date in Credential scope does not match YYYYMMDD")
            && message.contains("'19991231' != '"),
        "{message}"
    );
}
