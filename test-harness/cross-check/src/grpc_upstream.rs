//! The gRPC server both hosts call: [`answer`] decides what each method of
//! `test.Echo` answers, the harness serves it with `Harness::serve_grpc`, and
//! [`GrpcUpstream`] serves the very same answers to a real Envoy.
//!
//! `GrpcUpstream` speaks gRPC's framing over HTTP/1.1 with chunked trailers
//! (no HTTP/2 library is in the workspace): Envoy's cluster for it sets
//! `enable_trailers`, so its HTTP/1 codec reads `grpc-status` as trailers
//! and its async gRPC client sees what it would see over HTTP/2 (response
//! headers, messages, trailers, or a trailers-only response). What the
//! client library does with them (`AsyncStreamImpl`, source/common/grpc/
//! async_client_impl.cc) does not depend on the codec.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use proxy_wasm_harness::GrpcResponse;
use serde_json::{Value, json};

/// The cluster name both hosts give the gRPC server.
pub const GRPC_CLUSTER: &str = "grpc-upstream";

/// The service [`answer`] implements.
pub const GRPC_SERVICE: &str = "test.Echo";

/// The methods of [`GRPC_SERVICE`].
pub const GRPC_METHODS: &[&str] = &["Echo", "Twice", "Deny", "Empty", "Slow", "Wait", "Http503"];

/// How long `Slow` takes: longer than the timeouts scenarios give it.
pub const SLOW: Duration = Duration::from_secs(2);

/// How long `Wait` takes: short, for calls without a timeout.
pub const WAIT: Duration = Duration::from_millis(300);

/// What `test.Echo/<method>` answers to `message`:
/// - `Echo`: `echo <message>`, with initial metadata `x-server-md: srv` and
///   trailing metadata `x-server-trailer: bye`;
/// - `Twice`: two messages, `first` and `second <message>`;
/// - `Deny`: status 7 `denied`, trailers-only;
/// - `Empty`: status OK without any message, trailers-only;
/// - `Slow`: `Echo`'s answer after [`SLOW`]; `Wait`: after [`WAIT`];
/// - `Http503`: a plain HTTP 503, no gRPC;
/// - anything else: status 12 (UNIMPLEMENTED), as a gRPC server answers.
pub fn answer(method: &str, message: &[u8]) -> GrpcResponse {
    let echo = || {
        GrpcResponse::ok(format!("echo {}", String::from_utf8_lossy(message)))
            .initial_metadata("x-server-md", "srv")
            .trailing_metadata("x-server-trailer", "bye")
    };
    match method {
        "Echo" => echo(),
        "Twice" => GrpcResponse::ok("first")
            .message(format!("second {}", String::from_utf8_lossy(message))),
        "Deny" => GrpcResponse::status(7, "denied"),
        "Empty" => GrpcResponse::status(0, ""),
        "Slow" => echo().after(SLOW),
        "Wait" => echo().after(WAIT),
        "Http503" => GrpcResponse::http(503),
        _ => GrpcResponse::status(12, ""),
    }
}

/// A request as the server received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenGrpc {
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The request messages, unframed.
    pub messages: Vec<Vec<u8>>,
}

impl SeenGrpc {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The gRPC server on loopback, for the real Envoy.
#[derive(Debug)]
pub struct GrpcUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<SeenGrpc>>>,
    stop: Arc<AtomicBool>,
}

/// How long a connection may sit idle before the server drops it, so no
/// thread outlives a test by much.
const IDLE: Duration = Duration::from_secs(20);

