//! The client's driver: connect, authenticate, and for every round it is selected for:
//! receive the global model, train, encode, upload (resuming where the aggregator stopped
//! receiving), until the run is done.
//!
//! The encoded update is kept in the client's state directory until the aggregator accepts
//! it, so a client that loses its connection, or is killed and restarted, sends only the
//! bytes the aggregator does not have, and does not train again.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lmgc_core::Gradient;
use lmgc_core::fsutil::write_atomic;
use lmgc_core::io::safetensors_bytes;
use lmgc_core::payload::{self, PayloadClass, PayloadSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::codec::{UpdateCodecs, encode_update, unpack_model};
use crate::config::ClientConfig;
use crate::stream::{read_frame, write_frame};
use crate::tls::{self, Trust};
use crate::trainer::Trainer;
use crate::wire::{
    ClientMsg, CodecOffer, Digest, ModelHeader, Offer, PROTOCOL_VERSION, Round, ServerMsg,
    UploadHeader,
};
use crate::{Error, Result};

/// Largest global model a client accepts, bytes as sent and as unpacked.
pub const MAX_MODEL_BYTES: u64 = 8 << 30;

/// What a client reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Authenticated; updates will use `codec`.
    Connected {
        /// The negotiated codec.
        codec: CodecOffer,
    },
    /// Not selected, or waiting for the round to close.
    Waiting {
        /// The aggregator's round.
        round: Round,
        /// Why.
        reason: String,
    },
    /// Training for `round`.
    Training {
        /// The round.
        round: Round,
    },
    /// Update encoded.
    Encoded {
        /// The round.
        round: Round,
        /// What was sent (the aggregator named its class for the round).
        payload: PayloadSpec,
        /// Bytes before compression.
        raw_bytes: u64,
        /// Bytes to send.
        wire_bytes: u64,
        /// Seconds spent compressing.
        secs: f64,
    },
    /// Sending bytes `offset..len` of the update (`offset > 0`: a resumed upload).
    Uploading {
        /// The round.
        round: Round,
        /// First byte sent.
        offset: u64,
        /// Update length.
        len: u64,
    },
    /// The aggregator has stored `received` bytes.
    Acked {
        /// Bytes stored.
        received: u64,
    },
    /// The update is part of the round.
    Accepted {
        /// The round.
        round: Round,
    },
    /// The update was refused.
    Refused {
        /// The round.
        round: Round,
        /// The aggregator's reason.
        reason: String,
    },
    /// Connection lost; retrying.
    Reconnecting {
        /// What happened.
        error: String,
    },
}

/// How a client's run ended.
#[derive(Debug, Clone)]
pub struct ClientOutcome {
    /// The final global model.
    pub model: Gradient,
    /// Rounds of the run.
    pub rounds: u64,
    /// Rounds this client's update was accepted in.
    pub accepted: u64,
}

/// Called for every [`ClientEvent`].
pub type EventHook = Box<dyn FnMut(&ClientEvent) + Send>;

/// A client, ready to [`Client::run`].
pub struct Client {
    config: ClientConfig,
    token: String,
    trust: Trust,
    codecs: Arc<dyn UpdateCodecs>,
    trainer: Arc<Mutex<Box<dyn Trainer>>>,
    hook: Option<EventHook>,
    /// What this client can send, most preferred first, one per class.
    payloads: Vec<PayloadSpec>,
    /// What lossy payloads left out so far (error feedback); in memory only, so a restarted
    /// client starts again from zero.
    residual: Arc<Mutex<Option<Gradient>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.config.client_id)
            .field("server", &self.config.server)
            .finish_non_exhaustive()
    }
}

/// The update waiting for the aggregator's acceptance, kept across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    round: Round,
    model: Digest,
    offer: Offer,
}

