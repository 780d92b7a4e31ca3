//! rustls configurations for both ends of the gateway, and live certificate reload.
//!
//! | part | what |
//! |---|---|
//! | [`ServerTls`] (`server.rs`) | the `wss://` listener: certificate from PEM files, optional mutual TLS, [`ServerTls::acceptor`] always using the current pair, [`ServerTls::peer_identity`] for the `client-cert` auth backend, plaintext detection |
//! | `reload.rs` | [`ServerTls::reload`] (SIGHUP) and [`ServerTls::spawn_watcher`] (file polling, Kubernetes `..data` symlink swaps) |
//! | [`UpstreamTls`] (`client.rs`) | TLS to the broker: CA bundle or system roots, SNI, client certificate, explicit `insecure` |
//! | [`TlsError`] (`error.rs`) | errors by side, and [`classify_handshake_error`] metric labels |
//! | `pem.rs` | bounded reading of PEM certificates, keys and CA bundles |
//!
//! Both ends use the `ring` provider explicitly, never a process-wide default provider, and
//! offer TLS 1.3 and 1.2 only.

mod client;
mod error;
mod pem;
mod reload;
mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::{host_of, UpstreamTls, UPSTREAM_TLS_HANDSHAKE_TIMEOUT};
pub use error::{classify_handshake_error, TlsError, TlsSide};
pub use pem::MAX_PEM_FILE_BYTES;
pub use reload::DEFAULT_WATCH_INTERVAL;
pub use server::{
    is_tls_client_hello, reject_plaintext, ClientCertNames, ServerTls, CLIENT_HELLO_TIMEOUT,
    PLAINTEXT_ON_TLS_RESPONSE, TLS_HANDSHAKE_TIMEOUT,
};

/// The protocol versions offered on both ends.
static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider used by every configuration built here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
