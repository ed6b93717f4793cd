//! `lmgc serve` and `lmgc client`: the federated-learning transport from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use lmgc::fl::{FlCodecs, LmSettings, TrainSettings};
use lmgc_fl::client::{Client, ClientEvent};
use lmgc_fl::config::{AggregatorConfig, ClientConfig};
use lmgc_fl::server::Server;

use super::{Output, print_json};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Aggregator configuration (TOML; see configs/aggregator.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Initial global model of a new run (safetensors; overrides `initial_model`).
    #[arg(long)]
    initial_model: Option<PathBuf>,
    /// Address to listen on (overrides `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Print a JSON summary on stdout at the end.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Client configuration (TOML; see configs/client-1.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// The aggregator's certificate fingerprint, as `lmgc serve` prints it (overrides
    /// `server_fingerprint`).
    #[arg(long)]
    server_fingerprint: Option<String>,
    /// The aggregator's address (overrides `server`).
    #[arg(long)]
    server: Option<String>,
    /// Print a JSON summary on stdout at the end.
    #[arg(long)]
    json: bool,
}

impl ServeArgs {
    pub fn json_flag(&self) -> bool {
        self.json
    }
}

impl ClientArgs {
    pub fn json_flag(&self) -> bool {
        self.json
    }
}

/// Logs on stderr: info for lmgc by default, `RUST_LOG` to change it.
fn init_logs(quiet: bool) {
    let default = if quiet { "warn" } else { "info,quinn=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn serve(a: ServeArgs, out: Output) -> anyhow::Result<()> {
    init_logs(out.quiet);
    let mut config = AggregatorConfig::load(&a.config)?;
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if let Some(m) = a.initial_model {
        config.initial_model = Some(m);
    }
    let lm = LmSettings::from_table(&config.lm)?;
    let codecs = Arc::new(FlCodecs::new(&config.codecs, &lm, &|m| {
        tracing::info!("{m}")
    })?);
    // `initial_model = "convnet"`: the paper's ConvNet, initialized with the run's seed.
    let initial = match config.initial_model.as_deref().and_then(|p| p.to_str()) {
        Some("convnet") => {
            config.initial_model = None;
            Some(lmgc::fl::convnet_init(config.seed)?)
        }
        _ => None,
    };
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let server = Server::bind(&config, codecs, initial)?;
        let fp_file = config.state_dir.join("tls").join("fingerprint.txt");
        lmgc::core::fsutil::write_atomic(
            &fp_file,
            format!("{}\n", server.fingerprint()).as_bytes(),
        )?;
        tracing::info!(
            "certificate SHA-256 {} ({}; also in {}): clients pin it as server_fingerprint",
            server.fingerprint(),
            if server.generated_identity() {
                "self-signed by lmgc"
            } else {
                "configured"
            },
            fp_file.display()
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::warn!("interrupted: state is saved; run the same command to resume");
        };
        server
            .run(None, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })?;
    if out.json {
        print_json(&serde_json::json!({
            "rounds": outcome.rounds,
            "finished": outcome.finished,
            "model": config.state_dir.join("models").join(format!("global-r{}.lmgc", outcome.rounds)),
            "metrics": config.metrics_path(),
        }));
    }
    if !outcome.finished {
        anyhow::bail!("stopped at round {} of {}", outcome.rounds, config.rounds);
    }
    Ok(())
}

pub fn client(a: ClientArgs, out: Output) -> anyhow::Result<()> {
    init_logs(out.quiet);
    let mut config = ClientConfig::load(&a.config)?;
    if let Some(fp) = a.server_fingerprint {
        config.server_fingerprint = Some(fp);
        config.ca = None;
    }
    if let Some(s) = a.server {
        config.server = s;
    }
    let lm = LmSettings::from_table(&config.lm)?;
    let trainer = TrainSettings::from_table(&config.train)?.build(&config.client_id)?;
    let codecs = Arc::new(FlCodecs::new(&config.codecs, &lm, &|m| {
        tracing::info!("{m}")
    })?);
    let quiet = out.quiet || out.json;
    let client = Client::new(config, codecs, trainer)?.on_event(Box::new(move |e| {
        if !quiet {
            report(e);
        }
    }));
    let outcome = runtime()?.block_on(client.run())?;
    if out.json {
        print_json(&serde_json::json!({
            "rounds": outcome.rounds,
            "accepted": outcome.accepted,
            "model_tensors": outcome.model.tensors().len(),
        }));
    } else if !out.quiet {
        eprintln!(
            "done: {} rounds, this client's update accepted in {}",
            outcome.rounds, outcome.accepted
        );
    }
    Ok(())
}

fn report(e: &ClientEvent) {
    match e {
        ClientEvent::Connected { codec } => eprintln!("connected; updates use {codec}"),
        ClientEvent::Waiting { round, reason } => eprintln!("round {round}: waiting ({reason})"),
        ClientEvent::Training { round } => eprintln!("round {round}: training"),
        ClientEvent::Encoded {
            round,
            payload,
            raw_bytes,
            wire_bytes,
            secs,
        } => eprintln!(
            "round {round}: {payload} update {raw_bytes} B -> {wire_bytes} B ({:.2}%) in {secs:.2} s",
            100.0 * *wire_bytes as f64 / (*raw_bytes).max(1) as f64
        ),
        ClientEvent::Uploading { round, offset, len } if *offset > 0 => {
            eprintln!("round {round}: resuming the upload at byte {offset} of {len}")
        }
        ClientEvent::Uploading { round, len, .. } => eprintln!("round {round}: uploading {len} B"),
        ClientEvent::Acked { .. } => {}
        ClientEvent::Accepted { round } => eprintln!("round {round}: update accepted"),
        ClientEvent::Refused { round, reason } => {
            eprintln!("round {round}: update refused: {reason}")
        }
        ClientEvent::Reconnecting { error } => eprintln!("connection lost ({error}); reconnecting"),
    }
}
