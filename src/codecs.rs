//! Every codec by name: the one place the CLI and `lmgc bench` learn which codecs exist,
//! and where a container's prior fingerprint is turned back into a prior for decoding.

use std::fmt;
use std::str::FromStr;

use lmgc_core::auto_codec::AutoCodec;
use lmgc_core::cdf::Precision;
use lmgc_core::classical::{Classical, ClassicalCodec};
use lmgc_core::codec::{BytegroupCodec, Codec, PriorCodecSpec, StoreCodec};
use lmgc_core::context_prior::ContextPrior;
use lmgc_core::hybrid::HybridCodec;
use lmgc_core::prior::{Prior, PriorFingerprint};
use lmgc_core::prior_codec::PriorCodec;
use lmgc_core::serialize::SerializerSpec;
use lmgc_core::{Error, Result};
use lmgc_model::backend::{self, BackendKind};
use lmgc_model::fetch;
use std::path::Path;

/// A codec chosen by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// No compression.
    Store,
    /// Byte planes + adaptive context models.
    Bytegroup,
    /// LM-GC with the built-in context prior.
    Context,
    /// LM-GC with an LLM prior: the integer-exact model of `lmgc-model`.
    Lm,
    /// Per block, `lm` or `bytegroup`, whichever is smaller; never larger than `bytegroup`.
    Auto,
    /// The LLM codes each element's exponent byte, `bytegroup`'s models the other planes
    /// ([`lmgc_core::hybrid`]).
    Hybrid,
    /// `hybrid` with the built-in order-k context model in the LLM's place: the classical
    /// rival of the LLM on the exponent stream (one window per tensor, bytes as `iso-none`).
    ContextHybrid,
    /// A classical baseline.
    Classical(Classical),
}

impl CodecChoice {
    /// Every codec `lmgc bench --codecs all` runs, strongest expected first.
    pub fn all() -> Vec<CodecChoice> {
        let mut v = vec![CodecChoice::Bytegroup];
        v.extend(Classical::ALL.map(CodecChoice::Classical));
        v.push(CodecChoice::Context);
        v.push(CodecChoice::ContextHybrid);
        v.push(CodecChoice::Store);
        v
    }

    /// Whether the codec runs the LLM.
    pub fn uses_llm(self) -> bool {
        matches!(
            self,
            CodecChoice::Lm | CodecChoice::Auto | CodecChoice::Hybrid
        )
    }

    /// The serializer a prior codec uses when none is given: `hex-comma-be` for the LLM (the
    /// best format of the ablations in docs/perf.md, on MLP and ConvNet gradients),
    /// `token` for `hybrid`'s exponent bytes, the paper's `hex-none` otherwise.
    pub fn default_format(self) -> SerializerSpec {
        match self {
            // One token per exponent (` u`, ` w`): a third of `hex-space`'s tokens for 0.5%
            // more bytes at windows of 2,048, fewer at 256 (docs/perf.md, 2026-12-07).
            CodecChoice::Hybrid => "token".parse().expect("a valid spec"),
            CodecChoice::ContextHybrid => "iso-none".parse().expect("a valid spec"),
            CodecChoice::Lm | CodecChoice::Auto => "hex-comma-be".parse().expect("a valid spec"),
            _ => SerializerSpec::default(),
        }
    }

    /// Tokens per window of a prior codec: the options' window, except for `context-hybrid`:
    /// the context model has no attention span (a window is only where its counts restart),
    /// so the rival learns from the whole tensor.
    pub fn window(self, options: &CodecOptions) -> u32 {
        if self == CodecChoice::ContextHybrid {
            lmgc_core::codec::MAX_WINDOW
        } else {
            options.window
        }
    }

    /// Runs `f` with `codec` as this choice uses it: alone, or inside `auto` or `hybrid`.
    pub fn wrap_prior<R>(
        self,
        codec: PriorCodec<'_>,
        f: impl FnOnce(&mut dyn Codec) -> Result<R>,
    ) -> Result<R> {
        match self {
            CodecChoice::Auto => f(&mut AutoCodec::new(codec)),
            CodecChoice::Hybrid | CodecChoice::ContextHybrid => f(&mut HybridCodec::new(codec)),
            _ => {
                let mut codec = codec;
                f(&mut codec)
            }
        }
    }

