//! The aggregator's rules on a simulated clock: no sockets, no sleeps.

use super::*;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn id(s: &str) -> ClientId {
    ClientId::new(s).unwrap()
}

fn policy(cpr: usize, min: usize, rounds: u64, straggler: StragglerPolicy) -> RoundPolicy {
    RoundPolicy {
        rounds,
        clients_per_round: cpr,
        min_clients: min,
        round_timeout: Duration::from_secs(60),
        straggler,
        update: UpdateKind::Delta,
        seed: 7,
        max_update_bytes: 1000,
        ack_every: 100,
        payloads: PayloadClass::ALL.to_vec(),
        payload_schedule: Vec::new(),
    }
}

fn decoded(secs: f64) -> std::result::Result<Decoded, String> {
    Ok(Decoded {
        secs,
        payload: PayloadClass::Dense,
    })
}

fn auth(n: usize) -> Auth {
    Auth::parse(
        &(0..n)
            .map(|i| format!("c{i:02} {TOKEN}\n"))
            .collect::<String>(),
    )
    .unwrap()
}

fn bytegroup() -> Vec<CodecOffer> {
    vec![CodecOffer::classical("bytegroup")]
}

/// The aggregator plus a driver that does everything at once and records what it saw.
struct Sim {
    agg: Aggregator,
    now: Instant,
    sent: Vec<(ConnId, ServerMsg)>,
    models_sent: Vec<ConnId>,
    persisted: Option<RoundState>,
    decodes: Vec<(UploadKey, Offer)>,
    aggregates: Vec<(Round, Vec<AcceptedUpdate>)>,
    summaries: Vec<RoundSummary>,
    closed: Vec<(ConnId, String)>,
    discarded: Vec<UploadKey>,
    acks: Vec<u64>,
    finished: bool,
    /// Where the state was when each `Accepted` was sent.
    accepted_after_persist: bool,
}

impl Sim {
    fn new(p: RoundPolicy, clients: usize) -> Sim {
        let now = Instant::now();
        let agg = Aggregator::new(
            p,
            auth(clients),
            bytegroup(),
            true,
            RoundState::fresh(Digest([1; 32])),
            vec![],
            now,
        )
        .unwrap();
        Sim::with(agg, now)
    }

    fn with(agg: Aggregator, now: Instant) -> Sim {
        Sim {
            agg,
            now,
            sent: vec![],
            models_sent: vec![],
            persisted: None,
            decodes: vec![],
            aggregates: vec![],
            summaries: vec![],
            closed: vec![],
            discarded: vec![],
            acks: vec![],
            finished: false,
            accepted_after_persist: true,
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.agg.poll_action() {
            match a {
                Action::Send(c, m) => {
                    if let ServerMsg::Accepted { .. } = &m {
                        let p = self.persisted.as_ref();
                        let cl = self.agg.conns.get(&c).and_then(|x| x.client.clone());
                        if !p.is_some_and(|p| {
                            p.accepted.iter().any(|a| Some(&a.client) == cl.as_ref())
                        }) {
                            self.accepted_after_persist = false;
                        }
                    }
                    self.sent.push((c, m))
                }
                Action::SendModel(c) => self.models_sent.push(c),
                Action::Ack(_, _, n) => self.acks.push(n),
                Action::Close(c, r) => self.closed.push((c, r)),
                Action::Decode(k, o) => self.decodes.push((k, o)),
                Action::Discard(k) => self.discarded.push(k),
                Action::Persist(s) => self.persisted = Some(s),
                Action::Aggregate(r, a) => self.aggregates.push((r, a)),
                Action::RoundClosed(s) => self.summaries.push(s),
                Action::Finished => self.finished = true,
            }
        }
    }

    fn connect(&mut self, conn: u64, client: &str) {
        self.connect_offering(conn, client, &PayloadClass::ALL);
    }

    fn connect_offering(&mut self, conn: u64, client: &str, payloads: &[PayloadClass]) {
        self.agg.handle_connect(ConnId(conn));
        self.agg.handle_message(
            self.now,
            ConnId(conn),
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                client: id(client),
                token: TOKEN.into(),
                codecs: bytegroup(),
                payloads: payloads.to_vec(),
            },
        );
        self.drain();
    }

    fn last_to(&self, conn: u64) -> Option<&ServerMsg> {
        self.sent
            .iter()
            .rev()
            .find(|(c, _)| *c == ConnId(conn))
            .map(|(_, m)| m)
    }

