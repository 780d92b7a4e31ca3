//! Logging set-up: `tracing` to stderr, text or JSON, filtered by `--log`/`RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Crates whose TRACE output carries whole WebSocket payloads (CONNECT frames with their
/// passcodes and tokens): held at DEBUG whatever the filter asks (invariant 5).
const PAYLOAD_LOGGING_TARGETS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// The filter for `spec` (else `RUST_LOG`, else `info`), with [`PAYLOAD_LOGGING_TARGETS`]
/// capped at DEBUG so that no log level shows a client's secrets.
pub fn filter(spec: Option<&str>) -> EnvFilter {
    let mut filter = spec
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for target in PAYLOAD_LOGGING_TARGETS {
        if let Ok(cap) = format!("{target}=debug").parse() {
            filter = filter.add_directive(cap);
        }
    }
    filter
}

/// Installs the global subscriber. `filter` wins over `RUST_LOG`; the default is `info`.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = self::filter(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