    /// Parses `all` or a comma-separated list of names.
    pub fn parse_list(s: &str) -> Result<Vec<CodecChoice>> {
        if s == "all" {
            return Ok(Self::all());
        }
        s.split(',').map(|n| n.trim().parse()).collect()
    }

    /// Runs `f` with the codec built from `options`.
    pub fn with<R>(
        self,
        options: &CodecOptions,
        f: impl FnOnce(&mut dyn Codec) -> Result<R>,
    ) -> Result<R> {
        match self {
            CodecChoice::Store => f(&mut StoreCodec),
            CodecChoice::Bytegroup => f(&mut BytegroupCodec),
            CodecChoice::Classical(c) => {
                c.available()?;
                f(&mut ClassicalCodec(c))
            }
            CodecChoice::Context
            | CodecChoice::ContextHybrid
            | CodecChoice::Lm
            | CodecChoice::Auto
            | CodecChoice::Hybrid => {
                let mut prior: Box<dyn Prior> = match self {
                    CodecChoice::Context | CodecChoice::ContextHybrid => {
                        Box::new(ContextPrior::new(options.order)?)
                    }
                    _ => open_llm(&options.model, options.backend, &*options.say)?,
                };
                let spec = PriorCodecSpec {
                    prior: prior.fingerprint(),
                    serializer: options.format.unwrap_or_else(|| self.default_format()),
                    window: self.window(options),
                    precision: options.precision,
                    mask: options.mask,
                };
                let codec =
                    PriorCodec::new(&mut *prior, spec, options.batch)?.with_lanes(options.lanes);
                let out = self.wrap_prior(codec, f);
                report_profile(&*prior);
                out
            }
        }
    }
}

impl fmt::Display for CodecChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecChoice::Store => f.write_str("store"),
            CodecChoice::Bytegroup => f.write_str("bytegroup"),
            CodecChoice::Context => f.write_str("context"),
            CodecChoice::Lm => f.write_str("lm"),
            CodecChoice::Auto => f.write_str("auto"),
            CodecChoice::Hybrid => f.write_str("hybrid"),
            CodecChoice::ContextHybrid => f.write_str("context-hybrid"),
            CodecChoice::Classical(c) => f.write_str(&c.name()),
        }
    }
}

impl FromStr for CodecChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "store" => Ok(CodecChoice::Store),
            "bytegroup" => Ok(CodecChoice::Bytegroup),
            "context" => Ok(CodecChoice::Context),
            "lm" => Ok(CodecChoice::Lm),
            "auto" => Ok(CodecChoice::Auto),
            "hybrid" => Ok(CodecChoice::Hybrid),
            "context-hybrid" => Ok(CodecChoice::ContextHybrid),
            _ => Classical::from_name(s)
                .map(CodecChoice::Classical)
                .ok_or_else(|| Error::InvalidArgument {
                    what: "codec",
                    reason: format!(
                        "{s:?}; choose from {}, lm, auto, hybrid (or `all` for bench: every codec but the LLM's)",
                        Self::all()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
        }
    }
}

/// Parameters of the prior codecs (ignored by the others).
#[derive(Clone)]
pub struct CodecOptions {
    /// Serializer; `None` takes the codec's default ([`CodecChoice::default_format`]).
    pub format: Option<SerializerSpec>,
    /// Tokens per window, BOS included.
    pub window: u32,
    /// Windows per prior call: the decoder's lockstep batch, and the fewest the encoder hands
    /// one prefill (a device prior also asks for
    /// [`lmgc_core::prior_codec::ENCODE_TOKENS`] tokens); 0 (the default): the prior's
    /// [`lmgc_core::Prior::preferred_batch`].
    pub batch: usize,
    /// Streams (lanes) per block for prior codecs; `None`: [`lmgc_core::prior_codec::lane_count`].
    pub lanes: Option<usize>,
    /// Table precision.
    pub precision: Precision,
    /// Alphabet mask on.
    pub mask: bool,
    /// Order of the built-in context prior.
    pub order: usize,
    /// The LLM: a known name (`smollm2-135m`, fetched if missing), a `.gguf` file or a
    /// Hugging Face directory.
    pub model: String,
    /// Backend of the LLM.
    pub backend: BackendKind,
    /// Where messages about fetching and loading a model go.
    pub say: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
}

