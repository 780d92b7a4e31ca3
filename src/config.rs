//! Configuration: clap flags, `STOMPGATE_*` environment variables and a TOML file, merged with
//! the precedence flag > env > file > default, then validated into a [`Config`].
//!
//! Every option is an `Option` in [`Options`] so that "not given" is distinguishable from "given
//! as the default"; [`Options::merge`] lays the command line over the file, and
//! [`Config::resolve`] applies defaults and checks the whole.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::stomp::Limits;

/// A secret string (passcode, token, key). Its `Debug` and `Display` print `***`, so it cannot
/// leak through a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself; call only where it must go on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file (as Kubernetes mounts them), trimming one trailing newline.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let s = std::fs::read_to_string(path)?;
        Ok(Secret(s.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// How outbound STOMP frames are put into WebSocket messages (as RabbitMQ's `ws_frame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WsFrameMode {
    /// Text when the frame is valid UTF-8, binary otherwise.
    #[default]
    Auto,
    /// Always text (frames that are not UTF-8 are still sent as binary: text must be UTF-8).
    Text,
    /// Always binary.
    Binary,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Mutual-TLS mode for the client listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// A client certificate is requested but not required.
    #[default]
    Optional,
    /// A verified client certificate is required.
    Required,
}

/// Every option as given on the command line, in the environment or in the TOML file.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(
    name = "stompgate",
    version,
    about = "WebSocket/SockJS-to-TCP STOMP gateway"
)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// A tool to run instead of the gateway.
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Tool>,

    /// TOML configuration file; flags and env override its values.
    #[arg(long, env = "STOMPGATE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print the result and exit (0 when valid, 64 when not).
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,

    /// Client listener address (WebSocket and SockJS). Default `127.0.0.1:8080`.
    #[arg(long, env = "STOMPGATE_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// HTTP path of the STOMP WebSocket endpoint. Default `/ws`.
    #[arg(long, env = "STOMPGATE_WS_PATH")]
    pub ws_path: Option<String>,

    /// Outbound WebSocket message type: `auto` (text when UTF-8), `text` or `binary`. Default `auto`.
    #[arg(long, env = "STOMPGATE_WS_FRAME", value_enum)]
    pub ws_frame: Option<WsFrameMode>,

    /// Allowed `Origin` values for upgrades and SockJS (exact, or `*` for any). Default: any.
    #[arg(
        long = "allowed-origin",
        env = "STOMPGATE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Option<Vec<String>>,

    /// Broker STOMP address(es), `HOST:PORT`, comma-separated. New sessions are spread
    /// round-robin over the healthy addresses (a name resolving to several addresses counts as
    /// several); one that refuses or times out is skipped for `--upstream-down-for`. Default
    /// `127.0.0.1:61613`.
    #[arg(long, env = "STOMPGATE_UPSTREAM", value_delimiter = ',')]
    pub upstream: Option<Vec<String>>,

    /// Broker `login` the gateway presents on every CONNECT.
    #[arg(long, env = "STOMPGATE_UPSTREAM_LOGIN")]
    pub upstream_login: Option<String>,

    /// Broker `passcode` the gateway presents (prefer `--upstream-passcode-file`).
    #[arg(long, env = "STOMPGATE_UPSTREAM_PASSCODE", hide_env_values = true)]
    pub upstream_passcode: Option<Secret>,

    /// File holding the broker `passcode` (one trailing newline is ignored).
    #[arg(long, env = "STOMPGATE_UPSTREAM_PASSCODE_FILE")]
    pub upstream_passcode_file: Option<PathBuf>,

    /// Broker `host` header (the RabbitMQ vhost) the gateway presents. Default: none sent.
    #[arg(long, env = "STOMPGATE_UPSTREAM_VHOST")]
    pub upstream_vhost: Option<String>,

    /// Forward the client's own `login`/`passcode`/`host` to the broker. Off by default: without
    /// it, the gateway refuses to start unless upstream credentials are configured.
    #[arg(long, env = "STOMPGATE_PASSTHROUGH_CREDENTIALS", num_args = 0..=1, default_missing_value = "true")]
    pub passthrough_credentials: Option<bool>,

    /// Timeout for the TCP (and TLS) connection to the broker and its CONNECTED. Default `10s`.
    #[arg(long, env = "STOMPGATE_UPSTREAM_CONNECT_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub upstream_connect_timeout: Option<Duration>,

    /// Use TLS to the broker.
    #[arg(long, env = "STOMPGATE_UPSTREAM_TLS", num_args = 0..=1, default_missing_value = "true")]
    pub upstream_tls: Option<bool>,

    /// CA bundle (PEM) for the broker's certificate. Default: the system roots.
    #[arg(long, env = "STOMPGATE_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// Name to send as SNI and verify in the broker's certificate. Default: the upstream host.
    #[arg(long, env = "STOMPGATE_UPSTREAM_SERVER_NAME")]
    pub upstream_server_name: Option<String>,

    /// Client certificate chain (PEM) presented to the broker.
    #[arg(long, env = "STOMPGATE_UPSTREAM_CLIENT_CERT")]
    pub upstream_client_cert: Option<PathBuf>,

    /// Private key (PEM) for `--upstream-client-cert`.
    #[arg(long, env = "STOMPGATE_UPSTREAM_CLIENT_KEY")]
    pub upstream_client_key: Option<PathBuf>,

    /// Skip verification of the broker's certificate. Dangerous; logs a warning on every connection.
    #[arg(long, env = "STOMPGATE_UPSTREAM_TLS_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub upstream_tls_insecure: Option<bool>,

    /// Admin listener (`/metrics`, `/healthz`, `/readyz`, `/connections`). Default `127.0.0.1:8081`.
    #[arg(long, env = "STOMPGATE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Bearer token required on the admin API (except `/healthz` and `/readyz`). Default: none.
    #[arg(long, env = "STOMPGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// File holding the admin bearer token.
    #[arg(long, env = "STOMPGATE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Largest STOMP frame body accepted from either side, in bytes. Default 4194304 (4 MiB).
    #[arg(long, env = "STOMPGATE_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Largest STOMP command line + header block, in bytes. Default 65536.
    #[arg(long, env = "STOMPGATE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,

    /// Most header lines in one frame. Default 256.
    #[arg(long, env = "STOMPGATE_MAX_HEADERS")]
    pub max_headers: Option<usize>,

    /// Most concurrent client sessions; further upgrades get HTTP 503. Default 100000.
    #[arg(long, env = "STOMPGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Threads that run client connections, each with its own event loop, accepting on its own;
    /// a connection stays on the thread that accepted it. Default: half the CPUs the process
    /// may use (cgroup quota included), at least 1: a relayed message costs the gateway about a
    /// quarter of what it costs the broker, and fewer threads wake less often, so a gateway
    /// sharing a host with its broker leaves it the rest. One thread relays 400,000+ msg/s.
    #[arg(long, env = "STOMPGATE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Let several gateway processes listen on the same client port(s) (`SO_REUSEPORT`); the
    /// kernel spreads new connections over them. For upgrades without downtime (start the
    /// new process, then SIGTERM the old one, which drains) and for hosts whose per-process
    /// file limit is below two descriptors per session. Default `false`.
    #[arg(long, env = "STOMPGATE_REUSE_PORT", num_args = 0..=1, default_missing_value = "true")]
    pub reuse_port: Option<bool>,

    /// Time a client has to send CONNECT after the transport opens. Default `10s`.
    #[arg(long, env = "STOMPGATE_CONNECT_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,

    /// Grace period for open sessions on SIGTERM/SIGINT before they are closed with 1001. Default `30s`.
    #[arg(long, env = "STOMPGATE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,

    /// Serve SockJS under `--sockjs-path`. Default `true`.
    #[arg(long, env = "STOMPGATE_SOCKJS", num_args = 0..=1, default_missing_value = "true")]
    pub sockjs: Option<bool>,

    /// SockJS prefix. Default `/sockjs`.
    #[arg(long, env = "STOMPGATE_SOCKJS_PATH")]
    pub sockjs_path: Option<String>,

    /// SockJS heartbeat interval. Default `25s`.
    #[arg(long, env = "STOMPGATE_SOCKJS_HEARTBEAT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub sockjs_heartbeat: Option<Duration>,

    /// Time a SockJS session survives without a receiving request. Default `5s`.
    #[arg(long, env = "STOMPGATE_SOCKJS_DISCONNECT_DELAY", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub sockjs_disconnect_delay: Option<Duration>,

    /// Bytes a SockJS streaming response carries before it is closed. Default 131072.
    #[arg(long, env = "STOMPGATE_SOCKJS_RESPONSE_LIMIT")]
    pub sockjs_response_limit: Option<usize>,

    /// Set a `JSESSIONID` cookie for sticky load balancing. Default `false`.
    #[arg(long, env = "STOMPGATE_SOCKJS_COOKIE", num_args = 0..=1, default_missing_value = "true")]
    pub sockjs_cookie: Option<bool>,

    /// SockJS transports to switch off (e.g. `jsonp,htmlfile`).
    #[arg(long, env = "STOMPGATE_SOCKJS_DISABLE", value_delimiter = ',')]
    pub sockjs_disable: Option<Vec<String>>,

    /// Most SockJS sessions one client address (an IPv6 /64) may have open at once, counted
    /// apart from `max_connections` so one address cannot take every slot; more get HTTP 429.
    /// Raise it when many browsers share an address (a NAT, or a proxy not listed in
    /// `trusted_proxies`). Default 100.
    #[arg(long, env = "STOMPGATE_SOCKJS_MAX_SESSIONS_PER_ADDRESS")]
    pub sockjs_max_sessions_per_address: Option<usize>,

    /// Time a SockJS POST body has to arrive in full; a slower one gets HTTP 408 and the
    /// connection is closed. Default `10s`.
    #[arg(long, env = "STOMPGATE_SOCKJS_BODY_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub sockjs_body_timeout: Option<Duration>,

    /// Most bytes of client messages one SockJS session queues towards the relay; a send that
    /// finds no room within the send timeout gets HTTP 503. Default 1048576 (1 MiB).
    #[arg(long, env = "STOMPGATE_SOCKJS_INBOUND_BYTES")]
    pub sockjs_inbound_bytes: Option<usize>,

    /// Serve the SockJS transports that cannot carry `Origin` (`jsonp`, `htmlfile`, the iframe
    /// page) and accept session requests without `Origin` even when the policy has a cookie or
    /// `http-basic` backend. Off by default: with such a backend, a page on any site could open
    /// a session with the visitor's credentials. Without one they are on (see `sockjs_disable`).
    #[arg(long, env = "STOMPGATE_SOCKJS_ORIGINLESS_TRANSPORTS", num_args = 0..=1, default_missing_value = "true")]
    pub sockjs_originless_transports: Option<bool>,

    /// Serve the demo page at `/`. Default `false`.
    #[arg(long, env = "STOMPGATE_DEMO", num_args = 0..=1, default_missing_value = "true")]
    pub demo: Option<bool>,

    /// Policy file (TOML: auth backends, users, identity mapping, ACLs); reloaded on SIGHUP and
    /// on change.
    #[arg(long, env = "STOMPGATE_POLICY")]
    pub policy: Option<PathBuf>,

    /// TLS listener for `wss://`. Without it, `--tls-cert` makes `--listen` itself TLS.
    #[arg(long, env = "STOMPGATE_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,

    /// Certificate chain (PEM) for the client listener; reloaded when the file changes.
    #[arg(long, env = "STOMPGATE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM: PKCS#8, RSA or EC) for `--tls-cert`.
    #[arg(long, env = "STOMPGATE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA bundle (PEM) to verify client certificates (mutual TLS).
    #[arg(long, env = "STOMPGATE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Whether a client certificate is `optional` or `required` when `--tls-client-ca` is set.
    #[arg(long, env = "STOMPGATE_TLS_CLIENT_AUTH", value_enum)]
    pub tls_client_auth: Option<ClientAuthMode>,

    /// Log format: `text` or `json`. Default `text`.
    #[arg(long, env = "STOMPGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter in `RUST_LOG` syntax. Default `info` (or `RUST_LOG`).
    #[arg(long, env = "STOMPGATE_LOG")]
    pub log: Option<String>,

    /// Export per-connection series (`stompgate_connection_*{connection="<id>"}`). Off by
    /// default: every live session adds series, so the count is capped by
    /// `metrics_per_connection_cap`.
    #[arg(long, env = "STOMPGATE_METRICS_PER_CONNECTION", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_per_connection: Option<bool>,

    /// Most sessions that get per-connection series at once (later ones get none). Default 100.
    #[arg(long, env = "STOMPGATE_METRICS_PER_CONNECTION_CAP")]
    pub metrics_per_connection_cap: Option<usize>,

    /// Proxies (CIDR list, e.g. `10.0.0.0/8,127.0.0.1/32`) whose `X-Forwarded-For` is believed
    /// for the client address in logs and `/connections`. Default: none (the TCP peer).
    #[arg(long, env = "STOMPGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,

    /// Most connections one client address (an IPv6 /64) may hold before they authenticate,
    /// WebSocket and SockJS together; further ones get an ERROR and are closed. 0: no limit.
    /// Default 256 (room for a reconnect storm from one NAT address).
    #[arg(long, env = "STOMPGATE_MAX_PENDING_PER_ADDRESS")]
    pub max_pending_per_address: Option<usize>,

    /// Threads that check passwords (with `--policy`); eight more checks per thread may wait,
    /// later logins are refused as busy. Each holds one argon2id working memory (~19 MiB with
    /// the default parameters). Default: the CPU count, at most 8.
    #[arg(long, env = "STOMPGATE_LOGIN_THREADS")]
    pub login_threads: Option<usize>,

    /// A session that negotiated no client heart-beats is closed after this long without a
    /// byte from the client (a frame or a heart-beat EOL), so an abandoned socket cannot hold a
    /// broker connection forever. `0s` switches it off. Default `300s`: stomp.js negotiates
    /// heart-beats by default, and proxies and load balancers drop idle sockets sooner.
    #[arg(long, env = "STOMPGATE_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,

    /// Broker logins a client may not use under `--passthrough-credentials` (exact, ASCII
    /// case-insensitive). Default `guest` (RabbitMQ lets it in over the gateway's loopback).
    #[arg(
        long = "passthrough-deny-login",
        env = "STOMPGATE_PASSTHROUGH_DENY_LOGINS",
        value_delimiter = ','
    )]
    pub passthrough_deny_logins: Option<Vec<String>>,

    /// Allow a non-loopback `admin_listen` without an admin token (logged at start). Off by
    /// default: the gateway refuses to start that way.
    #[arg(long, env = "STOMPGATE_ADMIN_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub admin_insecure: Option<bool>,

    /// `Host` names the admin API answers besides IP addresses and names without a dot
    /// (against DNS rebinding). Default: none.
    #[arg(
        long = "admin-allowed-host",
        env = "STOMPGATE_ADMIN_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub admin_allowed_hosts: Option<Vec<String>>,

    /// Browser `Origin`s allowed to make state-changing admin requests (`POST /trace`,
    /// `DELETE …`). Default: none (a request with an `Origin` is refused).
    #[arg(
        long = "admin-allowed-origin",
        env = "STOMPGATE_ADMIN_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub admin_allowed_origins: Option<Vec<String>>,

    /// Broker dialect for policy checks: `rabbitmq`, `activemq` or `generic` (destination
    /// grammar and guarded headers). Default: from CONNECTED's `server` header, `generic` when
    /// it names neither.
    #[arg(long, env = "STOMPGATE_BROKER", value_enum)]
    pub broker: Option<crate::policy::Dialect>,

    /// How long an upstream address that refused, reset or timed out is skipped when new
    /// sessions are spread over `--upstream` (it is still tried when every address is down).
    /// Default `5s`: a restarted node gets sessions again within seconds, while a dead one is
    /// not hit by every reconnecting browser.
    #[arg(long, env = "STOMPGATE_UPSTREAM_DOWN_FOR", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub upstream_down_for: Option<Duration>,

    /// New client connections (WebSocket upgrades and SockJS sessions) accepted per second,
    /// across all listeners; further ones get HTTP 503 with `Retry-After`. `0` switches it off.
    /// Default 1000: after a broker node fails, stomp.js clients reconnect within seconds of
    /// each other, and each new session costs a broker CONNECT (and with a policy, a password
    /// check); spreading 10,000 of them over ~10 s keeps the surviving nodes serving.
    #[arg(long, env = "STOMPGATE_ACCEPT_RATE")]
    pub accept_rate: Option<u32>,

    /// How many new connections may arrive at once above `--accept-rate` (the token bucket's
    /// size). Default: one second's worth (`accept_rate`).
    #[arg(long, env = "STOMPGATE_ACCEPT_BURST")]
    pub accept_burst: Option<u32>,
}

