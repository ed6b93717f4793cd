//! The transport's codecs with the LLM: [`lmgc_fl::codec::UpdateCodecs`] for every codec
//! of [`crate::codecs`], with one loaded model per prior shared by all updates, and the
//! built-in trainers of `lmgc client`.

use std::collections::HashMap;
use std::sync::Mutex;

use lmgc_core::codec::PriorCodecSpec;
use lmgc_core::container::{self, DecodeLimits};
use lmgc_core::io::SourceFile;
use lmgc_core::prior::{Prior, PriorFingerprint};
use lmgc_core::prior_codec::PriorCodec;
use lmgc_fl::codec::{ClassicalCodecs, UpdateCodecs};
use lmgc_fl::trainer::FileTrainer;
use lmgc_fl::wire::{ClientId, CodecOffer};
use lmgc_model::backend::BackendKind;
use serde::Deserialize;

use crate::codecs::{CodecChoice, CodecOptions, open_llm};

/// The `[lm]` table of the transport's configuration files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmSettings {
    /// Model: a known name (fetched if missing), a `.gguf` file or a Hugging Face directory.
    pub model: String,
    /// Backend: ndarray, wgpu or cuda.
    pub backend: String,
    /// Serializer [default: the codec's].
    pub format: Option<String>,
    /// Tokens per window, BOS included.
    pub window: u32,
}

impl Default for LmSettings {
    fn default() -> Self {
        let o = CodecOptions::default();
        LmSettings {
            model: o.model,
            backend: o.backend.to_string(),
            format: None,
            window: o.window,
        }
    }
}

impl LmSettings {
    /// From a configuration file's `[lm]` table.
    pub fn from_table(t: &toml::Table) -> lmgc_fl::Result<Self> {
        t.clone()
            .try_into()
            .map_err(|e| lmgc_fl::Error::Config(format!("[lm]: {e}")))
    }

    fn options(&self) -> lmgc_fl::Result<CodecOptions> {
        let bad = |e: lmgc_core::Error| lmgc_fl::Error::Config(format!("[lm]: {e}"));
        Ok(CodecOptions {
            format: self
                .format
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(bad)?,
            window: self.window,
            model: self.model.clone(),
            backend: self
                .backend
                .parse::<BackendKind>()
                .map_err(|e| lmgc_fl::Error::Config(format!("[lm] backend: {e}")))?,
            ..CodecOptions::default()
        })
    }
}

/// Every codec of lmgc, for the transport. Priors are loaded once and kept.
pub struct FlCodecs {
    names: Vec<CodecChoice>,
    options: CodecOptions,
    priors: Mutex<HashMap<PriorFingerprint, Box<dyn Prior>>>,
    /// The fingerprint of the configured LLM, once loaded.
    llm: Option<PriorFingerprint>,
}

impl std::fmt::Debug for FlCodecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlCodecs")
            .field("names", &self.names)
            .field("llm", &self.llm)
            .finish_non_exhaustive()
    }
}

impl FlCodecs {
    /// The codecs named (`lm`, `auto`, `context`, `bytegroup`, `store`, classical
    /// baselines); the LLM is loaded now when one of them needs it, so a missing model is
    /// an error at start-up, not in the middle of a round.
    pub fn new(names: &[String], lm: &LmSettings, say: &dyn Fn(&str)) -> lmgc_fl::Result<Self> {
        let names: Vec<CodecChoice> = names
            .iter()
            .map(|n| n.parse::<CodecChoice>())
            .collect::<lmgc_core::Result<_>>()?;
        let options = lm.options()?;
        let mut priors = HashMap::new();
        let mut llm = None;
        if names.iter().any(|c| c.uses_llm()) {
            let prior = open_llm(&options.model, options.backend, say)?;
            let fp = prior.fingerprint();
            llm = Some(fp.clone());
            priors.insert(fp, prior);
        }
        if names
            .iter()
            .any(|c| matches!(c, CodecChoice::Context | CodecChoice::ContextHybrid))
        {
            let prior = lmgc_core::context_prior::ContextPrior::new(options.order)?;
            priors.insert(prior.fingerprint(), Box::new(prior) as Box<dyn Prior>);
        }
        Ok(FlCodecs {
            names,
            options,
            priors: Mutex::new(priors),
            llm,
        })
    }