impl GrpcUpstream {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let seen: Arc<Mutex<Vec<SeenGrpc>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_in, stop_in) = (Arc::clone(&seen), Arc::clone(&stop));
        thread::spawn(move || {
            for connection in listener.incoming() {
                if stop_in.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(connection) = connection else { continue };
                let seen = Arc::clone(&seen_in);
                thread::spawn(move || {
                    // A broken connection ends its thread; nothing to report.
                    let _ = serve(connection, &seen);
                });
            }
        });
        Ok(Self { port, seen, stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<SeenGrpc> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The Envoy cluster for this server: HTTP/1.1 with trailers enabled.
    pub fn cluster(&self) -> Value {
        json!({
            "name": GRPC_CLUSTER,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": GRPC_CLUSTER,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": self.port}
                }}}]}],
            },
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http_protocol_options": {"enable_trailers": true}},
                },
            },
        })
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(connection: TcpStream, seen: &Mutex<Vec<SeenGrpc>>) -> std::io::Result<()> {
    connection.set_read_timeout(Some(IDLE))?;
    let mut writer = connection.try_clone()?;
    let mut reader = BufReader::new(connection);
    loop {
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        let messages = unframe(&request.body);
        let method = request.path.rsplit('/').next().unwrap_or("").to_string();
        let first = messages.first().cloned().unwrap_or_default();
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(SeenGrpc {
                path: request.path.clone(),
                headers: request.headers.clone(),
                messages,
            });
        let response = answer(&method, &first);
        if !response.delay.is_zero() {
            thread::sleep(response.delay);
        }
        writer.write_all(&encode(&response))?;
        writer.flush()?;
    }
}

struct HttpRequest {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// One HTTP/1.1 request: a `content-length` or chunked body (trailers read
/// and dropped).
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<HttpRequest>> {
    let Some(request_line) = read_line(reader)? else {
        return Ok(None);
    };
    let path = request_line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| bad("request line"))?
        .to_string();
    let mut headers = Vec::new();
    while let Some(line) = read_line(reader)? {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size_line = read_line(reader)?.ok_or_else(|| bad("chunk size"))?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            if size == 0 {
                while let Some(line) = read_line(reader)? {
                    if line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            read_line(reader)?;
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(HttpRequest {
        path,
        headers,
        body,
    }))
}

/// gRPC's length-prefixed messages: a flag byte, a big-endian u32 length.
fn unframe(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let Some(message) = body.get(5..5 + len) else {
            break;
        };
        messages.push(message.to_vec());
        body = &body[5 + len..];
    }
    messages
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The HTTP/1.1 response for `response`.
fn encode(response: &GrpcResponse) -> Vec<u8> {
    let mut out = String::new();
    if let Some(status) = response.http_status {
        out.push_str(&format!(
            "HTTP/1.1 {status} Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\nbusy"
        ));
        return out.into_bytes();
    }
    let status_lines = |out: &mut String| {
        out.push_str(&format!("grpc-status: {}\r\n", response.status));
        if !response.message.is_empty() {
            out.push_str(&format!("grpc-message: {}\r\n", response.message));
        }
        for (k, v) in &response.trailing_metadata {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    };
    out.push_str("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n");
    if response.initial_metadata.is_empty() && response.messages.is_empty() {
        // Trailers-only: the status in the one header block, no body.
        status_lines(&mut out);
        out.push_str("content-length: 0\r\n\r\n");
        return out.into_bytes();
    }
    for (k, v) in &response.initial_metadata {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("transfer-encoding: chunked\r\n\r\n");
    let mut bytes = out.into_bytes();
    for message in &response.messages {
        let framed = frame(message);
        bytes.extend_from_slice(format!("{:x}\r\n", framed.len()).as_bytes());
        bytes.extend_from_slice(&framed);
        bytes.extend_from_slice(b"\r\n");
    }
    let mut trailer = String::from("0\r\n");
    status_lines(&mut trailer);
    trailer.push_str("\r\n");
    bytes.extend_from_slice(trailer.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut body = frame(b"one");
        body.extend(frame(b""));
        body.extend(frame(b"three"));
        assert_eq!(
            unframe(&body),
            [b"one".to_vec(), Vec::new(), b"three".to_vec()]
        );
    }

    #[test]
    fn a_trailers_only_answer_has_no_body() {
        let text = String::from_utf8(encode(&answer("Deny", b""))).unwrap_or_default();
        assert!(
            text.contains("grpc-status: 7\r\ngrpc-message: denied\r\ncontent-length: 0\r\n\r\n")
        );
    }
}