/// Tools built into the binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tool {
    /// Print an argon2id hash of a password (read from stdin) for a `static` users file.
    HashPassword(crate::policy::HashPasswordArgs),
    /// GET an admin URL once (default `/healthz` on `--admin-listen`); exit 0 on `200`, 1
    /// otherwise. For container HEALTHCHECKs in images without curl.
    Healthcheck(crate::healthcheck::HealthcheckArgs),
}

macro_rules! merge_fields {
    ($hi:ident, $lo:ident; $($f:ident),* $(,)?) => {
        $( if $hi.$f.is_none() { $hi.$f = $lo.$f; } )*
    };
}

impl Options {
    /// Lays `self` (command line and env, already merged by clap) over `file`.
    pub fn merge(mut self, file: Options) -> Options {
        merge_fields!(self, file;
            listen, ws_path, ws_frame, allowed_origins, upstream, upstream_login,
            upstream_passcode, upstream_passcode_file, upstream_vhost, passthrough_credentials,
            upstream_connect_timeout, upstream_tls, upstream_ca, upstream_server_name,
            upstream_client_cert, upstream_client_key, upstream_tls_insecure, admin_listen,
            admin_token, admin_token_file, max_frame_bytes, max_header_bytes, max_headers,
            max_connections, worker_threads, reuse_port, connect_timeout, shutdown_grace, sockjs, sockjs_path,
            sockjs_heartbeat, sockjs_disconnect_delay, sockjs_response_limit, sockjs_cookie,
            sockjs_disable, demo, policy, tls_listen, tls_cert, tls_key, tls_client_ca,
            tls_client_auth, log_format, log,
        );
        merge_fields!(self, file;
            max_pending_per_address, idle_timeout, passthrough_deny_logins, admin_insecure,
            admin_allowed_hosts, admin_allowed_origins, login_threads,
        );
        merge_fields!(self, file;
            metrics_per_connection, metrics_per_connection_cap, trusted_proxies,
        );
        merge_fields!(self, file;
            upstream_down_for, accept_rate, accept_burst,
        );
        merge_fields!(self, file;
            sockjs_max_sessions_per_address, sockjs_body_timeout, sockjs_inbound_bytes,
            sockjs_originless_transports,
        );
        merge_fields!(self, file; broker);
        self
    }