    fn fingerprint_of(&self, c: CodecChoice) -> Option<PriorFingerprint> {
        match c {
            c if c.uses_llm() => self.llm.clone(),
            CodecChoice::Context | CodecChoice::ContextHybrid => {
                lmgc_core::context_prior::ContextPrior::new(self.options.order)
                    .ok()
                    .map(|p| p.fingerprint())
            }
            _ => None,
        }
    }
}

impl UpdateCodecs for FlCodecs {
    fn offers(&self) -> Vec<CodecOffer> {
        self.names
            .iter()
            .map(|&c| CodecOffer {
                name: c.to_string(),
                prior: self.fingerprint_of(c),
            })
            .collect()
    }

    fn encode(&self, codec: &CodecOffer, source: &SourceFile) -> lmgc_fl::Result<Vec<u8>> {
        let choice: CodecChoice = codec.name.parse()?;
        let Some(fp) = codec.prior.as_ref() else {
            return Ok(choice.with(&self.options, |c| container::compress(source, c, &|_| {}))?);
        };
        let mut priors = self
            .priors
            .lock()
            .map_err(|_| lmgc_fl::Error::Internal("a codec panicked earlier".into()))?;
        let prior = priors.get_mut(fp).ok_or_else(|| {
            lmgc_fl::Error::Config(format!(
                "codec {} needs {fp}, which is not loaded here",
                codec.name
            ))
        })?;
        let spec = PriorCodecSpec {
            prior: fp.clone(),
            serializer: self
                .options
                .format
                .unwrap_or_else(|| choice.default_format()),
            window: choice.window(&self.options),
            precision: self.options.precision,
            mask: self.options.mask,
        };
        let pc =
            PriorCodec::new(&mut **prior, spec, self.options.batch)?.with_lanes(self.options.lanes);
        Ok(choice.wrap_prior(pc, |c| container::compress(source, c, &|_| {}))?)
    }

    fn decode(&self, bytes: &[u8], limits: &DecodeLimits) -> lmgc_fl::Result<Vec<u8>> {
        let c = container::parse(bytes, limits)?;
        let Some(spec) = c.header.codec.prior() else {
            return ClassicalCodecs.decode(bytes, limits);
        };
        let mut priors = self
            .priors
            .lock()
            .map_err(|_| lmgc_fl::Error::Internal("a codec panicked earlier".into()))?;
        if !priors.contains_key(&spec.prior) {
            // Only a prior this side offers: an update must not make the aggregator fetch or
            // load arbitrary models.
            return Err(lmgc_fl::Error::Config(format!(
                "the update is coded with {}, which this side does not offer",
                spec.prior
            )));
        }
        let prior = priors.get_mut(&spec.prior).expect("checked");
        Ok(c.decode(Some(&mut **prior), &|_| {})?)
    }
}

/// The `[train]` table of a client's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum TrainSettings {
    /// Updates written by another program, one safetensors file per round.
    Files {
        /// Path template: `{client}`, `{round}` (or zero-padded, `{round:06}`).
        updates: String,
        /// FedAvg weight of each update.
        samples: u64,
    },
    /// The LM-GC paper's ConvNet on this client's share of CIFAR-10 (on `backend`);
    /// the update is the change of the weights (`update = "delta"` on the aggregator).
    Convnet(ConvnetSettings),
}

