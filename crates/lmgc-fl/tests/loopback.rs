//! The transport end to end over real QUIC + TLS 1.3 on loopback: FedAvg results, resumed
//! uploads, a killed aggregator, hostile clients, fifty clients in one round.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lmgc_core::payload::{self, PayloadClass, PayloadSpec};
use lmgc_core::{Gradient, Tensor};
use lmgc_fl::Error;
use lmgc_fl::aggregator::StragglerPolicy;
use lmgc_fl::client::{Client, ClientEvent};
use lmgc_fl::codec::ClassicalCodecs;
use lmgc_fl::config::{AggregatorConfig, ClientConfig, ServerAuth};
use lmgc_fl::server::Server;
use lmgc_fl::store::StateDir;
use lmgc_fl::trainer::{LocalUpdate, Trainer};
use lmgc_fl::wire::{ClientId, Round, UpdateKind};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const LIMIT: Duration = Duration::from_secs(120);

fn model(n: usize, seed: u32) -> Gradient {
    let vals: Vec<f32> = (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
        .collect();
    Gradient::new(vec![
        Tensor::from_f32("w", &vals),
        Tensor::from_f32("b", &vals[..n.min(7)]),
    ])
    .unwrap()
}

/// Update of `client` in `round`: a deterministic function of both, and its weight.
fn update_of(client: &str, round: u64, n: usize) -> (Gradient, u64) {
    let seed = client
        .bytes()
        .fold(round as u32 * 977, |a, b| a.wrapping_mul(31) ^ u32::from(b));
    (model(n, seed), 10 + u64::from(seed % 90))
}

struct Deterministic {
    client: String,
    n: usize,
    gate: Option<Arc<Mutex<std::sync::mpsc::Receiver<()>>>>,
}

impl Trainer for Deterministic {
    fn train(&mut self, round: Round, _global: &Gradient) -> lmgc_fl::Result<LocalUpdate> {
        if let Some(g) = &self.gate {
            g.lock().unwrap().recv().unwrap();
        }
        let (update, samples) = update_of(&self.client, round.0, self.n);
        Ok(LocalUpdate { update, samples })
    }
}

/// The FedAvg of the clients' updates, computed directly (f64 sums in client order).
fn expected(clients: &[&str], rounds: u64, n: usize) -> Vec<Vec<f32>> {
    expected_with(clients, rounds, n, &|_, _, g| g)
}

/// [`expected`] with the update of client `c` in round `r` passed through `sent(c, r,
/// update)` (what the aggregator receives).
fn expected_with(
    clients: &[&str],
    rounds: u64,
    n: usize,
    sent: &dyn Fn(&str, u64, Gradient) -> Gradient,
) -> Vec<Vec<f32>> {
    let mut global: Vec<Vec<f32>> = model(n, 1)
        .tensors()
        .iter()
        .map(|t| t.to_f32().unwrap())
        .collect();
    let mut sorted = clients.to_vec();
    sorted.sort();
    for r in 0..rounds {
        let ups: Vec<(Vec<Vec<f32>>, u64)> = sorted
            .iter()
            .map(|c| {
                let (g, s) = update_of(c, r, n);
                let g = sent(c, r, g);
                (g.tensors().iter().map(|t| t.to_f32().unwrap()).collect(), s)
            })
            .collect();
        let total: u64 = ups.iter().map(|u| u.1).sum();
        for (ti, t) in global.iter_mut().enumerate() {
            for (i, v) in t.iter_mut().enumerate() {
                let sum: f64 = ups
                    .iter()
                    .map(|(u, s)| *s as f64 * f64::from(u[ti][i]))
                    .sum();
                *v = (f64::from(*v) + sum / total as f64) as f32;
            }
        }
    }
    global
}

fn aggregator_config(
    dir: &Path,
    clients: usize,
    cpr: usize,
    min: usize,
    rounds: u64,
) -> AggregatorConfig {
    let tokens = dir.join("tokens.txt");
    let lines: String = (0..clients).map(|i| format!("c{i:02} {TOKEN}\n")).collect();
    std::fs::write(&tokens, lines + &format!("evil {TOKEN}\n")).unwrap();
    AggregatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.join("agg"),
        rounds,
        clients_per_round: cpr,
        min_clients: min,
        round_timeout_secs: 30.0,
        straggler: StragglerPolicy::Drop,
        update: UpdateKind::Delta,
        codecs: vec!["bytegroup".into(), "store".into()],
        auth: ServerAuth {
            tokens: Some(tokens),
        },
        idle_timeout_secs: 2.0,
        linger_secs: 5.0,
        ..Default::default()
    }
}