    /// Parses the command line and env, reads `--config` if given, and merges the two.
    pub fn load() -> Result<Options, ConfigError> {
        let cli = Options::parse();
        let file = match &cli.config {
            Some(path) => Options::from_file(path)?,
            None => Options::default(),
        };
        let (check, command) = (cli.check_config, cli.command.clone());
        let mut merged = cli.merge(file);
        merged.check_config = check;
        merged.command = command;
        Ok(merged)
    }

    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Options, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::new("config", format!("{}: {}", path.display(), e.message())))
    }
}

/// A configuration problem: which field, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in `{field}`: {fix}")]
pub struct ConfigError {
    /// The option at fault (TOML key spelling).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub fix: String,
}

impl ConfigError {
    fn new(field: &'static str, fix: impl Into<String>) -> Self {
        ConfigError {
            field,
            fix: fix.into(),
        }
    }
}

/// Broker connection settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Addresses (`host:port`): the members new sessions are spread over.
    pub addrs: Vec<String>,
    /// The static identity presented on CONNECT (unless pass-through).
    pub identity: crate::policy::UpstreamIdentity,
    /// Forward the client's own credentials.
    pub passthrough: bool,
    /// Broker logins refused under pass-through (ASCII case-insensitive).
    pub deny_logins: Vec<String>,
    /// TCP + TLS + CONNECTED timeout.
    pub connect_timeout: Duration,
    /// TLS to the broker, if enabled.
    pub tls: Option<UpstreamTlsConfig>,
    /// How long an address that failed is skipped.
    pub down_for: Duration,
}

