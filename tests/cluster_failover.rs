//! Failover against a real three-node RabbitMQ cluster (`scripts/setup-rabbitmq-cluster.sh`):
//! one node is killed with SIGKILL mid-stream while a producer sends receipted messages to a
//! quorum queue and a consumer acknowledges them (`ack: client-individual`).
//!
//! The consumer is also killed once (its session dropped before it acknowledged a message).
//! Shown: every session on the killed node gets an ERROR naming the cause within 1 s, then a
//! close; the sessions on the other nodes carry on; reconnecting clients land on the surviving
//! nodes through the gateway's address list; every receipted message is delivered at least
//! once (counted exactly; duplicates are counted and printed); after the node restarts, new
//! sessions are spread to it again.
//!
//! Runs only with `STOMPGATE_TEST_CLUSTER=host:port,host:port,host:port` (the three STOMP
//! listeners, first one first); without it the test prints SKIPPED and passes. It follows the
//! script's layout: node N listens for STOMP on 6170N, management on 1570N, and writes its OS
//! pid to `$STOMPGATE_TEST_CLUSTER_STATE/sgN/pid` (default `/var/lib/rabbitmq/stompgate-cluster`).
//! Then the test restarts the killed node with the script's `start` and shows that new sessions
//! reach it again once the gateway's back-off for it is over.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use stompgate::config::Config;
use stompgate::relay::RelayContext;
use stompgate::stomp::{Command, Decoder, Frame, Limits};
use tokio_util::sync::CancellationToken;

/// Receipted messages sent through the gateway.
const MESSAGES: u32 = 400;
/// The producer's wait for one RECEIPT (a quorum queue elects a new leader meanwhile).
const RECEIPT_WAIT: Duration = Duration::from_secs(10);
/// How soon a session on the killed node must learn about it.
const ERROR_WITHIN: Duration = Duration::from_secs(1);
/// The consumer is killed (its session dropped, unacknowledged) at this many distinct messages.
const KILL_CONSUMER_AT: usize = MESSAGES as usize / 4;
/// The gateway's back-off for a member that failed (short: the test waits it out).
const DOWN_FOR: Duration = Duration::from_secs(1);
/// The consumer gives up this long after the last message it received.
const CONSUMER_QUIET: Duration = Duration::from_secs(10);

/// One STOMP session through the in-process gateway.
struct Session {
    client: MemClient,
    decoder: Decoder,
}

/// How a session ended: the ERROR's message (or the close reason).
#[derive(Debug)]
struct Gone(String);

impl Session {
    /// Connects through the gateway; `Err` when the gateway answered with an ERROR.
    async fn open(ctx: &Arc<RelayContext>) -> Result<Session, Gone> {
        let mut s = Session {
            client: MemClient::start_in(ctx.clone()),
            decoder: Decoder::new(Limits::default()),
        };
        s.send(connect_frame(BROKER_LOGIN, BROKER_PASSCODE, ""))
            .await;
        match s.recv(Duration::from_secs(10)).await? {
            Some(f) if f.command == Command::Connected => Ok(s),
            other => Err(Gone(format!("no CONNECTED: {other:?}"))),
        }
    }

    /// Opens a session, retrying (bounded) while the cluster settles.
    async fn reopen(ctx: &Arc<RelayContext>) -> Session {
        for _ in 0..20 {
            match Session::open(ctx).await {
                Ok(s) => return s,
                Err(e) => eprintln!("reconnect refused: {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("could not reconnect through the gateway");
    }

    async fn send(&self, frame: impl Into<bytes::Bytes>) -> bool {
        match &self.client.to_relay {
            Some(tx) => tx.send(frame.into()).await.is_ok(),
            None => false,
        }
    }

    /// The next frame within `wait` (`None`: nothing came); `Err` on an ERROR or a close.
    async fn recv(&mut self, wait: Duration) -> Result<Option<Frame>, Gone> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let out = match tokio::time::timeout_at(deadline, self.client.from_relay.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Gone("session task ended".into())),
                Ok(Some(out)) => out,
            };
            match out {
                Out::Close(code, reason) => return Err(Gone(format!("close {code:?} {reason}"))),
                Out::Message(m) => match decode_one(&mut self.decoder, &m) {
                    Some(f) if f.command == Command::Error => {
                        return Err(Gone(f.header("message").unwrap_or_default().to_owned()))
                    }
                    Some(f) => return Ok(Some(f)),
                    None => {}
                },
            }
        }
    }
}

/// The cluster's STOMP addresses, or `None` (skip).
fn cluster() -> Option<Vec<String>> {
    let var = std::env::var("STOMPGATE_TEST_CLUSTER").ok()?;
    let addrs: Vec<String> = var.split(',').map(|a| a.trim().to_owned()).collect();
    assert_eq!(
        addrs.len(),
        3,
        "STOMPGATE_TEST_CLUSTER: three host:port, got {var}"
    );
    Some(addrs)
}

fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Node N's management API (`1570N`, per the script's layout).
fn management(stomp: &str) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", port(stomp) - 61700 + 15700)
        .parse()
        .unwrap()
}

