//! The aggregator's protocol core: handshake, rounds, uploads, stragglers. No sockets, no
//! files, no clock.
//!
//! The driver ([`crate::server`]) feeds it events (`handle_*`, with the time as an
//! argument) and carries out what [`Aggregator::poll_action`] returns, in order: send a
//! message, stream the model, decode a completed upload, persist the state, run FedAvg.
//! [`Aggregator::poll_timeout`] says when to call [`Aggregator::handle_timeout`]. So every
//! rule here (who is selected, when a round closes, what a straggler costs, where an upload
//! resumes) is tested on a simulated clock, without a network.
//!
//! Durability: an update counts as accepted only once a [`Action::Persist`] naming it has
//! run; the `Accepted` message to the client is queued after that action. A restarted
//! aggregator built from the last persisted [`RoundState`] therefore holds every update it
//! ever acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use lmgc_core::payload::PayloadClass;
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::fedavg::MAX_SAMPLES;
use crate::wire::{
    ClientId, ClientMsg, CodecOffer, Digest, Offer, PROTOCOL_VERSION, Round, ServerMsg, UpdateKind,
    UploadHeader,
};
use crate::{Error, Result};

/// What happens to selected clients that have not delivered by the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StragglerPolicy {
    /// At the deadline the round closes with the updates it has, if at least `min_clients`;
    /// with fewer, other connected clients are invited and the deadline moves on.
    #[default]
    Drop,
    /// No deadline: the round waits for every selected client (a client that reconnects
    /// resumes).
    Wait,
}

/// The rules of a run.
#[derive(Debug, Clone)]
pub struct RoundPolicy {
    /// Rounds to run.
    pub rounds: u64,
    /// Clients selected per round.
    pub clients_per_round: usize,
    /// Fewest accepted updates a round may close with.
    pub min_clients: usize,
    /// How long a round waits for clients.
    pub round_timeout: Duration,
    /// Straggler handling.
    pub straggler: StragglerPolicy,
    /// How updates combine with the model.
    pub update: UpdateKind,
    /// Seed of client selection.
    pub seed: u64,
    /// Largest update accepted, bytes as sent.
    pub max_update_bytes: u64,
    /// Acknowledge stored bytes at least this often.
    pub ack_every: u64,
    /// Payload classes accepted from clients from round 0 on.
    pub payloads: Vec<PayloadClass>,
    /// Later changes of the accepted classes, by ascending round.
    pub payload_schedule: Vec<PayloadStep>,
}

/// From round `from_round` on (until the next step), the payload classes a round accepts: a
/// run can start dense, while the model moves fast, and move its clients to quantized or
/// sparse updates later. Each selected client sends its own first choice among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadStep {
    /// The first round of the step.
    pub from_round: u64,
    /// The classes accepted.
    pub payloads: Vec<PayloadClass>,
}

impl FromStr for PayloadStep {
    type Err = Error;

    /// `ROUND:CLASS[+CLASS...]`, e.g. `3:quantized+dense`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Config(format!(
                "payload step {s:?}: {why}; write ROUND:CLASS[+CLASS...] with classes dense, \
                 quantized, sparse (e.g. 3:quantized+dense)"
            ))
        };
        let (round, classes) = s.trim().split_once(':').ok_or_else(|| bad("no ':'"))?;
        let from_round = round
            .trim()
            .parse()
            .map_err(|_| bad("the round is not a number"))?;
        let payloads = classes
            .split('+')
            .map(|c| match c.trim() {
                "dense" => Ok(PayloadClass::Dense),
                "quantized" => Ok(PayloadClass::Quantized),
                "sparse" => Ok(PayloadClass::Sparse),
                other => Err(bad(&format!("unknown class {other:?}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PayloadStep {
            from_round,
            payloads,
        })
    }
}

impl fmt::Display for PayloadStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.from_round, join(&self.payloads, "+"))
    }
}

/// Items of a list in words, joined by `sep`.
fn join<T: ToString>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

