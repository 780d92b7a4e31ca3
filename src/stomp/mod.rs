//! STOMP 1.0/1.1/1.2 framing: [`Frame`], [`Command`], the incremental [`Decoder`] with limits,
//! the [`encode`] functions, and version and heart-beat negotiation. No I/O, no tokio.
//!
//! Client frames are read the way the brokers will read what the gateway forwards
//! ([`Decoder::for_client`], rules and their reasons in `client_rules.rs`): one framing, the
//! broker's.

mod client_rules;
mod command;
mod decoder;
mod encoder;
mod escape;
mod frame;
mod negotiate;

pub use client_rules::check_connect_header;
pub use command::Command;
pub use decoder::{DecodeError, Decoder, Item, Limits};
pub use encoder::{encode, encode_heartbeat};
pub use escape::{escape_into, unescape, write_verbatim, EscapeError};
pub use frame::{Frame, Header};
pub use negotiate::{negotiate_heartbeat, parse_heartbeat, HeartBeat, Version};