/// SIGKILLs the node listening for STOMP on `stomp`, by the pid file the script makes it write.
fn kill_node(stomp: &str) {
    let root = std::env::var("STOMPGATE_TEST_CLUSTER_STATE")
        .unwrap_or_else(|_| "/var/lib/rabbitmq/stompgate-cluster".into());
    let pidfile = format!("{root}/sg{}/pid", port(stomp) - 61700);
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("{pidfile}: {e}"));
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

async fn mgmt(node: std::net::SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(node, &req).await.0
}

/// Sends message `i` with a receipt; `Ok` once the broker's RECEIPT came back.
async fn send_receipted(s: &mut Session, queue: &str, i: u32) -> Result<(), Gone> {
    let frame = format!(
        "SEND\ndestination:/amq/queue/{queue}\npersistent:true\nreceipt:r-{i}\n\
         content-type:text/plain\n\nm-{i}\0"
    );
    if !s.send(frame).await {
        return Err(Gone("session ended".into()));
    }
    let want = format!("r-{i}");
    let deadline = Instant::now() + RECEIPT_WAIT;
    while Instant::now() < deadline {
        if let Some(f) = s.recv(deadline - Instant::now()).await? {
            if f.command == Command::Receipt && f.header("receipt-id") == Some(&want) {
                return Ok(());
            }
        }
    }
    Err(Gone(format!(
        "no RECEIPT for {want} within {RECEIPT_WAIT:?}"
    )))
}