/// `[train] kind = "convnet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConvnetSettings {
    /// CIFAR-10 directory [default: $LMGC_CIFAR10_DIR, then the cache directory].
    pub data_dir: Option<std::path::PathBuf>,
    /// Clients the training images are split among.
    pub clients: usize,
    /// This client's share, `0..clients`.
    pub shard: usize,
    /// `iid` or `dirichlet`.
    pub split: String,
    /// Dirichlet concentration (smaller: more skewed label mixes).
    pub alpha: f64,
    /// Seed of the split (the same on every client) and of local shuffles.
    pub seed: u64,
    /// Use at most this many training images before splitting (0: all found).
    pub max_images: usize,
    /// Local epochs per round.
    pub epochs: usize,
    /// Images per local step.
    pub batch: usize,
    /// Local learning rate.
    pub lr: f64,
    /// Random crop and flip.
    pub augment: bool,
    /// Where local training runs: ndarray (CPU), wgpu or cuda (build features of the same
    /// names).
    pub backend: String,
}

impl Default for ConvnetSettings {
    fn default() -> Self {
        let l = lmgc_train::local::LocalConfig::default();
        ConvnetSettings {
            data_dir: None,
            clients: 2,
            shard: 0,
            split: "iid".into(),
            alpha: 0.5,
            seed: 0,
            max_images: 0,
            epochs: l.epochs,
            batch: l.batch,
            lr: l.lr,
            augment: l.augment,
            backend: "ndarray".into(),
        }
    }
}

/// Local training of the ConvNet on one shard.
pub struct ConvnetTrainer {
    train: std::sync::Arc<lmgc_train::cifar::Split>,
    shard: Vec<usize>,
    local: lmgc_train::local::LocalConfig,
    seed: u64,
    backend: BackendKind,
}

/// Calls `$f::<B>(device)` with the autodiff backend of `$kind`, or returns the error for a
/// backend this build lacks.
macro_rules! with_train_backend {
    ($kind:expr, $f:ident ( $($arg:expr),* )) => {
        match $kind {
            BackendKind::Ndarray => {
                $f::<burn::backend::Autodiff<burn::backend::NdArray>>($($arg,)* &Default::default())
            }
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => {
                $f::<burn::backend::Autodiff<burn::backend::Wgpu>>($($arg,)* &Default::default())
            }
            #[cfg(feature = "cuda")]
            BackendKind::Cuda | BackendKind::CudaBurn => {
                $f::<burn::backend::Autodiff<burn::backend::Cuda>>($($arg,)* &Default::default())
            }
            #[allow(unreachable_patterns)]
            other => Err(lmgc_fl::Error::Config(format!(
                "training on {other}: this build has no such backend; rebuild with --features {}",
                other.feature()
            ))),
        }
    };
}
pub(crate) use with_train_backend;

/// Parses a training backend name, refusing one this build lacks.
pub fn train_backend(name: &str) -> lmgc_fl::Result<BackendKind> {
    let kind: BackendKind = name
        .parse()
        .map_err(|e| lmgc_fl::Error::Config(format!("training backend: {e}")))?;
    if !kind.compiled() {
        return Err(lmgc_fl::Error::Config(format!(
            "training on {kind}: this build has no such backend; rebuild with --features {}",
            kind.feature()
        )));
    }
    Ok(kind)
}

impl std::fmt::Debug for ConvnetTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvnetTrainer")
            .field("images", &self.shard.len())
            .field("local", &self.local)
            .finish()
    }
}

fn train_err(e: lmgc_train::Error) -> lmgc_fl::Error {
    lmgc_fl::Error::Train(e.to_string())
}