/// TLS towards the broker.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTlsConfig {
    /// CA bundle; system roots when absent.
    pub ca: Option<PathBuf>,
    /// SNI / verification name; the upstream host when absent.
    pub server_name: Option<String>,
    /// Client certificate chain and key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Skip verification.
    pub insecure: bool,
}

/// TLS on the client listener.
#[derive(Debug, Clone)]
pub struct ListenerTlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// Client CA bundle for mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required.
    pub client_auth: ClientAuthMode,
}

/// SockJS settings.
#[derive(Debug, Clone)]
pub struct SockjsConfig {
    /// Serve SockJS at all.
    pub enabled: bool,
    /// URL prefix.
    pub path: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Session expiry after the last receiving request.
    pub disconnect_delay: Duration,
    /// Streaming response byte limit.
    pub response_limit: usize,
    /// Set `JSESSIONID`.
    pub cookie: bool,
    /// Transports switched off.
    pub disabled: Vec<String>,
    /// Most sessions per client address (IPv6: per /64).
    pub max_sessions_per_address: usize,
    /// Time allowed for a POST body.
    pub body_timeout: Duration,
    /// Most bytes queued from the client towards the relay, per session.
    pub inbound_bytes: usize,
    /// Origin-less transports and requests allowed even with browser-sent credentials.
    pub originless_transports: bool,
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain client listener (TLS when `tls` is set and `tls_listen` is not).
    pub listen: SocketAddr,
    /// Separate TLS listener.
    pub tls_listen: Option<SocketAddr>,
    /// TLS settings for the client side.
    pub tls: Option<ListenerTlsConfig>,
    /// WebSocket path.
    pub ws_path: String,
    /// Outbound message type.
    pub ws_frame: WsFrameMode,
    /// Allowed origins (empty: any).
    pub allowed_origins: Vec<String>,
    /// Broker.
    pub upstream: UpstreamConfig,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Admin bearer token.
    pub admin_token: Option<Secret>,
    /// Frame limits (both directions).
    pub limits: Limits,
    /// Concurrent session cap.
    pub max_connections: usize,
    /// Connection threads (at least 1).
    pub worker_threads: usize,
    /// `SO_REUSEPORT` on the client listener(s).
    pub reuse_port: bool,
    /// Time allowed for the client's CONNECT.
    pub connect_timeout: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// SockJS.
    pub sockjs: SockjsConfig,
    /// Demo page.
    pub demo: bool,
    /// Policy file.
    pub policy: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: Option<String>,
    /// Per-connection metric series (opt-in).
    pub metrics_per_connection: bool,
    /// Cap on sessions with per-connection series.
    pub metrics_per_connection_cap: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Unauthenticated connections per client address (0: no limit).
    pub max_pending_per_address: usize,
    /// Threads that check passwords (at least 1).
    pub login_threads: usize,
    /// Idle limit for sessions without client heart-beats (`None`: off).
    pub idle_timeout: Option<Duration>,
    /// Admin API reachable beyond loopback without a token, on purpose.
    pub admin_insecure: bool,
    /// Extra `Host` names the admin API answers.
    pub admin_allowed_hosts: Vec<String>,
    /// `Origin`s allowed on state-changing admin requests.
    pub admin_allowed_origins: Vec<String>,
    /// Broker dialect for policy checks (`None`: detected per session from CONNECTED).
    pub broker: Option<crate::policy::Dialect>,
    /// New connections per second (0: no limit).
    pub accept_rate: u32,
    /// Token-bucket size for `accept_rate`.
    pub accept_burst: u32,
}

