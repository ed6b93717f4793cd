//! Command-line interface: argument definitions and dispatch.

mod compress;
mod decompress;
mod inspect;
mod progress;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lmgc_core::io::Format;

/// Lossless gradient compression with an LLM prior.
#[derive(Debug, Parser)]
#[command(name = "lmgc", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars or summaries (errors still go to stderr).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print a machine-readable JSON summary on stdout instead of human output.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compress a tensor file (safetensors, npy, raw f32) into an .lmgc container.
    Compress(CompressArgs),
    /// Restore the exact original file from an .lmgc container.
    Decompress(DecompressArgs),
    /// Show what an .lmgc container holds, without decoding it.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
struct CompressArgs {
    /// Input file.
    input: PathBuf,
    /// Output file [default: INPUT.lmgc].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Codec.
    #[arg(long, value_enum, default_value_t = CodecArg::Bytegroup)]
    codec: CodecArg,
    /// Serializer for prior codecs: ENCODING-SEPARATOR[-gN][-le|-be], e.g. hex-none, hex-space-be.
    #[arg(long, default_value = "hex-none")]
    format: String,
    /// Tokens per window for prior codecs, BOS included.
    #[arg(long, default_value_t = 2048)]
    window: u32,
    /// Windows per prior call.
    #[arg(long, default_value_t = lmgc_core::prior_codec::DEFAULT_BATCH)]
    batch: usize,
    /// Bits of probability resolution (16-24).
    #[arg(long, default_value_t = 24)]
    precision: u8,
    /// Let the prior predict every token, not just those the serializer can produce.
    #[arg(long)]
    no_mask: bool,
    /// Context order of the built-in `context` prior.
    #[arg(long, default_value_t = 3)]
    order: usize,
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
    #[arg(long, default_value_t = lmgc_core::container::DecodeLimits::default().max_output)]
    max_output: u64,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Input .lmgc file.
    input: PathBuf,
    /// List every stream (window or chunk).
    #[arg(long)]
    streams: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CodecArg {
    /// Byte planes + adaptive context models (fast, the default).
    Bytegroup,
    /// The LM-GC pipeline with the built-in adaptive context prior (no model file needed).
    Context,
    /// No compression.
    Store,
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
    quiet: bool,
    json: bool,
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output {
        quiet: cli.quiet,
        json: cli.json,
    };
    match cli.command {
        Command::Compress(a) => compress::run(a, out),
        Command::Decompress(a) => decompress::run(a, out),
        Command::Inspect(a) => inspect::run(a, out),
    }
}

/// 2 for bugs, 1 for everything the user can act on.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<lmgc_core::Error>() {
        Some(inner) if inner.is_internal() => 2,
        _ => 1,
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}
