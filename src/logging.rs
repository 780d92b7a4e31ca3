//! Logging set-up: `tracing` to stderr, text or JSON, filtered by `--log`/`RUST_LOG`.

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::{combinator::And, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::LogFormat;

/// Crates whose TRACE output carries whole WebSocket payloads (CONNECT frames with their
/// passcodes and tokens): held at DEBUG at most, whatever the filter asks (invariant 5).
const PAYLOAD_LOGGING_TARGETS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// The gateway's log filter: `spec` (else `RUST_LOG`, else `info`), and on top of it a cap
/// that keeps the crates in `PAYLOAD_LOGGING_TARGETS` at DEBUG or below so that no log level
/// shows a client's secrets. The cap only lowers: under `info` those crates log at `info` too.
pub fn filter<S>(spec: Option<&str>) -> And<EnvFilter, Targets, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let asked = spec
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let cap = PAYLOAD_LOGGING_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |cap, target| cap.with_target(*target, LevelFilter::DEBUG),
    );
    asked.and(cap)
}

/// Installs the global subscriber (and the `log` bridge). `filter` wins over `RUST_LOG`; the
/// default is `info`.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let layer = fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_filter(self::filter(filter)))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_filter(self::filter(filter)),
            )
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What one event per (target, level) below leaves in the log under `spec`.
    fn logged_under(spec: &str) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let layer = fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_filter(filter(Some(spec)));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(target: "stompgate::relay", "gw-info");
            tracing::debug!(target: "stompgate::relay", "gw-debug");
            tracing::trace!(target: "stompgate::relay", "gw-trace");
            tracing::info!(target: "tungstenite::protocol", "ws-info");
            tracing::debug!(target: "tungstenite::protocol", "ws-debug");
            tracing::trace!(target: "tungstenite::protocol", "ws-trace");
            tracing::debug!(target: "tokio_tungstenite", "tws-debug");
            tracing::trace!(target: "tokio_tungstenite", "tws-trace");
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    fn shown(logs: &str) -> Vec<&str> {
        let names = [
            "gw-info",
            "gw-debug",
            "gw-trace",
            "ws-info",
            "ws-debug",
            "ws-trace",
            "tws-debug",
            "tws-trace",
        ];
        names.into_iter().filter(|n| logs.contains(n)).collect()
    }

    #[test]
    fn the_websocket_crates_log_no_more_than_the_filter_asks() {
        // `info`, the default: the cap must not raise tungstenite to DEBUG.
        assert_eq!(shown(&logged_under("info")), ["gw-info", "ws-info"]);
        assert_eq!(
            shown(&logged_under("stompgate=debug")),
            ["gw-info", "gw-debug"]
        );
        assert_eq!(
            shown(&logged_under("warn,tungstenite=debug")),
            ["ws-info", "ws-debug"]
        );
    }

    #[test]
    fn trace_stops_at_debug_for_the_crates_that_log_payloads() {
        assert_eq!(
            shown(&logged_under("trace")),
            [
                "gw-info",
                "gw-debug",
                "gw-trace",
                "ws-info",
                "ws-debug",
                "tws-debug"
            ]
        );
        assert_eq!(
            shown(&logged_under(
                "info,tungstenite=trace,tokio_tungstenite=trace"
            )),
            ["gw-info", "ws-info", "ws-debug", "tws-debug"]
        );
    }
}
