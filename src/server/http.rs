//! The Prometheus endpoint: a deliberately tiny HTTP/1.1 server on shard 0 answering
//! `GET /metrics` (the text exposition format) and `GET /health`. One request per connection.
//! /metrics may ask for a bearer token or basic credentials (`http_bearer_token`,
//! `http_basic_auth`); /health stays open for load balancers and orchestrators.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::broker::ShardState;
use crate::runtime::tls::Stream;
use crate::runtime::{self, TcpListener, TcpStream};

/// Request heads longer than this are refused.
const REQUEST_BYTES_MAX: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn serve(
    state: Rc<ShardState>,
    listener: TcpListener,
    handle: PrometheusHandle,
    tls: crate::net::SharedTls,
) {
    let allowed = Rc::new(credentials(&state.config));
    loop {
        let Some(accepted) = state.lifecycle.unless_stopping(listener.accept()).await else {
            return;
        };
        if let Ok((socket, _)) = accepted {
            let config = crate::net::ListenerTls::current(&tls, crate::net::Which::Http);
            let allowed = allowed.clone();
            runtime::spawn_detached(answer(socket, handle.clone(), config, allowed));
        }
    }
}

/// The stream of one HTTP connection: plain, or TLS once its handshake is done, all within
/// `REQUEST_TIMEOUT`.
async fn establish(
    socket: TcpStream,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> Option<Stream> {
    match tls {
        None => Some(Stream::Plain(socket)),
        Some(config) => runtime::timeout(REQUEST_TIMEOUT, Stream::accept_tls(socket, config))
            .await?
            .ok(),
    }
}

async fn answer(
    socket: TcpStream,
    handle: PrometheusHandle,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    allowed: Rc<Vec<String>>,
) {
    let Some(mut stream) = establish(socket, tls).await else {
        return;
    };
    let Some(Some(head)) = runtime::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let authorized = allowed.is_empty()
        || authorization(&head).is_some_and(|given| {
            allowed
                .iter()
                .any(|wanted| crate::auth::same_bytes(wanted.as_bytes(), given.as_bytes()))
        });
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") if !authorized => (
            "401 Unauthorized",
            "text/plain",
            "credentials required (http_bearer_token or http_basic_auth)\n".to_string(),
        ),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            crate::metrics::render(&handle),
        ),
        ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.send_all(vec![Bytes::from(response)]).await;
    let _ = stream.close().await;
}

/// The Authorization header values /metrics accepts: `Bearer <token>` and `Basic <base64 of
/// user:password>`, from the settings; empty when /metrics is open.
fn credentials(config: &crate::config::BrokerConfig) -> Vec<String> {
    use base64::Engine;
    let mut allowed = Vec::new();
    if !config.http_bearer_token.is_empty() {
        allowed.push(format!("Bearer {}", config.http_bearer_token));
    }
    if !config.http_basic_auth.is_empty() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&config.http_basic_auth);
        allowed.push(format!("Basic {encoded}"));
    }
    allowed
}

/// The request's Authorization header value.
fn authorization(head: &str) -> Option<&str> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim())
    })
}

async fn read_head(stream: &mut Stream) -> Option<String> {
    let mut buffer = BytesMut::with_capacity(1024);
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buffer[..end]).into_owned());
        }
        if buffer.len() >= REQUEST_BYTES_MAX {
            return None;
        }
        buffer.reserve(1024);
        let (result, returned) = stream.read_some(buffer).await;
        buffer = returned;
        if !matches!(result, Ok(read) if read > 0) {
            return None;
        }
    }
}
