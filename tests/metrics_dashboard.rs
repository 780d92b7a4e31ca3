//! `deploy/grafana-dashboard.json` is valid JSON and every `stompgate_*` name its queries use
//! is a family the gateway exports (histograms through `_bucket`), so a renamed metric breaks
//! this test rather than a dashboard in production.

use std::collections::BTreeSet;
use std::sync::Arc;

use stompgate::metrics::{Direction, Metrics};
use stompgate::relay::End;
use stompgate::stomp::{Command, Frame};
use stompgate::transport::{ClientMeta, TransportKind};

/// Every family name the gateway exports, with each labelled family touched once.
fn exported() -> BTreeSet<String> {
    let m = Arc::new(Metrics::with_options(true, 10));
    let meta = ClientMeta {
        peer: "127.0.0.1:1".parse().unwrap(),
        transport: TransportKind::WebSocket,
        tls: false,
        headers: Default::default(),
        query: None,
        client_cert: None,
    };
    let rec = m.open_session(&meta);
    rec.frame(Direction::ClientToBroker, &Frame::new(Command::Send), 10);
    m.tls_handshake_failed("bad_certificate");
    m.config_reload(true);
    let names = m
        .registry()
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect::<Vec<_>>();
    rec.close(&End::ClientGone);
    let mut all: BTreeSet<String> = names.into_iter().collect();
    all.extend(m.registry().gather().iter().map(|f| f.name().to_owned()));
    all
}

#[test]
fn dashboard_uses_only_exported_metrics() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana-dashboard.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let exported = exported();
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("stompgate_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = name.strip_suffix("_bucket").unwrap_or(&name).to_owned();
        used.insert(base);
    }
    used.remove("stompgate_"); // the dashboard's tags/uid
    let unknown: Vec<_> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "dashboard uses unknown metrics: {unknown:?}"
    );
    for must in [
        "stompgate_frames_total",
        "stompgate_sessions_refused_total",
        "stompgate_heartbeat_timeouts_total",
        "stompgate_tls_handshake_failures_total",
        "stompgate_frame_gateway_latency_seconds",
    ] {
        assert!(used.contains(must), "dashboard lacks {must}");
    }
}
