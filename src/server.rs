//! Listeners, the accept loop, connection limits and the graceful drain.
//!
//! A [`Listener`] accepts TCP (optionally TLS) connections under a cap on concurrent sockets
//! and serves HTTP/1.1 on each with hyper (upgrades allowed), calling a handler per request.
//! The [`Gateway`] owns the client listener(s) and the admin listener, routes client requests
//! (the WebSocket path, the SockJS prefix, static pages) and runs each session on a
//! [`TaskTracker`] so the drain can wait for them:
//!
//! 1. the shutdown token fires; readiness turns false (`/readyz` answers 503);
//! 2. the client listeners close (new connections are refused) and idle HTTP connections end;
//! 3. sessions get `shutdown_grace` to finish on their own;
//! 4. the rest are told to close (WebSocket 1001) and waited for, with a bound.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::relay::{self, RelayContext};
use crate::shards::Shards;
use crate::tls::{self, ServerTls, TlsError};
use crate::transport::sockjs::{SessionSink, Sockjs, SockjsOptions, SockjsRx, SockjsTx};
use crate::transport::ws::{self, text_response, WsOptions};
use crate::transport::{ClientLink, ClientMeta, ClientRx, ClientTx, HttpBody, TransportKind};

/// Time a client has to send a complete request head (also bounds idle keep-alive).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error such as EMFILE, so the loop does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long the drain waits for sessions to close after telling them to (1001).
pub const SESSION_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the drain waits for in-flight HTTP connections after the sessions are gone.
pub const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for hyper to hand over an upgraded socket.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Least number of concurrent TCP connections allowed on the client listener(s).
const MIN_TCP_SLOTS: usize = 1024;
/// Concurrent TCP connections on the admin listener.
const ADMIN_TCP_SLOTS: usize = 64;
/// Largest HTTP request head hyper buffers.
const MAX_HTTP_BUF_BYTES: usize = 64 * 1024;

/// Connection ids for logs and spans, unique in the process.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id.
pub fn next_conn_id() -> u64 {
    NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed)
}

/// Failures to start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The connection threads could not be started.
    #[error("cannot start the connection threads: {0}")]
    Threads(io::Error),
    /// A listener could not bind (configuration or environment).
    #[error("cannot bind the {what} listener on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The client TLS configuration could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The policy file or the broker TLS settings could not be loaded.
    #[error(transparent)]
    Relay(#[from] crate::relay::ContextError),
}

/// What a handler knows about the TCP connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The connection id (also in the span).
    pub id: u64,
    /// The peer address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The verified client certificate's identity (mutual TLS).
    pub client_cert: Option<String>,
    /// The connection's slot under the TCP cap; an upgraded session keeps a clone.
    pub slot: Arc<OwnedSemaphorePermit>,
}

/// A request handler: hyper request and connection facts in, response out.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Answers one request (called on a clone of the handler).
    fn call(
        self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<HttpBody>> + Send + 'static;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<HttpBody>> + Send + 'static,
{
    fn call(
        self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<HttpBody>> + Send + 'static {
        self(req, conn)
    }
}

/// One listening socket, plain or TLS, with its cap on concurrent TCP connections.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<ServerTls>>,
    slots: Arc<Semaphore>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Where accepted connections run; the accepting runtime when `None`.
    shards: Option<Arc<Shards>>,
}

impl Listener {
    /// Binds `addr` (port 0 allowed); at most `max_tcp` connections are served at once, the
    /// rest wait in the kernel's backlog.
    pub async fn bind(
        what: &'static str,
        addr: SocketAddr,
        tls: Option<Arc<ServerTls>>,
        max_tcp: usize,
    ) -> Result<Self, ServerError> {
        Self::bind_shared(what, addr, tls, max_tcp, false).await
    }