impl RoundPolicy {
    /// Checks the numbers make sense together.
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Err(Error::Config("rounds must be at least 1".into()));
        }
        if self.min_clients == 0 || self.clients_per_round < self.min_clients {
            return Err(Error::Config(format!(
                "need 1 <= min_clients ({}) <= clients_per_round ({})",
                self.min_clients, self.clients_per_round
            )));
        }
        if self.max_update_bytes == 0 || self.ack_every == 0 {
            return Err(Error::Config(
                "max_update_bytes and ack_every must be positive".into(),
            ));
        }
        let lists = std::iter::once(&self.payloads)
            .chain(self.payload_schedule.iter().map(|s| &s.payloads));
        for list in lists {
            if list.is_empty() {
                return Err(Error::Config(
                    "a payload list is empty: accept at least one of dense, quantized, sparse"
                        .into(),
                ));
            }
            if list.iter().enumerate().any(|(i, c)| list[..i].contains(c)) {
                return Err(Error::Config(format!(
                    "payload list [{}] names a class twice",
                    join(list, ", ")
                )));
            }
        }
        let mut last = None;
        for step in &self.payload_schedule {
            if last.is_some_and(|l| step.from_round <= l) {
                return Err(Error::Config(format!(
                    "payload_schedule: step {step} does not come after the round of the step \
                     before it; list the steps by ascending round"
                )));
            }
            if step.from_round >= self.rounds {
                return Err(Error::Config(format!(
                    "payload_schedule: step {step} starts after the last round ({}) and would \
                     never apply",
                    self.rounds - 1
                )));
            }
            last = Some(step.from_round);
        }
        Ok(())
    }

    /// The payload classes `round` accepts, most preferred first.
    pub fn payloads_for(&self, round: Round) -> &[PayloadClass] {
        self.payload_schedule
            .iter()
            .rev()
            .find(|s| s.from_round <= round.0)
            .map_or(&self.payloads, |s| &s.payloads)
    }

    /// Every class some round of the run accepts, in order of first appearance.
    pub fn payloads_of_run(&self) -> Vec<PayloadClass> {
        let mut out: Vec<PayloadClass> = Vec::new();
        let starts_later = self
            .payload_schedule
            .first()
            .is_none_or(|s| s.from_round > 0);
        let base = starts_later.then_some(&self.payloads);
        let lists = base
            .into_iter()
            .chain(self.payload_schedule.iter().map(|s| &s.payloads));
        for c in lists.flatten() {
            if !out.contains(c) {
                out.push(*c);
            }
        }
        out
    }

    /// The class a client offering `offered` (most preferred first) sends in `round`: its
    /// first choice among the classes the round accepts; `None` if the round accepts none.
    pub fn assign(&self, round: Round, offered: &[PayloadClass]) -> Option<PayloadClass> {
        let accepted = self.payloads_for(round);
        offered.iter().find(|c| accepted.contains(c)).copied()
    }
}

/// An update that is part of a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedUpdate {
    /// Whose.
    pub client: ClientId,
    /// FedAvg weight.
    pub samples: u64,
    /// SHA-256 of the bytes as sent.
    pub digest: Digest,
    /// Bytes as sent.
    pub wire_bytes: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
    /// Client's compression time.
    pub encode_secs: f64,
    /// Aggregator's decompression time.
    pub decode_secs: f64,
    /// What the client sent (state files of earlier versions: dense).
    #[serde(default = "dense")]
    pub payload: PayloadClass,
}

fn dense() -> PayloadClass {
    PayloadClass::Dense
}

/// What decoding a completed upload found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// Seconds spent decoding and checking.
    pub secs: f64,
    /// The update's payload class.
    pub payload: PayloadClass,
}

/// Everything a restarted aggregator needs to resume: written atomically after every
/// change that matters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundState {
    /// The current round (equal to the number of rounds when the run is over).
    pub round: Round,
    /// Digest of the current global model as broadcast.
    pub model: Digest,
    /// Clients selected for the current round (empty before it starts).
    pub selected: Vec<ClientId>,
    /// Updates accepted in the current round, sorted by client.
    pub accepted: Vec<AcceptedUpdate>,
    /// Whether every round has run.
    pub finished: bool,
}

impl RoundState {
    /// The state of a new run.
    pub fn fresh(model: Digest) -> Self {
        RoundState {
            round: Round(0),
            model,
            selected: Vec::new(),
            accepted: Vec::new(),
            finished: false,
        }
    }
}

