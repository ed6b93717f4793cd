//! Transfer throughput of one large update over QUIC + TLS 1.3 on loopback.
//!
//! `cargo bench -p lmgc-fl --bench loopback [-- MB [CODEC]]` (default 50 MB, `store`):
//! one aggregator, one client, one round; the update is pseudo-random f32 values (as
//! incompressible as gradient mantissas). Prints the upload time (first byte sent to the
//! aggregator's `Accepted`, which includes its SHA-256 check, decode and durable storage),
//! the wire throughput and the whole round.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use lmgc_core::{Gradient, Tensor};
use lmgc_fl::client::{Client, ClientEvent};
use lmgc_fl::codec::ClassicalCodecs;
use lmgc_fl::config::{AggregatorConfig, ClientConfig, ServerAuth};
use lmgc_fl::server::Server;
use lmgc_fl::trainer::{LocalUpdate, Trainer};
use lmgc_fl::wire::{ClientId, Round};

struct Fixed(Gradient);

impl Trainer for Fixed {
    fn train(&mut self, _: Round, _: &Gradient) -> lmgc_fl::Result<LocalUpdate> {
        Ok(LocalUpdate {
            update: self.0.clone(),
            samples: 1,
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mb: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(50);
    let codec = args.get(1).cloned().unwrap_or_else(|| "store".into());
    let n = mb * 1_000_000 / 4;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let vals: Vec<f32> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let model = Gradient::new(vec![Tensor::from_f32("w", &vec![0.0; n])]).unwrap();
    let update = Gradient::new(vec![Tensor::from_f32("w", &vals)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.path().join("tokens"), format!("bench {token}\n")).unwrap();
    let cfg = AggregatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().join("agg"),
        rounds: 1,
        clients_per_round: 1,
        min_clients: 1,
        codecs: vec![codec.clone()],
        linger_secs: 2.0,
        auth: ServerAuth {
            tokens: Some(dir.path().join("tokens")),
        },
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (wire, upload_secs, round_secs) = rt.block_on(async {
        let server = Server::bind(&cfg, Arc::new(ClassicalCodecs), Some(model)).unwrap();
        let addr = server.local_addr().unwrap();
        let fp = server.fingerprint().to_owned();
        let srv = tokio::spawn(server.run(None, std::future::pending()));
        let c = ClientConfig {
            server: addr.to_string(),
            server_name: "localhost".into(),
            client_id: ClientId::new("bench").unwrap(),
            token: Some(token.into()),
            token_file: None,
            server_fingerprint: Some(fp),
            ca: None,
            state_dir: dir.path().join("client"),
            codecs: vec![codec.clone()],
            max_upload_rate: 0,
            reconnect_secs: 10.0,
            idle_timeout_secs: 20.0,
            payload: "dense".into(),
            error_feedback: true,
            lm: Default::default(),
            train: Default::default(),
        };
        let marks = Arc::new(Mutex::new((None, None, 0u64)));
        let m = marks.clone();
        let client = Client::new(c, Arc::new(ClassicalCodecs), Box::new(Fixed(update)))
            .unwrap()
            .on_event(Box::new(move |e| {
                let mut m = m.lock().unwrap();
                match e {
                    ClientEvent::Uploading { len, .. } => {
                        m.0 = Some(Instant::now());
                        m.2 = *len;
                    }
                    ClientEvent::Accepted { .. } => m.1 = Some(Instant::now()),
                    _ => {}
                }
            }));
        let start = Instant::now();
        client.run().await.unwrap();
        let round = start.elapsed().as_secs_f64();
        srv.await.unwrap().unwrap();
        let m = marks.lock().unwrap();
        (m.2, (m.1.unwrap() - m.0.unwrap()).as_secs_f64(), round)
    });
    let raw = (n * 4) as f64 / 1e6;
    println!(
        "loopback {codec}: {raw:.1} MB update, {:.1} MB on the wire; upload + verify + store {upload_secs:.3} s = {:.1} MB/s; whole round (model download, encode, upload, FedAvg, final model) {round_secs:.2} s",
        wire as f64 / 1e6,
        wire as f64 / 1e6 / upload_secs
    );
    println!(
        "{}",
        serde_json::json!({"bench": "loopback", "codec": codec, "raw_mb": raw, "wire_mb": wire as f64 / 1e6, "upload_secs": upload_secs, "upload_mb_s": wire as f64 / 1e6 / upload_secs, "round_secs": round_secs})
    );
}
