//! # stompgate-load
//!
//! A load generator for STOMP over WebSocket (plain or TLS), SockJS (its `websocket` and
//! `xhr_streaming` transports, plain or TLS) and plain TCP, plus a minimal fast fake broker, for measuring stompgate against RabbitMQ's own
//! Web-STOMP, direct TCP STOMP, and a raw byte pump. Every run is bounded (a duration or a message count)
//! and only loopback targets are allowed unless `--allow-remote` is given.
//!
//! | module | owns |
//! |---|---|
//! | [`frame`] | a minimal STOMP encoder and stream parser (independent of the gateway's codec) |
//! | [`link`] | client transports: WebSocket, SockJS-over-WebSocket, TCP; the loopback check |
//! | [`xhr`] | SockJS's `xhr_streaming` + `xhr_send` link; the receiving stream's parser |
//! | [`session`] | CONNECT/CONNECTED, SUBSCRIBE with a receipt |
//! | [`roles`] | publisher, subscriber and idle-session tasks; latency stamps |
//! | [`run`] | scenarios and the bounded run |
//! | [`handshake`] | the `handshake` scenario: connection set-up rate and latency |
//! | [`tls`] | the TLS client (`wss://`, `sockjs+xhrs://`): CA, SNI, the plain-or-TLS stream |
//! | [`report`] | the figures, for people and as JSON |
//! | [`procstat`] | RSS and CPU of a local process from `/proc` |
//! | [`broker`] | the fake broker |
//! | [`spawn`] | starting a gateway and learning its address |

pub mod broker;
pub mod frame;
pub mod handshake;
pub mod link;
pub mod procstat;
pub mod report;
pub mod roles;
pub mod run;
pub mod session;
pub mod spawn;
pub mod tls;
pub mod xhr;
