//! The aggregator's driver: quinn endpoint, one task per connection, and one loop that owns
//! the [`Aggregator`] core and carries out its actions.
//!
//! Heavy work (decoding an update with the LLM, FedAvg) runs on blocking threads and comes
//! back to the loop as events, so handshakes and uploads of other clients go on meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use lmgc_core::Gradient;
use lmgc_core::container::DecodeLimits;
use lmgc_core::fsutil::write_atomic;
use lmgc_core::io::{Format, SourceFile, safetensors_bytes};
use lmgc_core::payload::{self, PayloadClass};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::aggregator::{
    Action, Aggregator, ConnId, Decoded, RoundState, RoundSummary, UploadKey, UploadPermit,
};
use crate::auth::Auth;
use crate::codec::{UpdateCodecs, pack_model, unpack_model};
use crate::config::AggregatorConfig;
use crate::fedavg::{self, FedAvg};
use crate::store::StateDir;
use crate::stream::{read_frame, write_frame};
use crate::wire::{ClientMsg, Digest, ModelHeader, Offer, Round, ServerMsg, UploadHeader};
use crate::{Error, Result, tls};

/// What a round produced, for the caller's logs, metrics and evaluation.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// The round's updates and stragglers.
    pub summary: RoundSummary,
    /// The new global model.
    pub model: Arc<Gradient>,
    /// Bytes of the new model as broadcast.
    pub model_wire_bytes: u64,
    /// Seconds FedAvg took (reading updates, averaging, packing, storing).
    pub aggregate_secs: f64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Rounds completed.
    pub rounds: u64,
    /// The global model at the end.
    pub model: Arc<Gradient>,
    /// Whether every round ran (`false`: stopped by the shutdown signal).
    pub finished: bool,
}

/// Called after every round.
pub type RoundHook = Box<dyn FnMut(&RoundReport) + Send>;

/// A bound aggregator, ready to [`Server::run`].
pub struct Server {
    endpoint: quinn::Endpoint,
    fingerprint: String,
    generated_identity: bool,
    config: AggregatorConfig,
    store: StateDir,
    state: RoundState,
    model: Arc<Gradient>,
    model_bytes: Arc<Vec<u8>>,
    codecs: Arc<dyn UpdateCodecs>,
    auth: Auth,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.endpoint.local_addr().ok())
            .field("round", &self.state.round)
            .finish_non_exhaustive()
    }
}

enum Event {
    Connected(ConnId, mpsc::UnboundedSender<ConnCmd>),
    Message(ConnId, ClientMsg),
    UploadStart(
        ConnId,
        UploadHeader,
        oneshot::Sender<std::result::Result<UploadPermit, String>>,
    ),
    Progress(ConnId, UploadKey, u64),
    Closed(ConnId),
    Decoded(UploadKey, std::result::Result<Decoded, String>),
    Aggregated(Round, Result<Aggregated>),
}

struct Aggregated {
    model: Arc<Gradient>,
    bytes: Arc<Vec<u8>>,
    secs: f64,
}

enum ConnCmd {
    Send(ServerMsg),
    Model(ModelHeader, Arc<Vec<u8>>),
    Close(String),
}

