//! Churn: many WebSocket connect → CONNECT → DISCONNECT (with receipt) → close cycles through the
//! gateway to RabbitMQ, several at a time. Afterwards the process's open file descriptors are
//! back at their baseline (exactly, give or take the runtime's own) and its RSS within a stated
//! margin of it; both are printed.
//!
//! `STOMPGATE_CHURN_CYCLES` sets the count (default 2,000: ~10 s in a debug build; the issue's
//! 100,000 is a manual run with a release build).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio_tungstenite::tungstenite::Message;

/// Cycles run at the same time.
const CONCURRENCY: usize = 8;
/// Cycles before the baseline is taken (the allocator and the runtime warm up).
const WARM_UP: usize = 200;
/// RSS allowed above the baseline afterwards: allocator caches and the connection table's
/// spare capacity, not per-session leftovers (2,000 leaked sessions would be several MiB more).
const RSS_MARGIN_KIB: u64 = 4 * 1024;
/// Descriptors allowed above the baseline (the runtime may keep a blocking-pool thread's).
const FD_MARGIN: usize = 2;
/// Bound on one cycle.
const CYCLE_WAIT: Duration = Duration::from_secs(10);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// One connect/CONNECT/DISCONNECT/close cycle.
async fn cycle(addr: std::net::SocketAddr) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("upgrade");
    let connect = connect_frame(BROKER_LOGIN, BROKER_PASSCODE, "");
    ws.send(Message::text(connect)).await.unwrap();
    let reply = ws.next().await.expect("CONNECTED").unwrap().into_data();
    assert!(reply.starts_with(b"CONNECTED\n"), "{reply:?}");
    ws.send(Message::text("DISCONNECT\nreceipt:bye\n\n\0"))
        .await
        .unwrap();
    let reply = ws.next().await.expect("RECEIPT").unwrap().into_data();
    assert!(reply.starts_with(b"RECEIPT\n"), "{reply:?}");
    // The gateway closes after the RECEIPT; read until the close is done.
    while let Some(Ok(_)) = ws.next().await {}
}

async fn churn(addr: std::net::SocketAddr, cycles: usize) {
    let per_worker = cycles.div_ceil(CONCURRENCY);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    tokio::time::timeout(CYCLE_WAIT, cycle(addr))
                        .await
                        .expect("cycle timed out");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

/// Waits (bounded) until the gateway holds no session.
async fn drained(gw_ctx: &stompgate::relay::RelayContext) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw_ctx.metrics.connections().list().is_empty() {
        assert!(Instant::now() < deadline, "sessions left after the churn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_disconnect_cycles_leave_no_fds_or_memory_behind() {
    let cycles: usize = std::env::var("STOMPGATE_CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (addr, stop, ctx) = (gw.client_addr(), gw.shutdown_token(), gw.relay_context());
    tokio::spawn(gw.run());

    churn(addr, WARM_UP).await;
    drained(&ctx).await;
    let (fds0, rss0) = (open_fds(), rss_kib());
    let started = Instant::now();
    churn(addr, cycles).await;
    let secs = started.elapsed().as_secs_f64();
    drained(&ctx).await;
    let (fds1, rss1) = (open_fds(), rss_kib());
    println!(
        "churn: {cycles} cycles in {secs:.1} s ({:.0}/s, {CONCURRENCY} at a time); \
         fds {fds0} -> {fds1}; RSS {rss0} KiB -> {rss1} KiB ({:+} KiB)",
        cycles as f64 / secs,
        rss1 as i64 - rss0 as i64
    );
    stop.cancel();
    assert!(
        fds1 <= fds0 + FD_MARGIN,
        "descriptors leaked: {fds0} -> {fds1}"
    );
    assert!(
        rss1 <= rss0 + RSS_MARGIN_KIB,
        "RSS grew {} KiB (margin {RSS_MARGIN_KIB} KiB)",
        rss1 - rss0
    );
}
