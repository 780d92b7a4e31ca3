//! A RabbitMQ memory alarm (publishers blocked, cluster-wide) against the 3-node test cluster:
//! the gateway stops reading the publishing browser instead of buffering what the broker will
//! not take. A WebSocket client pushing 64 KiB SENDs gets only a bounded amount through (socket
//! buffers plus the gateway's bounded batch) before its writes stall; when the alarm clears,
//! everything flows again and a receipted SEND is receipted.
//!
//! Runs only with `STOMPGATE_TEST_CLUSTER` (see tests/cluster_failover.rs); raises and clears the
//! alarm through `scripts/setup-rabbitmq-cluster.sh alarm on|off` (root).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio_tungstenite::tungstenite::Message;

const BODY_BYTES: usize = 64 * 1024;
/// What the client tries to push while publishers are blocked.
const PUSH_BYTES: usize = 64 * 1024 * 1024;
/// What may get through before the client's writes stall: kernel socket buffers on two hops
/// (a few MiB on loopback) and the gateway's bounded batch; far below `PUSH_BYTES`.
const STALL_BOUND_BYTES: usize = 16 * 1024 * 1024;
/// How long the client pushes under the alarm.
const PUSH_FOR: Duration = Duration::from_secs(4);

fn alarm(on: bool) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/setup-rabbitmq-cluster.sh"
    );
    let arg = if on { "on" } else { "off" };
    let status = std::process::Command::new("timeout")
        .args(["60", script, "alarm", arg])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "alarm {arg}: {status}");
}

/// Clears the alarm when the test ends, also when it fails.
struct AlarmGuard;

impl Drop for AlarmGuard {
    fn drop(&mut self) {
        alarm(false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_alarm_stops_reading_the_publisher_without_buffering() {
    let Ok(cluster) = std::env::var("STOMPGATE_TEST_CLUSTER") else {
        eprintln!("SKIPPED: set STOMPGATE_TEST_CLUSTER (scripts/setup-rabbitmq-cluster.sh start)");
        return;
    };
    let mut config = Config::for_tests("127.0.0.1:9", BROKER_LOGIN, BROKER_PASSCODE);
    config.upstream.addrs = cluster.split(',').map(str::to_owned).collect();
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (addr, stop) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    let queue = unique("issue19-alarm");

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(connect_frame(
        BROKER_LOGIN,
        BROKER_PASSCODE,
        "",
    )))
    .await
    .unwrap();
    let reply = rx.next().await.unwrap().unwrap().into_data();
    assert!(reply.starts_with(b"CONNECTED"), "{reply:?}");

    let _guard = AlarmGuard;
    alarm(true);
    // The node notices its new watermark on its next memory check.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let pushed = Arc::new(AtomicUsize::new(0));
    let counter = pushed.clone();
    let dest = format!("/queue/{queue}");
    let pusher = tokio::spawn(async move {
        let frame = format!(
            "SEND\ndestination:{dest}\ncontent-length:{BODY_BYTES}\n\n{}\0",
            "x".repeat(BODY_BYTES)
        );
        while counter.load(SeqCst) < PUSH_BYTES {
            tx.send(Message::text(frame.clone())).await.unwrap();
            counter.fetch_add(frame.len(), SeqCst);
        }
        tx
    });
    tokio::time::sleep(PUSH_FOR).await;
    let stalled_at = pushed.load(SeqCst);
    println!(
        "alarm: the client pushed {:.1} MiB in {PUSH_FOR:?} while publishers were blocked \
         (bound {} MiB, tried {} MiB)",
        stalled_at as f64 / 1048576.0,
        STALL_BOUND_BYTES / 1048576,
        PUSH_BYTES / 1048576
    );
    assert!(
        stalled_at < STALL_BOUND_BYTES,
        "the gateway kept reading: {stalled_at} bytes"
    );

    // The alarm clears: the stalled sends go through, and a receipt comes back.
    alarm(false);
    let started = Instant::now();
    let mut tx = tokio::time::timeout(Duration::from_secs(60), pusher)
        .await
        .expect("the publisher stayed blocked after the alarm cleared")
        .unwrap();
    let receipt = format!("SEND\ndestination:/queue/{queue}\nreceipt:done\n\nlast\0");
    tx.send(Message::text(receipt)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = rx.next().await {
            let data = m.into_data();
            if data.starts_with(b"RECEIPT") {
                return true;
            }
            assert!(
                !data.starts_with(b"ERROR"),
                "{:?}",
                String::from_utf8_lossy(&data)
            );
        }
        false
    })
    .await
    .expect("no RECEIPT after the alarm cleared");
    assert!(got, "session ended without a RECEIPT");
    println!(
        "alarm: cleared; {} MiB published and receipted {:.1} s later",
        PUSH_BYTES / 1048576,
        started.elapsed().as_secs_f64()
    );
    stop.cancel();
    let _ = http_exchange(
        "127.0.0.1:15702".parse().unwrap(),
        &format!(
            "DELETE /api/queues/%2F/{queue} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
}
