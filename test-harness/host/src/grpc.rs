//! gRPC callouts as Envoy 1.40's async gRPC client makes and answers them.
//!
//! A plugin names its upstream either with a serialized
//! `envoy.config.core.v3.GrpcService` proto (the C++ SDK) or with a bare
//! cluster name (the Rust and Go SDKs). Envoy tells the two apart by trying
//! to parse the bytes as the proto first (`Context::grpcCall`,
//! source/extensions/common/wasm/context.cc), so a bare name is a cluster
//! name only when it is not valid protobuf; [`grpc_target`] makes the same
//! decision with a small wire-format reader of its own.
//!
//! The types here are what a test sees: [`GrpcCall`] (what the plugin sent)
//! and [`GrpcResponse`] (what the test's server answers).

use std::time::Duration;

/// Whether a gRPC callout is a unary call (`proxy_grpc_call`) or a stream
/// (`proxy_grpc_stream`). Envoy numbers them apart: call tokens are
/// `1 mod 4`, stream tokens `2 mod 4` (HTTP callouts `0 mod 4`,
/// `WasmBase::nextGrpcCallId` in proxy-wasm-cpp-host's wasm.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrpcKind {
    Call,
    Stream,
}

/// A gRPC call or stream the plugin opened, as its server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub token: u32,
    pub kind: GrpcKind,
    /// The cluster Envoy sends it to: the bare name the plugin gave, or the
    /// `envoy_grpc.cluster_name` of its `GrpcService` proto.
    pub cluster: String,
    pub service: String,
    pub method: String,
    /// The plugin's initial metadata as the server receives it: keys
    /// lower-cased, values of `-bin` keys base64-encoded (Envoy's
    /// `base64EscapeBinHeaders`, source/common/grpc/async_client_impl.cc).
    pub initial_metadata: Vec<(String, String)>,
    /// The request messages sent so far (one for a unary call), without the
    /// 5-byte gRPC frame header.
    pub messages: Vec<Vec<u8>>,
    /// Whether the plugin has finished sending (always for a unary call; for
    /// a stream after `proxy_grpc_send` with `end_stream` or
    /// `proxy_grpc_close`).
    pub half_closed: bool,
    /// The timeout the plugin asked for (unary calls); zero means none.
    pub timeout: Duration,
    /// The context that was current when the plugin made the call. Envoy
    /// registers every callout on the root context and answers it there.
    pub context_id: u32,
    pub(crate) deadline: Option<Duration>,
    /// When it was opened (monotonic), for `x-envoy-upstream-service-time`.
    pub(crate) started: Duration,
    pub(crate) offered: bool,
    pub(crate) initial_metadata_delivered: bool,
    pub(crate) local_closed: bool,
    pub(crate) remote_closed: bool,
}

impl GrpcCall {
    /// The first value of an initial-metadata key.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.initial_metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first request message (empty when none was sent).
    pub fn message(&self) -> &[u8] {
        self.messages.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// The HTTP/2 `:path` Envoy sends: `/<service>/<method>`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// What a gRPC server answers: initial metadata, messages, trailing metadata
/// and a status. A response with neither initial metadata nor messages is
/// sent as gRPC's "trailers-only" response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcResponse {
    pub initial_metadata: Vec<(String, String)>,
    pub messages: Vec<Vec<u8>>,
    pub trailing_metadata: Vec<(String, String)>,
    /// The `grpc-status` (0 is OK).
    pub status: u32,
    /// The `grpc-message`.
    pub message: String,
    /// An HTTP status other than 200 answers the call without gRPC at all
    /// (a proxy or a web server in the way): Envoy maps it to a gRPC status
    /// (`Grpc::Utility::httpToGrpcStatus`) and ignores the rest.
    pub http_status: Option<u16>,
    /// How long the server takes, on the virtual clock: a unary call whose
    /// timeout is shorter times out first.
    pub delay: Duration,
}

impl GrpcResponse {
    /// Status OK with one response message.
    pub fn ok(message: impl Into<Vec<u8>>) -> Self {
        Self::default().message(message)
    }

    /// A status without messages (trailers-only), e.g. `status(7, "denied")`.
    pub fn status(code: u32, message: &str) -> Self {
        Self {
            status: code,
            message: message.to_string(),
            ..Self::default()
        }
    }

    /// A plain HTTP answer with this status and no gRPC in it.
    pub fn http(status: u16) -> Self {
        Self {
            http_status: Some(status),
            ..Self::default()
        }
    }

    /// The server answers after `delay` of virtual time.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Adds a response message.
    pub fn message(mut self, message: impl Into<Vec<u8>>) -> Self {
        self.messages.push(message.into());
        self
    }