impl fmt::Debug for CodecOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecOptions")
            .field("format", &self.format)
            .field("window", &self.window)
            .field("batch", &self.batch)
            .field("lanes", &self.lanes)
            .field("precision", &self.precision)
            .field("mask", &self.mask)
            .field("order", &self.order)
            .field("model", &self.model)
            .field("backend", &self.backend)
            .finish()
    }
}

impl Default for CodecOptions {
    fn default() -> Self {
        CodecOptions {
            format: None,
            window: 2048,
            batch: 0,
            lanes: None,
            precision: Precision::MAX,
            mask: true,
            order: 3,
            model: fetch::SMOLLM2_135M.name.to_owned(),
            backend: BackendKind::default(),
            say: std::sync::Arc::new(|_| {}),
        }
    }
}

/// Opens an LLM prior: a known model name (fetched into the cache if missing, with a message),
/// a `.gguf` file or a Hugging Face directory. The fingerprint's name is the known name, or
/// the file or directory name.
pub fn open_llm(model: &str, backend: BackendKind, say: &dyn Fn(&str)) -> Result<Box<dyn Prior>> {
    open_llm_named(model, None, backend, say)
}

/// [`open_llm`], with the fingerprint's name given (a decoder names the model as the file
/// does, so a renamed copy of the same model still matches; the SHA-256 is what must agree).
fn open_llm_named(
    model: &str,
    name: Option<&str>,
    backend: BackendKind,
    say: &dyn Fn(&str),
) -> Result<Box<dyn Prior>> {
    let path = Path::new(model);
    let (path, default_name) = if path.exists() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
            .unwrap_or_else(|| model.to_owned());
        (path.to_owned(), name)
    } else {
        let known = fetch::known(model)?;
        (fetch::fetch(&known, say)?, known.name.to_owned())
    };
    say(&format!("loading {} on {backend} ...", path.display()));
    let started = std::time::Instant::now();
    let prior = backend::open(backend, &path, name.unwrap_or(&default_name))?;
    if profiling() {
        eprintln!(
            "lmgc profile: {}",
            serde_json::json!({ "load_seconds": started.elapsed().as_secs_f64() })
        );
    }
    Ok(prior)
}

/// Whether `LMGC_PROFILE` asks for time splits (`1` also synchronizes every CUDA launch to
/// time each kernel; any other non-empty value only reports the prior's split).
fn profiling() -> bool {
    std::env::var_os("LMGC_PROFILE").is_some_and(|v| !v.is_empty())
}

/// Under `LMGC_PROFILE`, one JSON line on stderr with where the prior's time went (seconds in
/// the model, in tables and the coder, and per kernel where the engine books them).
pub fn report_profile(prior: &dyn Prior) {
    let p = prior.profile();
    if profiling() && !p.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = p
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        eprintln!("lmgc profile: {}", serde_json::Value::Object(map));
    }
}

/// The prior a container's fingerprint names: the built-in context prior, else the LLM given
/// by `model` (or, when `model` is `None`, the known model of the fingerprint's name). The
/// caller's codec construction then checks the whole fingerprint (model SHA-256, recipe,
/// tokenizer): a different model is an error before any byte is decoded.
pub fn prior_for(
    fingerprint: &PriorFingerprint,
    model: Option<&str>,
    backend: BackendKind,
    say: &dyn Fn(&str),
) -> Result<Box<dyn Prior>> {
    if let Some(p) = ContextPrior::from_fingerprint(fingerprint) {
        return Ok(Box::new(p));
    }
    match model {
        Some(m) => open_llm_named(m, Some(&fingerprint.name), backend, say),
        None if fetch::known(&fingerprint.name).is_ok() => {
            open_llm(&fingerprint.name, backend, say)
        }
        None => Err(Error::PriorRequired(format!(
            "{fingerprint}, not a model lmgc knows by name: pass --model with the .gguf file or Hugging Face directory"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in CodecChoice::all() {
            assert_eq!(c.to_string().parse::<CodecChoice>().unwrap(), c);
        }
        assert!("zip".parse::<CodecChoice>().is_err());
        assert_eq!("lm".parse::<CodecChoice>().unwrap(), CodecChoice::Lm);
        assert_eq!(CodecChoice::Lm.to_string(), "lm");
        assert_eq!("auto".parse::<CodecChoice>().unwrap(), CodecChoice::Auto);
        assert_eq!(CodecChoice::parse_list("zstd, xz9").unwrap().len(), 2);
    }
}
