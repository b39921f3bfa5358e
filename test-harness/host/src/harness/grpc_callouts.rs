//! The harness's side of gRPC callouts: the test's servers (responders per
//! cluster, service and method), and delivering their answers to the plugin
//! in the order Envoy 1.40's async gRPC client does
//! (source/common/grpc/async_client_impl.cc, `Context::onGrpcReceiveWrapper`
//! and `onGrpcCloseWrapper` in source/extensions/common/wasm/context.cc).
//!
//! A unary call gets one callback: `proxy_on_grpc_receive` with the last
//! response message when the status is OK, else `proxy_on_grpc_close` with
//! the status (OK without a message is INTERNAL). A stream gets
//! `proxy_on_grpc_receive_initial_metadata`, one `proxy_on_grpc_receive` per
//! message, `proxy_on_grpc_receive_trailing_metadata`, then
//! `proxy_on_grpc_close`. Every callback goes to the root context, where
//! Envoy registers callouts; the SDK finds the caller by the token.

use std::collections::HashMap;
use std::time::Duration;

use super::{Harness, WorkerId};
use crate::error::HarnessError;
use crate::grpc::{GrpcCall, GrpcKind, GrpcResponse};
use crate::headers::HeaderMap;
use crate::state::DeliveredGrpc;

/// A test's gRPC server method: sees the call (metadata, messages) and
/// answers it, or returns `None` to leave it pending (to time out, or to be
/// answered later with [`Harness::respond_grpc`]).
pub(crate) type GrpcResponder = Box<dyn FnMut(&GrpcCall) -> Option<GrpcResponse>>;

#[derive(Default)]
pub(crate) struct GrpcResponders {
    by_method: HashMap<(String, String, String), GrpcResponder>,
    /// Answers with a delay, due at a virtual time: (due, worker, token, answer).
    pub(super) delayed: Vec<(Duration, WorkerId, u32, GrpcResponse)>,
}

/// The gRPC status Envoy's async client gives a non-200 HTTP answer
/// (`Grpc::Utility::httpToGrpcStatus`, source/common/grpc/status.cc).
fn grpc_status_for_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// gRPC status UNAVAILABLE: what Envoy's router answers a timed-out gRPC
/// request with (a 504 local reply, mapped by `Grpc::Utility::httpToGrpcStatus`).
const TIMEOUT_STATUS: u32 = 14;

/// The `grpc-message` of a timed-out call, with the response code details
/// Envoy's async client appends (`enhancedGrpcMessage`).
const TIMEOUT_MESSAGE: &str = "upstream request timeout{response_timeout}";

/// The response code details of an answer that came from the upstream.
const VIA_UPSTREAM: &str = "via_upstream";

/// The status message the plugin reads for a close from the server: Envoy
/// appends the stream's response code details (`enhancedGrpcMessage`).
fn upstream_message(message: &str) -> String {
    if message.is_empty() {
        VIA_UPSTREAM.to_string()
    } else {
        format!("{message}{{{VIA_UPSTREAM}}}")
    }
}

/// gRPC status INTERNAL: a unary call closed OK without a message.
const INTERNAL: u32 = 13;

