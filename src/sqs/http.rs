//! HTTP/1.1 for the SQS door, as much as SDKs use: a request is a head (parsed by `httparse`)
//! and a body of exactly Content-Length bytes, and connections stay open for the next request
//! (keep-alive; answers go out in request order through the connection layer). Anything else
//! (chunked bodies, a missing or doubled length, a head or body over its bound) is refused with
//! a 4xx and the connection closed, since its byte stream can no longer be followed.
//! `Expect: 100-continue` (which the AWS SDKs send before large bodies) is answered with an
//! interim `100 Continue` once the head is in and its body is not, so the client sends the
//! body without waiting out its own timeout; a body over the bound gets its final 413 at once
//! instead, before it is sent, and any other expectation gets 417.

use bytes::{Bytes, BytesMut};

use crate::protocol::codec::FrameStatus;

/// Headers a request may have; more is refused (431).
const HEADERS_MAX: usize = 64;

/// One request, whole.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path, still percent-encoded.
    pub path: String,
    /// The query string without `?`, as sent.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A refusal of the HTTP layer itself, before any SQS parsing.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

fn head_end(buffer: &[u8], head_bytes_max: usize) -> Option<usize> {
    let window = &buffer[..buffer.len().min(head_bytes_max.saturating_add(4))];
    window
        .windows(4)
        .position(|four| four == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The Content-Length a head declares: Ok(None) when it has none, Err when it has a
/// Transfer-Encoding or a length that is not one decimal number.
fn content_length(head: &[u8]) -> Result<Option<usize>, ()> {
    let mut found = None;
    for line in head.split(|byte| *byte == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(());
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if found.is_some()
                || value.is_empty()
                || value.len() > 12
                || !value.iter().all(u8::is_ascii_digit)
            {
                return Err(());
            }
            let text = std::str::from_utf8(value).map_err(|_| ())?;
            found = Some(text.parse::<usize>().map_err(|_| ())?);
        }
    }
    Ok(found)
}

/// The value of the head's header `name`, trimmed; None when it has none.
fn head_header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|byte| *byte == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|byte| *byte == b':')?;
        let (key, value) = line.split_at(colon);
        key.eq_ignore_ascii_case(name)
            .then(|| value.get(1..).unwrap_or_default().trim_ascii())
    })
}

/// What a head's `Expect` asks: None (nothing), Some(true) (100-continue), Some(false) (an
/// expectation this server does not meet: 417).
fn expects_continue(head: &[u8]) -> Option<bool> {
    head_header(head, b"expect").map(|value| value.eq_ignore_ascii_case(b"100-continue"))
}

/// The interim answer `buffer`'s request waits for: `100 Continue` when its head asks for it
/// and its body has not all arrived (the connection layer sends it once per request).
pub fn interim(buffer: &[u8], head_bytes_max: usize) -> Option<Vec<Bytes>> {
    let end = head_end(buffer, head_bytes_max)?;
    let head = buffer.get(..end)?;
    let length = content_length(head).ok()??;
    let waiting = buffer.len() < end.saturating_add(length);
    (waiting && expects_continue(head) == Some(true))
        .then(|| vec![Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n")])
}

/// Where the first request in `buffer` ends. A head over `head_bytes_max` or one whose length
/// cannot be followed is cut as it is, for `parse` to refuse; a body over `body_bytes_max` is
/// `TooLarge`.
pub fn frame(buffer: &[u8], head_bytes_max: usize, body_bytes_max: usize) -> FrameStatus {
    let Some(end) = head_end(buffer, head_bytes_max) else {
        return if buffer.len() > head_bytes_max {
            FrameStatus::Ready(buffer.len())
        } else {
            FrameStatus::Incomplete
        };
    };
    if expects_continue(&buffer[..end]) == Some(false) {
        // Cut at the head: `parse` refuses it (417) without waiting for a body.
        return FrameStatus::Ready(end);
    }
    match content_length(&buffer[..end]) {
        Err(()) => FrameStatus::Ready(end),
        Ok(None) => FrameStatus::Ready(end),
        Ok(Some(length)) if length > body_bytes_max => FrameStatus::TooLarge(length),
        Ok(Some(length)) => {
            let whole = end.saturating_add(length);
            if buffer.len() < whole {
                FrameStatus::Incomplete
            } else {
                FrameStatus::Ready(whole)
            }
        }
    }
}

/// Room for the rest of a body whose length is known, and at least `chunk_bytes`.
pub fn read_room(buffer: &[u8], chunk_bytes: usize, head_bytes_max: usize) -> usize {
    match head_end(buffer, head_bytes_max) {
        Some(end) => match content_length(&buffer[..end]) {
            Ok(Some(length)) => end
                .saturating_add(length)
                .saturating_sub(buffer.len())
                .max(chunk_bytes),
            _ => chunk_bytes,
        },
        None => chunk_bytes,
    }
}

/// Parses a frame `frame` cut: a whole request, or why it is refused.
pub fn parse(frame: BytesMut, head_bytes_max: usize) -> Result<Request, Refusal> {
    let Some(end) = head_end(&frame, head_bytes_max) else {
        return Err(refuse(
            431,
            format!("the request head is over {head_bytes_max} bytes"),
        ));
    };
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&frame[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(refuse(400, "an incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(431, format!("over {HEADERS_MAX} headers")));
        }
        Err(error) => return Err(refuse(400, format!("a malformed request head: {error}"))),
    }
    if expects_continue(&frame[..end]) == Some(false) {
        return Err(refuse(
            417,
            "the only expectation served is Expect: 100-continue",
        ));
    }
    let length = match content_length(&frame[..end]) {
        Ok(length) => length,
        Err(()) => {
            return Err(refuse(
                411,
                "a body needs exactly one Content-Length (no Transfer-Encoding)",
            ));
        }
    };
    let method = parsed.method.unwrap_or_default().to_string();
    if method == "POST" && length.is_none() {
        return Err(refuse(411, "a POST needs a Content-Length"));
    }
    let target = parsed.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers: Vec::with_capacity(parsed.headers.len()),
        body: Bytes::new(),
    };
    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| refuse(400, format!("header {} is not UTF-8", header.name)))?;
        request
            .headers
            .push((header.name.to_string(), value.to_string()));
    }
    let mut frame = frame;
    request.body = frame.split_off(end).freeze();
    Ok(request)
}

