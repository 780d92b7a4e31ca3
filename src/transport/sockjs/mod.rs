//! The SockJS server protocol (as `sockjs-client` 1.x speaks it), presenting each SockJS
//! session to the relay as the same [`ClientLink`] a WebSocket connection gives. It knows
//! nothing of STOMP: inbound SockJS messages are handed over as byte chunks (the relay
//! re-frames them), and each outbound STOMP frame becomes one SockJS message.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Sockjs`]: routing under the prefix, origin checks, transport switches |
//! | `options.rs` | [`SockjsOptions`]: limits and what the gateway tells the service |
//! | `access.rs` | session ids, the browser rules, binding a session to its creator, per-address counts |
//! | `session.rs` | one session: outbox, receiver, inbound queue, close |
//! | `registry.rs` | sessions by id, their expiry |
//! | `link.rs` | [`SockjsRx`] / [`SockjsTx`], the halves the relay drives |
//! | `frames.rs` | `o` / `h` / `a[...]` / `c[...]` frames and SockJS JSON escaping |
//! | `payload.rs` | decoding the client's JSON payloads into messages |
//! | `receive.rs` | `xhr`, `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp` |
//! | `send.rs` | `xhr_send`, `jsonp_send` |
//! | `websocket.rs` | the `websocket` transport and the raw `{prefix}/websocket` endpoint |
//! | `info.rs` | greeting, `/info`, the iframe page, `OPTIONS` |
//! | `http.rs` | CORS, caching, cookie headers, bounded bodies, query decoding |

mod access;
mod frames;
mod http;
mod info;
mod link;
mod options;
mod payload;
mod receive;
mod registry;
mod send;
mod session;
mod websocket;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ::http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use access::MAX_SESSION_ID_BYTES;
pub use frames::{close_frame, messages_frame, quote};
pub use link::{SockjsRx, SockjsTx};
pub use options::{SockjsOptions, DEFAULT_CLIENT_URL};

use self::http as h;
use crate::config::SockjsConfig;
use crate::metrics::RefusedReason;
use crate::policy::RequestCredentials;
use crate::transport::{ClientLink, ClientMeta, HttpBody, TransportKind};
use access::{AddressCounts, Binder};
use receive::{Framer, Receiver};
use registry::{Lookup, Registry};
use send::SendKind;
use session::{Owner, SessionLimits};

/// Largest body of a receiving `POST` (`xhr`, `xhr_streaming`): clients send none.
const RECEIVE_BODY_BYTES: usize = 4096;

/// The transports that cannot carry `Origin` (besides the iframe page).
const ORIGINLESS: [&str; 2] = ["jsonp", "htmlfile"];

/// With `batch_messages`, a `recv` stops joining client messages once its chunk holds this
/// many bytes (the plain WebSocket link's bound).
const RECV_BATCH_BYTES: usize = 64 * 1024;

/// Called once per new SockJS session, as it opens; the callee runs the session.
pub type SessionSink = Arc<dyn Fn(ClientLink<SockjsRx, SockjsTx>) + Send + Sync>;

/// The SockJS service mounted under `config.path`.
pub struct Sockjs {
    config: SockjsConfig,
    prefix: String,
    allowed_origins: Vec<String>,
    on_session: SessionSink,
    options: SockjsOptions,
    limits: SessionLimits,
    registry: Arc<Registry>,
    addresses: Arc<AddressCounts>,
    binder: Binder,
    iframe: info::Iframe,
}

/// Where a path under the prefix leads.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Greeting,
    Info,
    Iframe,
    RawWebsocket,
    Session {
        server: &'a str,
        id: &'a str,
        transport: &'a str,
    },
    NotFound,
}

/// Routes the path remainder after the prefix.
fn route(rest: &str) -> Route<'_> {
    match rest {
        "" | "/" => return Route::Greeting,
        "/info" => return Route::Info,
        "/websocket" => return Route::RawWebsocket,
        _ => {}
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Route::NotFound;
    };
    if info::is_iframe_path(rest) {
        return Route::Iframe;
    }
    let valid = |s: &str| !s.is_empty() && !s.contains('.');
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(server), Some(id), Some(transport), None)
            if valid(server) && valid(id) && !transport.is_empty() =>
        {
            Route::Session {
                server,
                id,
                transport,
            }
        }
        _ => Route::NotFound,
    }
}

impl Sockjs {
    /// The service with default [`SockjsOptions`].
    pub fn new(
        config: SockjsConfig,
        allowed_origins: Vec<String>,
        on_session: SessionSink,
    ) -> Arc<Self> {
        Self::with_options(
            config,
            allowed_origins,
            on_session,
            SockjsOptions::default(),
        )
    }