    fn offer(&mut self, conn: u64, round: u64, tag: u8, len: u64) -> Offer {
        let o = Offer {
            round: Round(round),
            digest: Digest([tag; 32]),
            len,
            raw_len: len * 2,
            samples: 10 + u64::from(tag),
            encode_secs: 0.5,
        };
        self.agg
            .handle_message(self.now, ConnId(conn), ClientMsg::Offer(o.clone()));
        self.drain();
        o
    }

    /// Offers, streams and has the update accepted.
    fn deliver(&mut self, conn: u64, client: &str, round: u64, tag: u8) {
        let o = self.offer(conn, round, tag, 250);
        let offset = match self.last_to(conn) {
            Some(ServerMsg::Resume { offset, .. }) => *offset,
            other => panic!("expected Resume, got {other:?}"),
        };
        let permit = self
            .agg
            .handle_upload_start(
                ConnId(conn),
                &UploadHeader {
                    round: Round(round),
                    digest: o.digest,
                    offset,
                },
            )
            .unwrap();
        assert_eq!(permit.key.client, id(client));
        self.agg
            .handle_upload_progress(ConnId(conn), &permit.key, o.len);
        self.drain();
        let (key, _) = self.decodes.pop().expect("a decode request");
        self.agg.handle_decoded(self.now, &key, decoded(0.25));
        self.drain();
    }

    fn aggregate(&mut self) {
        let (round, _) = self.aggregates.pop().expect("an aggregate request");
        let model = Digest([round.0 as u8 + 2; 32]);
        self.agg.handle_aggregated(self.now, round, model);
        self.drain();
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.agg.handle_timeout(self.now);
        self.drain();
    }
}

#[test]
fn two_clients_two_rounds() {
    let mut s = Sim::new(policy(2, 2, 2, StragglerPolicy::Drop), 2);
    s.connect(1, "c00");
    assert!(matches!(s.last_to(1), Some(ServerMsg::Wait { .. })));
    s.connect(2, "c01");
    // The second client completes the round's quorum: both are invited and get the model.
    assert!(matches!(
        s.last_to(1),
        Some(ServerMsg::RoundStart {
            round: Round(0),
            ..
        })
    ));
    assert!(matches!(s.last_to(2), Some(ServerMsg::RoundStart { .. })));
    assert_eq!(s.models_sent, [ConnId(1), ConnId(2)]);
    for round in 0..2 {
        s.deliver(1, "c00", round, 1);
        assert!(matches!(s.last_to(1), Some(ServerMsg::Accepted { .. })));
        assert!(s.aggregates.is_empty(), "one update is not the round");
        s.deliver(2, "c01", round, 2);
        assert_eq!(s.aggregates.len(), 1);
        assert_eq!(s.aggregates[0].1.len(), 2);
        s.aggregate();
    }
    assert!(s.finished);
    assert!(
        s.accepted_after_persist,
        "Accepted must follow the state that holds it"
    );
    assert!(matches!(
        s.last_to(1),
        Some(ServerMsg::Done { rounds: 2, .. })
    ));
    assert_eq!(s.summaries.len(), 2);
    assert!(s.summaries.iter().all(|x| x.stragglers.is_empty()));
    assert!(s.persisted.unwrap().finished);
    // Acks: every 100 bytes is not reached in one progress call of 250, but completion acks.
    assert!(s.acks.iter().all(|&a| a == 250));
}

