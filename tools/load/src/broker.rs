//! A minimal fast STOMP broker, to measure a gateway without a real broker's cost: CONNECT gets
//! CONNECTED, SUBSCRIBE registers, SEND fans out as MESSAGE to every subscriber of that exact
//! destination, `receipt` gets a RECEIPT, heart-beats are sent as negotiated. No queues, no
//! acks, no persistence: a message with no subscriber is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::frame::{Frame, Item, Parser};

/// Frames queued towards one connection before its publishers wait.
const OUTBOUND_QUEUE: usize = 1024;
/// Bytes gathered into one socket write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Bytes read from a socket at a time.
const READ_BYTES: usize = 8 * 1024;
/// Largest body accepted.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Subscribers of one destination: (connection id, subscription id, outbound queue).
type Subs = Arc<Vec<(u64, Bytes, mpsc::Sender<Bytes>)>>;

/// The broker's shared state.
#[derive(Default)]
pub struct Broker {
    subs: Mutex<HashMap<Bytes, Subs>>,
    next_conn: AtomicU64,
    next_message: AtomicU64,
    /// Heart-beat interval offered, milliseconds (0: none).
    heartbeat_ms: u64,
}

impl Broker {
    /// A broker offering heart-beats every `heartbeat_ms` (0: none).
    pub fn new(heartbeat_ms: u64) -> Arc<Self> {
        Arc::new(Broker {
            heartbeat_ms,
            ..Broker::default()
        })
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    tokio::spawn(self.clone().connection(tcp));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn connection(self: Arc<Self>, tcp: TcpStream) {
        let _ = tcp.set_nodelay(true);
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (rd, wr) = tcp.into_split();
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (hb_tx, hb_rx) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_loop(wr, rx, hb_rx));
        let mut conn = Conn {
            broker: &self,
            id,
            tx,
            hb: Some(hb_tx),
            destinations: Vec::new(),
        };
        let _ = conn.read_loop(rd).await;
        for d in std::mem::take(&mut conn.destinations) {
            self.unsubscribe(&d, id);
        }
        drop(conn);
        let _ = writer.await;
    }

    fn subscribe(&self, destination: Bytes, conn: u64, sub: Bytes, tx: mpsc::Sender<Bytes>) {
        let Ok(mut map) = self.subs.lock() else {
            return;
        };
        let entry = map.entry(destination).or_default();
        let mut list = entry.as_ref().clone();
        list.push((conn, sub, tx));
        *entry = Arc::new(list);
    }

    fn unsubscribe(&self, destination: &Bytes, conn: u64) {
        let Ok(mut map) = self.subs.lock() else {
            return;
        };
        if let Some(entry) = map.get_mut(destination) {
            let list: Vec<_> = entry.iter().filter(|s| s.0 != conn).cloned().collect();
            if list.is_empty() {
                map.remove(destination);
            } else {
                *entry = Arc::new(list);
            }
        }
    }

    fn subscribers(&self, destination: &[u8]) -> Option<Subs> {
        self.subs.lock().ok()?.get(destination).cloned()
    }
}

/// One connection's reading side.
struct Conn<'a> {
    broker: &'a Broker,
    id: u64,
    tx: mpsc::Sender<Bytes>,
    /// Tells the writer the heart-beat period once CONNECT is seen.
    hb: Option<tokio::sync::oneshot::Sender<Option<Duration>>>,
    destinations: Vec<Bytes>,
}

impl Conn<'_> {
    async fn read_loop(&mut self, mut rd: OwnedReadHalf) -> std::io::Result<()> {
        let mut parser = Parser::new(MAX_BODY_BYTES);
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(READ_BYTES);
            if rd.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
            parser.push(&buf.split());
            loop {
                match parser.next_item() {
                    Ok(Some(Item::Frame(f))) => {
                        if !self.handle(f).await {
                            return Ok(());
                        }
                    }
                    Ok(Some(Item::Heartbeat)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        let _ = self.tx.send(error_frame(&e.to_string())).await;
                        return Ok(());
                    }
                }
            }
            // An idle connection keeps no read buffer.
            buf = BytesMut::new();
        }
    }

    /// Handles one client frame; `false` ends the connection.
    async fn handle(&mut self, f: Frame) -> bool {
        let keep = match f.command() {
            b"CONNECT" | b"STOMP" => self.connected(&f).await,
            b"SUBSCRIBE" => {
                let dest = Bytes::copy_from_slice(f.header("destination").unwrap_or_default());
                let sub = Bytes::copy_from_slice(f.header("id").unwrap_or_default());
                self.broker
                    .subscribe(dest.clone(), self.id, sub, self.tx.clone());
                self.destinations.push(dest);
                true
            }
            b"SEND" => {
                self.fan_out(&f).await;
                true
            }
            b"DISCONNECT" => false,
            _ => true,
        };
        if let Some(r) = f.header("receipt") {
            let mut out = BytesMut::from(&b"RECEIPT\nreceipt-id:"[..]);
            out.extend_from_slice(r);
            out.extend_from_slice(b"\n\n\0");
            let _ = self.tx.send(out.freeze()).await;
        }
        keep
    }

    async fn connected(&mut self, f: &Frame) -> bool {
        let (cx, cy) = parse_heartbeat(f.header("heart-beat"));
        let ours = self.broker.heartbeat_ms;
        let offer = if cx == 0 && cy == 0 { 0 } else { ours };
        let period = (offer > 0 && cy > 0).then(|| Duration::from_millis(offer.max(cy)));
        if let Some(hb) = self.hb.take() {
            let _ = hb.send(period);
        }
        let frame = format!("CONNECTED\nversion:1.2\nheart-beat:{offer},{offer}\nserver:stompgate-load-fake/1\nsession:{}\n\n\0", self.id);
        self.tx.send(Bytes::from(frame)).await.is_ok()
    }

    async fn fan_out(&self, f: &Frame) {
        let dest = f.header("destination").unwrap_or_default();
        let Some(subs) = self.broker.subscribers(dest) else {
            return;
        };
        let n = self.broker.next_message.fetch_add(1, Ordering::Relaxed);
        for (_, sub, tx) in subs.iter() {
            let msg = message_frame(dest, sub, n, &f.body);
            // A gone subscriber is cleaned up by its own connection task.
            let _ = tx.send(msg).await;
        }
    }
}

