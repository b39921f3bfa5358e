//! Logs to stdout with `tracing`: JSON lines by default (for log collectors),
//! plain text with `LOG_FORMAT=text`; the level filter comes from `RUST_LOG`
//! (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(true);
    let result = if text {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
