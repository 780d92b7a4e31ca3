//! # stompgate
//!
//! A WebSocket/SockJS-to-TCP STOMP gateway. A browser (stomp.js) connects over `ws://`,
//! `wss://` or SockJS; the gateway authenticates it, rewrites its CONNECT (broker identity and
//! vhost), checks destinations, and relays frames to one upstream TCP STOMP connection per
//! browser, re-framing at frame boundaries in both directions.
//!
//! Module map (read in this order):
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | CLI flags, `STOMPGATE_*` env, TOML file, validation, secrets |
//! | [`logging`] | `tracing` set-up (text or JSON) |
//! | [`stomp`] | frames, the incremental decoder with limits, the encoder, version rules (no I/O) |
//! | [`transport`] | the [`transport::ClientLink`] halves; WebSocket ([`transport::ws`]) and SockJS ([`transport::sockjs`]) |
//! | [`policy`] | authentication, CONNECT rewrite, destination ACLs (pure functions) |
//! | [`relay`] | one session's state machine and its two pumps |
//! | [`reload`] | SIGHUP and file-change reloads of the policy and certificates |
//! | [`upstream`] | connecting to the broker: members of the address list, spread and failover |
//! | [`server`] | listeners, accept loop, limits, graceful drain |
//! | [`admission`] | the accept-rate limit (token bucket, 503 + `Retry-After`) |
//! | [`shards`] | the connection threads: one event loop each, a connection pinned to one |
//! | [`tls`] | rustls configurations and certificate reload |
//! | [`metrics`] | the Prometheus registry and the live-connection table |
//! | [`admin`] | `/metrics`, `/healthz`, `/readyz`, `/connections` |
//! | [`demo`] | the demo page (`demo/`), embedded and served at `/` with `--demo` |
//! | [`healthcheck`] | `stompgate healthcheck`: one bounded GET of `/healthz` for container HEALTHCHECKs |

pub mod admin;
pub mod admission;
pub mod config;
pub mod demo;
pub mod healthcheck;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod relay;
pub mod reload;
pub mod server;
pub mod shards;
pub mod stomp;
pub mod tls;
pub mod transport;
pub mod upstream;