    /// [`Listener::bind`], with `SO_REUSEPORT` when `reuse_port`: other processes may listen
    /// on the same port and the kernel spreads new connections over all of them.
    pub async fn bind_shared(
        what: &'static str,
        addr: SocketAddr,
        tls: Option<Arc<ServerTls>>,
        max_tcp: usize,
        reuse_port: bool,
    ) -> Result<Self, ServerError> {
        let bind_err = |source| ServerError::Bind { what, addr, source };
        let tcp = listen(addr, reuse_port).map_err(bind_err)?;
        let addr = tcp.local_addr().map_err(bind_err)?;
        let max_tcp = max_tcp.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Listener {
            tcp,
            addr,
            tls,
            slots: Arc::new(Semaphore::new(max_tcp)),
            metrics: None,
            shards: None,
        })
    }

    /// Counts TLS handshake failures (by reason) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs accepted connections on `shards` instead of the accepting runtime.
    pub fn with_shards(mut self, shards: Arc<Shards>) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts and serves connections until `stop` fires, then closes the socket. Open
    /// connections run on `conns`; on `stop` they finish their current request and end.
    pub async fn serve<H: Handler>(self, handler: H, stop: CancellationToken, conns: TaskTracker) {
        let accept = Accept {
            tls: self.tls,
            slots: self.slots,
            metrics: self.metrics,
        };
        let Some(shards) = self.shards else {
            return accept.run(self.tcp, handler, stop, conns).await;
        };
        // Every connection thread accepts on its own copy of the listening socket, so a thread
        // takes new connections only when it is free to (busy ones leave them to the others, or
        // in the backlog), and a connection never changes threads.
        let listener = match self.tcp.into_std() {
            Ok(listener) => listener,
            Err(e) => return warn!(cause = %e, "listening socket could not be handed over"),
        };
        let loops = shards.spawn_each(|_| {
            let copy = listener.try_clone();
            let (accept, handler) = (accept.clone(), handler.clone());
            let (stop, conns) = (stop.clone(), conns.clone());
            async move {
                match copy.and_then(TcpListener::from_std) {
                    Ok(tcp) => accept.run(tcp, handler, stop, conns).await,
                    Err(e) => warn!(cause = %e, "listening socket could not be registered"),
                }
            }
        });
        for accept_loop in loops {
            let _ = accept_loop.await;
        }
    }
}

