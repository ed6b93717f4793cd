//! Federated learning on CIFAR-10 through lmgc's transport: an aggregator and N clients in
//! one process, each client with its own QUIC connection over loopback, training the LM-GC
//! paper's ConvNet and sending compressed updates every round.
//!
//! ```sh
//! cargo run --release --example fedavg_cifar                       # configs/fedavg_cifar.toml
//! cargo run --release --example fedavg_cifar -- --rounds 20 --split dirichlet --alpha 0.3
//! cargo run --release --features cuda --example fedavg_cifar -- --codec lm --lm-backend cuda
//! ```
//!
//! Prints one row per round (test accuracy, raw and wire bytes, the ratio of every compared
//! codec, encode and decode seconds) and writes `fedavg-out/results.json` and
//! `fedavg-out/fedavg.svg` (accuracy and cumulative bytes on the wire by round).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use lmgc::fedavg::{self, FedAvgConfig, RoundRow};

/// Federated ConvNet training on CIFAR-10 through the lmgc transport.
#[derive(Debug, Parser)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "configs/fedavg_cifar.toml")]
    config: PathBuf,
    /// CIFAR-10 directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Clients.
    #[arg(long)]
    clients: Option<usize>,
    /// Clients per round.
    #[arg(long)]
    clients_per_round: Option<usize>,
    /// Rounds.
    #[arg(long)]
    rounds: Option<u64>,
    /// iid or dirichlet.
    #[arg(long)]
    split: Option<String>,
    /// Dirichlet concentration.
    #[arg(long)]
    alpha: Option<f64>,
    /// Local epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Local batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Local learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Training images used (0: all).
    #[arg(long)]
    max_images: Option<usize>,
    /// Test images evaluated (0: all).
    #[arg(long)]
    eval_images: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Codec of the updates (auto, lm, bytegroup, ...).
    #[arg(long)]
    codec: Option<String>,
    /// Codecs measured on the same updates, comma-separated.
    #[arg(long, value_delimiter = ',')]
    compare: Option<Vec<String>>,
    /// What clients can send, most preferred first: dense, q8, q4 (-channel, -stochastic),
    /// topP% (e.g. top10%), or a list such as q4,dense.
    #[arg(long)]
    payload: Option<String>,
    /// Payload classes the aggregator accepts from a round on, e.g. 3:quantized,6:sparse
    /// (all classes before the first step).
    #[arg(long, value_delimiter = ',')]
    payload_schedule: Option<Vec<lmgc_fl::aggregator::PayloadStep>>,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// LLM backend for --codec lm (ndarray, wgpu, cuda) [default: cuda when --codec auto
    /// picks lm, else the config's].
    #[arg(long)]
    lm_backend: Option<String>,
    /// Backend of local training and evaluation (ndarray, wgpu, cuda).
    #[arg(long)]
    backend: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut cfg = if a.config.exists() {
        FedAvgConfig::load(&a.config)?
    } else if a.config == std::path::Path::new("configs/fedavg_cifar.toml") {
        FedAvgConfig::default()
    } else {
        anyhow::bail!("{} does not exist", a.config.display());
    };
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = a.$f { cfg.$f = v; })* };
    }
    set!(
        clients,
        clients_per_round,
        rounds,
        split,
        alpha,
        epochs,
        batch,
        lr,
        max_images,
        eval_images,
        seed,
        codec,
        compare,
        payload,
        payload_schedule,
        out,
        backend
    );
    if a.data_dir.is_some() {
        cfg.data_dir = a.data_dir;
    }
    let (codec, why) = fedavg::resolve_codec(&cfg.codec);
    if cfg.codec == "auto" && codec == "lm" {
        // auto picks lm because a GPU is here: run the LLM on it.
        cfg.lm
            .insert("backend".into(), toml::Value::String("cuda".into()));
    }
    if let Some(b) = a.lm_backend {
        cfg.lm.insert("backend".into(), toml::Value::String(b));
    }
    println!("codec: {codec} ({why})");
    if cfg.backend != "ndarray" {
        println!("local training and evaluation on {}", cfg.backend);
    }
    if codec == "lm" {
        let lm = lmgc::fl::LmSettings::from_table(&cfg.lm)?;
        let init = lmgc::fl::convnet_init(cfg.seed)?;
        let sample: Vec<u8> = init
            .tensors()
            .iter()
            .flat_map(|t| t.data().iter().copied())
            .take(4 * 4096)
            .collect();
        let values: usize = init.tensors().iter().map(|t| t.numel() as usize).sum();
        let speed = lmgc::fl::measure_lm(&lm, &sample, 512, &|m| eprintln!("{m}"))?;
        let tokens = speed.tokens_per_value * values as f64;
        let per_round = cfg.clients_per_round as f64 * tokens;
        println!(
            "lm ({}): measured {:.0} tokens/s encoding, {:.0} decoding one window; an update is \
             ~{:.2} M tokens ({:.1} per value), so a round of {} updates needs about {} to encode \
             and {} to decode, at most (batched windows decode faster on a GPU)",
            lm.backend,
            speed.encode,
            speed.decode,
            tokens / 1e6,
            speed.tokens_per_value,
            cfg.clients_per_round,
            human_secs(per_round / speed.encode),
            human_secs(per_round / speed.decode)
        );
    }
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let bar = indicatif::ProgressBar::hidden();
    let progress = |done: u64, total: Option<u64>| {
        if bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            bar.set_message("CIFAR-10");
        }
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    };
    let compared: Vec<String> = cfg
        .compare
        .iter()
        .filter(|c| **c != codec)
        .cloned()
        .collect();
    // The wire column is the payload as coded, in % of the dense f32 update.
    let lossy = cfg.payload != "dense" || !cfg.payload_schedule.is_empty();
    if lossy {
        let schedule: Vec<String> = cfg.payload_schedule.iter().map(|s| s.to_string()).collect();
        println!(
            "payload: {} (lossy ones with error feedback; raw MB is the dense update){}",
            cfg.payload,
            if schedule.is_empty() {
                String::new()
            } else {
                format!("; the aggregator's schedule: {}", schedule.join(", "))
            }
        );
    }
    let sent = &codec;
    let mut header = format!("{:>5} {:>8}", "round", "test acc");
    if lossy {
        header += &format!(" {:>9}", "payload");
    }
    header += &format!(" {:>10} {:>10} {:>8}", "raw MB", "wire MB", sent);
    for c in &compared {
        header += &format!(" {c:>8}");
    }
    header += &format!(" {:>8} {:>8} {:>8}", "enc s", "dec s", "wall s");
    let print_row = |r: &RoundRow| {
        if r.round == 0 {
            println!("{header}");
        }
        let pct = |b: u64| 100.0 * b as f64 / r.raw_bytes.max(1) as f64;
        let mut line = format!("{:>5} {:>7.2}%", r.round + 1, 100.0 * r.accuracy);
        if lossy {
            let p: Vec<String> = r.payloads.iter().map(ToString::to_string).collect();
            line += &format!(" {:>9}", p.join("+"));
        }
        line += &format!(
            " {:>10.2} {:>10.2} {:>7.2}%",
            r.raw_bytes as f64 / 1e6,
            r.wire_bytes as f64 / 1e6,
            pct(r.wire_bytes)
        );
        for c in &compared {
            line += &format!(" {:>7.2}%", pct(r.compared.get(c).copied().unwrap_or(0)));
        }
        line += &format!(
            " {:>8.2} {:>8.2} {:>8.0}",
            r.encode_secs, r.decode_secs, r.elapsed_secs
        );
        println!("{line}");
    };
    let report = fedavg::run(
        &cfg,
        &codec,
        &why,
        &|m| eprintln!("{m}"),
        &progress,
        print_row,
    )?;
    bar.finish_and_clear();
    let json = cfg.out.join("results.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)?;
    let svg = cfg.out.join("fedavg.svg");
    fedavg::plot(&report, &svg)?;
    let last = report
        .rows
        .last()
        .map(|r| r.accuracy)
        .unwrap_or(report.initial_accuracy);
    println!(
        "initial accuracy {:.2}%, final {:.2}% after {} rounds; {} and {} written",
        100.0 * report.initial_accuracy,
        100.0 * last,
        report.rows.len(),
        json.display(),
        svg.display()
    );
    Ok(())
}

/// `secs` as hours, minutes or seconds.
fn human_secs(secs: f64) -> String {
    if secs >= 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else if secs >= 60.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{secs:.0} s")
    }
}