enum Retry {
    Fatal(Error),
    Again(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Self {
        match e {
            Error::Rejected(_)
            | Error::Version { .. }
            | Error::Config(_)
            | Error::Tls(_)
            | Error::Train(_)
            | Error::Codec(_)
            | Error::Internal(_)
            | Error::Io { .. }
            | Error::Mismatch(_) => Retry::Fatal(e),
            _ => Retry::Again(e),
        }
    }
}

impl Client {
    /// A client with `config`, encoding with `codecs` and training with `trainer`.
    pub fn new(
        config: ClientConfig,
        codecs: Arc<dyn UpdateCodecs>,
        trainer: Box<dyn Trainer>,
    ) -> Result<Client> {
        let token = config.token()?;
        let payloads = config.payloads()?;
        let trust = Trust::from_config(config.server_fingerprint.as_deref(), config.ca.as_deref())?;
        std::fs::create_dir_all(&config.state_dir).map_err(|e| Error::io(&config.state_dir, e))?;
        Ok(Client {
            config,
            token,
            trust,
            codecs,
            trainer: Arc::new(Mutex::new(trainer)),
            hook: None,
            payloads,
            residual: Arc::new(Mutex::new(None)),
        })
    }

    /// Reports progress to `hook`.
    pub fn on_event(mut self, hook: EventHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The payload classes this client offers, most preferred first.
    fn payload_classes(&self) -> Vec<PayloadClass> {
        self.payloads.iter().map(PayloadSpec::class).collect()
    }

    /// This round's payload spec, of the class the aggregator named: stochastic rounding
    /// gets a seed of its own per client and round, so payloads are reproducible and
    /// rounding noise does not repeat.
    fn payload_for(&self, round: Round, class: PayloadClass) -> Result<PayloadSpec> {
        let spec = *self
            .payloads
            .iter()
            .find(|p| p.class() == class)
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "the aggregator asks for a {class} payload in round {round}, which this \
                     client did not offer"
                ))
            })?;
        if !spec.is_stochastic() {
            return Ok(spec);
        }
        let seed = self
            .config
            .client_id
            .to_string()
            .bytes()
            .fold(round.0.wrapping_mul(0x9e37_79b9_7f4a_7c15), |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        Ok(spec.with_stochastic_rounding(seed))
    }

    fn emit(&mut self, e: ClientEvent) {
        debug!(client = %self.config.client_id, "{e:?}");
        if let Some(h) = self.hook.as_mut() {
            h(&e);
        }
    }

    fn pending_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.config.state_dir.join("pending.json"),
            self.config.state_dir.join("pending.lmgc"),
        )
    }

    fn load_pending(&self, round: Round, model: Digest) -> Option<(Pending, Arc<Vec<u8>>)> {
        let (meta, data) = self.pending_paths();
        let p: Pending = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
        let bytes = std::fs::read(data).ok()?;
        (p.round == round && p.model == model && Digest::of(&bytes) == p.offer.digest)
            .then(|| (p, Arc::new(bytes)))
    }

    fn save_pending(&self, p: &Pending, bytes: &[u8]) -> Result<()> {
        let (meta, data) = self.pending_paths();
        // The data first: metadata never names bytes that are not there.
        write_atomic(&data, bytes)?;
        let json = serde_json::to_vec(p).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomic(&meta, &json)?;
        Ok(())
    }

    fn clear_pending(&self) {
        let (meta, data) = self.pending_paths();
        let _ = std::fs::remove_file(meta);
        let _ = std::fs::remove_file(data);
    }

    /// Takes part in the run until the aggregator says it is done. Connection losses are
    /// retried (with backoff) for `reconnect_secs` after the last good contact; a rejection,
    /// a certificate that does not match, or a failing trainer ends the run with an error.
    pub async fn run(mut self) -> Result<ClientOutcome> {
        let addr = resolve(&self.config.server)?;
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().expect("valid")
        } else {
            "0.0.0.0:0".parse().expect("valid")
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| Error::Connection(format!("opening a UDP socket: {e}")))?;
        endpoint.set_default_client_config(tls::client_config(
            &self.trust,
            self.config.idle_timeout()?,
        )?);
        let patience = Duration::try_from_secs_f64(self.config.reconnect_secs)
            .map_err(|_| Error::Config("reconnect_secs must be a non-negative number".into()))?;
        // Patience counts from the moment the aggregator was last reachable.
        let mut down_since = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut accepted = 0u64;
        loop {
            let mut reached = false;
            match self
                .session(&endpoint, addr, &mut reached, &mut accepted)
                .await
            {
                Ok(outcome) => {
                    endpoint.close(0u32.into(), b"done");
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
                    return Ok(outcome);
                }
                Err(Retry::Fatal(e)) => return Err(e),
                Err(Retry::Again(e)) => {
                    if reached {
                        down_since = Instant::now();
                        backoff = Duration::from_millis(100);
                    }
                    if down_since.elapsed() > patience {
                        return Err(Error::Connection(format!(
                            "{e}; gave up after {:.0} s without the aggregator",
                            patience.as_secs_f64()
                        )));
                    }
                    warn!(client = %self.config.client_id, "{e}; retrying in {backoff:?}");
                    self.emit(ClientEvent::Reconnecting {
                        error: e.to_string(),
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn session(
        &mut self,
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        reached: &mut bool,
        accepted: &mut u64,
    ) -> std::result::Result<ClientOutcome, Retry> {
        let connecting = endpoint
            .connect(addr, &self.config.server_name)
            .map_err(|e| Error::Config(format!("connecting to {addr}: {e}")))?;
        let conn = connecting.await.map_err(|e| {
            let msg = e.to_string();
            if msg.contains("certificate") || msg.contains("fingerprint") {
                Retry::Fatal(Error::Tls(format!("{addr}: {msg}")))
            } else {
                Retry::Again(Error::Connection(format!("{addr}: {msg}")))
            }
        })?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| Error::Connection(e.to_string()))?;
        write_frame(
            &mut send,
            &ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                client: self.config.client_id.clone(),
                token: self.token.clone(),
                codecs: self.offers()?,
                payloads: self.payload_classes(),
            },
        )
        .await?;
        let (codec, rounds) = match read_frame::<ServerMsg>(&mut recv).await? {
            Some(ServerMsg::Welcome {
                protocol,
                codec,
                rounds,
                payloads,
                ..
            }) => {
                if protocol != PROTOCOL_VERSION {
                    return Err(Retry::Fatal(Error::Version {
                        ours: PROTOCOL_VERSION,
                        theirs: protocol,
                    }));
                }
                if !self.payloads.iter().any(|p| payloads.contains(&p.class())) {
                    return Err(Retry::Fatal(Error::Config(format!(
                        "payload = {:?}, and the aggregator accepts only {}; add a payload of \
                         those classes",
                        self.config.payload,
                        payloads
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))));
                }
                (codec, rounds)
            }
            Some(ServerMsg::Reject { reason }) => {
                return Err(Retry::Fatal(Error::Rejected(reason)));
            }
            Some(other) => {
                return Err(Retry::Again(Error::Protocol(format!(
                    "expected Welcome, got {other:?}"
                ))));
            }
            None => {
                return Err(Retry::Again(Error::Connection(
                    "the aggregator closed the control stream".into(),
                )));
            }
        };
        *reached = true;
        info!(client = %self.config.client_id, %codec, "connected to {addr}");
        self.emit(ClientEvent::Connected {
            codec: codec.clone(),
        });
        let (models_tx, mut models_rx) = mpsc::unbounded_channel();
        let models = tokio::spawn(receive_models(conn.clone(), models_tx));
        let mut current: Option<(Pending, Arc<Vec<u8>>)> = None;
        let mut upload: Option<tokio::task::JoinHandle<Result<()>>> = None;
        let result = loop {
            let msg = match read_frame::<ServerMsg>(&mut recv).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    break Err(Retry::Again(Error::Connection(
                        "the aggregator closed the control stream".into(),
                    )));
                }
                Err(e) => break Err(e.into()),
            };
            match msg {
                ServerMsg::Wait { round, reason } => {
                    self.emit(ClientEvent::Waiting { round, reason })
                }
                ServerMsg::RoundStart {
                    round,
                    model,
                    payload,
                } => {
                    let global = match next_model(&mut models_rx, round, model).await {
                        Ok(g) => g,
                        Err(e) => break Err(e.into()),
                    };
                    let pending = match self.load_pending(round, model) {
                        Some(p) => p,
                        None => match self.prepare(round, model, &codec, global, payload).await {
                            Ok(p) => p,
                            Err(e) => break Err(e.into()),
                        },
                    };
                    if let Err(e) =
                        write_frame(&mut send, &ClientMsg::Offer(pending.0.offer.clone())).await
                    {
                        break Err(e.into());
                    }
                    current = Some(pending);
                }
                ServerMsg::Resume {
                    round,
                    digest,
                    offset,
                } => {
                    let Some((p, bytes)) = current
                        .as_ref()
                        .filter(|(p, _)| p.round == round && p.offer.digest == digest)
                    else {
                        break Err(Retry::Again(Error::Protocol(
                            "Resume for an update this client did not offer".into(),
                        )));
                    };
                    if offset > bytes.len() as u64 {
                        break Err(Retry::Again(Error::Protocol(format!(
                            "Resume at byte {offset} of a {}-byte update",
                            bytes.len()
                        ))));
                    }
                    if offset < bytes.len() as u64 {
                        self.emit(ClientEvent::Uploading {
                            round,
                            offset,
                            len: p.offer.len,
                        });
                        if offset > 0 {
                            info!(client = %self.config.client_id, "resuming the upload at byte {offset} of {}", p.offer.len);
                        }
                        let header = UploadHeader {
                            round,
                            digest,
                            offset,
                        };
                        upload = Some(tokio::spawn(send_update(
                            conn.clone(),
                            header,
                            bytes.clone(),
                            self.config.max_upload_rate,
                        )));
                    }
                }
                ServerMsg::Ack { received, .. } => self.emit(ClientEvent::Acked { received }),
                ServerMsg::Accepted { round } => {
                    if current.as_ref().is_some_and(|(p, _)| p.round == round) {
                        current = None;
                        self.clear_pending();
                        *accepted += 1;
                    }
                    self.emit(ClientEvent::Accepted { round });
                }
                ServerMsg::Refused { round, reason } => {
                    warn!(client = %self.config.client_id, round = %round, "update refused: {reason}");
                    if current.as_ref().is_some_and(|(p, _)| p.round == round) {
                        current = None;
                        self.clear_pending();
                    }
                    self.emit(ClientEvent::Refused { round, reason });
                }
                ServerMsg::Done { rounds: _, model } => {
                    let rounds_done = Round(rounds);
                    match next_model(&mut models_rx, rounds_done, model).await {
                        Ok(g) => {
                            self.clear_pending();
                            break Ok(ClientOutcome {
                                model: g,
                                rounds,
                                accepted: *accepted,
                            });
                        }
                        Err(e) => break Err(e.into()),
                    }
                }
                ServerMsg::Welcome { .. } | ServerMsg::Reject { .. } => {
                    break Err(Retry::Again(Error::Protocol(
                        "a second handshake answer".into(),
                    )));
                }
            }
        };
        models.abort();
        if let Some(u) = upload {
            u.abort();
        }
        if result.is_ok() {
            let _ = send.finish();
            conn.close(0u32.into(), b"done");
        }
        result
    }

    fn offers(&self) -> Result<Vec<CodecOffer>> {
        let available = self.codecs.offers();
        let mut out = Vec::new();
        for name in &self.config.codecs {
            match available.iter().find(|c| &c.name == name) {
                Some(c) => out.push(c.clone()),
                None => {
                    return Err(Error::Config(format!(
                        "codec {name:?} is not available here (available: {})",
                        available
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        // Whatever else this side has, for the aggregator's fallback.
        for c in available {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn prepare(
        &mut self,
        round: Round,
        model: Digest,
        codec: &CodecOffer,
        global: Gradient,
        class: PayloadClass,
    ) -> Result<(Pending, Arc<Vec<u8>>)> {
        let spec = self.payload_for(round, class)?;
        self.emit(ClientEvent::Training { round });
        let trainer = self.trainer.clone();
        let codecs = self.codecs.clone();
        let codec = codec.clone();
        let residual = self.residual.clone();
        let feedback = self.config.error_feedback;
        let (local, encoded, raw_len) = tokio::task::spawn_blocking(move || -> Result<_> {
            let local = trainer
                .lock()
                .map_err(|_| Error::Train("the trainer panicked earlier".into()))?
                .train(round, &global)?;
            let mut residual = residual
                .lock()
                .map_err(|_| Error::Internal("a payload step panicked earlier".into()))?;
            let kept = residual.as_ref().filter(|_| feedback);
            let sent = if spec == PayloadSpec::Dense && kept.is_none() {
                local.update.clone()
            } else {
                // A dense round after lossy ones sends what they left out, and owes nothing.
                let (payload, left) = payload::reduce_with_feedback(&local.update, kept, &spec)
                    .map_err(|e| Error::Train(format!("making the {spec} payload: {e}")))?;
                *residual = (feedback && spec != PayloadSpec::Dense).then_some(left);
                payload
            };
            drop(residual);
            let encoded = encode_update(&*codecs, &codec, &sent)?;
            // Bandwidth is reported against the dense update, whatever the payload.
            let raw_len = safetensors_bytes(&local.update).len() as u64;
            Ok((local, encoded, raw_len))
        })
        .await
        .map_err(|e| Error::Train(format!("the trainer panicked: {e}")))??;
        self.emit(ClientEvent::Encoded {
            round,
            payload: spec,
            raw_bytes: raw_len,
            wire_bytes: encoded.bytes.len() as u64,
            secs: encoded.encode_secs,
        });
        let pending = Pending {
            round,
            model,
            offer: Offer {
                round,
                digest: Digest::of(&encoded.bytes),
                len: encoded.bytes.len() as u64,
                raw_len,
                samples: local.samples,
                encode_secs: encoded.encode_secs,
            },
        };
        self.save_pending(&pending, &encoded.bytes)?;
        Ok((pending, Arc::new(encoded.bytes)))
    }
}

fn resolve(server: &str) -> Result<SocketAddr> {
    server
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("server {server:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("server {server:?} resolves to no address")))
}

/// The model announced for `round` with digest `digest`, from the model streams.
async fn next_model(
    rx: &mut mpsc::UnboundedReceiver<(ModelHeader, Vec<u8>)>,
    round: Round,
    digest: Digest,
) -> Result<Gradient> {
    loop {
        let (header, bytes) = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .map_err(|_| Error::Connection("the model did not arrive within 120 s".into()))?
            .ok_or_else(|| Error::Connection("model stream closed".into()))?;
        if header.round != round || header.digest != digest {
            continue;
        }
        if Digest::of(&bytes) != digest {
            return Err(Error::Protocol(
                "the model's bytes do not have the announced SHA-256".into(),
            ));
        }
        return tokio::task::spawn_blocking(move || unpack_model(&bytes, MAX_MODEL_BYTES))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
}

async fn receive_models(
    conn: quinn::Connection,
    tx: mpsc::UnboundedSender<(ModelHeader, Vec<u8>)>,
) {
    while let Ok(mut recv) = conn.accept_uni().await {
        let header = match read_frame::<ModelHeader>(&mut recv).await {
            Ok(Some(h)) if h.len <= MAX_MODEL_BYTES => h,
            Ok(Some(h)) => {
                warn!(
                    "model of {} bytes announced, above the {MAX_MODEL_BYTES}-byte limit",
                    h.len
                );
                conn.close(2u32.into(), b"model too large");
                return;
            }
            Ok(None) => continue,
            Err(e) => {
                warn!("model stream: {e}");
                conn.close(2u32.into(), b"malformed model stream");
                return;
            }
        };
        // The declared length bounds the read; a stream that ends early is dropped.
        match recv.read_to_end(header.len as usize).await {
            Ok(bytes) if bytes.len() as u64 == header.len => {
                if tx.send((header, bytes)).is_err() {
                    return;
                }
            }
            Ok(_) => warn!("model stream shorter than announced"),
            Err(e) => debug!("model stream: {e}"),
        }
    }
}

/// Bytes per write; the rate limit is applied between writes.
const CHUNK: usize = 64 * 1024;

async fn send_update(
    conn: quinn::Connection,
    header: UploadHeader,
    bytes: Arc<Vec<u8>>,
    rate: u64,
) -> Result<()> {
    let mut s = conn
        .open_uni()
        .await
        .map_err(|e| Error::Connection(e.to_string()))?;
    write_frame(&mut s, &header).await?;
    let start = Instant::now();
    let mut sent = 0u64;
    for chunk in bytes[header.offset as usize..].chunks(CHUNK) {
        s.write_all(chunk)
            .await
            .map_err(|e| Error::Connection(e.to_string()))?;
        sent += chunk.len() as u64;
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    s.finish().map_err(|e| Error::Connection(e.to_string()))?;
    Ok(())
}

/// Where a client keeps its pending update.
pub fn pending_file(state_dir: &Path) -> PathBuf {
    state_dir.join("pending.lmgc")
}
