//! A small HTTP/1.1 client for calls between services: hyper-util's pooled
//! legacy client (already in the workspace, so no reqwest), plain `http://`
//! only (TLS between services is the mesh sidecar's job), one deadline
//! covering connect, request and the whole response body, and a cap on the
//! response size.

use std::time::Duration;

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::ErrorBody;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connection refused, reset, ...
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was larger than allowed.
    #[error("response body over {0} bytes")]
    TooLarge(usize),
    /// The request body could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(String),
    /// The answer was not the expected JSON.
    #[error("unexpected response ({status}): {reason}")]
    Decode {
        /// Its status.
        status: StatusCode,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpResponse {
    /// Parses the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode {
            status: self.status,
            reason: e.to_string(),
        })
    }

    /// The error body of a 4xx/5xx, or the start of the raw body.
    pub fn error_summary(&self) -> String {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(e) => format!("{} {}: {}", self.status.as_u16(), e.error, e.message),
            Err(_) => format!(
                "{} {}",
                self.status.as_u16(),
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ),
        }
    }

    /// `Retry-After` in seconds, if present and numeric.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.headers
            .get(RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A cloneable, pooled HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    max_response_bytes: usize,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(16 * 1024 * 1024)
    }
}

impl HttpClient {
    /// A client accepting responses up to `max_response_bytes`.
    pub fn new(max_response_bytes: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner,
            max_response_bytes,
        }
    }

    /// Sends one request; the deadline covers everything up to the last body byte.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        deadline: Duration,
    ) -> Result<HttpResponse, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ClientError::InvalidUrl(url.to_string()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(ClientError::InvalidUrl(url.to_string()));
        }
        let mut builder = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let limit = self.max_response_bytes;
        let call = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| ClientError::Transport(error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let collected = Limited::new(body, limit).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ClientError::TooLarge(limit)
                } else {
                    ClientError::Transport(e.to_string())
                }
            })?;
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body: collected.to_bytes(),
            })
        };
        tokio::time::timeout(deadline, call)
            .await
            .map_err(|_| ClientError::Timeout(deadline))?
    }

    /// `GET url`.
    pub async fn get(&self, url: &str, deadline: Duration) -> Result<HttpResponse, ClientError> {
        self.send(Method::GET, url, &[], Bytes::new(), deadline)
            .await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &str,
        value: &T,
        deadline: Duration,
    ) -> Result<HttpResponse, ClientError> {
        let body = serde_json::to_vec(value).map_err(|e| ClientError::Encode(e.to_string()))?;
        let headers = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        self.send(Method::POST, url, &headers, Bytes::from(body), deadline)
            .await
    }

    /// `GET url` expecting a 2xx JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        deadline: Duration,
    ) -> Result<T, ClientError> {
        let resp = self.get(url, deadline).await?;
        if !resp.status.is_success() {
            return Err(ClientError::Decode {
                status: resp.status,
                reason: resp.error_summary(),
            });
        }
        resp.json()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