/// An HTTP response, encoded.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<Bytes> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    vec![Bytes::from(head), Bytes::copy_from_slice(body)]
}

/// A refusal as plain text; the connection closes after it.
pub fn refusal_response(refusal: &Refusal) -> Vec<Bytes> {
    response(
        refusal.status,
        &[("content-type", "text/plain"), ("connection", "close")],
        format!("{}\n", refusal.message).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_content_length_and_refuse_the_rest() {
        let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcPOST";
        assert_eq!(
            frame(request, 1024, 100),
            FrameStatus::Ready(request.len() - 4)
        );
        assert_eq!(frame(&request[..20], 1024, 100), FrameStatus::Incomplete);
        let big = b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(frame(big, 1024, 100), FrameStatus::TooLarge(101));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
        let FrameStatus::Ready(cut) = frame(chunked, 1024, 100) else {
            panic!("a chunked head is cut to be refused");
        };
        let refused = parse(BytesMut::from(&chunked[..cut]), 1024).unwrap_err();
        assert_eq!(refused.status, 411);
        let doubled = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab";
        assert_eq!(
            parse(BytesMut::from(&doubled[..]), 1024)
                .unwrap_err()
                .status,
            411
        );
        let long = vec![b'a'; 2000];
        assert_eq!(frame(&long, 1024, 100), FrameStatus::Ready(2000));
        assert_eq!(
            parse(BytesMut::from(&long[..]), 1024).unwrap_err().status,
            431
        );
    }

    #[test]
    fn a_body_expected_gets_100_continue_until_it_arrives() {
        let head =
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        let continued = interim(head, 1024).expect("a head alone is continued");
        assert_eq!(&continued.concat()[..], b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(frame(head, 1024, 100), FrameStatus::Incomplete);
        let whole = [&head[..], b"abc"].concat();
        assert_eq!(interim(&whole, 1024), None, "the body is in");
        assert_eq!(frame(&whole, 1024, 100), FrameStatus::Ready(whole.len()));
        assert_eq!(interim(&head[..20], 1024), None, "the head is not in");
        let plain = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(interim(plain, 1024), None, "no expectation");
        let other = b"POST / HTTP/1.1\r\nExpect: magic\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(frame(other, 1024, 100), FrameStatus::Ready(other.len()));
        assert_eq!(
            parse(BytesMut::from(&other[..]), 1024).unwrap_err().status,
            417
        );
    }

    #[test]
    fn a_request_parses_with_its_query_and_body() {
        let request =
            b"POST /000000000000/q?Action=X HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
        let parsed = parse(BytesMut::from(&request[..]), 1024).unwrap();
        assert_eq!(parsed.method, "POST");
        assert_eq!(parsed.path, "/000000000000/q");
        assert_eq!(parsed.query, "Action=X");
        assert_eq!(parsed.header("host"), Some("h"));
        assert_eq!(&parsed.body[..], b"hi");
    }
}
