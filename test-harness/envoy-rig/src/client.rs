//! A blocking HTTP/1.1 client for tests: one request, one fresh connection.
//!
//! Tests are plain `#[test]` functions, so the client hides its async core
//! behind a private current-thread runtime. A fresh connection per request
//! keeps requests independent (no pooled connection carries state from one
//! assertion to the next). Every exchange has a deadline, so a wedged Envoy
//! fails the test instead of hanging it. Do not call it from async code: it
//! starts its own runtime.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{Result, RigError};

/// The default deadline for a whole exchange (connect, send, read the body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A request to send with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
}

impl Request {
    /// A request with any method to an absolute `http://host:port/path` URL.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A GET request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A POST request with a body.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", url).body(body)
    }

    /// Adds a header (repeat the call to send a header several times).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Replaces the exchange deadline ([`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request and waits for the whole response.
    ///
    /// Any status is a successful exchange; only connection, protocol and
    /// deadline failures are errors.
    pub fn send(&self) -> Result<Response> {
        let context = format!("{} {}", self.method, self.url);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RigError::io("starting the client runtime", e))?;
        runtime.block_on(async {
            match tokio::time::timeout(self.timeout, self.exchange(&context)).await {
                Ok(result) => result,
                Err(_) => Err(RigError::Timeout {
                    context: context.clone(),
                    timeout: self.timeout,
                }),
            }
        })
    }

    async fn exchange(&self, context: &str) -> Result<Response> {
        let uri: Uri = self.url.parse().map_err(|e| RigError::InvalidUrl {
            url: self.url.clone(),
            reason: format!("{e}"),
        })?;
        if uri.scheme_str() != Some("http") {
            return Err(RigError::InvalidUrl {
                url: self.url.clone(),
                reason: "only http:// URLs are supported".into(),
            });
        }
        let (host, port) = match (uri.host(), uri.port_u16()) {
            (Some(host), Some(port)) => (host.trim_matches(['[', ']']).to_owned(), port),
            _ => {
                return Err(RigError::InvalidUrl {
                    url: self.url.clone(),
                    reason: "the URL needs an explicit host and port".into(),
                });
            }
        };
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());

        let mut builder = hyper::Request::builder()
            .method(self.method.as_str())
            .uri(path);
        let has_host = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"));
        if !has_host {
            builder = builder.header(HOST, authority);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| RigError::http(context, format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|e| RigError::http(context, format!("header value {value:?}: {e}")))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(Bytes::from(self.body.clone())))
            .map_err(|e| RigError::http(context, e))?;

        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| RigError::http(context, format!("connect: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| RigError::http(context, e))?;
        // The connection future drives the socket; it ends when the response
        // is read and `sender` is dropped.
        tokio::spawn(connection);

        let response = sender
            .send_request(request)
            .await
            .map_err(|e| RigError::http(context, e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RigError::http(context, format!("reading the body: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Sends a GET to `url`.
pub fn get(url: impl Into<String>) -> Result<Response> {
    Request::get(url).send()
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|source| RigError::Json {
            context: format!("response body {:?}", self.text()),
            source,
        })
    }
}