    /// The service with explicit options.
    pub fn with_options(
        config: SockjsConfig,
        allowed_origins: Vec<String>,
        on_session: SessionSink,
        options: SockjsOptions,
    ) -> Arc<Self> {
        let limits = SessionLimits {
            heartbeat: config.heartbeat,
            disconnect_delay: config.disconnect_delay,
            queue_messages: options.queue_messages.max(1),
            queue_bytes: options.queue_bytes,
            send_timeout: options.send_timeout,
            inbound_messages: options.inbound_messages,
            inbound_bytes: config.inbound_bytes.max(1),
            batch: options.batch_messages,
        };
        Arc::new(Sockjs {
            addresses: AddressCounts::new(config.max_sessions_per_address),
            binder: Binder::new(),
            prefix: config.path.trim_end_matches('/').to_owned(),
            iframe: info::Iframe::new(&options.client_url),
            config,
            allowed_origins,
            on_session,
            options,
            limits,
            registry: Registry::new(),
        })
    }

    /// Live SockJS sessions, all transports (counted until the relay drops their halves).
    pub fn session_count(&self) -> usize {
        self.registry.live().load(Ordering::Relaxed)
    }

    /// The prefix this service answers under (without a trailing slash).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Handles any request whose path starts with `config.path`; the server routes them here.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
    ) -> Response<HttpBody> {
        let path = req.uri().path().to_owned();
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else {
            return h::not_found();
        };
        let get = req.method() == Method::GET;
        match route(rest) {
            Route::Greeting if get => info::greeting(),
            Route::Iframe if self.originless_off() => h::not_found(),
            Route::Iframe if get => self.iframe.respond(req.headers()),
            Route::Greeting | Route::Iframe => h::method_not_allowed("GET"),
            Route::Info => self.info(&req),
            Route::RawWebsocket if self.disabled("websocket") => h::not_found(),
            Route::RawWebsocket if !get => h::method_not_allowed("GET"),
            Route::RawWebsocket => match self.check_origin(req.headers()) {
                Some(refused) => refused,
                None => self.websocket(req, peer, tls, true),
            },
            Route::Session {
                server,
                id,
                transport,
            } => {
                if !access::valid_id(server) || !access::valid_id(id) {
                    let res = h::text(StatusCode::NOT_FOUND, "Invalid session id.");
                    return self.refuse(RefusedReason::SockjsSessionId, res);
                }
                self.session_request(req, peer, tls, id, transport).await
            }
            Route::NotFound => h::not_found(),
        }
    }

    fn disabled(&self, transport: &str) -> bool {
        self.config.disabled.iter().any(|d| d == transport)
    }

    /// Counts a refusal and passes its answer on.
    fn refuse(&self, reason: RefusedReason, res: Response<HttpBody>) -> Response<HttpBody> {
        if let Some(m) = &self.options.metrics {
            m.session_refused(reason);
        }
        res
    }

    /// What the policy's backends read from requests (nothing without a policy).
    fn credentials(&self) -> RequestCredentials {
        self.options
            .policy
            .as_ref()
            .map(|p| p.peek().request_credentials())
            .unwrap_or_default()
    }

    /// Whether the Origin-less transports are off and session requests need an `Origin`: a
    /// browser sends the configured credential on its own, and no override says otherwise.
    fn originless_off(&self) -> bool {
        !self.config.originless_transports && self.credentials().ambient()
    }

    /// The client address, behind trusted proxies.
    fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        crate::metrics::client_ip(peer.ip(), headers, &self.options.trusted_proxies)
    }

    /// The refusal for a session request the origin rules forbid, if any: an `Origin` outside
    /// the allowlist, or, while a browser sends credentials on its own, no `Origin` at all
    /// (unless the browser says the request is same-origin).
    fn check_origin(&self, headers: &HeaderMap) -> Option<Response<HttpBody>> {
        if !self.origin_allowed(headers) {
            return Some(self.refuse(RefusedReason::SockjsOrigin, Self::forbidden()));
        }
        if self.originless_off() && !access::browser_request_allowed(headers) {
            let res = h::text(StatusCode::FORBIDDEN, "Origin required.");
            return Some(self.refuse(RefusedReason::SockjsOrigin, res));
        }
        None
    }

    /// Whether the request's `Origin` (if any) is allowed. `null` passes only a list that
    /// names it (or no list).
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(::http::header::ORIGIN) else {
            return true;
        };
        self.allowed_origins.is_empty()
            || self
                .allowed_origins
                .iter()
                .any(|a| a == "*" || a.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }

    fn forbidden() -> Response<HttpBody> {
        h::text(StatusCode::FORBIDDEN, "Origin not allowed.")
    }

    fn info(&self, req: &Request<Incoming>) -> Response<HttpBody> {
        match *req.method() {
            Method::OPTIONS => info::options(req.headers(), "OPTIONS, GET"),
            Method::GET if !self.origin_allowed(req.headers()) => Self::forbidden(),
            Method::GET => info::info(
                req.headers(),
                !self.disabled("websocket"),
                self.config.cookie,
            ),
            _ => h::method_not_allowed("OPTIONS, GET"),
        }
    }

    /// The methods a session transport accepts and whether it is switched on; `None` for an
    /// unknown transport.
    fn transport_methods(&self, transport: &str) -> Option<(&'static str, bool)> {
        let originless_off = self.originless_off();
        let off_here = |t: &str| originless_off && ORIGINLESS.contains(&t);
        let on = |t: &str| !self.disabled(t) && !off_here(t);
        Some(match transport {
            "xhr" | "xhr_streaming" => ("OPTIONS, POST", on(transport)),
            "xhr_send" => (
                "OPTIONS, POST",
                ["xhr", "xhr_streaming", "eventsource", "htmlfile"]
                    .iter()
                    .any(|t| on(t)),
            ),
            "eventsource" | "htmlfile" | "jsonp" | "websocket" => ("GET", on(transport)),
            "jsonp_send" => ("POST", on("jsonp")),
            _ => return None,
        })
    }

    async fn session_request(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        id: &str,
        transport: &str,
    ) -> Response<HttpBody> {
        let Some((methods, true)) = self.transport_methods(transport) else {
            return h::not_found();
        };
        let method = req.method().clone();
        if method == Method::OPTIONS && methods.starts_with("OPTIONS") {
            let mut res = info::options(req.headers(), methods);
            self.cookie(&mut res, &req);
            return res;
        }
        if !methods.split(", ").any(|m| m == method.as_str()) {
            return h::method_not_allowed(methods);
        }
        if let Some(refused) = self.check_origin(req.headers()) {
            return refused;
        }
        if transport == "websocket" {
            return self.websocket(req, peer, tls, false);
        }
        let req_headers = req.headers().clone();
        let mut res = if let Some(recv) = Receiver::from_name(transport) {
            self.receive(req, peer, tls, id, recv).await
        } else if let Some(kind) = SendKind::from_name(transport) {
            self.send(req, peer, id, kind).await
        } else {
            h::not_found()
        };
        h::cors(res.headers_mut(), &req_headers);
        if self.config.cookie {
            h::jsessionid(res.headers_mut(), &req_headers);
        }
        res
    }

    fn cookie(&self, res: &mut Response<HttpBody>, req: &Request<Incoming>) {
        if self.config.cookie {
            h::jsessionid(res.headers_mut(), req.headers());
        }
    }

    /// What the relay learns about the client from the session-creating request.
    fn meta(
        parts: &::http::request::Parts,
        peer: SocketAddr,
        tls: bool,
        transport: TransportKind,
    ) -> ClientMeta {
        ClientMeta {
            peer,
            transport,
            tls,
            headers: parts.headers.clone(),
            query: parts.uri.query().map(str::to_owned),
            client_cert: None,
        }
    }

    /// Reads a request body within the body timeout; the refusal to answer with otherwise.
    async fn body(&self, body: Incoming, limit: usize) -> Result<bytes::Bytes, Response<HttpBody>> {
        match h::read_body(body, limit, self.config.body_timeout).await {
            Ok(bytes) => Ok(bytes),
            Err(e @ h::BodyError::TimedOut) => {
                Err(self.refuse(RefusedReason::SockjsBodyTimeout, h::body_error(&e)))
            }
            Err(e) => Err(h::body_error(&e)),
        }
    }

    /// A receiving request: validates the callback, finds or opens the session (bound to its
    /// creator, under the per-address cap), streams.
    async fn receive(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        id: &str,
        recv: Receiver,
    ) -> Response<HttpBody> {
        let mut callback = String::new();
        if recv.needs_callback() {
            match req.uri().query().and_then(|q| h::form_value(q, "c")) {
                None => return internal_error("\"callback\" parameter required"),
                Some(c) if c.is_empty() => {
                    return internal_error("\"callback\" parameter required")
                }
                Some(c) if !receive::valid_callback(&c) => {
                    return internal_error("invalid \"callback\" parameter")
                }
                Some(c) => callback = c,
            }
        }
        let (parts, body) = req.into_parts();
        if parts.method == Method::POST {
            if let Err(refused) = self.body(body, RECEIVE_BODY_BYTES).await {
                return refused;
            }
        }
        let client = self.client_ip(&parts.headers, peer);
        let binding = self
            .binder
            .bind(&self.credentials(), &parts.headers, client);
        let owner = || {
            let address = self.addresses.admit(client)?;
            Some(Owner {
                binding: Some(binding.clone()),
                address: Some(address),
            })
        };
        if self.registry.get(id).is_none() {
            if let Some(refused) = self.over_rate() {
                return refused;
            }
        }
        let max = self.options.max_sessions;
        let session = match self.registry.get_or_create(id, &self.limits, max, owner) {
            Lookup::Existing(s) if !s.bound_to(&binding) => {
                return self.refuse(RefusedReason::SockjsBinding, h::not_found());
            }
            Lookup::Existing(s) => s,
            Lookup::Created(s, rx, tx) => {
                let meta = Self::meta(&parts, peer, tls, recv.kind());
                (self.on_session)(ClientLink { rx, tx, meta });
                s
            }
            Lookup::Full => return self.too_many_sessions(),
            Lookup::AddressFull => return self.too_many_from_address(),
        };
        let framer = Framer::new(recv, callback);
        receive::receive(&session, framer, self.config.response_limit)
    }

    fn too_many_sessions(&self) -> Response<HttpBody> {
        let res = h::text(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions.");
        self.refuse(RefusedReason::Limit, res)
    }

    /// A new session over `--accept-rate`: 503 with `Retry-After` (counted), or `None`.
    fn over_rate(&self) -> Option<Response<HttpBody>> {
        let wait = self.options.accept_rate.as_ref()?.admit().err()?;
        let res = crate::admission::over_rate_response(wait);
        Some(self.refuse(RefusedReason::AcceptRate, res))
    }

    fn too_many_from_address(&self) -> Response<HttpBody> {
        let res = h::text(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sessions from this address.",
        );
        self.refuse(RefusedReason::SockjsAddressLimit, res)
    }

    /// A sending request: the session must exist and belong to the sender; the body is
    /// bounded in size and time.
    async fn send(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        id: &str,
        kind: SendKind,
    ) -> Response<HttpBody> {
        let Some(session) = self.registry.get(id) else {
            return h::not_found();
        };
        let (parts, body) = req.into_parts();
        let client = self.client_ip(&parts.headers, peer);
        let binding = self
            .binder
            .bind(&self.credentials(), &parts.headers, client);
        if !session.bound_to(&binding) {
            return self.refuse(RefusedReason::SockjsBinding, h::not_found());
        }
        let bytes = match self.body(body, self.options.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(refused) => return refused,
        };
        let res = send::deliver(&session, kind, &parts.headers, bytes).await;
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            return self.refuse(RefusedReason::SockjsInboundFull, res);
        }
        res
    }

    /// The `websocket` transport (`raw == false`) or the raw endpoint.
    fn websocket(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        raw: bool,
    ) -> Response<HttpBody> {
        if self.session_count() >= self.options.max_sessions {
            return self.too_many_sessions();
        }
        if let Some(refused) = self.over_rate() {
            return refused;
        }
        let client = self.client_ip(req.headers(), peer);
        let Some(address) = self.addresses.admit(client) else {
            return self.too_many_from_address();
        };
        let meta = ClientMeta {
            peer,
            transport: TransportKind::SockjsWebsocket,
            tls,
            headers: req.headers().clone(),
            query: req.uri().query().map(str::to_owned),
            client_cert: None,
        };
        websocket::upgrade(self.clone(), req, meta, raw, Some(address))
    }

    /// Open SockJS sessions from `ip`'s address (IPv6: its /64).
    pub fn sessions_from(&self, ip: IpAddr) -> usize {
        self.addresses.count(ip)
    }
}

/// 500 with a plain-text reason.
fn internal_error(reason: &'static str) -> Response<HttpBody> {
    h::text(StatusCode::INTERNAL_SERVER_ERROR, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(""), Route::Greeting);
        assert_eq!(route("/"), Route::Greeting);
        assert_eq!(route("/info"), Route::Info);
        assert_eq!(route("/iframe-1.6.1.html"), Route::Iframe);
        assert_eq!(route("/websocket"), Route::RawWebsocket);
        assert_eq!(
            route("/000/abc/xhr"),
            Route::Session {
                server: "000",
                id: "abc",
                transport: "xhr"
            }
        );
        for bad in [
            "x",
            "/a",
            "/a.html",
            "//",
            "///",
            "/a/a",
            "/a/a/",
            "//xhr",
            "/a./a/xhr",
            "/a/a./xhr",
            "/./././xhr",
            "////xhr",
            "/a/b/c/d",
        ] {
            assert_eq!(route(bad), Route::NotFound, "{bad}");
        }
    }
}