const SOCKJS_TRANSPORTS: [&str; 6] = [
    "websocket",
    "xhr",
    "xhr_streaming",
    "eventsource",
    "htmlfile",
    "jsonp",
];

impl Config {
    /// Applies defaults and validates.
    pub fn resolve(o: Options) -> Result<Config, ConfigError> {
        let passcode = match (o.upstream_passcode, &o.upstream_passcode_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "upstream_passcode",
                    "give either upstream_passcode or upstream_passcode_file, not both",
                ))
            }
            (Some(p), None) => Some(p),
            (None, Some(path)) => Some(Secret::from_file(path).map_err(|e| {
                ConfigError::new(
                    "upstream_passcode_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
            (None, None) => None,
        };
        let admin_token = match (o.admin_token, &o.admin_token_file) {
            (Some(t), _) => Some(t),
            (None, Some(path)) => Some(Secret::from_file(path).map_err(|e| {
                ConfigError::new(
                    "admin_token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
            (None, None) => None,
        };
        let admin_insecure = o.admin_insecure.unwrap_or(false);
        let admin_listen = o
            .admin_listen
            .unwrap_or_else(|| "127.0.0.1:8081".parse().expect("literal"));
        if !admin_listen.ip().is_loopback() && admin_token.is_none() && !admin_insecure {
            return Err(ConfigError::new(
                "admin_token",
                format!(
                    "admin_listen {admin_listen} is reachable beyond loopback: set admin_token \
                     (or admin_token_file), listen on 127.0.0.1, or pass --admin-insecure"
                ),
            ));
        }
        let passthrough = o.passthrough_credentials.unwrap_or(false);
        let identity = crate::policy::UpstreamIdentity {
            login: o.upstream_login,
            passcode,
            host: o.upstream_vhost,
        };
        if !passthrough && o.policy.is_none() && identity.login.is_none() {
            return Err(ConfigError::new(
                "upstream_login",
                "no broker credentials configured: set --upstream-login and --upstream-passcode(-file), \
                 or a --policy file, or choose --passthrough-credentials explicitly",
            ));
        }
        if o.worker_threads == Some(0) || o.worker_threads > Some(MAX_WORKER_THREADS) {
            return Err(ConfigError::new(
                "worker_threads",
                format!(
                    "must be between 1 and {MAX_WORKER_THREADS}; leave it unset for half the CPUs"
                ),
            ));
        }
        if passthrough && identity.login.is_some() {
            return Err(ConfigError::new("passthrough_credentials", "pass-through forwards the client's credentials; drop --upstream-login or --passthrough-credentials"));
        }
        let addrs = o
            .upstream
            .unwrap_or_else(|| vec!["127.0.0.1:61613".to_owned()]);
        for a in &addrs {
            if a.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(ConfigError::new(
                    "upstream",
                    format!("`{a}` is not HOST:PORT"),
                ));
            }
        }
        let tls = match (o.tls_cert, o.tls_key) {
            (Some(cert), Some(key)) => Some(ListenerTlsConfig {
                cert,
                key,
                client_ca: o.tls_client_ca,
                client_auth: o.tls_client_auth.unwrap_or_default(),
            }),
            (None, None) if o.tls_listen.is_some() => {
                return Err(ConfigError::new(
                    "tls_listen",
                    "a TLS listener needs --tls-cert and --tls-key",
                ))
            }
            (None, None) if o.tls_client_ca.is_some() => {
                return Err(ConfigError::new(
                    "tls_client_ca",
                    "mutual TLS needs --tls-cert and --tls-key",
                ))
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::new(
                    "tls_cert",
                    "give both --tls-cert and --tls-key",
                ))
            }
        };
        let upstream_tls = o.upstream_tls.unwrap_or(false).then(|| UpstreamTlsConfig {
            ca: o.upstream_ca.clone(),
            server_name: o.upstream_server_name.clone(),
            client_cert: o
                .upstream_client_cert
                .clone()
                .zip(o.upstream_client_key.clone()),
            insecure: o.upstream_tls_insecure.unwrap_or(false),
        });
        if o.upstream_client_cert.is_some() != o.upstream_client_key.is_some() {
            return Err(ConfigError::new(
                "upstream_client_cert",
                "give both --upstream-client-cert and --upstream-client-key",
            ));
        }
        let ws_path = o.ws_path.unwrap_or_else(|| "/ws".to_owned());
        check_path("ws_path", &ws_path)?;
        let sockjs_path = o.sockjs_path.unwrap_or_else(|| "/sockjs".to_owned());
        check_path("sockjs_path", &sockjs_path)?;
        let disabled = o.sockjs_disable.unwrap_or_default();
        if let Some(bad) = disabled
            .iter()
            .find(|t| !SOCKJS_TRANSPORTS.contains(&t.as_str()))
        {
            return Err(ConfigError::new(
                "sockjs_disable",
                format!(
                    "unknown transport `{bad}`; known: {}",
                    SOCKJS_TRANSPORTS.join(", ")
                ),
            ));
        }
        if o.sockjs_max_sessions_per_address == Some(0) || o.sockjs_inbound_bytes == Some(0) {
            return Err(ConfigError::new(
                "sockjs_max_sessions_per_address",
                "sockjs_max_sessions_per_address and sockjs_inbound_bytes must be positive",
            ));
        }
        let limits = Limits {
            max_body_bytes: o.max_frame_bytes.unwrap_or(4 * 1024 * 1024),
            max_header_bytes: o.max_header_bytes.unwrap_or(64 * 1024),
            max_headers: o.max_headers.unwrap_or(256),
        };
        if limits.max_body_bytes == 0 || limits.max_header_bytes < 64 || limits.max_headers == 0 {
            return Err(ConfigError::new(
                "max_frame_bytes",
                "frame limits must be positive (max_header_bytes at least 64)",
            ));
        }
        Ok(Config {
            listen: o
                .listen
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("literal")),
            tls_listen: o.tls_listen,
            tls,
            ws_path,
            ws_frame: o.ws_frame.unwrap_or_default(),
            allowed_origins: o.allowed_origins.unwrap_or_default(),
            upstream: UpstreamConfig {
                addrs,
                identity,
                passthrough,
                deny_logins: o
                    .passthrough_deny_logins
                    .unwrap_or_else(|| vec!["guest".to_owned()]),
                connect_timeout: o
                    .upstream_connect_timeout
                    .unwrap_or(Duration::from_secs(10)),
                tls: upstream_tls,
                down_for: o.upstream_down_for.unwrap_or(Duration::from_secs(5)),
            },
            admin_listen,
            admin_token,
            limits,
            max_connections: o.max_connections.unwrap_or(100_000),
            worker_threads: o.worker_threads.unwrap_or_else(default_worker_threads),
            reuse_port: o.reuse_port.unwrap_or(false),
            connect_timeout: o.connect_timeout.unwrap_or(Duration::from_secs(10)),
            shutdown_grace: o.shutdown_grace.unwrap_or(Duration::from_secs(30)),
            sockjs: SockjsConfig {
                enabled: o.sockjs.unwrap_or(true),
                path: sockjs_path,
                heartbeat: o.sockjs_heartbeat.unwrap_or(Duration::from_secs(25)),
                disconnect_delay: o.sockjs_disconnect_delay.unwrap_or(Duration::from_secs(5)),
                response_limit: o.sockjs_response_limit.unwrap_or(128 * 1024),
                cookie: o.sockjs_cookie.unwrap_or(false),
                disabled,
                max_sessions_per_address: o.sockjs_max_sessions_per_address.unwrap_or(100),
                body_timeout: o.sockjs_body_timeout.unwrap_or(Duration::from_secs(10)),
                inbound_bytes: o.sockjs_inbound_bytes.unwrap_or(1024 * 1024),
                originless_transports: o.sockjs_originless_transports.unwrap_or(false),
            },
            demo: o.demo.unwrap_or(false),
            policy: o.policy,
            log_format: o.log_format.unwrap_or_default(),
            log: o.log,
            metrics_per_connection: o.metrics_per_connection.unwrap_or(false),
            metrics_per_connection_cap: o.metrics_per_connection_cap.unwrap_or(100),
            trusted_proxies: o.trusted_proxies.unwrap_or_default(),
            max_pending_per_address: o.max_pending_per_address.unwrap_or(256),
            login_threads: o
                .login_threads
                .unwrap_or_else(default_login_threads)
                .clamp(1, MAX_LOGIN_THREADS),
            idle_timeout: Some(o.idle_timeout.unwrap_or(Duration::from_secs(300)))
                .filter(|d| !d.is_zero()),
            admin_insecure,
            admin_allowed_hosts: o.admin_allowed_hosts.unwrap_or_default(),
            admin_allowed_origins: o.admin_allowed_origins.unwrap_or_default(),
            broker: o.broker,
            accept_rate: o.accept_rate.unwrap_or(1000),
            accept_burst: o
                .accept_burst
                .unwrap_or_else(|| o.accept_rate.unwrap_or(1000))
                .max(1),
        })
    }

    /// A configuration for tests: loopback listeners on port 0, the given broker and identity.
    pub fn for_tests(upstream: &str, login: &str, passcode: &str) -> Config {
        let o = Options {
            listen: Some("127.0.0.1:0".parse().expect("literal")),
            admin_listen: Some("127.0.0.1:0".parse().expect("literal")),
            upstream: Some(vec![upstream.to_owned()]),
            upstream_login: Some(login.to_owned()),
            upstream_passcode: Some(Secret::new(passcode)),
            // Tests open sessions in bursts; tests/accept_rate.rs sets a rate of its own.
            accept_rate: Some(0),
            ..Options::default()
        };
        Config::resolve(o).expect("test configuration is valid")
    }
}

/// Most password-checking threads (`login_threads`).
const MAX_LOGIN_THREADS: usize = 64;

/// One password-checking thread per CPU the process may use, at most 8: more would only
/// queue inside the CPU, and each holds an argon2 working memory.
fn default_login_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8)
}