#[test]
fn handshake_refusals() {
    let mut s = Sim::new(policy(2, 1, 1, StragglerPolicy::Drop), 2);
    let hello = |client: &str, token: &str, protocol, codecs| ClientMsg::Hello {
        protocol,
        client: id(client),
        token: token.into(),
        codecs,
        payloads: vec![PayloadClass::Dense],
    };
    let cases = [
        (
            hello("c00", "wrong-token", PROTOCOL_VERSION, bytegroup()),
            "wrong token",
        ),
        (
            hello("zz", TOKEN, PROTOCOL_VERSION, bytegroup()),
            "unknown client",
        ),
        (hello("c00", TOKEN, 99, bytegroup()), "version"),
        (
            hello(
                "c00",
                TOKEN,
                PROTOCOL_VERSION,
                vec![CodecOffer::classical("zstd")],
            ),
            "no codec in common",
        ),
        (
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                client: id("c00"),
                token: TOKEN.into(),
                codecs: bytegroup(),
                payloads: vec![],
            },
            "no payload class in common",
        ),
        (
            ClientMsg::Offer(Offer {
                round: Round(0),
                digest: Digest([0; 32]),
                len: 1,
                raw_len: 1,
                samples: 1,
                encode_secs: 0.0,
            }),
            "first message",
        ),
    ];
    for (i, (msg, why)) in cases.into_iter().enumerate() {
        let c = ConnId(10 + i as u64);
        s.agg.handle_connect(c);
        s.agg.handle_message(s.now, c, msg);
        s.drain();
        match s.last_to(c.0) {
            Some(ServerMsg::Reject { reason }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{why}: {other:?}"),
        }
        assert!(s.closed.iter().any(|(x, _)| *x == c));
        assert!(!s.agg.is_authenticated(c));
        // An unauthenticated connection cannot open an update stream.
        let h = UploadHeader {
            round: Round(0),
            digest: Digest([0; 32]),
            offset: 0,
        };
        assert!(s.agg.handle_upload_start(c, &h).is_err());
    }
    assert_eq!(s.agg.online(), 0);
}

#[test]
fn codec_fallback_only_when_allowed() {
    let lm = CodecOffer::classical("lm");
    let ours = vec![CodecOffer::classical("bytegroup")];
    let p = policy(1, 1, 1, StragglerPolicy::Drop);
    let now = Instant::now();
    for fallback in [true, false] {
        let mut agg = Aggregator::new(
            p.clone(),
            auth(1),
            ours.clone(),
            fallback,
            RoundState::fresh(Digest([0; 32])),
            vec![],
            now,
        )
        .unwrap();
        agg.handle_connect(ConnId(1));
        agg.handle_message(
            now,
            ConnId(1),
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                client: id("c00"),
                token: TOKEN.into(),
                codecs: vec![lm.clone(), ours[0].clone()],
                payloads: vec![PayloadClass::Dense],
            },
        );
        let first = agg.poll_action();
        match (fallback, first) {
            (true, Some(Action::Send(_, ServerMsg::Welcome { codec, .. }))) => {
                assert_eq!(codec, ours[0])
            }
            (false, Some(Action::Send(_, ServerMsg::Reject { reason }))) => {
                assert!(reason.contains("fallback is off"))
            }
            (f, other) => panic!("fallback {f}: {other:?}"),
        }
    }
}

#[test]
fn stragglers_are_dropped_at_the_deadline() {
    let mut s = Sim::new(policy(3, 2, 1, StragglerPolicy::Drop), 3);
    s.connect(1, "c00");
    s.connect(2, "c01");
    s.connect(3, "c02");
    s.deliver(1, "c00", 0, 1);
    s.deliver(2, "c01", 0, 2);
    assert!(s.aggregates.is_empty(), "c02 still has time");
    s.advance(59);
    assert!(s.aggregates.is_empty());
    s.advance(1);
    assert_eq!(
        s.aggregates.len(),
        1,
        "the deadline closes the round with 2 >= min_clients"
    );
    // The straggler is told, and its late offer is refused.
    assert!(matches!(s.last_to(3), Some(ServerMsg::Wait { .. })));
    s.aggregate();
    assert_eq!(s.summaries[0].stragglers, [id("c02")]);
    s.offer(3, 0, 3, 10);
    assert!(matches!(s.last_to(3), Some(ServerMsg::Refused { .. })));
}

#[test]
fn too_few_updates_invite_replacements() {
    // Two selected of three online; one never delivers, min_clients is 2.
    let mut s = Sim::new(policy(2, 2, 1, StragglerPolicy::Drop), 3);
    s.connect(1, "c00");
    s.connect(2, "c01");
    s.connect(3, "c02");
    let selected = s.agg.state().selected.clone();
    assert_eq!(selected.len(), 2);
    let conn_of = |c: &ClientId| u64::from(c.as_str().as_bytes()[2] - b'0') + 1;
    let (first, second) = (&selected[0], &selected[1]);
    s.deliver(conn_of(first), first.as_str(), 0, 1);
    s.advance(60);
    assert!(s.aggregates.is_empty(), "1 update < min_clients");
    let spare = [id("c00"), id("c01"), id("c02")]
        .into_iter()
        .find(|c| !selected.contains(c))
        .unwrap();
    assert!(
        s.agg.state().selected.contains(&spare),
        "the spare client is invited"
    );
    assert!(matches!(
        s.last_to(conn_of(&spare)),
        Some(ServerMsg::RoundStart { .. })
    ));
    s.deliver(conn_of(&spare), spare.as_str(), 0, 3);
    assert_eq!(
        s.aggregates.len(),
        0,
        "the original straggler may still deliver"
    );
    s.advance(60);
    assert_eq!(s.aggregates.len(), 1);
    s.aggregate();
    assert_eq!(&s.summaries[0].stragglers, std::slice::from_ref(second));
}

