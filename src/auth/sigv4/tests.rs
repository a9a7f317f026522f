use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 2015-08-30T12:36:00Z, the date of AWS's SigV4 test suite.
fn suite_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn vanilla_headers() -> [(&'static str, &'static str); 2] {
    [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ]
}

/// AWS's `get-vanilla` case from its SigV4 test suite.
#[test]
fn the_suites_get_vanilla_request_verifies() {
    let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    let authorization = parse_authorization(header).unwrap();
    assert_eq!(authorization.access_key, "AKIDEXAMPLE");
    assert_eq!(authorization.signed_headers, ["host", "x-amz-date"]);
    let headers = vanilla_headers();
    let request = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        verify(&request, &authorization, SECRET, suite_time()),
        Ok(())
    );
    // Another secret, method, body or time: refused.
    assert_eq!(
        verify(&request, &authorization, "another", suite_time()),
        Err(SigV4Error::Mismatch)
    );
    let post = Request {
        method: "POST",
        ..request
    };
    assert_eq!(
        verify(&post, &authorization, SECRET, suite_time()),
        Err(SigV4Error::Mismatch)
    );
    let body = Request {
        body: b"Action=DeleteQueue",
        ..request
    };
    assert_eq!(
        verify(&body, &authorization, SECRET, suite_time()),
        Err(SigV4Error::Mismatch)
    );
    let later = suite_time() + CLOCK_SKEW_MAX + Duration::from_secs(1);
    assert_eq!(
        verify(&request, &authorization, SECRET, later),
        Err(SigV4Error::Expired)
    );
}

#[test]
fn malformed_authorizations_are_incomplete_never_a_panic() {
    for header in [
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/2015/r/s/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=host, Signature=zz",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request/x, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential",
    ] {
        assert!(
            matches!(parse_authorization(header), Err(SigV4Error::Incomplete(_))),
            "{header:?}"
        );
    }
    let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-absent, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    let authorization = parse_authorization(header).unwrap();
    let headers = vanilla_headers();
    let request = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert!(matches!(
        verify(&request, &authorization, SECRET, suite_time()),
        Err(SigV4Error::Incomplete(_))
    ));
    for date in [
        "2015",
        "20150830T123600",
        "20151330T123600Z",
        "2015083xT123600Z",
    ] {
        assert_eq!(parse_amz_date(date), None, "{date}");
    }
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
}

#[test]
fn queries_are_decoded_encoded_again_and_sorted() {
    assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
    assert_eq!(canonical_query("Param1=value%201"), "Param1=value%201");
    assert_eq!(canonical_query("p=a+b&q=%7e%2F"), "p=a%2Bb&q=~%2F");
    assert_eq!(canonical_query(""), "");
    assert_eq!(decode("%zz%4"), "%zz%4");
    assert_eq!(encode("/a b/c", false), "/a%20b/c");
}
