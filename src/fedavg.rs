//! Federated training of the LM-GC paper's ConvNet on CIFAR-10 through the real transport:
//! an aggregator and N clients in one process, each client with its own QUIC connection
//! over loopback (TLS, tokens, the whole protocol). The engine of
//! `examples/fedavg_cifar.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use lmgc_core::Gradient;
use lmgc_core::payload::PayloadClass;
use lmgc_fl::aggregator::PayloadStep;
use lmgc_fl::client::Client;
use lmgc_fl::codec::{UpdateCodecs, encode_update};
use lmgc_fl::config::{AggregatorConfig, ClientConfig, ServerAuth};
use lmgc_fl::server::{RoundReport, Server};
use lmgc_fl::trainer::{LocalUpdate, Trainer};
use lmgc_fl::wire::{ClientId, CodecOffer, Round, UpdateKind};
use lmgc_fl::{Error, Result};
use lmgc_train::cifar::{Cifar10, Split};
use serde::{Deserialize, Serialize};

use crate::fl::{ConvnetTrainer, FlCodecs, LmSettings, train_backend, with_train_backend};
use lmgc_model::backend::BackendKind;

/// `configs/fedavg_cifar.toml`; every field can be overridden by a flag of the example.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FedAvgConfig {
    /// CIFAR-10 directory [default: $LMGC_CIFAR10_DIR, the cache, else downloaded].
    pub data_dir: Option<PathBuf>,
    /// Clients (each gets a shard of the training images).
    pub clients: usize,
    /// Clients selected per round.
    pub clients_per_round: usize,
    /// Rounds.
    pub rounds: u64,
    /// `iid` or `dirichlet`.
    pub split: String,
    /// Dirichlet concentration.
    pub alpha: f64,
    /// Local epochs per round.
    pub epochs: usize,
    /// Images per local step.
    pub batch: usize,
    /// Local learning rate.
    pub lr: f64,
    /// Training images used before splitting (0: all found).
    pub max_images: usize,
    /// Test images the global model is evaluated on after each round (0: all).
    pub eval_images: usize,
    /// Seed of the model, the split and local shuffles.
    pub seed: u64,
    /// Codec of the updates: `auto` (the LLM codec when a GPU backend is built in and a GPU
    /// is present, else `bytegroup`), `lm`, or any codec name.
    pub codec: String,
    /// Codecs also measured on every update (sizes only), for the comparison plot.
    pub compare: Vec<String>,
    /// What clients can send, most preferred first and comma-separated: `dense`, `q8`, `q4`
    /// (`-channel`, `-stochastic`), `topP%` (`lmgc payload` names), with error feedback.
    /// Each round a client sends its first payload whose class the round accepts.
    pub payload: String,
    /// Which payload classes the aggregator accepts from which round on (all three before
    /// the first step), e.g. `[{ from_round = 5, payloads = ["quantized"] }]`.
    pub payload_schedule: Vec<PayloadStep>,
    /// Where results, the plot and the transport's state go.
    pub out: PathBuf,
    /// Where local training and evaluation run: ndarray (CPU), wgpu or cuda (build features
    /// of the same names).
    pub backend: String,
    /// The LLM codec's settings (`model`, `backend`, `format`, `window`).
    pub lm: toml::Table,
}

impl Default for FedAvgConfig {
    fn default() -> Self {
        FedAvgConfig {
            data_dir: None,
            clients: 4,
            clients_per_round: 4,
            rounds: 10,
            split: "iid".into(),
            alpha: 0.5,
            epochs: 1,
            batch: 32,
            lr: 0.03,
            max_images: 2000,
            eval_images: 1000,
            seed: 0,
            codec: "auto".into(),
            compare: vec!["store".into(), "zstd".into(), "xz9".into()],
            payload: "dense".into(),
            payload_schedule: Vec::new(),
            out: PathBuf::from("fedavg-out"),
            backend: "ndarray".into(),
            lm: toml::Table::new(),
        }
    }
}