#[test]
fn wait_policy_has_no_deadline() {
    let mut s = Sim::new(policy(2, 2, 1, StragglerPolicy::Wait), 2);
    s.connect(1, "c00");
    s.connect(2, "c01");
    s.deliver(1, "c00", 0, 1);
    assert_eq!(s.agg.poll_timeout(), None);
    s.advance(100_000);
    assert!(s.aggregates.is_empty());
    s.deliver(2, "c01", 0, 2);
    assert_eq!(s.aggregates.len(), 1);
}

#[test]
fn a_client_that_drops_mid_upload_resumes() {
    let mut s = Sim::new(policy(1, 1, 1, StragglerPolicy::Drop), 1);
    s.connect(1, "c00");
    let o = s.offer(1, 0, 5, 500);
    let h = UploadHeader {
        round: Round(0),
        digest: o.digest,
        offset: 0,
    };
    let permit = s.agg.handle_upload_start(ConnId(1), &h).unwrap();
    s.agg.handle_upload_progress(ConnId(1), &permit.key, 120);
    s.agg.handle_upload_progress(ConnId(1), &permit.key, 230);
    s.drain();
    assert_eq!(s.acks, [120, 230]);
    s.agg.handle_disconnect(s.now, ConnId(1));
    // Bytes from the dead connection are ignored.
    s.agg.handle_upload_progress(ConnId(1), &permit.key, 400);
    s.connect(2, "c00");
    assert!(
        matches!(s.last_to(2), Some(ServerMsg::RoundStart { .. })),
        "re-invited"
    );
    s.offer(2, 0, 5, 500);
    assert!(matches!(
        s.last_to(2),
        Some(ServerMsg::Resume { offset: 230, .. })
    ));
    // A stream that starts anywhere else is refused.
    let bad = UploadHeader {
        offset: 0,
        ..h.clone()
    };
    assert!(s.agg.handle_upload_start(ConnId(2), &bad).is_err());
    let permit = s
        .agg
        .handle_upload_start(ConnId(2), &UploadHeader { offset: 230, ..h })
        .unwrap();
    assert_eq!(permit.offset, 230);
    s.agg.handle_upload_progress(ConnId(2), &permit.key, 500);
    s.drain();
    assert_eq!(s.decodes.len(), 1);
}

#[test]
fn a_restarted_aggregator_keeps_accepted_updates_and_partials() {
    let p = policy(3, 3, 2, StragglerPolicy::Drop);
    let mut s = Sim::new(p.clone(), 3);
    s.connect(1, "c00");
    s.connect(2, "c01");
    s.connect(3, "c02");
    s.deliver(1, "c00", 0, 1);
    let o = s.offer(2, 0, 2, 300);
    let h = UploadHeader {
        round: Round(0),
        digest: o.digest,
        offset: 0,
    };
    let permit = s.agg.handle_upload_start(ConnId(2), &h).unwrap();
    s.agg.handle_upload_progress(ConnId(2), &permit.key, 150);
    s.drain();
    // Killed here. What survives: the last persisted state and the partial file.
    let state = s.persisted.clone().unwrap();
    assert_eq!(state.accepted.len(), 1);
    let stale = UploadKey {
        round: Round(7),
        client: id("c02"),
        digest: Digest([9; 32]),
    };
    let agg = Aggregator::new(
        p,
        auth(3),
        bytegroup(),
        true,
        state,
        vec![(permit.key.clone(), 150), (stale.clone(), 3)],
        s.now,
    )
    .unwrap();
    let mut s = Sim::with(agg, s.now);
    s.drain();
    assert_eq!(s.discarded, [stale], "partials of other rounds are dropped");
    s.connect(11, "c00");
    assert!(
        matches!(s.last_to(11), Some(ServerMsg::Wait { .. })),
        "c00 is already accepted"
    );
    s.connect(12, "c01");
    assert!(matches!(
        s.last_to(12),
        Some(ServerMsg::RoundStart {
            round: Round(0),
            ..
        })
    ));
    s.offer(12, 0, 2, 300);
    assert!(matches!(
        s.last_to(12),
        Some(ServerMsg::Resume { offset: 150, .. })
    ));
    let permit = s
        .agg
        .handle_upload_start(ConnId(12), &UploadHeader { offset: 150, ..h })
        .unwrap();
    s.agg.handle_upload_progress(ConnId(12), &permit.key, 300);
    s.drain();
    let (key, _) = s.decodes.pop().unwrap();
    s.agg.handle_decoded(s.now, &key, decoded(0.1));
    s.connect(13, "c02");
    s.deliver(13, "c02", 0, 3);
    let (_, accepted) = &s.aggregates[0];
    let who: Vec<&str> = accepted.iter().map(|a| a.client.as_str()).collect();
    assert_eq!(
        who,
        ["c00", "c01", "c02"],
        "nothing accepted was lost, sorted by client"
    );
}