impl Harness {
    /// Declares clusters Envoy would know. Callouts (HTTP and gRPC) to any
    /// other name are refused as Envoy refuses them; by default no cluster
    /// is known. [`Plugin::clusters`](crate::Plugin::clusters) does the same
    /// for the harness that starts the plugin.
    pub fn declare_clusters<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &mut self,
        clusters: I,
    ) -> &mut Self {
        for cluster in clusters {
            self.world.declare_cluster(cluster.as_ref());
        }
        self
    }

    /// Serves gRPC method `service/method` on `cluster` (which this declares):
    /// every call or stream the plugin opens to it is answered by
    /// `responder` once the plugin has finished sending (a unary call at
    /// once, a stream when half-closed), after the callback that sent it
    /// returns. `None` leaves it pending.
    pub fn serve_grpc(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        responder: impl FnMut(&GrpcCall) -> Option<GrpcResponse> + 'static,
    ) -> &mut Self {
        self.world.declare_cluster(cluster);
        self.grpc_responders.by_method.insert(
            (cluster.to_string(), service.to_string(), method.to_string()),
            Box::new(responder),
        );
        self
    }

    /// The gRPC calls and streams on `worker` that the server has not
    /// closed, by token. (A stream the server closed stays known to Envoy,
    /// for `proxy_grpc_close`, until the plugin closes its side.)
    pub fn grpc_calls(&self, worker: WorkerId) -> Result<Vec<&GrpcCall>, HarnessError> {
        Ok(self
            .vm(worker)?
            .state()
            .grpc_calls
            .values()
            .filter(|call| !call.remote_closed)
            .collect())
    }

    /// Answers a gRPC call or stream with a whole response (the rest of it,
    /// for a stream that already received initial metadata or messages).
    pub fn respond_grpc(
        &mut self,
        worker: WorkerId,
        token: u32,
        response: GrpcResponse,
    ) -> Result<(), HarnessError> {
        self.answerable(worker, token)?;
        self.deliver_grpc(worker, token, response)?;
        self.settle()
    }

    /// Sends initial metadata on an open stream, as a server does before its
    /// first message.
    pub fn grpc_stream_initial_metadata(
        &mut self,
        worker: WorkerId,
        token: u32,
        metadata: &[(&str, &str)],
    ) -> Result<(), HarnessError> {
        self.answerable(worker, token)?;
        let metadata = metadata
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string()))
            .collect();
        self.deliver_initial_metadata(worker, token, metadata, false)?;
        self.settle()
    }

    /// Sends one message on an open stream (initial metadata first, if the
    /// server sent none yet).
    pub fn grpc_stream_message(
        &mut self,
        worker: WorkerId,
        token: u32,
        message: impl Into<Vec<u8>>,
    ) -> Result<(), HarnessError> {
        self.answerable(worker, token)?;
        self.deliver_initial_metadata(worker, token, Vec::new(), false)?;
        self.deliver_message(worker, token, message.into())?;
        self.settle()
    }

    /// A call or stream the server can still answer.
    fn answerable(&self, worker: WorkerId, token: u32) -> Result<&GrpcCall, HarnessError> {
        self.vm(worker)?
            .state()
            .grpc_calls
            .get(&token)
            .filter(|call| !call.remote_closed)
            .ok_or(HarnessError::UnknownCallout(token))
    }

    fn is_open(&self, worker: WorkerId, token: u32) -> Result<bool, HarnessError> {
        Ok(self.answerable(worker, token).is_ok())
    }

    /// Offers new, complete requests to their servers and delivers the
    /// answers. Returns whether anything was answered.
    pub(super) fn answer_new_grpc(&mut self) -> Result<bool, HarnessError> {
        if self.grpc_responders.by_method.is_empty() {
            return Ok(false);
        }
        let mut answers = Vec::new();
        for (index, vm) in self.workers.iter_mut().enumerate() {
            for call in vm.state_mut().grpc_calls.values_mut() {
                if call.offered || !call.half_closed || call.remote_closed {
                    continue;
                }
                let key = (
                    call.cluster.clone(),
                    call.service.clone(),
                    call.method.clone(),
                );
                let Some(responder) = self.grpc_responders.by_method.get_mut(&key) else {
                    continue;
                };
                call.offered = true;
                if let Some(response) = responder(call) {
                    answers.push((WorkerId(index), call.token, response));
                }
            }
        }
        let answered = !answers.is_empty();
        let now = self.world.clock.monotonic();
        for (worker, token, response) in answers {
            if !response.delay.is_zero() {
                let due = now + response.delay;
                self.grpc_responders
                    .delayed
                    .push((due, worker, token, response));
            } else if self.is_open(worker, token)? {
                self.deliver_grpc(worker, token, response)?;
            }
        }
        Ok(answered)
    }

    /// The earliest delayed answer: (due, its index).
    pub(super) fn next_delayed_grpc(&self) -> Option<(Duration, usize)> {
        self.grpc_responders
            .delayed
            .iter()
            .enumerate()
            .map(|(index, (due, ..))| (*due, index))
            .min()
    }

    /// Delivers a delayed answer that fell due, unless the call is gone
    /// (timed out or cancelled first).
    pub(super) fn deliver_delayed_grpc(&mut self, index: usize) -> Result<(), HarnessError> {
        if index >= self.grpc_responders.delayed.len() {
            return Ok(());
        }
        let (_, worker, token, response) = self.grpc_responders.delayed.remove(index);
        if self.is_open(worker, token)? {
            self.deliver_grpc(worker, token, response)?;
        }
        Ok(())
    }

    /// Delivers the closes Envoy owes for calls that failed to start.
    pub(super) fn deliver_stray_grpc_closes(&mut self) -> Result<bool, HarnessError> {
        let mut progressed = false;
        for index in 0..self.workers.len() {
            let strays = std::mem::take(&mut self.workers[index].state_mut().stray_grpc_closes);
            for (token, status, message) in strays {
                progressed = true;
                self.deliver_close(WorkerId(index), token, status, message)?;
            }
        }
        Ok(progressed)
    }

    /// A unary call's deadline passed: Envoy's router answers it with a
    /// local reply that the async client reads as UNAVAILABLE.
    pub(super) fn grpc_timeout(
        &mut self,
        worker: WorkerId,
        token: u32,
    ) -> Result<(), HarnessError> {
        let vm = self.vm_mut(worker)?;
        if vm.state_mut().grpc_calls.remove(&token).is_none() {
            return Ok(());
        }
        self.deliver_close(worker, token, TIMEOUT_STATUS, TIMEOUT_MESSAGE.to_string())
    }

    fn deliver_grpc(
        &mut self,
        worker: WorkerId,
        token: u32,
        response: GrpcResponse,
    ) -> Result<(), HarnessError> {
        let kind = self.answerable(worker, token)?.kind;
        if let Some(http_status) = response.http_status.filter(|s| *s != 200) {
            // Not gRPC: Envoy reads the HTTP status as the gRPC status, with
            // empty metadata and nothing of the body.
            let status = grpc_status_for_http(http_status);
            if kind == GrpcKind::Call {
                self.vm_mut(worker)?.state_mut().grpc_calls.remove(&token);
                return self.deliver_close(worker, token, status, upstream_message(""));
            }
            self.deliver_initial_metadata(worker, token, Vec::new(), true)?;
            if !self.is_open(worker, token)? {
                return Ok(());
            }
            self.grpc_callback(
                worker,
                "proxy_on_grpc_receive_trailing_metadata",
                token,
                0,
                DeliveredGrpc {
                    trailing_metadata: Some(HeaderMap::new()),
                    ..DeliveredGrpc::default()
                },
            )?;
            return self.remote_close(worker, token, status, upstream_message(""));
        }
        if kind == GrpcKind::Call {
            self.vm_mut(worker)?.state_mut().grpc_calls.remove(&token);
            // AsyncRequestImpl ignores metadata and keeps the last message.
            return match (response.status, response.messages.last()) {
                (0, Some(message)) => self.deliver_received(worker, token, message.clone()),
                (0, None) => self.deliver_close(worker, token, INTERNAL, String::new()),
                (status, _) => {
                    self.deliver_close(worker, token, status, upstream_message(&response.message))
                }
            };
        }
        let trailers_only =
            response.trailers_only() && !self.answerable(worker, token)?.initial_metadata_delivered;
        let mut trailing = HeaderMap::new();
        if trailers_only {
            // The one header block is the trailers; the initial metadata
            // callback still comes, empty.
            self.deliver_initial_metadata(worker, token, Vec::new(), true)?;
            trailing.add(":status", "200");
            trailing.add("content-type", "application/grpc");
        } else {
            self.deliver_initial_metadata(worker, token, response.initial_metadata, false)?;
        }
        for message in response.messages {
            if !self.is_open(worker, token)? {
                return Ok(());
            }
            self.deliver_message(worker, token, message)?;
        }
        trailing.add("grpc-status", &response.status.to_string());
        if !response.message.is_empty() {
            trailing.add("grpc-message", &response.message);
        }
        for (k, v) in &response.trailing_metadata {
            trailing.add(k, v);
        }
        if trailers_only {
            // The router adds it to the response's one header block.
            let elapsed = self.service_time(worker, token)?;
            trailing.add("x-envoy-upstream-service-time", &elapsed);
        }
        if !self.is_open(worker, token)? {
            return Ok(());
        }
        let count = trailing.len() as u32;
        self.grpc_callback(
            worker,
            "proxy_on_grpc_receive_trailing_metadata",
            token,
            count,
            DeliveredGrpc {
                trailing_metadata: Some(trailing),
                ..DeliveredGrpc::default()
            },
        )?;
        self.remote_close(
            worker,
            token,
            response.status,
            upstream_message(&response.message),
        )
    }

    /// The server closed a stream: forgotten if the plugin closed its side
    /// too, then `proxy_on_grpc_close`.
    fn remote_close(
        &mut self,
        worker: WorkerId,
        token: u32,
        status: u32,
        message: String,
    ) -> Result<(), HarnessError> {
        if !self.is_open(worker, token)? {
            return Ok(());
        }
        let state = self.vm_mut(worker)?.state_mut();
        if let Some(call) = state.grpc_calls.get_mut(&token) {
            call.remote_closed = true;
            if call.local_closed {
                state.grpc_calls.remove(&token);
            }
        }
        self.deliver_close(worker, token, status, message)
    }

    /// The initial metadata callback of a stream, once: `:status` and
    /// `content-type` first, as the response's header block carries them,
    /// then the server's metadata and the router's
    /// `x-envoy-upstream-service-time` (empty for a trailers-only response).
    fn deliver_initial_metadata(
        &mut self,
        worker: WorkerId,
        token: u32,
        metadata: Vec<(String, String)>,
        empty: bool,
    ) -> Result<(), HarnessError> {
        let state = self.vm_mut(worker)?.state_mut();
        let Some(call) = state.grpc_calls.get_mut(&token) else {
            return Ok(());
        };
        if std::mem::replace(&mut call.initial_metadata_delivered, true) {
            return Ok(());
        }
        let started = call.started;
        let mut map = HeaderMap::new();
        if !empty {
            map.add(":status", "200");
            map.add("content-type", "application/grpc");
            for (k, v) in &metadata {
                map.add(k, v);
            }
            // Envoy's router adds the upstream's time to response headers.
            let elapsed = self.world.clock.monotonic().saturating_sub(started);
            map.add(
                "x-envoy-upstream-service-time",
                &elapsed.as_millis().to_string(),
            );
        }
        let count = map.len() as u32;
        self.grpc_callback(
            worker,
            "proxy_on_grpc_receive_initial_metadata",
            token,
            count,
            DeliveredGrpc {
                initial_metadata: Some(map),
                ..DeliveredGrpc::default()
            },
        )
    }

    /// Milliseconds since the call opened, on the virtual clock.
    fn service_time(&self, worker: WorkerId, token: u32) -> Result<String, HarnessError> {
        let started = self
            .vm(worker)?
            .state()
            .grpc_calls
            .get(&token)
            .map_or(Duration::ZERO, |call| call.started);
        let elapsed = self.world.clock.monotonic().saturating_sub(started);
        Ok(elapsed.as_millis().to_string())
    }

    fn deliver_message(
        &mut self,
        worker: WorkerId,
        token: u32,
        message: Vec<u8>,
    ) -> Result<(), HarnessError> {
        self.deliver_received(worker, token, message)
    }

    fn deliver_received(
        &mut self,
        worker: WorkerId,
        token: u32,
        message: Vec<u8>,
    ) -> Result<(), HarnessError> {
        let size = message.len() as u32;
        self.grpc_callback(
            worker,
            "proxy_on_grpc_receive",
            token,
            size,
            DeliveredGrpc {
                message: Some(message),
                ..DeliveredGrpc::default()
            },
        )
    }

    /// `proxy_on_grpc_close`: `proxy_get_status` reads the status and message
    /// during the callback; afterwards the message is cleared and the code
    /// stays, as in Envoy.
    fn deliver_close(
        &mut self,
        worker: WorkerId,
        token: u32,
        status: u32,
        message: String,
    ) -> Result<(), HarnessError> {
        self.vm_mut(worker)?.state_mut().last_status = (status, message);
        let result = self.grpc_callback(
            worker,
            "proxy_on_grpc_close",
            token,
            status,
            DeliveredGrpc::default(),
        );
        self.vm_mut(worker)?.state_mut().last_status.1.clear();
        result
    }

    /// Calls a gRPC callback on the root context with `delivered` readable.
    fn grpc_callback(
        &mut self,
        worker: WorkerId,
        name: &str,
        token: u32,
        argument: u32,
        delivered: DeliveredGrpc,
    ) -> Result<(), HarnessError> {
        let vm = self.vm_mut(worker)?;
        if vm.failed.is_some() {
            return Ok(());
        }
        let root = vm.state().root_context;
        vm.state_mut().delivering_grpc = delivered;
        let result = vm.callback(root, name, (root, token, argument), ());
        vm.state_mut().delivering_grpc = DeliveredGrpc::default();
        result
    }
}