/// Most connection threads `worker_threads` accepts.
const MAX_WORKER_THREADS: usize = 1024;

/// Half the CPUs the process may use, at least one (see `Options::worker_threads`).
fn default_worker_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    (cpus / 2).max(1)
}

fn check_path(field: &'static str, p: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') {
        return Err(ConfigError::new(
            field,
            format!("`{p}` must start with `/`, not end with `/`, and not be `/` alone"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut v = vec!["stompgate"];
        v.extend_from_slice(args);
        Options::try_parse_from(v).unwrap()
    }

    #[test]
    fn refuses_to_start_without_credentials_unless_passthrough() {
        let err = Config::resolve(opts(&[])).unwrap_err();
        assert_eq!(err.field, "upstream_login");
        assert!(
            Config::resolve(opts(&["--passthrough-credentials"]))
                .unwrap()
                .upstream
                .passthrough
        );
        let c = Config::resolve(opts(&[
            "--upstream-login",
            "svc",
            "--upstream-passcode",
            "pw",
        ]))
        .unwrap();
        assert_eq!(c.upstream.identity.login.as_deref(), Some("svc"));
    }

    #[test]
    fn a_public_admin_listener_needs_a_token_or_admin_insecure() {
        let public = ["--upstream-login", "a", "--admin-listen", "0.0.0.0:8081"];
        let e = Config::resolve(opts(&public)).unwrap_err();
        assert_eq!(e.field, "admin_token");
        let mut with_token = public.to_vec();
        with_token.extend(["--admin-token", "t"]);
        assert!(Config::resolve(opts(&with_token)).is_ok());
        let mut insecure = public.to_vec();
        insecure.push("--admin-insecure");
        assert!(Config::resolve(opts(&insecure)).unwrap().admin_insecure);
        let c = Config::resolve(opts(&["--upstream-login", "a"])).unwrap();
        assert!(c.admin_token.is_none() && c.admin_listen.ip().is_loopback());
        assert_eq!(c.upstream.deny_logins, ["guest"]);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        let off =
            Config::resolve(opts(&["--upstream-login", "a", "--idle-timeout", "0s"])).unwrap();
        assert_eq!(off.idle_timeout, None);
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let file: Options = toml::from_str("listen = \"127.0.0.1:9000\"\nws_path = \"/stomp\"\nupstream_login = \"f\"\nconnect_timeout = \"3s\"").unwrap();
        let c = Config::resolve(opts(&["--listen", "127.0.0.1:9001"]).merge(file)).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.ws_path, "/stomp");
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.admin_listen.port(), 8081);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_name_the_field() {
        assert!(toml::from_str::<Options>("lisen = \"x\"").is_err());
        let e = Config::resolve(opts(&["--upstream-login", "a", "--ws-path", "ws"])).unwrap_err();
        assert_eq!(e.field, "ws_path");
        let e = Config::resolve(opts(&[
            "--upstream-login",
            "a",
            "--sockjs-disable",
            "smoke",
        ]))
        .unwrap_err();
        assert_eq!(e.field, "sockjs_disable");
    }

    #[test]
    fn sockjs_limits_have_defaults_flags_and_toml_keys() {
        let c = Config::resolve(opts(&["--upstream-login", "a"])).unwrap();
        assert_eq!(c.sockjs.max_sessions_per_address, 100);
        assert_eq!(c.sockjs.body_timeout, Duration::from_secs(10));
        assert_eq!(c.sockjs.inbound_bytes, 1024 * 1024);
        assert!(!c.sockjs.originless_transports);
        let file: Options = toml::from_str(
            "sockjs_max_sessions_per_address = 7\nsockjs_body_timeout = \"2s\"\n\
             sockjs_inbound_bytes = 4096\nsockjs_originless_transports = true",
        )
        .unwrap();
        let c = Config::resolve(opts(&["--upstream-login", "a"]).merge(file)).unwrap();
        assert_eq!(c.sockjs.max_sessions_per_address, 7);
        assert_eq!(c.sockjs.body_timeout, Duration::from_secs(2));
        assert_eq!(c.sockjs.inbound_bytes, 4096);
        assert!(c.sockjs.originless_transports);
        let args = [
            "--upstream-login",
            "a",
            "--sockjs-max-sessions-per-address",
            "0",
        ];
        let e = Config::resolve(opts(&args)).unwrap_err();
        assert_eq!(e.field, "sockjs_max_sessions_per_address");
    }

    #[test]
    fn failover_and_accept_rate_have_defaults_flags_and_toml_keys() {
        let c = Config::resolve(opts(&["--upstream-login", "a"])).unwrap();
        assert_eq!(c.upstream.down_for, Duration::from_secs(5));
        assert_eq!((c.accept_rate, c.accept_burst), (1000, 1000));
        let file: Options =
            toml::from_str("upstream_down_for = \"2s\"\naccept_rate = 50\naccept_burst = 5")
                .unwrap();
        let c = Config::resolve(opts(&["--upstream-login", "a"]).merge(file)).unwrap();
        assert_eq!(c.upstream.down_for, Duration::from_secs(2));
        assert_eq!((c.accept_rate, c.accept_burst), (50, 5));
        let args = ["--upstream-login", "a", "--accept-rate", "20"];
        let c = Config::resolve(opts(&args)).unwrap();
        assert_eq!(
            (c.accept_rate, c.accept_burst),
            (20, 20),
            "burst follows the rate"
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let c = Config::resolve(opts(&[
            "--upstream-login",
            "a",
            "--upstream-passcode",
            "hunter2",
        ]))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn broker_dialect_from_flag_and_file() {
        use crate::policy::Dialect;
        let base = ["--upstream-login", "a"];
        let c = Config::resolve(opts(&base)).unwrap();
        assert_eq!(c.broker, None, "detected per session when unset");
        let mut args = base.to_vec();
        args.extend(["--broker", "activemq"]);
        let c = Config::resolve(opts(&args)).unwrap();
        assert_eq!(c.broker, Some(Dialect::ActiveMq));
        let file: Options = toml::from_str("broker = \"rabbitmq\"").unwrap();
        let c = Config::resolve(opts(&base).merge(file)).unwrap();
        assert_eq!(c.broker, Some(Dialect::RabbitMq));
        assert!(toml::from_str::<Options>("broker = \"kafka\"").is_err());
    }
}