    pub fn initial_metadata(mut self, key: &str, value: &str) -> Self {
        self.initial_metadata
            .push((key.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn trailing_metadata(mut self, key: &str, value: &str) -> Self {
        self.trailing_metadata
            .push((key.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Whether the server sends it as a trailers-only response.
    pub(crate) fn trailers_only(&self) -> bool {
        self.initial_metadata.is_empty() && self.messages.is_empty()
    }
}

/// Where the plugin's upstream bytes point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrpcTarget {
    /// Not a valid `GrpcService` proto: the bytes are a cluster name.
    BareName(String),
    /// A `GrpcService` proto with `envoy_grpc.cluster_name`.
    EnvoyGrpc(String),
    /// A `GrpcService` proto with `google_grpc`: Envoy's Google gRPC client,
    /// which the harness does not model.
    GoogleGrpc,
    /// A valid proto without a target (the empty string is one).
    Unset,
}

/// Decides, as Envoy does, what the plugin's upstream bytes name.
pub(crate) fn grpc_target(bytes: &[u8]) -> GrpcTarget {
    let Some(top) = fields(bytes, 0) else {
        return GrpcTarget::BareName(String::from_utf8_lossy(bytes).into_owned());
    };
    let mut target = GrpcTarget::Unset;
    for (number, value) in top {
        match (number, value) {
            (1, Value::Bytes(envoy_grpc)) => {
                let Some(inner) = fields(envoy_grpc, 1) else {
                    return GrpcTarget::BareName(String::from_utf8_lossy(bytes).into_owned());
                };
                // A oneof member set again merges; the last cluster_name wins.
                let mut cluster = match target {
                    GrpcTarget::EnvoyGrpc(name) => name,
                    _ => String::new(),
                };
                for (inner_number, inner_value) in inner {
                    if let (1, Value::Bytes(name)) = (inner_number, inner_value) {
                        // proto3 `string` fields must be UTF-8 to parse.
                        match std::str::from_utf8(name) {
                            Ok(name) => cluster = name.to_string(),
                            Err(_) => {
                                return GrpcTarget::BareName(
                                    String::from_utf8_lossy(bytes).into_owned(),
                                );
                            }
                        }
                    }
                }
                target = GrpcTarget::EnvoyGrpc(cluster);
            }
            (2, Value::Bytes(_)) => target = GrpcTarget::GoogleGrpc,
            _ => {}
        }
    }
    target
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

/// Nesting deeper than this is refused (protobuf's own recursion limit is 100).
const MAX_DEPTH: usize = 64;

/// The fields of a protobuf message, or `None` when the bytes are not valid
/// wire format (a truncated varint or length, field number 0, wire type 6 or
/// 7, an unmatched group end). Known message fields of `GrpcService` other
/// than `envoy_grpc` are checked as generic messages.
fn fields(bytes: &[u8], depth: usize) -> Option<Vec<(u32, Value<'_>)>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut reader = Reader {
        bytes,
        at: 0,
        ended_group: false,
    };
    let mut out = Vec::new();
    while reader.at < bytes.len() {
        let (number, value) = reader.field(None)?;
        if depth == 0
            && let (2 | 3 | 5 | 6, Value::Bytes(inner)) = (number, value)
        {
            fields(inner, depth + 1)?;
        }
        out.push((number, value));
    }
    Some(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Set by the end-group tag that closes the group being read.
    ended_group: bool,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in 0..10 {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << (shift * 7);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    /// One field; inside a group, `group` is the group's field number and an
    /// end-group tag for it returns `(number, Scalar)` with the group done.
    fn field(&mut self, group: Option<u32>) -> Option<(u32, Value<'a>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok()?;
        if number == 0 || number > (1 << 29) - 1 {
            return None;
        }
        let value = match key & 7 {
            0 => {
                self.varint()?;
                Value::Scalar
            }
            1 => {
                self.take(8)?;
                Value::Scalar
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(len)?)
            }
            3 => {
                // A group: fields until the matching end-group tag.
                loop {
                    if self.at >= self.bytes.len() {
                        return None;
                    }
                    let (inner, _) = self.field(Some(number))?;
                    if inner == number && self.ended_group {
                        self.ended_group = false;
                        break;
                    }
                }
                Value::Scalar
            }
            4 if group == Some(number) => {
                self.ended_group = true;
                Value::Scalar
            }
            5 => {
                self.take(4)?;
                Value::Scalar
            }
            _ => return None,
        };
        Some((number, value))
    }
}

/// Standard base64 with padding, as `absl::Base64Escape` writes `-bin`
/// metadata values.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let digits = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (index, digit) in digits.iter().enumerate() {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[*digit as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_cluster_name_is_not_protobuf() {
        assert_eq!(
            grpc_target(b"upstream"),
            GrpcTarget::BareName("upstream".into())
        );
        assert_eq!(
            grpc_target(b"grpc-upstream"),
            GrpcTarget::BareName("grpc-upstream".into())
        );
    }

    #[test]
    fn a_serialized_grpc_service_names_its_envoy_grpc_cluster() {
        // GrpcService { envoy_grpc { cluster_name: "auth" } }
        let proto = [0x0a, 0x06, 0x0a, 0x04, b'a', b'u', b't', b'h'];
        assert_eq!(grpc_target(&proto), GrpcTarget::EnvoyGrpc("auth".into()));
        // ... with a timeout { seconds: 1 } after it.
        let mut with_timeout = proto.to_vec();
        with_timeout.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01]);
        assert_eq!(
            grpc_target(&with_timeout),
            GrpcTarget::EnvoyGrpc("auth".into())
        );
        assert_eq!(grpc_target(&[0x12, 0x00]), GrpcTarget::GoogleGrpc);
    }

    #[test]
    fn empty_and_valid_but_targetless_bytes_parse_as_an_unset_service() {
        assert_eq!(grpc_target(b""), GrpcTarget::Unset);
        // 'h' is field 13 as a varint, 'h' its value: valid wire format.
        assert_eq!(grpc_target(b"hh"), GrpcTarget::Unset);
    }

    #[test]
    fn truncated_or_malformed_wire_format_is_a_bare_name() {
        assert!(matches!(
            grpc_target(&[0x0a, 0x05, 0x0a]),
            GrpcTarget::BareName(_)
        ));
        assert!(matches!(grpc_target(&[0x0f]), GrpcTarget::BareName(_)));
        assert!(matches!(
            grpc_target(&[0x00, 0x01]),
            GrpcTarget::BareName(_)
        ));
        assert!(matches!(grpc_target(&[0x0c]), GrpcTarget::BareName(_)));
        // A well-formed group (field 1 start, end) is valid.
        assert_eq!(grpc_target(&[0x0b, 0x0c]), GrpcTarget::Unset);
    }

    #[test]
    fn base64_pads_as_absl_does() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0x00]), "/wA=");
    }
}