/// Consumes and ACKs until nothing arrives for [`CONSUMER_QUIET`] after `stop`, reconnecting
/// when its session ends. Returns how often each message arrived and how many reconnects.
async fn consume(
    ctx: Arc<RelayContext>,
    queue: String,
    first: Session,
    stop: CancellationToken,
) -> (HashMap<u32, u32>, u32) {
    let mut seen: HashMap<u32, u32> = HashMap::new();
    let mut reconnects = 0;
    let mut s = first;
    let subscribe = format!(
        "SUBSCRIBE\nid:c\ndestination:/amq/queue/{queue}\nack:client-individual\nprefetch-count:50\n\n\0"
    );
    assert!(s.send(subscribe.clone()).await);
    let mut last = Instant::now();
    loop {
        // Done when every message came (plus a second for late duplicates), or nothing came
        // for a while.
        let all = seen.len() >= MESSAGES as usize && last.elapsed() > Duration::from_secs(1);
        if stop.is_cancelled() && (all || last.elapsed() > CONSUMER_QUIET) {
            return (seen, reconnects);
        }
        match s.recv(Duration::from_millis(200)).await {
            Ok(None) => {}
            Ok(Some(f)) if f.command == Command::Message => {
                let body = std::str::from_utf8(f.body()).unwrap();
                let i: u32 = body.strip_prefix("m-").unwrap().parse().unwrap();
                *seen.entry(i).or_default() += 1;
                last = Instant::now();
                if seen.len() == KILL_CONSUMER_AT && reconnects == 0 {
                    // The consumer is killed before it acknowledges: the broker must deliver
                    // this message (and any others in flight) again, to the new session.
                    eprintln!("consumer killed at message {i}; reconnecting");
                    drop(s);
                    reconnects += 1;
                    s = Session::reopen(&ctx).await;
                    assert!(s.send(subscribe.clone()).await);
                    continue;
                }
                let ack = f.header("ack").unwrap();
                s.send(format!("ACK\nid:{ack}\n\n\0")).await;
            }
            Ok(Some(_)) => {}
            Err(e) => {
                eprintln!("consumer session ended ({e:?}); reconnecting");
                reconnects += 1;
                s = Session::reopen(&ctx).await;
                assert!(s.send(subscribe.clone()).await);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_ends_its_sessions_and_nothing_receipted_is_lost() {
    let Some(nodes) = cluster() else {
        eprintln!("SKIPPED: set STOMPGATE_TEST_CLUSTER (scripts/setup-rabbitmq-cluster.sh start)");
        return;
    };
    for n in &nodes {
        assert!(
            tokio::net::TcpStream::connect(n.as_str()).await.is_ok(),
            "{n} is down: run scripts/setup-rabbitmq-cluster.sh start"
        );
    }
    let queue = unique("issue19-qq");
    // Declared on the first node, which holds the leader: the kill forces a leader election.
    let status = mgmt(
        management(&nodes[0]),
        "PUT",
        &format!("/api/queues/%2F/{queue}"),
        r#"{"durable":true,"auto_delete":false,"arguments":{"x-queue-type":"quorum"}}"#,
    )
    .await;
    assert!(
        status == 201 || status == 204,
        "declare {queue}: HTTP {status}"
    );

    let mut cfg = Config::for_tests(&nodes[0], BROKER_LOGIN, BROKER_PASSCODE);
    cfg.upstream.addrs = nodes.clone();
    cfg.upstream.connect_timeout = Duration::from_secs(3);
    cfg.upstream.down_for = DOWN_FOR;
    let ctx = RelayContext::new(Arc::new(cfg), CancellationToken::new()).unwrap();

    // Round-robin from the first member: session k lands on node k % 3.
    let mut producer = Session::open(&ctx).await.unwrap();
    let consumer = Session::open(&ctx).await.unwrap();
    let mut bystanders = Vec::new();
    for _ in 0..4 {
        bystanders.push(Session::open(&ctx).await.unwrap());
    }
    let on_killed_node = ctx
        .metrics
        .connections()
        .list()
        .iter()
        .filter(|s| s.facts().upstream.map(|a| a.to_string()) == Some(nodes[0].clone()))
        .count();
    assert_eq!(on_killed_node, 2, "sessions spread over the 3 nodes");

    let stop = CancellationToken::new();
    let consumer = tokio::spawn(consume(ctx.clone(), queue.clone(), consumer, stop.clone()));

    let started = Instant::now();
    let (mut receipted, mut resends, mut producer_reconnects) = (0u32, 0u32, 0u32);
    for i in 0..MESSAGES {
        if i == MESSAGES / 2 {
            kill_node(&nodes[0]);
            let killed = Instant::now();
            // The producer (session 0) and session 3 (bystander 1) were on the killed node.
            for s in [&mut producer, &mut bystanders[1]] {
                let gone = s
                    .recv(ERROR_WITHIN * 2)
                    .await
                    .expect_err("session survived");
                let after = killed.elapsed();
                println!("session on the killed node: {gone:?} after {after:?}");
                assert!(gone.0.contains("broker connection lost"), "{gone:?}");
                assert!(after <= ERROR_WITHIN, "ERROR after {after:?}");
            }
            // The others stay connected.
            for (k, s) in bystanders.iter_mut().enumerate().filter(|(k, _)| *k != 1) {
                let r = s.recv(Duration::from_millis(300)).await;
                assert!(matches!(r, Ok(None)), "bystander {k}: {r:?}");
            }
            producer = Session::reopen(&ctx).await;
            producer_reconnects += 1;
        }
        loop {
            match send_receipted(&mut producer, &queue, i).await {
                Ok(()) => break,
                Err(e) => {
                    // Not receipted: send again (a duplicate if the broker had it after all).
                    eprintln!("message {i} not receipted ({e:?}); reconnecting");
                    resends += 1;
                    producer = Session::reopen(&ctx).await;
                    producer_reconnects += 1;
                }
            }
        }
        receipted += 1;
    }
    let produce_secs = started.elapsed().as_secs_f64();
    // Reconnected sessions landed on the surviving nodes.
    let survivors: Vec<String> = ctx
        .metrics
        .connections()
        .list()
        .iter()
        .filter_map(|s| s.facts().upstream.map(|a| a.to_string()))
        .collect();
    assert!(
        !survivors.contains(&nodes[0]),
        "a session is on the killed node: {survivors:?}"
    );

    stop.cancel();
    let (seen, consumer_reconnects) = consumer.await.unwrap();
    let lost: Vec<u32> = (0..receipted).filter(|i| !seen.contains_key(i)).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!(
        "cluster failover: {receipted} receipted in {produce_secs:.1} s, {} delivered, \
         {} lost, {duplicates} duplicates, {resends} re-sent, producer reconnects \
         {producer_reconnects}, consumer reconnects {consumer_reconnects}",
        seen.len(),
        lost.len()
    );
    mgmt(
        management(&nodes[1]),
        "DELETE",
        &format!("/api/queues/%2F/{queue}"),
        "",
    )
    .await;
    assert!(lost.is_empty(), "receipted but never delivered: {lost:?}");
    assert_eq!(receipted, MESSAGES);
    assert!(
        duplicates >= 1,
        "the killed consumer's unacknowledged message came back once more"
    );

    // The killed node restarts; once its back-off is over, new sessions reach it again.
    restart_cluster().await;
    tokio::time::sleep(DOWN_FOR).await;
    let mut back = Vec::new();
    for _ in 0..3 {
        back.push(Session::open(&ctx).await.unwrap());
    }
    let upstreams: Vec<String> = ctx
        .metrics
        .connections()
        .list()
        .iter()
        .filter_map(|s| s.facts().upstream.map(|a| a.to_string()))
        .collect();
    assert!(
        upstreams.contains(&nodes[0]),
        "none on the restarted node: {upstreams:?}"
    );
}

/// Starts the killed node again through the set-up script (bounded; a second attempt if the
/// first fails, as it can while the killed node's name is still registered with epmd).
async fn restart_cluster() {
    let started = Instant::now();
    for attempt in 1..=2 {
        match run_start_script().await {
            Ok(()) => {
                let secs = started.elapsed().as_secs_f64();
                println!("killed node restarted in {secs:.1} s (attempt {attempt})");
                return;
            }
            Err(why) if attempt == 1 => {
                eprintln!("restart failed, once more in 3 s: {why}");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(why) => panic!("{why}"),
        }
    }
}

async fn run_start_script() -> Result<(), String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/setup-rabbitmq-cluster.sh"
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args(["150", script, "start"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    if out.status.success() {
        return Ok(());
    }
    let log = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    Err(format!("{script} start: {}: {tail:?}", out.status))
}