#[test]
fn hostile_offers_are_refused_for_that_client_only() {
    let mut s = Sim::new(policy(2, 1, 1, StragglerPolicy::Drop), 2);
    s.connect(1, "c00");
    s.connect(2, "c01");
    for (len, samples) in [(0, 1), (1001, 1), (10, 0), (10, MAX_SAMPLES + 1)] {
        let o = Offer {
            round: Round(0),
            digest: Digest([3; 32]),
            len,
            raw_len: 1,
            samples,
            encode_secs: 0.0,
        };
        s.agg.handle_message(s.now, ConnId(1), ClientMsg::Offer(o));
        s.drain();
        assert!(
            matches!(s.last_to(1), Some(ServerMsg::Refused { .. })),
            "{len} {samples}"
        );
    }
    let o = Offer {
        round: Round(5),
        digest: Digest([3; 32]),
        len: 10,
        raw_len: 1,
        samples: 1,
        encode_secs: 0.0,
    };
    s.agg.handle_message(s.now, ConnId(1), ClientMsg::Offer(o));
    s.drain();
    assert!(
        matches!(s.last_to(1), Some(ServerMsg::Refused { .. })),
        "wrong round"
    );
    // An undecodable update: refused, and the round goes on with the other client.
    let o = s.offer(1, 0, 4, 50);
    let p = s
        .agg
        .handle_upload_start(
            ConnId(1),
            &UploadHeader {
                round: Round(0),
                digest: o.digest,
                offset: 0,
            },
        )
        .unwrap();
    s.agg.handle_upload_progress(ConnId(1), &p.key, 50);
    s.drain();
    let (key, _) = s.decodes.pop().unwrap();
    s.agg
        .handle_decoded(s.now, &key, Err("corrupt .lmgc container".into()));
    s.drain();
    assert!(
        matches!(s.last_to(1), Some(ServerMsg::Refused { reason, .. }) if reason.contains("corrupt"))
    );
    assert!(s.aggregates.is_empty());
    s.deliver(2, "c01", 0, 2);
    assert_eq!(s.aggregates.len(), 1);
    assert_eq!(s.aggregates[0].1.len(), 1);
}

#[test]
fn fifty_clients_in_one_round() {
    let mut s = Sim::new(policy(50, 50, 1, StragglerPolicy::Drop), 60);
    for i in 0..60 {
        s.connect(i, &format!("c{i:02}"));
    }
    let selected = s.agg.state().selected.clone();
    assert_eq!(selected.len(), 50);
    for c in &selected {
        let conn = c.as_str()[1..].parse::<u64>().unwrap();
        s.deliver(conn, c.as_str(), 0, (conn % 250) as u8);
    }
    assert_eq!(s.aggregates.len(), 1);
    assert_eq!(s.aggregates[0].1.len(), 50);
    s.aggregate();
    assert!(s.finished);
}

#[test]
fn selection_is_seeded() {
    // Round 0 starts as soon as 3 clients are online (all of them); round 1 picks 3 of 10.
    let pick = |seed| {
        let mut p = policy(3, 1, 2, StragglerPolicy::Drop);
        p.seed = seed;
        let mut s = Sim::new(p, 10);
        for i in 0..10 {
            s.connect(i, &format!("c{i:02}"));
        }
        for i in 0..3 {
            s.deliver(i, &format!("c{i:02}"), 0, i as u8 + 1);
        }
        s.aggregate();
        s.agg.state().selected.clone()
    };
    assert_eq!(pick(1).len(), 3);
    assert_eq!(pick(1), pick(1));
    assert!((2..6).any(|seed| pick(seed) != pick(1)));
}