fn client_config(dir: &Path, id: &str, addr: std::net::SocketAddr, fp: &str) -> ClientConfig {
    ClientConfig {
        server: addr.to_string(),
        server_name: "localhost".into(),
        client_id: ClientId::new(id).unwrap(),
        token: Some(TOKEN.into()),
        token_file: None,
        server_fingerprint: Some(fp.into()),
        ca: None,
        state_dir: dir.join(id),
        codecs: vec!["bytegroup".into()],
        max_upload_rate: 0,
        reconnect_secs: 30.0,
        idle_timeout_secs: 2.0,
        payload: "dense".into(),
        error_feedback: true,
        lm: Default::default(),
        train: Default::default(),
    }
}

fn client(dir: &Path, id: &str, addr: std::net::SocketAddr, fp: &str, n: usize) -> Client {
    Client::new(
        client_config(dir, id, addr, fp),
        Arc::new(ClassicalCodecs),
        Box::new(Deterministic {
            client: id.into(),
            n,
            gate: None,
        }),
    )
    .unwrap()
}

/// Starts a [`Deterministic`] client per name with `payload` and error feedback on or off.
fn spawn_payload_clients(
    dir: &Path,
    names: &[&str],
    addr: std::net::SocketAddr,
    fp: &str,
    n: usize,
    payload: &str,
    feedback: bool,
) -> Vec<tokio::task::JoinHandle<lmgc_fl::Result<lmgc_fl::client::ClientOutcome>>> {
    names
        .iter()
        .map(|c| {
            let mut config = client_config(dir, c, addr, fp);
            config.payload = payload.into();
            config.error_feedback = feedback;
            let trainer = Deterministic {
                client: (*c).into(),
                n,
                gate: None,
            };
            tokio::spawn(
                Client::new(config, Arc::new(ClassicalCodecs), Box::new(trainer))
                    .unwrap()
                    .run(),
            )
        })
        .collect()
}

/// What the aggregator makes of a q8 payload of `g`: its dequantized values.
fn q8_as_received(g: &Gradient) -> Gradient {
    let q8: PayloadSpec = "q8".parse().unwrap();
    payload::densify(&payload::reduce(g, &q8).unwrap(), u64::MAX).unwrap()
}

/// Binds an aggregator for `cfg` (initial model of `n` values) and runs it in the background.
fn start(
    cfg: &AggregatorConfig,
    n: usize,
) -> (
    std::net::SocketAddr,
    String,
    tokio::task::JoinHandle<lmgc_fl::Result<lmgc_fl::server::Outcome>>,
) {
    let server = Server::bind(cfg, Arc::new(ClassicalCodecs), Some(model(n, 1))).unwrap();
    let (addr, fp) = (
        server.local_addr().unwrap(),
        server.fingerprint().to_owned(),
    );
    (
        addr,
        fp,
        tokio::spawn(server.run(None, std::future::pending())),
    )
}

/// Waits (bounded) for a task that must succeed.
async fn join<T>(task: tokio::task::JoinHandle<lmgc_fl::Result<T>>) -> T {
    tokio::time::timeout(LIMIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// `RUST_LOG=lmgc_fl=debug cargo test ...` shows the transport's logs.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn values(g: &Gradient) -> Vec<Vec<f32>> {
    g.tensors().iter().map(|t| t.to_f32().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedavg_over_quic_equals_the_direct_weighted_mean() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 5000;
    let cfg = aggregator_config(dir.path(), 3, 3, 3, 2);
    let server = Server::bind(&cfg, Arc::new(ClassicalCodecs), Some(model(n, 1))).unwrap();
    let (addr, fp) = (
        server.local_addr().unwrap(),
        server.fingerprint().to_owned(),
    );
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r2 = reports.clone();
    let srv = tokio::spawn(server.run(
        Some(Box::new(move |r| {
            r2.lock().unwrap().push(r.summary.clone())
        })),
        std::future::pending(),
    ));
    let names = ["c00", "c01", "c02"];
    let runs: Vec<_> = names
        .iter()
        .map(|c| tokio::spawn(client(dir.path(), c, addr, &fp, n).run()))
        .collect();
    for r in runs {
        let out = join(r).await;
        assert_eq!(out.accepted, 2);
        assert_eq!(values(&out.model), expected(&names, 2, n));
    }
    let outcome = join(srv).await;
    assert!(outcome.finished);
    assert_eq!(values(&outcome.model), expected(&names, 2, n));
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.accepted.len() == 3 && r.accepted.iter().all(|a| a.wire_bytes < a.raw_bytes)));
    let metrics = std::fs::read_to_string(cfg.metrics_path()).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(line["updates"], 3);
    assert!(line["ratio"].as_f64().unwrap() < 1.0);
}

