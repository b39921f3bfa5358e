//! The one-call helper's request, upstream response and result.

use crate::headers::HeaderMap;
use crate::state::{HttpStream, LocalResponse};

/// A request a client sends.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) trailers: Option<HeaderMap>,
    /// Properties of this request's stream (`Harness::set_property`).
    pub(crate) properties: Vec<(Vec<String>, Vec<u8>)>,
    /// The lengths of the body's chunks, when it arrives in several.
    pub(crate) chunks: Vec<usize>,
}

impl Request {
    /// A request with the pseudo-headers Envoy would pass a filter, in the
    /// order Envoy's HTTP/1 codec gives them: `:authority`, `:path`,
    /// `:method`, `:scheme`. (`Harness::exchange` then adds what the
    /// connection manager adds: `x-forwarded-proto`, `x-request-id`.)
    pub fn new(method: &str, path: &str) -> Self {
        let headers = [
            (":authority", "example.com"),
            (":path", path),
            (":method", method),
            (":scheme", "http"),
        ]
        .into_iter()
        .collect();
        Self {
            headers,
            body: None,
            trailers: None,
            properties: Vec::new(),
            chunks: Vec::new(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(body)
    }

    /// Adds a header (several calls with one name add several values).
    pub fn header(mut self, key: &str, value: &str) -> Self {
        self.headers.add(key, value);
        self
    }

    /// Sets a pseudo-header or header, replacing what was there.
    pub fn set_header(mut self, key: &str, value: &str) -> Self {
        self.headers.replace(key, value);
        self
    }

    /// Sets the body and its `content-length`, as an HTTP/1.1 client does.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.headers
            .replace("content-length", &body.len().to_string());
        self.body = Some(body);
        self
    }

    pub fn trailer(mut self, key: &str, value: &str) -> Self {
        self.trailers
            .get_or_insert_with(HeaderMap::new)
            .add(key, value);
        self
    }

    /// Sets the body as it arrives in several chunks, each its own body
    /// callback (`content-length` is the total), as a client that sends it
    /// in pieces produces.
    pub fn body_chunks<I: IntoIterator<Item = B>, B: Into<Vec<u8>>>(mut self, chunks: I) -> Self {
        let chunks: Vec<Vec<u8>> = chunks.into_iter().map(Into::into).collect();
        self.chunks = chunks.iter().map(Vec::len).collect();
        self.body(chunks.concat())
    }

    /// A property of this request's stream only (`request.*`,
    /// `source.address`, anything), set before the first callback.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties
            .push((path.iter().map(|s| s.to_string()).collect(), value.into()));
        self
    }
}

/// What the upstream received: the request after the plugin.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl UpstreamRequest {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.get(key)
    }
}

/// An upstream's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Option<HeaderMap>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            headers: [(":status", status.to_string())].into_iter().collect(),
            body: Vec::new(),
            trailers: None,
        }
    }

    pub fn ok() -> Self {
        Self::new(200)
    }

    pub fn header(mut self, key: &str, value: &str) -> Self {
        self.headers.add(key, value);
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.headers
            .replace("content-length", &body.len().to_string());
        self.body = body;
        self
    }

    pub fn trailer(mut self, key: &str, value: &str) -> Self {
        self.trailers
            .get_or_insert_with(HeaderMap::new)
            .add(key, value);
        self
    }
}

/// The outcome of [`Harness::exchange`](crate::Harness::exchange).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The final state of the stream.
    pub stream: HttpStream,
    /// What the upstream saw, or `None` when the request never got there.
    pub upstream_request: Option<UpstreamRequest>,
}

impl Exchange {
    pub(crate) fn new(stream: HttpStream, upstream_request: Option<UpstreamRequest>) -> Self {
        Self {
            stream,
            upstream_request,
        }
    }

    /// The status the client received, if a response reached it.
    pub fn status(&self) -> Option<u16> {
        self.response_headers()?.get(":status")?.parse().ok()
    }

    /// The response headers the client received.
    pub fn response_headers(&self) -> Option<&HeaderMap> {
        if self.stream.closed() {
            return None;
        }
        self.stream.response_headers()
    }

    /// A response header the client received.
    pub fn response_header(&self, key: &str) -> Option<&str> {
        self.response_headers()?.get(key)
    }

    /// The response body the client received.
    pub fn response_body(&self) -> &[u8] {
        self.stream.forwarded_response_body()
    }

    /// The local response the plugin sent, if it answered itself.
    pub fn local_response(&self) -> Option<&LocalResponse> {
        self.stream.local_response()
    }

    /// Whether the plugin reset the stream.
    pub fn was_reset(&self) -> bool {
        self.stream.closed()
    }
}