impl Server {
    /// Opens the state directory (resuming a run found there), sets up TLS and binds the
    /// UDP socket. `initial` is the first global model of a new run (else
    /// `config.initial_model` is read). Must be called inside a tokio runtime.
    pub fn bind(
        config: &AggregatorConfig,
        codecs: Arc<dyn UpdateCodecs>,
        initial: Option<Gradient>,
    ) -> Result<Server> {
        config.policy()?;
        let tokens = config.auth.tokens.as_ref().ok_or_else(|| {
            Error::Config(
                "auth.tokens is required: a file of `client-id token` lines (make tokens with `openssl rand -hex 16`)"
                    .into(),
            )
        })?;
        let auth = Auth::load(tokens)?;
        let store = StateDir::open(&config.state_dir)?;
        let (state, model, model_bytes) = match store.load_state()? {
            Some(state) => {
                let path = store.model_path(state.round);
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                if Digest::of(&bytes) != state.model {
                    return Err(Error::Config(format!(
                        "{} does not match the digest in state.json; the state directory is damaged",
                        path.display()
                    )));
                }
                let model = unpack_model(&bytes, u64::MAX)?;
                info!(round = %state.round, accepted = state.accepted.len(), "resuming the run in {}", store.root().display());
                (state, model, bytes)
            }
            None => {
                let model = match (initial, &config.initial_model) {
                    (Some(m), _) => m,
                    (None, Some(p)) => SourceFile::read(p, Format::Safetensors)?.gradient,
                    (None, None) => {
                        return Err(Error::Config(
                            "a new run needs an initial model: set initial_model (a safetensors file)"
                                .into(),
                        ));
                    }
                };
                fedavg::check_model(&model)?;
                let bytes = pack_model(&model)?;
                let state = RoundState::fresh(Digest::of(&bytes));
                write_atomic(&store.model_path(Round(0)), &bytes)?;
                store.save_state(&state)?;
                (state, model, bytes)
            }
        };
        store.prune(&state, true)?;
        let (identity, generated_identity) = tls::server_identity(&config.tls, &store)?;
        let fingerprint = identity.fingerprint();
        let endpoint = quinn::Endpoint::server(
            tls::server_config(identity, config.idle_timeout()?)?,
            config.listen,
        )
        .map_err(|e| Error::Connection(format!("binding {}: {e}", config.listen)))?;
        Ok(Server {
            endpoint,
            fingerprint,
            generated_identity,
            config: config.clone(),
            store,
            state,
            model: Arc::new(model),
            model_bytes: Arc::new(model_bytes),
            codecs,
            auth,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.endpoint
            .local_addr()
            .map_err(|e| Error::Connection(e.to_string()))
    }

    /// SHA-256 of the certificate, for clients' `server_fingerprint`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the certificate is self-signed by lmgc (clients must pin it).
    pub fn generated_identity(&self) -> bool {
        self.generated_identity
    }

    /// The round the run is at.
    pub fn round(&self) -> Round {
        self.state.round
    }

    /// Runs until every round is done (and connected clients have the final model) or
    /// `shutdown` completes.
    pub async fn run(
        self,
        mut on_round: Option<RoundHook>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Outcome> {
        let Server {
            endpoint,
            config,
            store,
            state,
            mut model,
            mut model_bytes,
            codecs,
            auth,
            ..
        } = self;
        let policy = config.policy()?;
        let update_kind = policy.update;
        let now = Instant::now();
        let partials = store.partials()?;
        let mut agg = Aggregator::new(
            policy,
            auth,
            codecs.offers(),
            config.codec_fallback,
            state,
            partials,
            now,
        )?;
        let metrics_path = config.metrics_path();
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
        let accept = tokio::spawn(accept_loop(endpoint.clone(), ev_tx.clone(), store.clone()));
        let mut conns: HashMap<ConnId, mpsc::UnboundedSender<ConnCmd>> = HashMap::new();
        let mut finished_at: Option<Instant> = None;
        let mut aggregate_secs = 0.0;
        let linger = config.linger()?;
        // Clients of the last round that have not been sent the final model yet.
        let mut awaiting: std::collections::BTreeSet<crate::wire::ClientId> = Default::default();
        let model_raw_limit = safetensors_bytes(&model).len() as u64 * 2 + (1 << 20);
        tokio::pin!(shutdown);
        info!(
            addr = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            round = %agg.round(),
            "aggregator listening"
        );
        let interrupted = loop {
            while let Some(action) = agg.poll_action() {
                match action {
                    Action::Send(c, msg) => {
                        if let Some(tx) = conns.get(&c) {
                            let _ = tx.send(ConnCmd::Send(msg));
                        }
                    }
                    Action::SendModel(c) => {
                        if agg.is_finished()
                            && let Some(client) = agg.client_of(c)
                        {
                            awaiting.remove(client);
                        }
                        if let Some(tx) = conns.get(&c) {
                            let header = ModelHeader {
                                round: agg.round(),
                                len: model_bytes.len() as u64,
                                digest: agg.state().model,
                            };
                            let _ = tx.send(ConnCmd::Model(header, model_bytes.clone()));
                        }
                    }
                    Action::Ack(c, key, received) => {
                        store.sync_partial(&key)?;
                        if let Some(tx) = conns.get(&c) {
                            let _ = tx.send(ConnCmd::Send(ServerMsg::Ack {
                                round: key.round,
                                digest: key.digest,
                                received,
                            }));
                        }
                    }
                    Action::Close(c, reason) => {
                        warn!(conn = c.0, "closing a connection: {reason}");
                        if let Some(tx) = conns.remove(&c) {
                            let _ = tx.send(ConnCmd::Close(reason));
                        }
                    }
                    Action::Decode(key, offer) => {
                        let payloads = agg.policy().payloads_for(key.round).to_vec();
                        let (store, codecs, model, tx) =
                            (store.clone(), codecs.clone(), model.clone(), ev_tx.clone());
                        tokio::task::spawn_blocking(move || {
                            let r = decode_update(
                                &store,
                                &*codecs,
                                &model,
                                &key,
                                &offer,
                                model_raw_limit,
                                &payloads,
                            );
                            let _ = tx.send(Event::Decoded(key, r));
                        });
                    }
                    Action::Discard(key) => {
                        if let Err(e) = store.discard_partial(&key) {
                            warn!("{e}");
                        }
                    }
                    Action::Persist(state) => {
                        store.save_state(&state)?;
                        store.prune(&state, false)?;
                    }
                    Action::Aggregate(round, accepted) => {
                        let (store, model, tx) = (store.clone(), model.clone(), ev_tx.clone());
                        tokio::task::spawn_blocking(move || {
                            let r = aggregate(&store, &model, round, &accepted, update_kind);
                            let _ = tx.send(Event::Aggregated(round, r));
                        });
                    }
                    Action::RoundClosed(summary) => {
                        let report = RoundReport {
                            model: model.clone(),
                            model_wire_bytes: model_bytes.len() as u64,
                            aggregate_secs,
                            summary,
                        };
                        log_round(&report);
                        if agg.is_finished() {
                            let s = &report.summary;
                            awaiting = s
                                .accepted
                                .iter()
                                .map(|a| a.client.clone())
                                .chain(s.stragglers.iter().cloned())
                                .collect();
                        }
                        StateDir::append_metrics(&metrics_path, &metrics_line(&report))?;
                        if let Some(hook) = on_round.as_mut() {
                            hook(&report);
                        }
                    }
                    Action::Finished => {
                        info!(
                            "all {} rounds done; final model in {}",
                            config.rounds,
                            store.model_path(agg.round()).display()
                        );
                        finished_at = Some(Instant::now());
                    }
                }
            }
            if let Some(t) = finished_at
                && ((conns.is_empty() && awaiting.is_empty()) || t.elapsed() >= linger)
            {
                if !awaiting.is_empty() {
                    warn!(
                        clients = ?awaiting,
                        "leaving without sending these clients the final model (it is in {})",
                        store.model_path(agg.round()).display()
                    );
                }
                break false;
            }
            let deadline = agg
                .poll_timeout()
                .or(finished_at.map(|t| t + linger))
                .map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = ev_rx.recv() => {
                    let Some(ev) = ev else { break true };
                    let now = Instant::now();
                    match ev {
                        Event::Connected(c, tx) => {
                            conns.insert(c, tx);
                            agg.handle_connect(c);
                        }
                        Event::Message(c, msg) => agg.handle_message(now, c, msg),
                        Event::UploadStart(c, header, reply) => {
                            let _ = reply.send(agg.handle_upload_start(c, &header));
                        }
                        Event::Progress(c, key, n) => agg.handle_upload_progress(c, &key, n),
                        Event::Closed(c) => {
                            conns.remove(&c);
                            agg.handle_disconnect(now, c);
                        }
                        Event::Decoded(key, r) => {
                            if let Err(e) = &r {
                                warn!(client = %key.client, round = %key.round, "update refused: {e}");
                            } else if let Ok(d) = &r {
                                info!(client = %key.client, round = %key.round, payload = %d.payload, "update accepted");
                            }
                            agg.handle_decoded(now, &key, r);
                        }
                        Event::Aggregated(round, r) => {
                            let a = r?;
                            model = a.model;
                            model_bytes = a.bytes;
                            aggregate_secs = a.secs;
                            agg.handle_aggregated(now, round, Digest::of(&model_bytes));
                        }
                    }
                }
                () = sleep => agg.handle_timeout(Instant::now()),
                () = &mut shutdown => break true,
            }
        };
        accept.abort();
        for tx in conns.values() {
            let _ = tx.send(ConnCmd::Close(if interrupted {
                "the aggregator is shutting down".into()
            } else {
                "done".into()
            }));
        }
        endpoint.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.wait_idle()).await;
        Ok(Outcome {
            rounds: agg.round().0,
            model,
            finished: agg.is_finished(),
        })
    }
}

fn log_round(r: &RoundReport) {
    let s = &r.summary;
    let raw: u64 = s.accepted.iter().map(|a| a.raw_bytes).sum();
    let wire: u64 = s.accepted.iter().map(|a| a.wire_bytes).sum();
    info!(
        round = %s.round,
        updates = s.accepted.len(),
        stragglers = s.stragglers.len(),
        raw_bytes = raw,
        wire_bytes = wire,
        ratio = if raw > 0 { wire as f64 / raw as f64 } else { 0.0 },
        encode_secs = s.accepted.iter().map(|a| a.encode_secs).sum::<f64>(),
        decode_secs = s.accepted.iter().map(|a| a.decode_secs).sum::<f64>(),
        "round closed"
    );
}

/// One JSON line per round: totals and per-client figures.
pub fn metrics_line(r: &RoundReport) -> serde_json::Value {
    let s = &r.summary;
    let raw: u64 = s.accepted.iter().map(|a| a.raw_bytes).sum();
    let wire: u64 = s.accepted.iter().map(|a| a.wire_bytes).sum();
    serde_json::json!({
        "round": s.round.0,
        "selected": s.selected,
        "updates": s.accepted.len(),
        "stragglers": s.stragglers,
        "raw_bytes": raw,
        "wire_bytes": wire,
        "ratio": if raw > 0 { wire as f64 / raw as f64 } else { 0.0 },
        "encode_secs": s.accepted.iter().map(|a| a.encode_secs).sum::<f64>(),
        "decode_secs": s.accepted.iter().map(|a| a.decode_secs).sum::<f64>(),
        "model_wire_bytes": r.model_wire_bytes,
        "clients": s.accepted,
    })
}

/// Checks, decodes and stores a completed upload: what it was, or why it is refused.
/// `payloads` are the classes its round accepts; a low-precision payload of one of them is
/// densified (bounded by the model's size) and stored dense, so aggregation reads every
/// update alike.
fn decode_update(
    store: &StateDir,
    codecs: &dyn UpdateCodecs,
    model: &Gradient,
    key: &UploadKey,
    offer: &Offer,
    max_raw: u64,
    payloads: &[PayloadClass],
) -> std::result::Result<Decoded, String> {
    let start = Instant::now();
    let path = store.partial_path(key);
    let bytes = std::fs::read(&path).map_err(|e| format!("aggregator storage: {e}"))?;
    if bytes.len() as u64 != offer.len {
        return Err(format!(
            "{} bytes received, {} offered",
            bytes.len(),
            offer.len
        ));
    }
    if Digest::of(&bytes) != key.digest {
        return Err("the bytes received do not have the offered SHA-256".into());
    }
    let limits = DecodeLimits {
        max_output: max_raw,
        trusted_input: false,
    };
    let raw = codecs
        .decode(&bytes, &limits)
        .map_err(|e| format!("undecodable update: {e}"))?;
    let source = SourceFile::parse(Format::Safetensors, &raw)
        .map_err(|e| format!("the update is not a safetensors file: {e}"))?;
    let class = payload::class_of(&source.gradient).map_err(|e| e.to_string())?;
    if !payloads.contains(&class) {
        return Err(format!(
            "a {class} payload; round {} accepts {}",
            key.round,
            payloads
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let (update, stored) = match class {
        PayloadClass::Dense => (source.gradient, raw),
        _ => {
            let dense = payload::densify(&source.gradient, model.data_len())
                .map_err(|e| format!("bad {class} payload: {e}"))?;
            let bytes = safetensors_bytes(&dense);
            (dense, bytes)
        }
    };
    fedavg::check_update(model, &update).map_err(|e| e.to_string())?;
    write_atomic(&store.accepted_path(key.round, &key.client), &stored)
        .map_err(|e| format!("aggregator storage: {e}"))?;
    Ok(Decoded {
        secs: start.elapsed().as_secs_f64(),
        payload: class,
    })
}

fn aggregate(
    store: &StateDir,
    model: &Gradient,
    round: Round,
    accepted: &[crate::aggregator::AcceptedUpdate],
    kind: crate::wire::UpdateKind,
) -> Result<Aggregated> {
    let start = Instant::now();
    let mut avg = FedAvg::new(model)?;
    for a in accepted {
        let path = store.accepted_path(round, &a.client);
        let g = SourceFile::read(&path, Format::Safetensors)?.gradient;
        fedavg::check_update(model, &g)?;
        avg.add(&g, a.samples)?;
    }
    let next = avg.finish(model, kind)?;
    let bytes = pack_model(&next)?;
    write_atomic(&store.model_path(round.next()), &bytes)?;
    Ok(Aggregated {
        model: Arc::new(next),
        bytes: Arc::new(bytes),
        secs: start.elapsed().as_secs_f64(),
    })
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    events: mpsc::UnboundedSender<Event>,
    store: StateDir,
) {
    let mut next = 0u64;
    while let Some(incoming) = endpoint.accept().await {
        next += 1;
        let conn = ConnId(next);
        tokio::spawn(connection(conn, incoming, events.clone(), store.clone()));
    }
}

/// Seconds a new connection has to open its control stream and say Hello.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn connection(
    id: ConnId,
    incoming: quinn::Incoming,
    events: mpsc::UnboundedSender<Event>,
    store: StateDir,
) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            debug!("handshake failed: {e}");
            return;
        }
    };
    let remote = conn.remote_address();
    let (tx, mut rx) = mpsc::unbounded_channel();
    if events.send(Event::Connected(id, tx)).is_err() {
        return;
    }
    let control = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await;
    let (mut send, mut recv) = match control {
        Ok(Ok(s)) => s,
        _ => {
            warn!(%remote, "no control stream within {HELLO_TIMEOUT:?}; closing");
            conn.close(1u32.into(), b"no control stream");
            let _ = events.send(Event::Closed(id));
            return;
        }
    };
    let reader = {
        let events = events.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            // The first message (Hello) must come promptly: an unauthenticated connection
            // is not kept open by its keep-alives.
            let mut first = true;
            loop {
                let next = read_frame::<ClientMsg>(&mut recv);
                let next = if first {
                    first = false;
                    match tokio::time::timeout(HELLO_TIMEOUT, next).await {
                        Ok(r) => r,
                        Err(_) => {
                            warn!(%remote, "no Hello within {HELLO_TIMEOUT:?}; closing");
                            conn.close(1u32.into(), b"no Hello");
                            break;
                        }
                    }
                } else {
                    next.await
                };
                match next {
                    Ok(Some(msg)) => {
                        if events.send(Event::Message(id, msg)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // A client that hangs up ends its stream this way too.
                        if conn.close_reason().is_some() {
                            debug!(%remote, "control stream: {e}");
                        } else {
                            warn!(%remote, "control stream: {e}");
                            conn.close(2u32.into(), e.to_string().as_bytes());
                        }
                        break;
                    }
                }
            }
        })
    };
    let uploads = {
        let events = events.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            while let Ok(recv) = conn.accept_uni().await {
                tokio::spawn(receive_upload(
                    id,
                    conn.clone(),
                    recv,
                    events.clone(),
                    store.clone(),
                ));
            }
        })
    };
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(ConnCmd::Send(msg)) => {
                    if let Err(e) = write_frame(&mut send, &msg).await {
                        debug!(%remote, "{e}");
                        break;
                    }
                }
                Some(ConnCmd::Model(header, bytes)) => {
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        if let Err(e) = send_model(&conn, &header, &bytes).await {
                            debug!(%remote, "sending the model: {e}");
                        }
                    });
                }
                Some(ConnCmd::Close(reason)) => {
                    let _ = send.finish();
                    // Let the last control message (a Reject, Done) reach the client.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), send.stopped()).await;
                    conn.close(0u32.into(), reason.as_bytes());
                    break;
                }
                None => break,
            },
            _ = conn.closed() => break,
        }
    }
    reader.abort();
    uploads.abort();
    let _ = events.send(Event::Closed(id));
}