/// The aggregator's schedule takes dense updates in round 0 and quantized ones from round 1;
/// clients that can send either (`q8,dense`, no error feedback, so the result is computable
/// directly) follow it: the aggregator densifies the q8 payloads and averages the dequantized
/// updates, and the wire carries about a quarter of the dense bytes in round 1. A client with
/// no payload class of the run stops at the handshake with a message that names both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_classes_follow_the_aggregators_schedule() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 3000;
    let mut cfg = aggregator_config(dir.path(), 2, 2, 2, 2);
    cfg.payloads = vec![PayloadClass::Dense];
    cfg.payload_schedule = vec!["1:quantized".parse().unwrap()];
    let (addr, fp, srv) = start(&cfg, n);
    let names = ["c00", "c01"];
    let runs = spawn_payload_clients(dir.path(), &names, addr, &fp, n, "q8,dense", false);
    let want = expected_with(&names, 2, n, &|_, round, g| match round {
        0 => g,
        _ => q8_as_received(&g),
    });
    assert_ne!(want, expected(&names, 2, n));
    for r in runs {
        let out = join(r).await;
        assert_eq!(out.accepted, 2);
        assert_eq!(values(&out.model), want);
    }
    assert_eq!(values(&join(srv).await.model), want);
    let metrics = std::fs::read_to_string(cfg.metrics_path()).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (line, class) in lines.iter().zip(["dense", "quantized"]) {
        let clients = line["clients"].as_array().unwrap();
        assert!(clients.iter().all(|c| c["payload"] == class), "{line}");
    }
    assert!(lines[0]["ratio"].as_f64().unwrap() > 0.5, "{}", lines[0]);
    assert!(lines[1]["ratio"].as_f64().unwrap() < 0.3, "{}", lines[1]);

    // An aggregator that takes dense updates only.
    let strict_dir = dir.path().join("strict");
    std::fs::create_dir_all(&strict_dir).unwrap();
    let mut strict = aggregator_config(&strict_dir, 1, 1, 1, 1);
    strict.payloads = vec![PayloadClass::Dense];
    let (addr, fp, srv) = start(&strict, n);
    let mut config = client_config(&strict_dir, "c00", addr, &fp);
    config.payload = "top10%".into();
    let trainer = Deterministic {
        client: "c00".into(),
        n,
        gate: None,
    };
    let e = tokio::time::timeout(
        LIMIT,
        Client::new(config, Arc::new(ClassicalCodecs), Box::new(trainer))
            .unwrap()
            .run(),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(&e, Error::Rejected(m) if m.contains("[sparse]") && m.contains("accepts only [dense]")),
        "{e}"
    );
    srv.abort();
}