fn message_frame(dest: &[u8], sub: &[u8], n: u64, body: &[u8]) -> Bytes {
    let head = format!("\nmessage-id:m-{n}\ncontent-length:{}\n\n", body.len());
    let mut out = BytesMut::with_capacity(64 + dest.len() + sub.len() + head.len() + body.len());
    out.extend_from_slice(b"MESSAGE\nsubscription:");
    out.extend_from_slice(sub);
    out.extend_from_slice(b"\ndestination:");
    out.extend_from_slice(dest);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\0");
    out.freeze()
}

fn error_frame(message: &str) -> Bytes {
    let clean: String = message.chars().filter(|c| !c.is_control()).collect();
    Bytes::from(format!("ERROR\nmessage:{clean}\n\n\0"))
}

fn parse_heartbeat(v: Option<&[u8]>) -> (u64, u64) {
    let text = v.and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("0,0");
    let mut it = text.split(',').map(|p| p.trim().parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Writes queued frames, several per socket write; sends heart-beats when idle.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    hb: tokio::sync::oneshot::Receiver<Option<Duration>>,
) {
    let mut hb = Some(hb);
    let mut period: Option<Duration> = None;
    let mut batch = BytesMut::new();
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            p = async { hb.as_mut().expect("guarded").await }, if hb.is_some() => {
                hb = None;
                period = p.ok().flatten();
                continue;
            }
            _ = tokio::time::sleep(period.unwrap_or(Duration::MAX / 4)), if period.is_some() => {
                Bytes::from_static(b"\n")
            }
        };
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => batch.extend_from_slice(&m),
                Err(_) => break,
            }
        }
        if wr.write_all(&batch).await.is_err() {
            return;
        }
        batch = BytesMut::new();
    }
}

/// Binds every address and serves until `lifetime` has passed. Prints one
/// `listening fake-broker ADDR` line per listener.
pub async fn run(
    addrs: &[SocketAddr],
    heartbeat_ms: u64,
    lifetime: Duration,
) -> std::io::Result<()> {
    let broker = Broker::new(heartbeat_ms);
    let mut tasks = Vec::new();
    for addr in addrs {
        let l = TcpListener::bind(addr).await?;
        println!("listening fake-broker {}", l.local_addr()?);
        tasks.push(tokio::spawn(broker.clone().serve(l)));
    }
    tokio::time::sleep(lifetime).await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;

    async fn read_frame(s: &mut TcpStream, p: &mut Parser) -> Frame {
        loop {
            if let Some(Item::Frame(f)) = p.next_item().unwrap() {
                return f;
            }
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed");
            p.push(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn connect_subscribe_send_fans_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(Broker::new(0).serve(l));
        let mut subs = Vec::new();
        for i in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut p = Parser::new(1 << 20);
            s.write_all(&encode("CONNECT", &[], b"")).await.unwrap();
            assert_eq!(read_frame(&mut s, &mut p).await.command(), b"CONNECTED");
            let id = format!("s{i}");
            let sub = encode(
                "SUBSCRIBE",
                &[("id", &id), ("destination", "/t/a"), ("receipt", "r")],
                b"",
            );
            s.write_all(&sub).await.unwrap();
            assert_eq!(
                read_frame(&mut s, &mut p).await.header_str("receipt-id"),
                "r"
            );
            subs.push((s, p, id));
        }
        let mut publisher = TcpStream::connect(addr).await.unwrap();
        publisher
            .write_all(&encode("CONNECT", &[], b""))
            .await
            .unwrap();
        publisher
            .write_all(&encode("SEND", &[("destination", "/t/a")], b"hello"))
            .await
            .unwrap();
        for (s, p, id) in &mut subs {
            let m = read_frame(s, p).await;
            assert_eq!(m.command(), b"MESSAGE");
            assert_eq!(m.header_str("subscription"), *id);
            assert_eq!(&m.body[..], b"hello");
        }
        server.abort();
    }
}