impl FedAvgConfig {
    /// Reads a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

/// The codec `auto` resolves to here, and why (said on the example's first line).
pub fn resolve_codec(requested: &str) -> (String, String) {
    if requested != "auto" {
        return (requested.to_owned(), "as requested".into());
    }
    let gpu = std::path::Path::new("/dev/nvidiactl").exists();
    match (cfg!(feature = "cuda"), gpu) {
        (true, true) => (
            "lm".into(),
            "auto: this build has the CUDA backend and an NVIDIA GPU is present".into(),
        ),
        (true, false) => (
            "bytegroup".into(),
            "auto: no NVIDIA GPU found; the LLM codec on a CPU runs at tens of tokens/s (force it with --codec lm)".into(),
        ),
        (false, _) => (
            "bytegroup".into(),
            "auto: this build has no GPU backend (build with --features cuda for the LLM codec; --codec lm forces it on the CPU, slowly)".into(),
        ),
    }
}

/// One row of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct RoundRow {
    /// The round.
    pub round: u64,
    /// Test accuracy of the global model after the round.
    pub accuracy: f64,
    /// Updates averaged.
    pub updates: usize,
    /// Payload classes of the updates averaged.
    pub payloads: Vec<PayloadClass>,
    /// Bytes of the updates before compression.
    pub raw_bytes: u64,
    /// Bytes on the wire with the transport's codec.
    pub wire_bytes: u64,
    /// Bytes the same updates take with each compared codec.
    pub compared: BTreeMap<String, u64>,
    /// Client-side compression seconds, summed.
    pub encode_secs: f64,
    /// Aggregator-side decompression seconds, summed.
    pub decode_secs: f64,
    /// Wall seconds since the start of the run.
    pub elapsed_secs: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The codec the updates travelled with.
    pub codec: String,
    /// Why that codec.
    pub why: String,
    /// Test accuracy of the initial model.
    pub initial_accuracy: f64,
    /// One row per round.
    pub rows: Vec<RoundRow>,
    /// The configuration.
    pub config: FedAvgConfig,
}

/// Sizes of each client's update under the compared codecs, by round.
type Sizes = Arc<Mutex<BTreeMap<u64, BTreeMap<String, u64>>>>;

/// A client's trainer: local SGD (one client at a time, so N clients do not fight over two
/// cores), then the compared codecs on the update it produced.
struct ExampleTrainer {
    inner: ConvnetTrainer,
    gate: Arc<Mutex<()>>,
    compare: Vec<(String, CodecOffer)>,
    codecs: Arc<dyn UpdateCodecs>,
    sizes: Sizes,
}

impl Trainer for ExampleTrainer {
    fn train(&mut self, round: Round, global: &Gradient) -> Result<LocalUpdate> {
        let update = {
            let _one_at_a_time = self
                .gate
                .lock()
                .map_err(|_| Error::Train("a trainer panicked".into()))?;
            self.inner.train(round, global)?
        };
        for (name, offer) in &self.compare {
            let n = encode_update(&*self.codecs, offer, &update.update)?
                .bytes
                .len() as u64;
            *self
                .sizes
                .lock()
                .map_err(|_| Error::Internal("sizes lock".into()))?
                .entry(round.0)
                .or_default()
                .entry(name.clone())
                .or_default() += n;
        }
        Ok(update)
    }
}

fn random_token() -> Result<String> {
    let mut b = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b)
        .map_err(|_| Error::Internal("no system randomness".into()))?;
    Ok(lmgc_fl::wire::hex(&b))
}

fn accuracy(model: &Gradient, test: &Split, backend: BackendKind) -> Result<f64> {
    with_train_backend!(backend, accuracy_on(model, test))
}

/// Test accuracy on backend `B` (without autodiff).
fn accuracy_on<B: burn::tensor::backend::AutodiffBackend>(
    model: &Gradient,
    test: &Split,
    device: &B::Device,
) -> Result<f64> {
    let net = lmgc_train::convnet::ConvNet::<B::InnerBackend>::new(device)
        .load_parameters(model, device)
        .map_err(|e| Error::Train(e.to_string()))?;
    Ok(net.accuracy(test, 250, device))
}