/// A driver's handle on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Identifies the stored bytes of one upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadKey {
    /// The round.
    pub round: Round,
    /// Whose.
    pub client: ClientId,
    /// Digest of the whole update.
    pub digest: Digest,
}

impl UploadKey {
    /// A file name for the partial bytes: `r<round>-<client>-<digest hex>.part`.
    pub fn file_name(&self) -> String {
        format!("r{}-{}-{}.part", self.round.0, self.client, self.digest)
    }

    /// Parses [`UploadKey::file_name`]; `None` for any other name.
    pub fn from_file_name(name: &str) -> Option<UploadKey> {
        let rest = name.strip_prefix('r')?.strip_suffix(".part")?;
        let (round, rest) = rest.split_once('-')?;
        let (client, digest) = rest.rsplit_once('-')?;
        if digest.len() != 64 {
            return None;
        }
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = u8::from_str_radix(digest.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(UploadKey {
            round: Round(round.parse().ok()?),
            client: ClientId::new(client).ok()?,
            digest: Digest(d),
        })
    }
}

/// What an upload stream may write: bytes `offset..len` of `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPermit {
    /// Where the bytes go.
    pub key: UploadKey,
    /// First byte of the stream.
    pub offset: u64,
    /// The update's full length.
    pub len: u64,
}

/// A closed round, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// The round.
    pub round: Round,
    /// Clients selected (including replacements).
    pub selected: usize,
    /// Updates averaged.
    pub accepted: Vec<AcceptedUpdate>,
    /// Selected clients whose update did not make it.
    pub stragglers: Vec<ClientId>,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a control message.
    Send(ConnId, ServerMsg),
    /// Open a stream and send the current global model on it.
    SendModel(ConnId),
    /// Sync the stored bytes of `key`, then send [`ServerMsg::Ack`] for `received` bytes.
    Ack(ConnId, UploadKey, u64),
    /// Close the connection.
    Close(ConnId, String),
    /// The stored upload is complete: check its digest, decode it, check it against the
    /// model, keep the decoded update, and report with [`Aggregator::handle_decoded`].
    Decode(UploadKey, Offer),
    /// Delete the stored bytes of an upload that will not be used.
    Discard(UploadKey),
    /// Write this state durably before carrying out the actions after it.
    Persist(RoundState),
    /// Average the accepted updates of the round into the next global model, store it, and
    /// report with [`Aggregator::handle_aggregated`].
    Aggregate(Round, Vec<AcceptedUpdate>),
    /// A round closed.
    RoundClosed(RoundSummary),
    /// Every round has run.
    Finished,
}

#[derive(Debug)]
struct Conn {
    client: Option<ClientId>,
    /// The payload classes the client offered, most preferred first.
    payloads: Vec<PayloadClass>,
}

#[derive(Debug)]
struct Upload {
    offer: Offer,
    received: u64,
    acked: u64,
    decoding: bool,
    streaming: Option<ConnId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for enough clients to start the round: `clients_per_round` at once, or
    /// `min_clients` once `round_timeout` has passed (`since` is `None` then).
    Waiting { since: Option<Instant> },
    /// Collecting updates until `deadline` (none under [`StragglerPolicy::Wait`]).
    Collecting { deadline: Option<Instant> },
    /// FedAvg is running.
    Aggregating,
    /// Every round has run.
    Done,
}

/// The aggregator's state machine.
#[derive(Debug)]
pub struct Aggregator {
    policy: RoundPolicy,
    auth: Auth,
    codecs: Vec<CodecOffer>,
    codec_fallback: bool,
    conns: HashMap<ConnId, Conn>,
    online: BTreeMap<ClientId, ConnId>,
    state: RoundState,
    phase: Phase,
    uploads: BTreeMap<ClientId, Upload>,
    refused: BTreeSet<ClientId>,
    partials: HashMap<UploadKey, u64>,
    actions: VecDeque<Action>,
}