impl ConvnetTrainer {
    /// Loads CIFAR-10 and takes this client's shard.
    pub fn new(s: &ConvnetSettings) -> lmgc_fl::Result<Self> {
        if s.shard >= s.clients {
            return Err(lmgc_fl::Error::Config(format!(
                "[train] shard = {} but clients = {}: shards are numbered 0..clients",
                s.shard, s.clients
            )));
        }
        let dir = lmgc_train::cifar::locate_or_download(
            s.data_dir.as_deref(),
            &|m| tracing::info!("{m}"),
            &|_, _| {},
        )
        .map_err(train_err)?;
        let mut data = lmgc_train::cifar::Cifar10::load(&dir).map_err(train_err)?;
        if s.max_images > 0 {
            data.train.truncate(s.max_images);
        }
        let shards = match s.split.as_str() {
            "iid" => lmgc_train::local::iid_shards(data.train.len(), s.clients, s.seed),
            "dirichlet" => {
                lmgc_train::local::dirichlet_shards(data.train.labels(), s.clients, s.alpha, s.seed)
            }
            other => {
                return Err(lmgc_fl::Error::Config(format!(
                    "[train] split = {other:?}: use \"iid\" or \"dirichlet\""
                )));
            }
        }
        .map_err(train_err)?;
        let backend = train_backend(&s.backend)?;
        Ok(ConvnetTrainer::from_shard(
            std::sync::Arc::new(data.train),
            shards[s.shard].clone(),
            lmgc_train::local::LocalConfig {
                epochs: s.epochs,
                batch: s.batch,
                lr: s.lr,
                augment: s.augment,
                ..Default::default()
            },
            s.seed ^ (s.shard as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
        .on(backend))
    }

    /// Trains on `backend` instead of ndarray.
    pub fn on(mut self, backend: BackendKind) -> Self {
        self.backend = backend;
        self
    }

    /// A trainer on images `shard` of `train` (shared between the clients of one process).
    pub fn from_shard(
        train: std::sync::Arc<lmgc_train::cifar::Split>,
        shard: Vec<usize>,
        local: lmgc_train::local::LocalConfig,
        seed: u64,
    ) -> Self {
        ConvnetTrainer {
            train,
            shard,
            local,
            seed,
            backend: BackendKind::Ndarray,
        }
    }

    /// Images of this client.
    pub fn images(&self) -> usize {
        self.shard.len()
    }
}

impl lmgc_fl::trainer::Trainer for ConvnetTrainer {
    fn train(
        &mut self,
        round: lmgc_fl::wire::Round,
        global: &lmgc_core::Gradient,
    ) -> lmgc_fl::Result<lmgc_fl::trainer::LocalUpdate> {
        let after = with_train_backend!(self.backend, train_round(self, round, global))?;
        Ok(lmgc_fl::trainer::LocalUpdate {
            update: lmgc_train::local::delta(&after, global).map_err(train_err)?,
            samples: self.shard.len() as u64,
        })
    }
}

/// One round of local training on backend `B`; the trained parameters.
fn train_round<B: burn::tensor::backend::AutodiffBackend>(
    t: &ConvnetTrainer,
    round: lmgc_fl::wire::Round,
    global: &lmgc_core::Gradient,
    device: &B::Device,
) -> lmgc_fl::Result<lmgc_core::Gradient> {
    let model = lmgc_train::convnet::ConvNet::<B>::new(device)
        .load_parameters(global, device)
        .map_err(train_err)?;
    let (trained, _loss) = lmgc_train::local::train_local(
        model,
        &t.train,
        &t.shard,
        &t.local,
        t.seed.wrapping_add(round.0),
        device,
    )
    .map_err(train_err)?;
    lmgc_train::local::parameters(&trained).map_err(train_err)
}

/// What the LLM codec costs here, measured: one window prefilled (the encoder's path) and
/// stepped (the decoder's), on a sample of `values` serialized with the codec's format.
#[derive(Debug, Clone, Copy)]
pub struct LmSpeed {
    /// Tokens per second encoding.
    pub encode: f64,
    /// Tokens per second decoding (one window; a GPU decodes many at once, faster).
    pub decode: f64,
    /// Tokens per f32 value.
    pub tokens_per_value: f64,
}

/// Measures [`LmSpeed`] with `window` tokens of `sample` (f32 little-endian bytes).
pub fn measure_lm(
    lm: &LmSettings,
    sample: &[u8],
    window: usize,
    say: &dyn Fn(&str),
) -> lmgc_fl::Result<LmSpeed> {
    let o = lm.options()?;
    let mut prior: Box<dyn Prior> = open_llm(&o.model, o.backend, say)?;
    let format = o.format.unwrap_or_else(|| {
        "hex-comma-be"
            .parse()
            .expect("the default lm serialization parses")
    });
    let values = sample.len() / 4;
    let tokenization = lmgc_core::byte_tokens::Tokenization::new(&*prior, &format)?;
    let ids = tokenization.tokenize(&*prior, &format.serialize(4, &sample[..values * 4]))?;
    if ids.is_empty() {
        return Err(lmgc_fl::Error::Config(
            "the sample for measuring the LLM's speed is empty".into(),
        ));
    }
    let n = ids.len().min(window.saturating_sub(1)).max(1);
    let win: Vec<u32> = std::iter::once(prior.bos())
        .chain(ids[..n.min(ids.len())].iter().copied())
        .collect();
    // The codec's alphabet mask, as `lm` codes by default.
    let mask = tokenization.mask(&*prior);
    let spec = lmgc_core::prior::TableSpec {
        precision: lmgc_core::cdf::Precision::MAX,
        mask: Some(mask),
    };
    // Warm-up (first allocations, uploads, library start-up), then the timed runs.
    let warm = &win[..win.len().min(17)];
    prior.prefill(&[warm], &spec, &mut |_, _, _| Ok(()))?;
    let t = std::time::Instant::now();
    prior.prefill(&[&win[..]], &spec, &mut |_, _, _| Ok(()))?;
    let encode = n as f64 / t.elapsed().as_secs_f64();
    prior.start(1, win.len())?;
    let t = std::time::Instant::now();
    for &tok in &win[..n] {
        prior.step(&[(0, tok)], &spec, &mut |_, _| Ok(()))?;
    }
    let decode = n as f64 / t.elapsed().as_secs_f64();
    Ok(LmSpeed {
        encode,
        decode,
        tokens_per_value: ids.len() as f64 / values.max(1) as f64,
    })
}

/// The ConvNet's initial parameters for seed `seed` (the first global model of a run).
pub fn convnet_init(seed: u64) -> lmgc_fl::Result<lmgc_core::Gradient> {
    use burn::tensor::backend::Backend;
    let device = Default::default();
    burn::backend::NdArray::<f32>::seed(&device, seed);
    let model = lmgc_train::convnet::ConvNet::<burn::backend::NdArray>::new(&device);
    lmgc_train::local::parameters(&model).map_err(train_err)
}

impl TrainSettings {
    /// From a configuration file's `[train]` table.
    pub fn from_table(t: &toml::Table) -> lmgc_fl::Result<Self> {
        if t.is_empty() {
            return Err(lmgc_fl::Error::Config(
                "the client needs a [train] table, e.g. kind = \"files\", updates = \"updates/{client}/round-{round}.safetensors\", samples = 1000".into(),
            ));
        }
        t.clone()
            .try_into()
            .map_err(|e| lmgc_fl::Error::Config(format!("[train]: {e}")))
    }

    /// The trainer.
    pub fn build(&self, client: &ClientId) -> lmgc_fl::Result<Box<dyn lmgc_fl::trainer::Trainer>> {
        match self {
            TrainSettings::Files { updates, samples } => Ok(Box::new(FileTrainer::new(
                updates.clone(),
                client.clone(),
                *samples,
            )?)),
            TrainSettings::Convnet(s) => Ok(Box::new(ConvnetTrainer::new(s)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A training backend this build lacks is a configuration error naming the feature,
    /// found before any data is loaded.
    #[test]
    fn training_backends_are_checked() {
        assert_eq!(train_backend("ndarray").unwrap(), BackendKind::Ndarray);
        assert!(train_backend("tpu").is_err());
        if !cfg!(feature = "cuda") {
            let e = train_backend("cuda").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