/// Runs the federation; `on_row` sees each round's row as it closes.
pub fn run(
    cfg: &FedAvgConfig,
    codec: &str,
    why: &str,
    say: &dyn Fn(&str),
    progress: &dyn Fn(u64, Option<u64>),
    mut on_row: impl FnMut(&RoundRow),
) -> Result<Report> {
    if cfg.clients == 0 || cfg.clients_per_round == 0 || cfg.clients_per_round > cfg.clients {
        return Err(Error::Config(format!(
            "need 1 <= clients_per_round ({}) <= clients ({})",
            cfg.clients_per_round, cfg.clients
        )));
    }
    let train_err = |e: lmgc_train::Error| Error::Train(e.to_string());
    let dir = lmgc_train::cifar::locate_or_download(cfg.data_dir.as_deref(), say, progress)
        .map_err(train_err)?;
    let mut data = Cifar10::load(&dir).map_err(train_err)?;
    if cfg.max_images > 0 {
        data.train.truncate(cfg.max_images);
    }
    if cfg.eval_images > 0 {
        data.test.truncate(cfg.eval_images);
    }
    say(&format!(
        "CIFAR-10 from {}: {} training images over {} clients ({} split), {} test images",
        dir.display(),
        data.train.len(),
        cfg.clients,
        cfg.split,
        data.test.len()
    ));
    let shards = match cfg.split.as_str() {
        "iid" => lmgc_train::local::iid_shards(data.train.len(), cfg.clients, cfg.seed),
        "dirichlet" => lmgc_train::local::dirichlet_shards(
            data.train.labels(),
            cfg.clients,
            cfg.alpha,
            cfg.seed,
        ),
        other => {
            return Err(Error::Config(format!(
                "split {other:?}: use iid or dirichlet"
            )));
        }
    }
    .map_err(train_err)?;
    let train = Arc::new(data.train);
    let test = data.test;

    // A fresh run every time: the transport's state lives under `out/`.
    let state = cfg.out.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)
            .map_err(|e| Error::Config(format!("{}: {e}", state.display())))?;
    }
    std::fs::create_dir_all(&state)
        .map_err(|e| Error::Config(format!("{}: {e}", state.display())))?;
    let ids: Vec<ClientId> = (0..cfg.clients)
        .map(|i| ClientId::new(format!("client-{i:02}")))
        .collect::<Result<_>>()?;
    let tokens: Vec<String> = ids.iter().map(|_| random_token()).collect::<Result<_>>()?;
    let tokens_file = cfg.out.join("tokens.txt");
    let lines: String = ids
        .iter()
        .zip(&tokens)
        .map(|(i, t)| format!("{i} {t}\n"))
        .collect();
    lmgc_core::fsutil::write_atomic(&tokens_file, lines.as_bytes())?;

    let lm = LmSettings::from_table(&cfg.lm)?;
    let mut names = vec![codec.to_owned()];
    if codec != "bytegroup" {
        names.push("bytegroup".into());
    }
    for c in &cfg.compare {
        if !names.contains(c) {
            names.push(c.clone());
        }
    }
    let codecs: Arc<dyn UpdateCodecs> = Arc::new(FlCodecs::new(&names, &lm, say)?);
    let offers = codecs.offers();
    let compare: Vec<(String, CodecOffer)> = cfg
        .compare
        .iter()
        .filter(|c| *c != codec)
        .filter_map(|c| {
            offers
                .iter()
                .find(|o| &o.name == c)
                .map(|o| (c.clone(), o.clone()))
        })
        .collect();

    let initial = crate::fl::convnet_init(cfg.seed)?;
    let backend = train_backend(&cfg.backend)?;
    let initial_accuracy = accuracy(&initial, &test, backend)?;
    let agg = AggregatorConfig {
        listen: "127.0.0.1:0".parse().expect("valid"),
        state_dir: state.clone(),
        rounds: cfg.rounds,
        clients_per_round: cfg.clients_per_round,
        min_clients: cfg.clients_per_round,
        round_timeout_secs: 24.0 * 3600.0,
        update: UpdateKind::Delta,
        seed: cfg.seed,
        payload_schedule: cfg.payload_schedule.clone(),
        codecs: names.clone(),
        linger_secs: 10.0,
        auth: ServerAuth {
            tokens: Some(tokens_file),
        },
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let (tx, rx) = mpsc::channel::<RoundReport>();
    let sizes: Sizes = Arc::default();
    let gate = Arc::new(Mutex::new(()));
    let start = Instant::now();
    let handles = {
        let _guard = rt.enter();
        let server = Server::bind(&agg, codecs.clone(), Some(initial))?;
        let (addr, fp) = (server.local_addr()?, server.fingerprint().to_owned());
        let server = rt.spawn(server.run(
            Some(Box::new(move |r: &RoundReport| {
                let _ = tx.send(r.clone());
            })),
            std::future::pending(),
        ));
        let mut clients = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let config = ClientConfig {
                server: addr.to_string(),
                server_name: "localhost".into(),
                client_id: id.clone(),
                token: Some(tokens[i].clone()),
                token_file: None,
                server_fingerprint: Some(fp.clone()),
                ca: None,
                state_dir: cfg.out.join("clients").join(id.as_str()),
                codecs: vec![codec.to_owned()],
                payload: cfg.payload.clone(),
                error_feedback: true,
                max_upload_rate: 0,
                reconnect_secs: 600.0,
                idle_timeout_secs: 60.0,
                lm: cfg.lm.clone(),
                train: toml::Table::new(),
            };
            let trainer = ExampleTrainer {
                inner: ConvnetTrainer::from_shard(
                    train.clone(),
                    shards[i].clone(),
                    lmgc_train::local::LocalConfig {
                        epochs: cfg.epochs,
                        batch: cfg.batch,
                        lr: cfg.lr,
                        ..Default::default()
                    },
                    cfg.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                )
                .on(backend),
                gate: gate.clone(),
                compare: compare.clone(),
                codecs: codecs.clone(),
                sizes: sizes.clone(),
            };
            let client = Client::new(config, codecs.clone(), Box::new(trainer))?;
            clients.push(rt.spawn(client.run()));
        }
        (server, clients)
    };
    let mut rows = Vec::new();
    for report in rx.iter() {
        let s = &report.summary;
        let accuracy = accuracy(&report.model, &test, backend)?;
        let compared = sizes
            .lock()
            .map_err(|_| Error::Internal("sizes lock".into()))?
            .remove(&s.round.0)
            .unwrap_or_default();
        let row = RoundRow {
            round: s.round.0,
            accuracy,
            updates: s.accepted.len(),
            payloads: {
                let mut p: Vec<PayloadClass> = s.accepted.iter().map(|a| a.payload).collect();
                p.sort_by_key(|c| PayloadClass::ALL.iter().position(|x| x == c));
                p.dedup();
                p
            },
            raw_bytes: s.accepted.iter().map(|a| a.raw_bytes).sum(),
            wire_bytes: s.accepted.iter().map(|a| a.wire_bytes).sum(),
            compared,
            encode_secs: s.accepted.iter().map(|a| a.encode_secs).sum(),
            decode_secs: s.accepted.iter().map(|a| a.decode_secs).sum(),
            elapsed_secs: start.elapsed().as_secs_f64(),
        };
        on_row(&row);
        rows.push(row);
        if rows.len() as u64 == cfg.rounds {
            break;
        }
    }
    let (server, clients) = handles;
    rt.block_on(async {
        for c in clients {
            c.await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        server.await.map_err(|e| Error::Internal(e.to_string()))??;
        Ok::<_, Error>(())
    })?;
    if (rows.len() as u64) < cfg.rounds {
        return Err(Error::Internal(format!(
            "the aggregator stopped after {} rounds",
            rows.len()
        )));
    }
    Ok(Report {
        codec: codec.to_owned(),
        why: why.to_owned(),
        initial_accuracy,
        rows,
        config: cfg.clone(),
    })
}