/// Error feedback across classes: with q8 in round 0 and dense in round 1, each client's
/// dense update carries what its q8 payload left out (`update₁ + (update₀ − q8(update₀))`,
/// in the client's `f32` arithmetic), so nothing the lossy round dropped is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dense_round_after_a_lossy_one_sends_the_residual() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 2000;
    let mut cfg = aggregator_config(dir.path(), 2, 2, 2, 2);
    cfg.payload_schedule = vec!["0:quantized".parse().unwrap(), "1:dense".parse().unwrap()];
    let (addr, fp, srv) = start(&cfg, n);
    let names = ["c00", "c01"];
    let runs = spawn_payload_clients(dir.path(), &names, addr, &fp, n, "q8,dense", true);
    let lossy = q8_as_received;
    let want = expected_with(&names, 2, n, &|client, round, g| {
        if round == 0 {
            return lossy(&g);
        }
        let (u0, _) = update_of(client, 0, n);
        let s0 = lossy(&u0);
        let tensors = g
            .tensors()
            .iter()
            .zip(u0.tensors().iter().zip(s0.tensors()))
            .map(|(t, (a, b))| {
                let v: Vec<f32> = t
                    .to_f32()
                    .unwrap()
                    .iter()
                    .zip(a.to_f32().unwrap().iter().zip(b.to_f32().unwrap()))
                    .map(|(u, (a, b))| u + (a - b))
                    .collect();
                Tensor::from_f32(t.name(), &v)
            })
            .collect();
        Gradient::new(tensors).unwrap()
    });
    assert_ne!(
        want,
        expected_with(&names, 2, n, &|_, r, g| if r == 0 { lossy(&g) } else { g })
    );
    for r in runs {
        assert_eq!(values(&join(r).await.model), want);
    }
    assert_eq!(values(&join(srv).await.model), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_wrong_certificates_are_refused() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let cfg = aggregator_config(dir.path(), 1, 1, 1, 1);
    let server = Server::bind(&cfg, Arc::new(ClassicalCodecs), Some(model(100, 1))).unwrap();
    let (addr, fp) = (
        server.local_addr().unwrap(),
        server.fingerprint().to_owned(),
    );
    let srv = tokio::spawn(server.run(None, std::future::pending()));
    // Wrong token.
    let mut c = client_config(dir.path(), "c00", addr, &fp);
    c.token = Some("f".repeat(32));
    let bad = Client::new(
        c,
        Arc::new(ClassicalCodecs),
        Box::new(Deterministic {
            client: "c00".into(),
            n: 100,
            gate: None,
        }),
    )
    .unwrap();
    let e = tokio::time::timeout(LIMIT, bad.run())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Rejected(r) if r.contains("wrong token")),
        "{e}"
    );
    // Unknown client.
    let stranger = client(dir.path(), "c99", addr, &fp, 100);
    let e = tokio::time::timeout(LIMIT, stranger.run())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::Rejected(_)), "{e}");
    // A pinned fingerprint that is not the server's: TLS fails, nothing is sent.
    let wrong_fp = "00".repeat(32);
    let mitm = client(dir.path(), "c00", addr, &wrong_fp, 100);
    let e = tokio::time::timeout(LIMIT, mitm.run())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
    // The legitimate client still completes the run.
    let good = client(dir.path(), "c00", addr, &fp, 100);
    let out = tokio::time::timeout(LIMIT, good.run())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.accepted, 1);
    join(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_upload_resumes_where_it_stopped() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 1_000_000; // ~4 MB, close to incompressible
    let cfg = aggregator_config(dir.path(), 1, 1, 1, 1);
    let (addr, fp, srv) = start(&cfg, n);
    let mut c = client_config(dir.path(), "c00", addr, &fp);
    c.max_upload_rate = 2_000_000;
    let first = Client::new(
        c.clone(),
        Arc::new(ClassicalCodecs),
        Box::new(Deterministic {
            client: "c00".into(),
            n,
            gate: None,
        }),
    )
    .unwrap();
    let run = tokio::spawn(first.run());
    // Wait until the aggregator holds part of the update, then kill the client.
    let store = StateDir::open(&cfg.state_dir).unwrap();
    let held = tokio::time::timeout(LIMIT, async {
        loop {
            if let Some((_, len)) = store
                .partials()
                .unwrap()
                .into_iter()
                .find(|p| p.1 > 1_000_000)
            {
                return len;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    run.abort();
    let _ = run.await;
    assert!(
        lmgc_fl::client::pending_file(&c.state_dir).exists(),
        "the encoded update is kept"
    );
    // Restart: no training (the trainer would panic), resume from the aggregator's offset.
    struct NoTraining;
    impl Trainer for NoTraining {
        fn train(&mut self, _: Round, _: &Gradient) -> lmgc_fl::Result<LocalUpdate> {
            panic!("a resumed upload must not train again")
        }
    }
    c.max_upload_rate = 0;
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let second = Client::new(c, Arc::new(ClassicalCodecs), Box::new(NoTraining))
        .unwrap()
        .on_event(Box::new(move |e| ev.lock().unwrap().push(e.clone())));
    let out = tokio::time::timeout(LIMIT, second.run())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.accepted, 1);
    let offset = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            ClientEvent::Uploading { offset, .. } => Some(*offset),
            _ => None,
        })
        .unwrap();
    assert!(
        offset > 0 && offset <= held,
        "resumed at {offset}, the aggregator held {held}"
    );
    assert_eq!(values(&out.model), expected(&["c00"], 1, n));
    join(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_aggregator_resumes_the_round_without_losing_accepted_updates() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 3000;
    let cfg = aggregator_config(dir.path(), 2, 2, 2, 1);
    // The aggregator runs on its own runtime, so killing it ends every task and socket.
    let rt1 = tokio::runtime::Runtime::new().unwrap();
    let server = {
        let _g = rt1.enter();
        Server::bind(&cfg, Arc::new(ClassicalCodecs), Some(model(n, 1))).unwrap()
    };
    let (addr, fp) = (
        server.local_addr().unwrap(),
        server.fingerprint().to_owned(),
    );
    rt1.spawn(server.run(None, std::future::pending()));
    let (go, gate) = std::sync::mpsc::channel();
    let a = tokio::spawn(client(dir.path(), "c00", addr, &fp, n).run());
    let slow = Client::new(
        client_config(dir.path(), "c01", addr, &fp),
        Arc::new(ClassicalCodecs),
        Box::new(Deterministic {
            client: "c01".into(),
            n,
            gate: Some(Arc::new(Mutex::new(gate))),
        }),
    )
    .unwrap();
    let b = tokio::spawn(slow.run());
    let store = StateDir::open(&cfg.state_dir).unwrap();
    tokio::time::timeout(LIMIT, async {
        while store
            .load_state()
            .unwrap()
            .is_none_or(|s| s.accepted.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    rt1.shutdown_background();
    // c01 finishes training while the aggregator is down; then the aggregator comes back.
    go.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cfg2 = cfg.clone();
    cfg2.listen = addr;
    // The dead runtime lets go of its socket in the background: retry the port a while.
    let mut tries = 0;
    let server = loop {
        match Server::bind(&cfg2, Arc::new(ClassicalCodecs), None) {
            Ok(s) => break s,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("rebinding: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(server.round(), Round(0));
    let srv = tokio::spawn(server.run(None, std::future::pending()));
    let (a, b) = (join(a).await, join(b).await);
    let want = expected(&["c00", "c01"], 1, n);
    assert_eq!(values(&a.model), want);
    assert_eq!(values(&b.model), want);
    let outcome = join(srv).await;
    assert_eq!(values(&outcome.model), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_in_one_round() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 1000;
    let cfg = aggregator_config(dir.path(), 50, 50, 50, 1);
    let (addr, fp, srv) = start(&cfg, n);
    let names: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let runs: Vec<_> = names
        .iter()
        .map(|c| tokio::spawn(client(dir.path(), c, addr, &fp, n).run()))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let want = expected(&refs, 1, n);
    for r in runs {
        let out = join(r).await;
        assert_eq!(values(&out.model), want);
    }
    let outcome = join(srv).await;
    assert!(outcome.finished);
}

/// A hand-driven connection that speaks the wire format directly, to lie to the aggregator.
struct Raw {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    _endpoint: quinn::Endpoint,
}

impl Raw {
    async fn connect(addr: std::net::SocketAddr, fp: &str) -> Raw {
        let trust = lmgc_fl::tls::Trust::from_config(Some(fp), None).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(
            lmgc_fl::tls::client_config(&trust, Duration::from_secs(2)).unwrap(),
        );
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        Raw {
            conn,
            send,
            recv,
            _endpoint: endpoint,
        }
    }

    async fn send(&mut self, msg: &ClientMsg) {
        self.send.write_all(&wire::encode(msg)).await.unwrap();
    }

    /// The next message, or `None` once the aggregator has closed the connection.
    async fn next(&mut self) -> Option<ServerMsg> {
        let mut len = [0u8; 4];
        self.recv.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        self.recv.read_exact(&mut body).await.ok()?;
        Some(wire::decode(&body).unwrap())
    }

    async fn hello(&mut self) {
        self.send(&ClientMsg::Hello {
            protocol: wire::PROTOCOL_VERSION,
            client: ClientId::new("evil").unwrap(),
            token: TOKEN.into(),
            codecs: vec![wire::CodecOffer::classical("bytegroup")],
            payloads: vec![PayloadClass::Dense],
        })
        .await;
    }

    async fn until<F: Fn(&ServerMsg) -> bool>(&mut self, f: F) -> ServerMsg {
        loop {
            let m = tokio::time::timeout(LIMIT, self.next())
                .await
                .unwrap()
                .expect("connection open");
            if f(&m) {
                return m;
            }
        }
    }

    async fn upload(&mut self, round: Round, digest: wire::Digest, bytes: &[u8]) {
        let mut s = self.conn.open_uni().await.unwrap();
        s.write_all(&wire::encode(&wire::UploadHeader {
            round,
            digest,
            offset: 0,
        }))
        .await
        .unwrap();
        let _ = s.write_all(bytes).await;
        let _ = s.finish();
    }
}

use lmgc_fl::wire::{self, ClientMsg, ServerMsg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_and_corrupt_clients_are_cut_off_and_the_round_goes_on() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let n = 2000;
    // Two updates needed: the round cannot close around the liar.
    let cfg = aggregator_config(dir.path(), 1, 2, 2, 1);
    let (addr, fp, srv) = start(&cfg, n);

    // A frame that declares 1 GiB: the connection is closed before anything is allocated.
    let mut liar = Raw::connect(addr, &fp).await;
    liar.send
        .write_all(&(1u32 << 30).to_le_bytes())
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(LIMIT, liar.next()).await.unwrap(),
        None
    );
    assert!(
        liar.conn.close_reason().is_some()
            || tokio::time::timeout(LIMIT, liar.conn.closed())
                .await
                .is_ok()
    );

    // An update stream before the handshake is refused; so is garbage as Hello.
    let mut early = Raw::connect(addr, &fp).await;
    early.upload(Round(0), wire::Digest([0; 32]), b"data").await;
    early
        .send
        .write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(LIMIT, early.next()).await.unwrap(),
        None
    );

    // The good client and the evil one make the round (2 selected).
    let good = tokio::spawn(client(dir.path(), "c00", addr, &fp, n).run());
    let mut evil = Raw::connect(addr, &fp).await;
    evil.hello().await;
    let ServerMsg::RoundStart { round, .. } = evil
        .until(|m| matches!(m, ServerMsg::RoundStart { .. }))
        .await
    else {
        unreachable!()
    };
    // Corrupted bytes: the digest offered is not the digest of what arrives.
    let (g, _) = update_of("evil", 0, n);
    let real = lmgc_fl::codec::encode_update(
        &ClassicalCodecs,
        &wire::CodecOffer::classical("bytegroup"),
        &g,
    )
    .unwrap()
    .bytes;
    let digest = wire::Digest::of(&real);
    let offer = wire::Offer {
        round,
        digest,
        len: real.len() as u64,
        raw_len: 1,
        samples: 1,
        encode_secs: 0.0,
    };
    evil.send(&ClientMsg::Offer(offer.clone())).await;
    evil.until(|m| matches!(m, ServerMsg::Resume { .. })).await;
    let mut corrupt = real.clone();
    corrupt[real.len() / 2] ^= 0x40;
    evil.upload(round, digest, &corrupt).await;
    match evil
        .until(|m| matches!(m, ServerMsg::Refused { .. } | ServerMsg::Accepted { .. }))
        .await
    {
        ServerMsg::Refused { reason, .. } => assert!(reason.contains("SHA-256"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A size that lies the other way: more bytes than offered closes the connection.
    evil.send(&ClientMsg::Offer(wire::Offer {
        len: 100,
        digest: wire::Digest([7; 32]),
        ..offer
    }))
    .await;
    evil.until(|m| matches!(m, ServerMsg::Resume { .. })).await;
    evil.upload(round, wire::Digest([7; 32]), &real).await;
    assert_eq!(
        tokio::time::timeout(LIMIT, async { while evil.next().await.is_some() {} }).await,
        Ok(())
    );

    // The liar comes back honest: the round closes with both updates.
    let mut evil = Raw::connect(addr, &fp).await;
    evil.hello().await;
    evil.until(|m| matches!(m, ServerMsg::RoundStart { .. }))
        .await;
    evil.send(&ClientMsg::Offer(wire::Offer {
        samples: 5,
        ..offer
    }))
    .await;
    evil.until(|m| matches!(m, ServerMsg::Resume { .. })).await;
    evil.upload(round, digest, &real).await;
    evil.until(|m| matches!(m, ServerMsg::Accepted { .. }))
        .await;
    evil.until(|m| matches!(m, ServerMsg::Done { .. })).await;
    evil.conn.close(0u32.into(), b"");

    let out = join(good).await;
    let (c00, w0) = update_of("c00", 0, n);
    let mut want = values(&model(n, 1));
    for (ti, t) in want.iter_mut().enumerate() {
        for (i, v) in t.iter_mut().enumerate() {
            let a = f64::from(c00.tensors()[ti].to_f32().unwrap()[i]) * w0 as f64;
            let b = f64::from(g.tensors()[ti].to_f32().unwrap()[i]) * 5.0;
            *v = (f64::from(*v) + (a + b) / (w0 + 5) as f64) as f32;
        }
    }
    assert_eq!(values(&out.model), want);
    let outcome = join(srv).await;
    assert!(outcome.finished);
}