#[test]
fn a_round_starts_with_min_clients_after_the_timeout() {
    let mut s = Sim::new(policy(3, 2, 1, StragglerPolicy::Drop), 3);
    s.connect(1, "c00");
    s.advance(60);
    assert_eq!(
        s.agg.poll_timeout(),
        None,
        "no busy timer while too few clients are online"
    );
    assert!(s.agg.state().selected.is_empty());
    s.connect(2, "c01");
    assert_eq!(
        s.agg.state().selected.len(),
        2,
        "min_clients suffice once the wait is over"
    );
    assert!(matches!(s.last_to(2), Some(ServerMsg::RoundStart { .. })));
}

/// A schedule moves the run from dense to quantized updates: each round selects only clients
/// that offer a class it accepts, names the class in `RoundStart`, tells the others why they
/// wait, and the accepted updates record what was sent. A client that offers no class of the
/// whole run is refused at the handshake.
#[test]
fn payload_schedules_assign_classes_per_round() {
    use PayloadClass::*;
    let mut p = policy(2, 2, 2, StragglerPolicy::Drop);
    p.payloads = vec![Dense];
    p.payload_schedule = vec![PayloadStep {
        from_round: 1,
        payloads: vec![Quantized, Dense],
    }];
    let mut s = Sim::new(p, 4);
    s.connect_offering(1, "c00", &[Sparse]);
    match s.last_to(1) {
        Some(ServerMsg::Reject { reason }) => {
            assert!(
                reason.contains("[sparse]") && reason.contains("[dense, quantized]"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    s.connect_offering(2, "c01", &[Quantized, Dense]);
    s.connect_offering(3, "c02", &[Quantized]);
    // Round 0 is dense: c02 cannot take part, and the round waits for a second client.
    assert!(s.aggregates.is_empty() && s.models_sent.is_empty());
    s.connect_offering(4, "c03", &[Sparse, Dense]);
    for conn in [2, 4] {
        assert!(
            matches!(
                s.last_to(conn),
                Some(ServerMsg::RoundStart {
                    round: Round(0),
                    payload: Dense,
                    ..
                })
            ),
            "{:?}",
            s.last_to(conn)
        );
    }
    match s.last_to(3) {
        Some(ServerMsg::Wait { reason, .. }) => assert!(
            reason.contains("round 0 accepts only [dense]") && reason.contains("[quantized]"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    s.deliver(2, "c01", 0, 1);
    s.deliver(4, "c03", 0, 2);
    s.aggregate();
    // Round 1 prefers quantized: c01 and c02 send it, c03 (sparse or dense) may send dense;
    // two of the three are selected, each told its class.
    let selected = s.agg.state().selected.clone();
    assert_eq!(selected.len(), 2);
    for (conn, client, class) in [
        (2, "c01", Quantized),
        (3, "c02", Quantized),
        (4, "c03", Dense),
    ] {
        let msg = s.last_to(conn);
        if selected.contains(&id(client)) {
            assert!(
                matches!(msg, Some(ServerMsg::RoundStart { round: Round(1), payload, .. }) if *payload == class),
                "{client}: {msg:?}"
            );
        }
    }
    let (key, _) = {
        let conn = if selected.contains(&id("c01")) {
            (2, "c01")
        } else {
            (3, "c02")
        };
        let o = s.offer(conn.0, 1, 9, 100);
        let permit = s
            .agg
            .handle_upload_start(
                ConnId(conn.0),
                &UploadHeader {
                    round: Round(1),
                    digest: o.digest,
                    offset: 0,
                },
            )
            .unwrap();
        s.agg
            .handle_upload_progress(ConnId(conn.0), &permit.key, o.len);
        s.drain();
        s.decodes.pop().unwrap()
    };
    s.agg.handle_decoded(
        s.now,
        &key,
        Ok(Decoded {
            secs: 0.1,
            payload: Quantized,
        }),
    );
    s.drain();
    let accepted = &s.persisted.as_ref().unwrap().accepted;
    assert_eq!(accepted.last().unwrap().payload, Quantized);
    // State files written before payloads were recorded read as dense.
    let mut old = serde_json::to_value(&accepted[0]).unwrap();
    old.as_object_mut().unwrap().remove("payload");
    let old: AcceptedUpdate = serde_json::from_value(old).unwrap();
    assert_eq!(old.payload, Dense);
}