/// Writes the two charts as one SVG: test accuracy by round, and cumulative bytes on the
/// wire by round, one line per codec (the transport's, each compared one, and raw).
pub fn plot(report: &Report, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| Error::Internal(format!("plot: {e}"));
    let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(520);
    let rounds = report.rows.len() as f64;
    let mut acc: Vec<(f64, f64)> = vec![(0.0, 100.0 * report.initial_accuracy)];
    acc.extend(
        report
            .rows
            .iter()
            .map(|r| (r.round as f64 + 1.0, 100.0 * r.accuracy)),
    );
    let top = acc.iter().map(|p| p.1).fold(10.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("test accuracy (%)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(40)
        .build_cartesian_2d(0.0..rounds.max(1.0), 0.0..top.min(100.0))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(acc.clone(), &BLUE))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(acc.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
        .map_err(|e| err(&e))?;

    let mut lines: Vec<(String, Vec<u64>)> = vec![
        (
            "raw".into(),
            report.rows.iter().map(|r| r.raw_bytes).collect(),
        ),
        (
            format!("{} (sent)", report.codec),
            report.rows.iter().map(|r| r.wire_bytes).collect(),
        ),
    ];
    let names: Vec<String> = report
        .rows
        .first()
        .map(|r| r.compared.keys().cloned().collect())
        .unwrap_or_default();
    for n in names {
        lines.push((
            n.clone(),
            report
                .rows
                .iter()
                .map(|r| r.compared.get(&n).copied().unwrap_or(0))
                .collect(),
        ));
    }
    let cumulative = |v: &[u64]| -> Vec<(f64, f64)> {
        let mut sum = 0u64;
        std::iter::once((0.0, 0.0))
            .chain(v.iter().enumerate().map(|(i, b)| {
                sum += b;
                (i as f64 + 1.0, sum as f64 / 1e6)
            }))
            .collect()
    };
    let ymax = lines
        .iter()
        .map(|(_, v)| v.iter().sum::<u64>() as f64 / 1e6)
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&right)
        .caption("cumulative MB on the wire", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..rounds.max(1.0), 0.0..ymax)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, v)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(cumulative(v), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
