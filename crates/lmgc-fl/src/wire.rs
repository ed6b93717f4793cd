//! What crosses the wire: identifiers, messages and their framing.
//!
//! Every message is `u32` little-endian length + postcard bytes. The control stream (one
//! bidirectional stream per client, opened by the client) carries [`ClientMsg`] and
//! [`ServerMsg`]; each update travels on its own unidirectional stream that starts with an
//! [`UploadHeader`] frame, and each global model on a server-opened unidirectional stream
//! that starts with a [`ModelHeader`] frame. Lengths are checked against limits before a
//! byte is allocated for them.

use std::fmt;

use lmgc_core::PriorFingerprint;
use lmgc_core::payload::PayloadClass;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// Version of this protocol; both sides must speak the same one.
pub const PROTOCOL_VERSION: u32 = 3;

/// The ALPN identifier of the protocol, so a QUIC endpoint of another application is
/// refused during the TLS handshake.
pub const ALPN: &[u8] = b"lmgc-fl/1";

/// Largest control message, in bytes: control messages are small, and a peer that
/// declares more is lying or hostile.
pub const MAX_CONTROL_MESSAGE: u32 = 64 * 1024;

/// A client's name: 1 to 64 characters of `[A-Za-z0-9._-]`, so it is safe in file names
/// and logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    /// Validates a client name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !name.starts_with('.');
        if ok {
            Ok(ClientId(name))
        } else {
            Err(Error::Config(format!(
                "client id {name:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ - (not starting with .)"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ClientId::new(s)
    }
}

impl From<ClientId> for String {
    fn from(c: ClientId) -> String {
        c.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A round number, counted from 0.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Round(pub u64);

impl Round {
    /// The round after this one.
    pub fn next(self) -> Round {
        Round(self.0 + 1)
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// SHA-256 of a byte string (a model or an update as sent). Hex in JSON (state files,
/// metrics), 32 raw bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex(&self.0))
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            let bytes = (0..s.len() / 2)
                .map(|i| {
                    s.get(2 * i..2 * i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect::<Option<Vec<u8>>>();
            match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(b) if s.len() == 64 => Ok(Digest(b)),
                _ => Err(serde::de::Error::custom(format!(
                    "{s:?} is not a SHA-256 in hex"
                ))),
            }
        } else {
            <[u8; 32]>::deserialize(d).map(Digest)
        }
    }
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The first 8 bytes in hex: enough to tell updates apart in file names and logs.
    pub fn short(&self) -> String {
        hex(&self.0[..8])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A codec one side can run, with the prior it needs (for the LLM codecs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecOffer {
    /// The codec's name (`bytegroup`, `lm`, `auto`, ...).
    pub name: String,
    /// The prior an update of this codec is coded with; `None` for classical codecs.
    pub prior: Option<PriorFingerprint>,
}

impl CodecOffer {
    /// A codec that needs no prior.
    pub fn classical(name: &str) -> Self {
        CodecOffer {
            name: name.to_owned(),
            prior: None,
        }
    }
}

impl fmt::Display for CodecOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prior {
            Some(p) => write!(f, "{} with {p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How clients' updates combine with the global model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// Updates are differences to the global model: `global += Σ nₖ Δₖ / Σ nₖ`.
    #[default]
    Delta,
    /// Updates are whole models: `global = Σ nₖ wₖ / Σ nₖ`.
    Weights,
}

/// Messages from a client on its control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// The first message: who the client is and what it can do.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        protocol: u32,
        /// The client's name.
        client: ClientId,
        /// The client's secret token (empty when the connection is authenticated by its
        /// TLS client certificate).
        token: String,
        /// Codecs the client can encode with, most preferred first.
        codecs: Vec<CodecOffer>,
        /// Payload classes the client can send ([`lmgc_core::payload`]), most preferred
        /// first: the aggregator assigns one per round from those.
        payloads: Vec<PayloadClass>,
    },
    /// The client has an update for `round` and asks where to start sending it.
    Offer(Offer),
}

/// A client's update, described before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The round the update belongs to.
    pub round: Round,
    /// SHA-256 of the bytes that will be sent (the `.lmgc` container).
    pub digest: Digest,
    /// Bytes that will be sent.
    pub len: u64,
    /// Raw bytes of the update before compression (the safetensors file).
    pub raw_len: u64,
    /// Training samples behind the update: its FedAvg weight.
    pub samples: u64,
    /// Seconds the client spent compressing.
    pub encode_secs: f64,
}

/// Messages from the aggregator on a client's control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// The handshake succeeded.
    Welcome {
        /// [`PROTOCOL_VERSION`] of the aggregator.
        protocol: u32,
        /// The codec the client must encode its updates with.
        codec: CodecOffer,
        /// Largest update the aggregator accepts, in bytes as sent.
        max_update_bytes: u64,
        /// Total rounds of the run.
        rounds: u64,
        /// How updates combine with the model.
        update: UpdateKind,
        /// Payload classes the aggregator accepts in some round of the run (dense,
        /// quantized, sparse); each [`ServerMsg::RoundStart`] names the one for that round.
        payloads: Vec<PayloadClass>,
    },
    /// The handshake failed; the connection closes after this message.
    Reject {
        /// Why, in words the client can act on.
        reason: String,
    },
    /// Nothing to do for this client right now (not selected, or the round is full).
    Wait {
        /// The aggregator's current round.
        round: Round,
        /// Why.
        reason: String,
    },
    /// The client is selected for `round`; the global model follows on its own stream.
    RoundStart {
        /// The round.
        round: Round,
        /// SHA-256 of the model bytes that follow.
        model: Digest,
        /// The payload class the client sends this round: its first choice among the
        /// classes the round accepts.
        payload: PayloadClass,
    },
    /// Answer to an [`Offer`]: send the update from `offset` on.
    Resume {
        /// The round.
        round: Round,
        /// The update's digest.
        digest: Digest,
        /// Bytes the aggregator already holds.
        offset: u64,
    },
    /// The aggregator has stored this many bytes of the update.
    Ack {
        /// The round.
        round: Round,
        /// The update's digest.
        digest: Digest,
        /// Bytes stored, from the start of the update.
        received: u64,
    },
    /// The update is decoded, verified and part of the round.
    Accepted {
        /// The round.
        round: Round,
    },
    /// The update was refused; the client sits out this round.
    Refused {
        /// The round.
        round: Round,
        /// Why.
        reason: String,
    },
    /// The run is over; the final model follows on its own stream.
    Done {
        /// Rounds run.
        rounds: u64,
        /// SHA-256 of the final model bytes.
        model: Digest,
    },
}

/// First frame of an update stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadHeader {
    /// The round.
    pub round: Round,
    /// The update's digest (as offered).
    pub digest: Digest,
    /// Where the bytes that follow start in the update.
    pub offset: u64,
}

/// First frame of a model stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// The round this model starts (or, after [`ServerMsg::Done`], the number of rounds).
    pub round: Round,
    /// Bytes that follow: an `.lmgc` container of a safetensors file.
    pub len: u64,
    /// Their SHA-256.
    pub digest: Digest,
}

/// A message as one frame: length prefix + postcard.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(msg).expect("wire messages always serialize");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a frame's declared length before anything is allocated for it.
pub fn check_len(len: u32) -> Result<usize> {
    if len > MAX_CONTROL_MESSAGE {
        return Err(Error::Protocol(format!(
            "message of {len} bytes declared, above the limit of {MAX_CONTROL_MESSAGE}"
        )));
    }
    Ok(len as usize)
}

/// Parses a frame body.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    postcard::from_bytes(body).map_err(|e| Error::Protocol(format!("malformed message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn client_ids_are_file_safe() {
        assert!(ClientId::new("client-01.a_b").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(ClientId::new(bad).is_err(), "{bad:?}");
        }
        // A hostile id inside a message is refused while parsing.
        let msg = ClientMsg::Hello {
            protocol: 1,
            client: ClientId("../etc".into()),
            token: String::new(),
            codecs: vec![],
            payloads: vec![PayloadClass::Dense],
        };
        let frame = encode(&msg);
        assert!(decode::<ClientMsg>(&frame[4..]).is_err());
    }

    #[test]
    fn digests_are_hex_in_json_and_bytes_on_the_wire() {
        let d = Digest([0xa5; 32]);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", "a5".repeat(32)));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"a5\"").is_err());
        assert_eq!(postcard::to_stdvec(&d).unwrap().len(), 32);
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        assert!(check_len(MAX_CONTROL_MESSAGE).is_ok());
        assert!(matches!(check_len(u32::MAX), Err(Error::Protocol(_))));
    }

    proptest! {
        #[test]
        fn offers_round_trip(round: u64, d: [u8; 32], len: u64, raw_len: u64, samples: u64, secs in 0f64..1e6) {
            let msg = ClientMsg::Offer(Offer { round: Round(round), digest: Digest(d), len, raw_len, samples, encode_secs: secs });
            let frame = encode(&msg);
            prop_assert_eq!(u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
            prop_assert_eq!(decode::<ClientMsg>(&frame[4..]).unwrap(), msg);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<ClientMsg>(&bytes);
            let _ = decode::<ServerMsg>(&bytes);
            let _ = decode::<UploadHeader>(&bytes);
        }
    }
}