async fn send_model(conn: &quinn::Connection, header: &ModelHeader, bytes: &[u8]) -> Result<()> {
    let mut s = conn
        .open_uni()
        .await
        .map_err(|e| Error::Connection(e.to_string()))?;
    write_frame(&mut s, header).await?;
    s.write_all(bytes)
        .await
        .map_err(|e| Error::Connection(e.to_string()))?;
    s.finish().map_err(|e| Error::Connection(e.to_string()))?;
    Ok(())
}

/// Bytes between two progress reports to the core (acks follow the policy's `ack_every`).
const REPORT_EVERY: u64 = 256 * 1024;

async fn receive_upload(
    id: ConnId,
    conn: quinn::Connection,
    mut recv: quinn::RecvStream,
    events: mpsc::UnboundedSender<Event>,
    store: StateDir,
) {
    let header =
        match tokio::time::timeout(HELLO_TIMEOUT, read_frame::<UploadHeader>(&mut recv)).await {
            Ok(Ok(Some(h))) => h,
            Ok(Err(e)) => {
                warn!(remote = %conn.remote_address(), "update stream: {e}");
                conn.close(2u32.into(), e.to_string().as_bytes());
                return;
            }
            _ => {
                let _ = recv.stop(1u32.into());
                return;
            }
        };
    let (reply, permit) = oneshot::channel();
    if events.send(Event::UploadStart(id, header, reply)).is_err() {
        return;
    }
    let permit = match permit.await {
        Ok(Ok(p)) => p,
        Ok(Err(reason)) => {
            warn!(remote = %conn.remote_address(), "update stream refused: {reason}");
            let _ = recv.stop(3u32.into());
            return;
        }
        Err(_) => return,
    };
    let mut file = match store.open_partial(&permit.key, permit.offset) {
        Ok(f) => f,
        Err(e) => {
            warn!("{e}");
            let _ = recv.stop(4u32.into());
            return;
        }
    };
    let (mut received, mut reported) = (permit.offset, permit.offset);
    loop {
        match recv.read_chunk(1 << 20, true).await {
            Ok(Some(chunk)) => {
                let n = chunk.bytes.len() as u64;
                if received + n > permit.len {
                    warn!(client = %permit.key.client, "update stream carries more than the {} bytes offered", permit.len);
                    conn.close(2u32.into(), b"update longer than offered");
                    return;
                }
                if let Err(e) = std::io::Write::write_all(&mut file, &chunk.bytes) {
                    warn!("storing an update: {e}");
                    let _ = recv.stop(4u32.into());
                    return;
                }
                received += n;
                if received - reported >= REPORT_EVERY || received == permit.len {
                    reported = received;
                    let _ = events.send(Event::Progress(id, permit.key.clone(), received));
                }
            }
            Ok(None) => break,
            Err(e) => {
                debug!("update stream: {e}");
                break;
            }
        }
    }
    if reported != received {
        let _ = events.send(Event::Progress(id, permit.key.clone(), received));
    }
}