impl Aggregator {
    /// An aggregator resuming `state`, with the partial uploads found on disk (key and bytes
    /// held). `codecs` are the codecs it can decode, in order of preference.
    pub fn new(
        policy: RoundPolicy,
        auth: Auth,
        codecs: Vec<CodecOffer>,
        codec_fallback: bool,
        state: RoundState,
        partials: Vec<(UploadKey, u64)>,
        now: Instant,
    ) -> Result<Self> {
        policy.validate()?;
        if codecs.is_empty() {
            return Err(Error::Config("the aggregator decodes no codec".into()));
        }
        let mut agg = Aggregator {
            phase: if state.finished {
                Phase::Done
            } else {
                Phase::Waiting { since: Some(now) }
            },
            policy,
            auth,
            codecs,
            codec_fallback,
            conns: HashMap::new(),
            online: BTreeMap::new(),
            uploads: BTreeMap::new(),
            refused: BTreeSet::new(),
            partials: HashMap::new(),
            actions: VecDeque::new(),
            state,
        };
        for (key, len) in partials {
            if key.round == agg.state.round
                && !agg.state.accepted.iter().any(|a| a.client == key.client)
            {
                agg.partials.insert(key, len);
            } else {
                agg.actions.push_back(Action::Discard(key));
            }
        }
        if !agg.state.selected.is_empty() && !agg.state.finished {
            // The round was running: it goes on, with a fresh deadline.
            agg.phase = Phase::Collecting {
                deadline: agg.deadline(now),
            };
        }
        Ok(agg)
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Aggregator::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { since } => since.map(|t| t + self.policy.round_timeout),
            Phase::Collecting { deadline } => deadline,
            _ => None,
        }
    }

    /// The current round.
    pub fn round(&self) -> Round {
        self.state.round
    }

    /// The rules of the run.
    pub fn policy(&self) -> &RoundPolicy {
        &self.policy
    }

    /// The persisted view of the current state.
    pub fn state(&self) -> &RoundState {
        &self.state
    }

    /// Whether the connection has passed the handshake (only then may it send updates).
    pub fn is_authenticated(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.client.is_some())
    }

    /// The client behind an authenticated connection.
    pub fn client_of(&self, conn: ConnId) -> Option<&ClientId> {
        self.conns.get(&conn).and_then(|c| c.client.as_ref())
    }

    /// Whether every round has run.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Clients connected and authenticated.
    pub fn online(&self) -> usize {
        self.online.len()
    }

    fn deadline(&self, now: Instant) -> Option<Instant> {
        match self.policy.straggler {
            StragglerPolicy::Drop => Some(now + self.policy.round_timeout),
            StragglerPolicy::Wait => None,
        }
    }

    fn send(&mut self, conn: ConnId, msg: ServerMsg) {
        self.actions.push_back(Action::Send(conn, msg));
    }

    /// A new connection (before its first message).
    pub fn handle_connect(&mut self, conn: ConnId) {
        self.conns.insert(
            conn,
            Conn {
                client: None,
                payloads: Vec::new(),
            },
        );
    }

    /// A message on a connection's control stream. A protocol violation closes the
    /// connection; other clients are not affected.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: ClientMsg) {
        let Some(state) = self.conns.get(&conn) else {
            return;
        };
        match (state.client.clone(), msg) {
            (None, hello @ ClientMsg::Hello { .. }) => self.hello(now, conn, hello),
            (None, _) => self.reject(conn, "the first message must be Hello".into()),
            (Some(_), ClientMsg::Hello { .. }) => {
                self.actions
                    .push_back(Action::Close(conn, "Hello sent twice".into()));
                self.handle_disconnect(now, conn);
            }
            (Some(client), ClientMsg::Offer(offer)) => self.offer(conn, client, offer),
        }
    }

    fn reject(&mut self, conn: ConnId, reason: String) {
        self.send(
            conn,
            ServerMsg::Reject {
                reason: reason.clone(),
            },
        );
        self.actions.push_back(Action::Close(conn, reason));
        self.conns.remove(&conn);
    }

    fn negotiate(&self, offered: &[CodecOffer]) -> std::result::Result<CodecOffer, String> {
        if let Some(first) = offered.first()
            && self.codecs.contains(first)
        {
            return Ok(first.clone());
        }
        if self.codec_fallback
            && let Some(c) = offered.iter().find(|c| self.codecs.contains(c))
        {
            return Ok(c.clone());
        }
        let ours: Vec<String> = self.codecs.iter().map(ToString::to_string).collect();
        let theirs: Vec<String> = offered.iter().map(ToString::to_string).collect();
        Err(format!(
            "no codec in common{}: the client offers [{}], the aggregator decodes [{}]",
            if self.codec_fallback {
                ""
            } else {
                " (fallback is off: the client's first choice must match)"
            },
            theirs.join(", "),
            ours.join(", ")
        ))
    }

    fn hello(&mut self, now: Instant, conn: ConnId, hello: ClientMsg) {
        let ClientMsg::Hello {
            protocol,
            client,
            token,
            codecs,
            payloads,
        } = hello
        else {
            return;
        };
        if protocol != PROTOCOL_VERSION {
            let e = Error::Version {
                ours: PROTOCOL_VERSION,
                theirs: protocol,
            };
            return self.reject(conn, e.to_string());
        }
        if !self.auth.check(&client, &token) {
            return self.reject(
                conn,
                format!("client {client}: unknown client or wrong token"),
            );
        }
        let codec = match self.negotiate(&codecs) {
            Ok(c) => c,
            Err(e) => return self.reject(conn, e),
        };
        let run = self.policy.payloads_of_run();
        if !payloads.iter().any(|c| run.contains(c)) {
            return self.reject(
                conn,
                format!(
                    "no payload class in common: the client sends [{}], the aggregator accepts \
                     only [{}]",
                    join(&payloads, ", "),
                    join(&run, ", ")
                ),
            );
        }
        // A client that reconnects replaces its old connection.
        if let Some(old) = self.online.insert(client.clone(), conn)
            && old != conn
        {
            self.conns.remove(&old);
            self.actions
                .push_back(Action::Close(old, "the same client connected again".into()));
            for u in self.uploads.values_mut() {
                if u.streaming == Some(old) {
                    u.streaming = None;
                }
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client = Some(client.clone());
            c.payloads = payloads;
        }
        self.send(
            conn,
            ServerMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                codec,
                max_update_bytes: self.policy.max_update_bytes,
                rounds: self.policy.rounds,
                update: self.policy.update,
                payloads: run,
            },
        );
        match self.phase {
            Phase::Done => self.send_done(conn),
            Phase::Collecting { .. } if self.state.selected.contains(&client) => {
                if self.state.accepted.iter().any(|a| a.client == client) {
                    self.send(
                        conn,
                        ServerMsg::Wait {
                            round: self.state.round,
                            reason: "your update for this round is accepted".into(),
                        },
                    );
                } else {
                    self.invite(conn);
                }
            }
            _ => {
                self.send(
                    conn,
                    ServerMsg::Wait {
                        round: self.state.round,
                        reason: "not selected for this round".into(),
                    },
                );
                self.maybe_start(now);
            }
        }
    }

    /// The payload class `client` sends this round, if it is online and offers one the
    /// round accepts.
    fn assignment(&self, client: &ClientId) -> Option<PayloadClass> {
        let conn = self.online.get(client)?;
        let offered = &self.conns.get(conn)?.payloads;
        self.policy.assign(self.state.round, offered)
    }

    /// Why `client` cannot take part in this round, in words it can act on.
    fn ineligible(&self, client: &ClientId) -> String {
        let offered = self
            .online
            .get(client)
            .and_then(|c| self.conns.get(c))
            .map(|c| join(&c.payloads, ", "))
            .unwrap_or_default();
        format!(
            "round {} accepts only [{}] payloads and this client sends [{offered}]",
            self.state.round,
            join(self.policy.payloads_for(self.state.round), ", ")
        )
    }

    fn invite(&mut self, conn: ConnId) {
        let Some(client) = self.client_of(conn).cloned() else {
            return;
        };
        let Some(payload) = self.assignment(&client) else {
            let reason = self.ineligible(&client);
            let round = self.state.round;
            return self.send(conn, ServerMsg::Wait { round, reason });
        };
        self.send(
            conn,
            ServerMsg::RoundStart {
                round: self.state.round,
                model: self.state.model,
                payload,
            },
        );
        self.actions.push_back(Action::SendModel(conn));
    }

    fn send_done(&mut self, conn: ConnId) {
        self.send(
            conn,
            ServerMsg::Done {
                rounds: self.policy.rounds,
                model: self.state.model,
            },
        );
        self.actions.push_back(Action::SendModel(conn));
    }

    fn offer(&mut self, conn: ConnId, client: ClientId, offer: Offer) {
        let round = offer.round;
        let refuse = |agg: &mut Self, reason: String| {
            agg.send(conn, ServerMsg::Refused { round, reason });
        };
        if !matches!(self.phase, Phase::Collecting { .. }) || round != self.state.round {
            return refuse(
                self,
                format!(
                    "round {round} is not open (the aggregator is at round {})",
                    self.state.round
                ),
            );
        }
        if !self.state.selected.contains(&client) {
            return refuse(self, format!("{client} is not selected for round {round}"));
        }
        if self.state.accepted.iter().any(|a| a.client == client) {
            return self.send(conn, ServerMsg::Accepted { round });
        }
        if offer.len == 0 || offer.len > self.policy.max_update_bytes {
            return refuse(
                self,
                format!(
                    "update of {} bytes; the aggregator accepts 1 to {} bytes",
                    offer.len, self.policy.max_update_bytes
                ),
            );
        }
        if offer.samples == 0 || offer.samples > MAX_SAMPLES {
            return refuse(
                self,
                format!(
                    "weight of {} samples; give 1 to {MAX_SAMPLES}",
                    offer.samples
                ),
            );
        }
        if !offer.encode_secs.is_finite() || offer.encode_secs < 0.0 {
            return refuse(self, "encode time is not a non-negative number".into());
        }
        if let Some(u) = self.uploads.get(&client)
            && u.decoding
        {
            // Already complete and being checked; the verdict will come on this connection.
            return;
        }
        let key = UploadKey {
            round,
            client: client.clone(),
            digest: offer.digest,
        };
        // A different update replaces an earlier one of the same client.
        if let Some(old) = self.uploads.remove(&client)
            && old.offer.digest != offer.digest
        {
            self.actions.push_back(Action::Discard(UploadKey {
                round,
                client: client.clone(),
                digest: old.offer.digest,
            }));
        }
        let stale: Vec<UploadKey> = self
            .partials
            .keys()
            .filter(|k| k.client == client && k.digest != offer.digest)
            .cloned()
            .collect();
        for k in stale {
            self.partials.remove(&k);
            self.actions.push_back(Action::Discard(k));
        }
        let held = self.partials.get(&key).copied().unwrap_or(0).min(offer.len);
        self.refused.remove(&client);
        self.send(
            conn,
            ServerMsg::Resume {
                round,
                digest: offer.digest,
                offset: held,
            },
        );
        let complete = held == offer.len;
        self.uploads.insert(
            client.clone(),
            Upload {
                offer: offer.clone(),
                received: held,
                acked: held,
                decoding: complete,
                streaming: None,
            },
        );
        if complete {
            self.actions.push_back(Action::Decode(key, offer));
        }
    }

    /// An update stream opened with `header`: what it may write, or why it is refused (the
    /// driver then stops the stream).
    pub fn handle_upload_start(
        &mut self,
        conn: ConnId,
        header: &UploadHeader,
    ) -> std::result::Result<UploadPermit, String> {
        let client = self
            .conns
            .get(&conn)
            .and_then(|c| c.client.clone())
            .ok_or("update stream before the handshake")?;
        let u = self
            .uploads
            .get_mut(&client)
            .filter(|u| u.offer.round == header.round && u.offer.digest == header.digest)
            .ok_or_else(|| {
                format!(
                    "no open offer for round {} update {}",
                    header.round,
                    header.digest.short()
                )
            })?;
        if u.decoding {
            return Err("the update is already complete".into());
        }
        if header.offset != u.received {
            return Err(format!(
                "stream starts at byte {}, the aggregator holds {}",
                header.offset, u.received
            ));
        }
        u.streaming = Some(conn);
        Ok(UploadPermit {
            key: UploadKey {
                round: header.round,
                client,
                digest: header.digest,
            },
            offset: u.received,
            len: u.offer.len,
        })
    }

    /// `received` bytes of `key` are stored (not yet synced).
    pub fn handle_upload_progress(&mut self, conn: ConnId, key: &UploadKey, received: u64) {
        let ack_every = self.policy.ack_every;
        let Some(u) = self
            .uploads
            .get_mut(&key.client)
            .filter(|u| u.offer.digest == key.digest && u.streaming == Some(conn))
        else {
            return;
        };
        u.received = received.min(u.offer.len);
        self.partials.insert(key.clone(), u.received);
        if u.received == u.offer.len {
            u.decoding = true;
            u.acked = u.received;
            let offer = u.offer.clone();
            self.actions
                .push_back(Action::Ack(conn, key.clone(), u.received));
            self.actions.push_back(Action::Decode(key.clone(), offer));
        } else if u.received >= u.acked + ack_every {
            u.acked = u.received;
            self.actions
                .push_back(Action::Ack(conn, key.clone(), u.received));
        }
    }

    /// The verdict on a completed upload: `Ok(decode seconds)` once the decoded update is
    /// stored, or why it was refused.
    pub fn handle_decoded(
        &mut self,
        now: Instant,
        key: &UploadKey,
        result: std::result::Result<Decoded, String>,
    ) {
        let Some(u) = self
            .uploads
            .get(&key.client)
            .filter(|u| u.offer.digest == key.digest && u.offer.round == key.round && u.decoding)
        else {
            return;
        };
        let offer = u.offer.clone();
        self.uploads.remove(&key.client);
        self.partials.remove(key);
        let conn = self.online.get(&key.client).copied();
        match result {
            Ok(decoded) if key.round == self.state.round => {
                let a = AcceptedUpdate {
                    client: key.client.clone(),
                    samples: offer.samples,
                    digest: offer.digest,
                    wire_bytes: offer.len,
                    raw_bytes: offer.raw_len,
                    encode_secs: offer.encode_secs,
                    decode_secs: decoded.secs,
                    payload: decoded.payload,
                };
                let at = self.state.accepted.partition_point(|x| x.client < a.client);
                self.state.accepted.insert(at, a);
                self.actions.push_back(Action::Persist(self.state.clone()));
                self.actions.push_back(Action::Discard(key.clone()));
                if let Some(c) = conn {
                    self.send(c, ServerMsg::Accepted { round: key.round });
                }
                self.maybe_close(now);
            }
            Ok(_) => self.actions.push_back(Action::Discard(key.clone())),
            Err(reason) => {
                self.actions.push_back(Action::Discard(key.clone()));
                self.refused.insert(key.client.clone());
                if let Some(c) = conn {
                    self.send(
                        c,
                        ServerMsg::Refused {
                            round: key.round,
                            reason,
                        },
                    );
                }
                self.maybe_close(now);
            }
        }
    }

    /// A connection is gone. Its client stays selected and may come back.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some(client) = c.client
            && self.online.get(&client) == Some(&conn)
        {
            self.online.remove(&client);
        }
        for u in self.uploads.values_mut() {
            if u.streaming == Some(conn) {
                u.streaming = None;
            }
        }
        let _ = now;
    }

    /// The next global model is stored; its digest as broadcast is `model`.
    pub fn handle_aggregated(&mut self, now: Instant, round: Round, model: Digest) {
        if self.phase != Phase::Aggregating || round != self.state.round {
            return;
        }
        let summary = RoundSummary {
            round,
            selected: self.state.selected.len(),
            stragglers: self
                .state
                .selected
                .iter()
                .filter(|c| !self.state.accepted.iter().any(|a| &a.client == *c))
                .cloned()
                .collect(),
            accepted: std::mem::take(&mut self.state.accepted),
        };
        self.state.round = round.next();
        self.state.model = model;
        self.state.selected.clear();
        self.uploads.clear();
        self.refused.clear();
        for k in self.partials.drain().map(|(k, _)| k).collect::<Vec<_>>() {
            self.actions.push_back(Action::Discard(k));
        }
        self.state.finished = self.state.round.0 >= self.policy.rounds;
        self.actions.push_back(Action::Persist(self.state.clone()));
        self.actions.push_back(Action::RoundClosed(summary));
        if self.state.finished {
            self.phase = Phase::Done;
            let conns: Vec<ConnId> = self.online.values().copied().collect();
            for c in conns {
                self.send_done(c);
            }
            self.actions.push_back(Action::Finished);
        } else {
            self.phase = Phase::Waiting { since: Some(now) };
            self.maybe_start(now);
        }
    }

    /// Time has passed: deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting { since: Some(t) } if now >= t + self.policy.round_timeout => {
                // From now on `min_clients` online are enough.
                self.phase = Phase::Waiting { since: None };
                self.maybe_start(now);
            }
            Phase::Collecting {
                deadline: Some(deadline),
            } if now >= deadline => {
                if self.state.accepted.len() >= self.policy.min_clients {
                    self.close();
                } else {
                    self.replace_stragglers(now);
                }
            }
            _ => {}
        }
    }

    fn maybe_start(&mut self, now: Instant) {
        let enough = match self.phase {
            Phase::Waiting { since: Some(_) } => self.policy.clients_per_round,
            Phase::Waiting { since: None } => self.policy.min_clients,
            _ => return,
        };
        let eligible = self
            .online
            .keys()
            .filter(|c| self.assignment(c).is_some())
            .count();
        if eligible >= enough {
            self.start(now);
        }
    }

    fn start(&mut self, now: Instant) {
        let (mut pool, left_out): (Vec<ClientId>, Vec<ClientId>) = self
            .online
            .keys()
            .cloned()
            .partition(|c| self.assignment(c).is_some());
        for client in left_out {
            let reason = self.ineligible(&client);
            if let Some(&conn) = self.online.get(&client) {
                let round = self.state.round;
                self.send(conn, ServerMsg::Wait { round, reason });
            }
        }
        shuffle(&mut pool, self.policy.seed ^ self.state.round.0);
        pool.truncate(self.policy.clients_per_round);
        pool.sort();
        self.state.selected = pool;
        self.phase = Phase::Collecting {
            deadline: self.deadline(now),
        };
        self.actions.push_back(Action::Persist(self.state.clone()));
        for client in self.state.selected.clone() {
            if let Some(&conn) = self.online.get(&client) {
                self.invite(conn);
            }
        }
    }

    /// Under [`StragglerPolicy::Drop`], invites connected clients that are not selected
    /// yet, as many as updates are missing, and moves the deadline on.
    fn replace_stragglers(&mut self, now: Instant) {
        let missing = self.policy.min_clients - self.state.accepted.len();
        let mut pool: Vec<ClientId> = self
            .online
            .keys()
            .filter(|c| !self.state.selected.contains(c) && self.assignment(c).is_some())
            .cloned()
            .collect();
        shuffle(
            &mut pool,
            self.policy.seed ^ self.state.round.0 ^ 0x5bd1e995,
        );
        pool.truncate(missing);
        for client in &pool {
            let at = self.state.selected.partition_point(|x| x < client);
            self.state.selected.insert(at, client.clone());
        }
        if !pool.is_empty() {
            self.actions.push_back(Action::Persist(self.state.clone()));
        }
        for client in pool {
            if let Some(&conn) = self.online.get(&client) {
                self.invite(conn);
            }
        }
        self.phase = Phase::Collecting {
            deadline: self.deadline(now),
        };
    }

    fn maybe_close(&mut self, now: Instant) {
        let settled = self.state.selected.iter().all(|c| {
            self.state.accepted.iter().any(|a| &a.client == c) || self.refused.contains(c)
        });
        if !settled {
            return;
        }
        if self.state.accepted.len() >= self.policy.min_clients {
            self.close();
        } else if self.policy.straggler == StragglerPolicy::Drop {
            self.replace_stragglers(now);
        }
    }

    fn close(&mut self) {
        self.phase = Phase::Aggregating;
        for client in &self.state.selected {
            if self.state.accepted.iter().any(|a| &a.client == client) {
                continue;
            }
            if let Some(&conn) = self.online.get(client) {
                self.actions.push_back(Action::Send(
                    conn,
                    ServerMsg::Wait {
                        round: self.state.round,
                        reason: "the round closed without your update".into(),
                    },
                ));
            }
        }
        self.actions.push_back(Action::Aggregate(
            self.state.round,
            self.state.accepted.clone(),
        ));
    }
}

/// Fisher–Yates with SplitMix64: selection depends only on the seed, the round and who is
/// online.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests;
