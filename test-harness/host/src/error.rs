//! What can go wrong when driving a plugin.

use crate::state::LogEntry;

/// An error from the harness. Plugin traps and refused configurations are
/// errors here, never panics of the test process.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot read module {path}: {source}")]
    ReadModule {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot compile module: {0}")]
    Compile(String),
    #[error("cannot instantiate module: {0}")]
    Instantiate(String),
    #[error(
        "module does not export a supported proxy-wasm ABI version (proxy_abi_version_0_2_1 or _0_2_0)"
    )]
    UnsupportedAbi,
    #[error("module does not export `{0}`")]
    MissingExport(&'static str),
    #[error("export `{name}` has the wrong signature: {message}")]
    BadExport { name: String, message: String },
    /// `proxy_on_vm_start` returned false; Envoy fails the VM.
    #[error("plugin refused to start (proxy_on_vm_start returned false)")]
    VmStartFailed { logs: Vec<LogEntry> },
    /// `proxy_on_configure` returned false; Envoy reports
    /// "Unable to configure Wasm plugin" and fails the plugin.
    #[error("plugin refused its configuration (proxy_on_configure returned false)")]
    ConfigureFailed { logs: Vec<LogEntry> },
    /// The plugin trapped (a panic in Rust, an `unreachable`, an out-of-bounds
    /// access). The VM is failed from then on, as in Envoy.
    #[error("plugin trapped in {callback}: {message}")]
    Trap {
        callback: String,
        message: String,
        logs: Vec<LogEntry>,
    },
    #[error("the VM failed earlier ({0}) and cannot run more callbacks")]
    VmFailed(String),
    #[error("no worker {0}")]
    UnknownWorker(usize),
    #[error(
        "VM {0} is the main thread's: Envoy's main thread serves no streams (open them on a worker from start_workers)"
    )]
    MainThreadServesNoStreams(usize),
    #[error("no stream with context id {context} on worker {worker}")]
    UnknownStream { worker: usize, context: u32 },
    #[error("no pending HTTP callout with token {0}")]
    UnknownCallout(u32),
    #[error("the stream stayed paused in {phase} for {waited:?} of virtual time")]
    Stalled {
        phase: &'static str,
        waited: std::time::Duration,
    },
    #[error("callbacks kept re-triggering each other (more than {0} in a row)")]
    Runaway(usize),
    /// The body that went past the plugin does not match the
    /// `content-length` it left in place: a real peer would wait for bytes
    /// that never come (Envoy answers 504 upstream) or cut the body short.
    #[error(
        "{direction} body is {actual} bytes but content-length says {declared}: remove or fix content-length when changing a body"
    )]
    BodyLengthMismatch {
        direction: &'static str,
        declared: usize,
        actual: usize,
    },
    #[error("harness set-up failed: {0}")]
    Setup(String),
}

impl HarnessError {
    /// The logs captured up to the failure, when the error carries them.
    pub fn logs(&self) -> &[LogEntry] {
        match self {
            HarnessError::VmStartFailed { logs }
            | HarnessError::ConfigureFailed { logs }
            | HarnessError::Trap { logs, .. } => logs,
            _ => &[],
        }
    }
}
