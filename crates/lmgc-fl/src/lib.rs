//! # lmgc-fl
//!
//! The federated-learning transport of lmgc: a QUIC (TLS 1.3) aggregator and its clients,
//! built for updates of many megabytes, compressed losslessly.
//!
//! ```text
//!  client ── QUIC/TLS 1.3 (ALPN lmgc-fl/1) ──────────────────────────── aggregator
//!   Hello{id, token, codecs,  ── control stream (bidi) ──▶  auth, version, codec,
//!         payload classes}                                   payload classes of the run
//!                             ◀── Welcome / Reject
//!                             ◀── RoundStart{round, digest,    + model on a uni stream
//!                                            payload class}    (the round's schedule)
//!   train, reduce, encode (.lmgc)
//!   Offer{digest, len, samples} ─▶                    ◀── Resume{offset}
//!   update bytes [offset..)   ── uni stream ──────────▶  partial file, Ack{received}
//!                                                        digest, decode, check → state
//!                             ◀── Accepted / Refused
//!                                                        quorum or deadline → FedAvg
//! ```
//!
//! - [`aggregator`]: the protocol core, sans IO: handshake, selection, uploads, stragglers,
//!   on a caller-supplied clock.
//! - [`server`] and [`client`]: the tokio + quinn drivers.
//! - [`wire`]: messages and framing; [`tls`]: identity, pinning, transport settings;
//!   [`auth`]: client tokens.
//! - [`fedavg`]: the weighted mean; [`store`]: the crash-safe state directory.
//! - [`codec`]: the boundary to the codecs ([`codec::UpdateCodecs`]); [`trainer`]: the
//!   boundary to local training ([`trainer::Trainer`]).
//! - [`config`]: the TOML files of `lmgc serve` and `lmgc client`.

pub mod aggregator;
pub mod auth;
pub mod client;
pub mod codec;
pub mod config;
mod error;
pub mod fedavg;
pub mod server;
pub mod store;
mod stream;
pub mod tls;
pub mod trainer;
pub mod wire;

pub use error::{Error, Result};