/// What an accept loop needs besides its socket.
#[derive(Clone)]
struct Accept {
    tls: Option<Arc<ServerTls>>,
    slots: Arc<Semaphore>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Accept {
    /// Accepts until `stop` fires; every connection runs on this runtime, tracked by `conns`.
    async fn run<H: Handler>(
        self,
        tcp: TcpListener,
        handler: H,
        stop: CancellationToken,
        conns: TaskTracker,
    ) {
        loop {
            let slot = tokio::select! {
                _ = stop.cancelled() => return,
                slot = self.slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = tcp.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let id = next_conn_id();
            let span = info_span!("conn", id, %peer);
            let tls = self.tls.clone().map(|t| (t, self.metrics.clone()));
            let served = serve_tcp(tcp, peer, id, tls, slot, handler.clone(), stop.clone());
            conns.spawn(served.instrument(span));
        }
    }
}

/// Connections the kernel queues, handshake completed, before the accept loop takes them (the
/// kernel caps it at `net.core.somaxconn`). Bursts of connects beyond it lose SYNs, which the
/// client retries only after a second.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Logs an accept error and, unless it concerned one connection only, backs off.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        debug!(cause = %e, "accept: connection gone before it was accepted");
        return;
    }
    warn!(cause = %e, "accept failed; backing off");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Runs TLS (if any) on one accepted connection, then HTTP.
async fn serve_tcp<H: Handler>(
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    tls: Option<(Arc<ServerTls>, Option<Arc<crate::metrics::Metrics>>)>,
    slot: OwnedSemaphorePermit,
    handler: H,
    stop: CancellationToken,
) {
    let mut info = ConnInfo {
        id,
        peer,
        tls: tls.is_some(),
        client_cert: None,
        slot: Arc::new(slot),
    };
    let Some((tls, metrics)) = tls else {
        return serve_http(TokioIo::new(tcp), info, handler, stop).await;
    };
    let failed = |label: &str| {
        if let Some(m) = &metrics {
            m.tls_handshake_failed(label);
        }
    };
    match tls::is_tls_client_hello(&tcp).await {
        Ok(true) => {}
        Ok(false) => {
            failed("plaintext_on_tls_port");
            let _ = tls::reject_plaintext(tcp).await;
            return;
        }
        Err(e) => return debug!(cause = %e, "no TLS ClientHello"),
    }
    match tls.accept(tcp).await {
        Ok(stream) => {
            info.client_cert = ServerTls::peer_identity(stream.get_ref().1);
            serve_http(TokioIo::new(stream), info, handler, stop).await
        }
        Err(e) => {
            failed(e.label());
            debug!(cause = %e, label = e.label(), "TLS handshake failed")
        }
    }
}

/// Serves HTTP/1.1 with upgrades on one connection until it ends, or until `stop` fires and
/// the request in flight is answered.
async fn serve_http<I, H>(io: TokioIo<I>, info: ConnInfo, handler: H, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let service = service_fn(move |req| {
        let answer = handler.clone().call(req, info.clone());
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .max_buf_size(MAX_HTTP_BUF_BYTES)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(cause = %e, "HTTP connection ended with an error");
    }
}

/// The running sessions (WebSocket and SockJS) and their cap.
struct Sessions {
    ctx: Arc<RelayContext>,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    draining: CancellationToken,
}

impl Sessions {
    /// A slot under `max_connections`, unless full or draining.
    fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.draining.is_cancelled() {
            return None;
        }
        let slot = self.slots.clone().try_acquire_owned().ok();
        if slot.is_none() {
            self.ctx
                .metrics
                .session_refused(crate::metrics::RefusedReason::Limit);
        }
        slot
    }

    /// The 503 for a new connection over `--accept-rate` (counted), or `None` to go on.
    fn over_rate(&self) -> Option<Response<HttpBody>> {
        let wait = self.ctx.accept_rate.as_ref()?.admit().err()?;
        self.ctx
            .metrics
            .session_refused(crate::metrics::RefusedReason::AcceptRate);
        Some(crate::admission::over_rate_response(wait))
    }

    /// Runs a session on the tracker under its span, holding `slots` until it ends.
    fn spawn<R, T, S>(
        &self,
        id: u64,
        peer: SocketAddr,
        slots: S,
        link: impl Future<Output = Option<ClientLink<R, T>>> + Send + 'static,
    ) where
        R: ClientRx,
        T: ClientTx,
        S: Send + 'static,
    {
        let ctx = self.ctx.clone();
        let span = info_span!("session", conn = id, %peer);
        self.tracker.spawn(
            async move {
                let _slots = slots;
                if let Some(link) = link.await {
                    relay::run_session(ctx, link).await;
                }
            }
            .instrument(span),
        );
    }

    /// The SockJS service, starting its sessions here (refused when full or draining).
    fn sockjs(self: &Arc<Self>, config: &Config) -> Arc<Sockjs> {
        let sessions = self.clone();
        let on_session: SessionSink = Arc::new(move |link: ClientLink<SockjsRx, SockjsTx>| {
            let peer = link.meta.peer;
            match sessions.slot() {
                Some(slot) => sessions.spawn(next_conn_id(), peer, slot, async { Some(link) }),
                None => debug!(%peer, "SockJS session refused: too many sessions or draining"),
            }
        });
        let limits = &config.limits;
        let options = SockjsOptions {
            max_sessions: config.max_connections,
            max_body_bytes: ws::max_message_bytes(limits.max_header_bytes, limits.max_body_bytes),
            // The relay decodes chunks and flushes per batch, like the WebSocket link.
            batch_messages: true,
            // Sessions are bound to the credentials the policy reads from requests.
            policy: self.ctx.policy.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            metrics: Some(self.ctx.metrics.clone()),
            accept_rate: self.ctx.accept_rate.clone(),
            ..SockjsOptions::default()
        };
        let origins = config.allowed_origins.clone();
        Sockjs::with_options(config.sockjs.clone(), origins, on_session, options)
    }
}

/// The client-facing router.
struct Frontend {
    config: Arc<Config>,
    ws: WsOptions,
    sessions: Arc<Sessions>,
    sockjs: Option<Arc<Sockjs>>,
}

impl Frontend {
    /// Routes one client request.
    async fn route(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Response<HttpBody> {
        let path = req.uri().path();
        let sockjs = self
            .sockjs
            .as_ref()
            .filter(|s| under_prefix(path, s.prefix()));
        if (path == self.config.ws_path || sockjs.is_some()) && !self.policy_allows_origin(&req) {
            return text_response(StatusCode::FORBIDDEN, "origin not allowed\n");
        }
        if path == self.config.ws_path {
            return self.websocket(req, conn);
        }
        if let Some(sockjs) = sockjs {
            return sockjs.handle(req, conn.peer, conn.tls).await;
        }
        serve_static(path, self.config.demo).unwrap_or_else(not_found)
    }

    /// Whether the policy's `allowed_origins` (if any) admits the request's `Origin`. CORS
    /// preflights pass: they open nothing, and the request that follows is checked.
    fn policy_allows_origin(&self, req: &Request<Incoming>) -> bool {
        let Some(policy) = &self.sessions.ctx.policy else {
            return true;
        };
        if req.method() == http::Method::OPTIONS {
            return true;
        }
        let origin = req.headers().get(http::header::ORIGIN);
        // A non-UTF-8 Origin matches no list entry (Some("") is refused by any real list).
        let origin = origin.map(|o| o.to_str().unwrap_or(""));
        policy.peek().check_origin(origin)
    }

    /// Answers a WebSocket upgrade and starts its session.
    fn websocket(&self, mut req: Request<Incoming>, conn: ConnInfo) -> Response<HttpBody> {
        let (resp, pending) = match ws::upgrade(&mut req, &self.ws) {
            Ok(pair) => pair,
            Err(e) => return e.into_response(),
        };
        if let Some(refused) = self.sessions.over_rate() {
            return refused;
        }
        let Some(session_slot) = self.sessions.slot() else {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
        };
        let meta = ClientMeta {
            peer: conn.peer,
            transport: TransportKind::WebSocket,
            tls: conn.tls,
            headers: req.headers().clone(),
            query: req.uri().query().map(str::to_owned),
            client_cert: conn.client_cert.clone(),
        };
        let mode = self.ws.frame_mode;
        let link = async move {
            match tokio::time::timeout(UPGRADE_TIMEOUT, pending.finish()).await {
                Ok(Ok(stream)) => {
                    let (rx, tx) = ws::split_link(stream, mode);
                    Some(ClientLink { rx, tx, meta })
                }
                Ok(Err(e)) => {
                    debug!(cause = %e, "upgrade failed");
                    None
                }
                Err(_) => None,
            }
        };
        let slots = (session_slot, conn.slot);
        self.sessions.spawn(conn.id, conn.peer, slots, link);
        resp
    }
}

/// Whether `path` is `prefix` or below it.
fn under_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Static pages: the demo page at `/` when `--demo` is on ([`crate::demo`]); `None` is a 404.
fn serve_static(path: &str, demo: bool) -> Option<Response<HttpBody>> {
    if demo {
        crate::demo::response(path)
    } else {
        None
    }
}

fn not_found() -> Response<HttpBody> {
    text_response(StatusCode::NOT_FOUND, "not found\n")
}

/// The running gateway: client and admin listeners, sessions, and the drain.
pub struct Gateway {
    config: Arc<Config>,
    client: Vec<Listener>,
    admin: Listener,
    client_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
    tls: Option<Arc<ServerTls>>,
    drain: CancellationToken,
    frontend: Arc<Frontend>,
    admin_state: Arc<AdminState>,
    /// The connection threads; kept until the drain is over so no session is cut by their end.
    shards: Arc<Shards>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("client_addr", &self.client_addr)
            .field("tls_addr", &self.tls_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Binds the client listener(s) and the admin listener (port 0 allowed), loads TLS, and
    /// builds the [`RelayContext`].
    pub async fn bind(config: Arc<Config>) -> Result<Gateway, ServerError> {
        warn_about_exposure(&config);
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(ServerTls::new(settings)?)),
            None => None,
        };
        let max_tcp = config.max_connections.saturating_mul(2).max(MIN_TCP_SLOTS);
        let plain_tls = if config.tls_listen.is_none() {
            tls.clone()
        } else {
            None
        };
        // One set of metrics, shared by the listeners, the relay and the admin API.
        let metrics = crate::metrics::Metrics::new(&config);
        let shards = Arc::new(Shards::start(config.worker_threads).map_err(ServerError::Threads)?);
        let reuse = config.reuse_port;
        let mut client =
            vec![
                Listener::bind_shared("client", config.listen, plain_tls, max_tcp, reuse)
                    .await?
                    .with_metrics(metrics.clone())
                    .with_shards(shards.clone()),
            ];
        if let (Some(addr), Some(t)) = (config.tls_listen, &tls) {
            let listener =
                Listener::bind_shared("TLS client", addr, Some(t.clone()), max_tcp, reuse).await?;
            client.push(
                listener
                    .with_metrics(metrics.clone())
                    .with_shards(shards.clone()),
            );
        }
        let admin = Listener::bind("admin", config.admin_listen, None, ADMIN_TCP_SLOTS).await?;
        let drain = CancellationToken::new();
        // One set of metrics, shared by the relay (which records) and the admin API (which reads).
        let sessions = Arc::new(Sessions {
            ctx: RelayContext::with_metrics(
                config.clone(),
                CancellationToken::new(),
                metrics.clone(),
            )?,
            tracker: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(
                config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            draining: drain.clone(),
        });
        let sockjs = config.sockjs.enabled.then(|| sessions.sockjs(&config));
        let frontend = Arc::new(Frontend {
            ws: WsOptions::from_config(&config),
            sessions,
            sockjs,
            config: config.clone(),
        });
        let admin_state = Arc::new(AdminState::with_metrics(config.clone(), metrics));
        Ok(Gateway {
            client_addr: client[0].local_addr(),
            tls_addr: client.get(1).map(Listener::local_addr),
            admin_addr: admin.local_addr(),
            config,
            client,
            admin,
            tls,
            drain,
            frontend,
            admin_state,
            shards,
        })
    }

    /// The client listener's address (`listen`; TLS when `tls` is set without `tls_listen`).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The separate TLS listener's address, when `tls_listen` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Cancel it to begin a graceful drain (main.rs does so on SIGTERM/SIGINT).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// The client TLS configuration, for reloading on SIGHUP.
    pub fn server_tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }

    /// The shared session context (the lead adds policy and metrics to it).
    pub fn relay_context(&self) -> Arc<RelayContext> {
        self.frontend.sessions.ctx.clone()
    }

    /// The admin endpoints' state.
    pub fn admin_state(&self) -> Arc<AdminState> {
        self.admin_state.clone()
    }

    /// Serves until the shutdown token fires, then drains (see the module docs) and returns.
    pub async fn run(self) -> Result<(), ServerError> {
        let admin_stop = CancellationToken::new();
        let admin = tokio::spawn(serve_admin(
            self.admin,
            self.admin_state.clone(),
            admin_stop.clone(),
        ));
        if let Some(tls) = &self.tls {
            tls.clone().spawn_watcher(admin_stop.clone());
        }
        tokio::spawn(crate::reload::run(
            self.frontend.sessions.ctx.clone(),
            self.tls.clone(),
            admin_stop.clone(),
        ));
        let http_conns = TaskTracker::new();
        let fe = self.frontend.clone();
        let handler = move |req, conn| fe.clone().route(req, conn);
        let accepts: Vec<_> = (self.client.into_iter())
            .map(|l| tokio::spawn(l.serve(handler.clone(), self.drain.clone(), http_conns.clone())))
            .collect();
        info!(client = %self.client_addr, admin = %self.admin_addr, ws_path = %self.config.ws_path, "serving");
        self.drain.cancelled().await;
        self.admin_state.set_ready(false);
        for accept in accepts {
            let _ = accept.await;
        }
        drain_sessions(&self.frontend.sessions, self.config.shutdown_grace).await;
        http_conns.close();
        let _ = tokio::time::timeout(HTTP_DRAIN_TIMEOUT, http_conns.wait()).await;
        admin_stop.cancel();
        let _ = admin.await;
        drop(self.shards);
        info!("drained");
        Ok(())
    }
}

/// Start-up warnings for configurations that expose more than their owner may think.
fn warn_about_exposure(config: &Config) {
    if config.admin_insecure && config.admin_token.is_none() {
        warn!(admin = %config.admin_listen, "--admin-insecure: the admin API is reachable beyond loopback without a token");
    }
    let public = |a: &SocketAddr| !a.ip().is_loopback();
    let listens_beyond_loopback =
        public(&config.listen) || config.tls_listen.as_ref().is_some_and(public);
    if config.policy.is_none() && listens_beyond_loopback && config.allowed_origins.is_empty() {
        warn!(
            listen = %config.listen,
            "static mode beyond loopback with no --allowed-origin: any page on any site can use the gateway's broker identity"
        );
    }
}

/// Lets sessions finish for `grace`, then closes the rest (1001) and waits for them, bounded.
async fn drain_sessions(fe: &Sessions, grace: Duration) {
    let sessions = &fe.tracker;
    sessions.close();
    info!(sessions = sessions.len(), grace = ?grace, "draining: listeners closed");
    if tokio::time::timeout(grace, sessions.wait()).await.is_ok() {
        return;
    }
    info!(
        sessions = sessions.len(),
        "grace period over; closing sessions with 1001"
    );
    fe.ctx.shutdown.cancel();
    if tokio::time::timeout(SESSION_CLOSE_TIMEOUT, sessions.wait())
        .await
        .is_err()
    {
        warn!(
            sessions = sessions.len(),
            "sessions still open after the close timeout"
        );
    }
}

/// Serves the admin endpoints until `stop` fires.
async fn serve_admin(listener: Listener, state: Arc<AdminState>, stop: CancellationToken) {
    let handler = move |req: Request<Incoming>, _conn: ConnInfo| {
        let state = state.clone();
        async move { admin::handle(req, &state).await }
    };
    let conns = TaskTracker::new();
    listener.serve(handler, stop, conns.clone()).await;
    conns.close();
    let _ = tokio::time::timeout(HTTP_DRAIN_TIMEOUT, conns.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching_respects_segments() {
        assert!(under_prefix("/sockjs", "/sockjs"));
        assert!(under_prefix("/sockjs/info", "/sockjs"));
        assert!(!under_prefix("/sockjsx", "/sockjs"));
        assert!(!under_prefix("/ws", "/sockjs"));
    }

    #[tokio::test]
    async fn reuse_port_lets_a_second_process_share_the_port() {
        let any = "127.0.0.1:0".parse().unwrap();
        let first = Listener::bind_shared("a", any, None, 4, true)
            .await
            .unwrap();
        let addr = first.local_addr();
        let second = Listener::bind_shared("b", addr, None, 4, true).await;
        assert_eq!(second.unwrap().local_addr(), addr);
        let exclusive = Listener::bind("c", first.local_addr(), None, 4).await;
        assert!(
            matches!(exclusive, Err(ServerError::Bind { .. })),
            "{exclusive:?}"
        );
    }
}
