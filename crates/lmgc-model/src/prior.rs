//! [`LlmPrior`]: an integer-exact Llama model and its tokenizer as an [`lmgc_core::Prior`].

use std::path::Path;

use burn::tensor::backend::Backend;
use lmgc_core::TokenId;
use lmgc_core::cdf::FrequencyTable;
use lmgc_core::prior::{PrefillVisitor, Prior, PriorFingerprint, StepVisitor, TableSpec};

use crate::exact::tables::SCORE_FRAC_BITS;
use crate::exact::{ExactModel, KvCache, RECIPE_VERSION, Row};
use crate::fetch::sha256_file;
use crate::gguf::Gguf;
use crate::tokenizer::BpeTokenizer;
use crate::weights::LlamaWeights;
use crate::{Error, Result};

/// Rows per forward call while prefilling: bounds the activations held at once.
pub const PREFILL_ROWS: usize = 512;

/// The longest window any model is built for (RoPE tables and KV caches grow with it).
pub const MAX_WINDOW: usize = 8192;

/// An LLM prior: frequency tables from the integer-exact forward pass.
pub struct LlmPrior<B: Backend> {
    name: String,
    model: ExactModel<B>,
    tokenizer: BpeTokenizer,
    model_sha256: [u8; 32],
    caches: Vec<KvCache>,
}

impl<B: Backend> std::fmt::Debug for LlmPrior<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmPrior")
            .field("name", &self.name)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> LlmPrior<B> {
    /// Loads a GGUF llama file onto `device`. `name` goes into the fingerprint.
    pub fn from_gguf(path: &Path, name: &str, device: B::Device) -> Result<Self> {
        let g = Gguf::read(path)?;
        let sha = hex_to_bytes(&sha256_file(path)?);
        let weights = LlamaWeights::from_gguf(&g)?;
        let tokenizer = BpeTokenizer::from_gguf(&g)?;
        Self::new(name, &weights, tokenizer, sha, device)
    }

    /// Loads a Hugging Face model directory (see [`crate::hf`]) onto `device`.
    pub fn from_hf_dir(dir: &Path, name: &str, device: B::Device) -> Result<Self> {
        let m = crate::hf::load_dir(dir)?;
        Self::new(name, &m.weights, m.tokenizer, m.sha256, device)
    }

    /// Loads a GGUF file or, for a directory, a Hugging Face model.
    pub fn open(path: &Path, name: &str, device: B::Device) -> Result<Self> {
        if path.is_dir() {
            Self::from_hf_dir(path, name, device)
        } else {
            Self::from_gguf(path, name, device)
        }
    }

    /// A prior from loaded weights; `model_sha256` identifies the file they came from.
    pub fn new(
        name: &str,
        weights: &LlamaWeights,
        tokenizer: BpeTokenizer,
        model_sha256: [u8; 32],
        device: B::Device,
    ) -> Result<Self> {
        if tokenizer.vocab_size() > weights.config.vocab {
            return Err(Error::Unsupported(format!(
                "tokenizer has {} tokens, the model {}",
                tokenizer.vocab_size(),
                weights.config.vocab
            )));
        }
        let positions = weights.config.context_len.min(MAX_WINDOW);
        Ok(LlmPrior {
            name: name.to_owned(),
            model: ExactModel::new(weights, device, positions)?,
            tokenizer,
            model_sha256,
            caches: Vec::new(),
        })
    }

    /// The model.
    pub fn model(&self) -> &ExactModel<B> {
        &self.model
    }

    /// Longest window (BOS included) this prior accepts.
    pub fn max_window(&self) -> usize {
        self.model.max_positions()
    }

    fn use_mask(&mut self, spec: &TableSpec) {
        let rows: Option<Vec<usize>> = spec.mask.as_ref().map(|m| {
            m.iter()
                .enumerate()
                .filter(|&(i, &ok)| ok && i < self.model.config().vocab)
                .map(|(i, _)| i)
                .collect()
        });
        self.model.set_output_rows(rows.as_deref());
    }

    /// A frequency table from scores over the model's output rows.
    fn table(
        &self,
        scores: &[i32],
        spec: &TableSpec,
        full: &mut Vec<i32>,
    ) -> lmgc_core::Result<FrequencyTable> {
        let vocab = self.tokenizer.vocab_size();
        match self.model.output_rows() {
            None => FrequencyTable::from_scores(
                &scores[..vocab],
                SCORE_FRAC_BITS as u8,
                spec.mask.as_deref(),
                spec.precision,
            ),
            Some(rows) => {
                full.clear();
                full.resize(vocab, i32::MIN / 2);
                for (&r, &s) in rows.iter().zip(scores) {
                    if r < vocab {
                        full[r] = s;
                    }
                }
                FrequencyTable::from_scores(
                    full,
                    SCORE_FRAC_BITS as u8,
                    spec.mask.as_deref(),
                    spec.precision,
                )
            }
        }
    }
}

fn hex_to_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    out
}

impl<B: Backend> Prior for LlmPrior<B> {
    fn fingerprint(&self) -> PriorFingerprint {
        PriorFingerprint {
            name: self.name.clone(),
            model_sha256: self.model_sha256,
            recipe_version: RECIPE_VERSION,
            tokenizer_sha256: self.tokenizer.sha256(),
        }
    }

    fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    fn bos(&self) -> TokenId {
        self.tokenizer.bos()
    }

    fn tokenize(&self, text: &[u8]) -> lmgc_core::Result<Vec<TokenId>> {
        Ok(self.tokenizer.tokenize(text)?)
    }

    fn detokenize(&self, tokens: &[TokenId], out: &mut Vec<u8>) -> lmgc_core::Result<()> {
        Ok(self.tokenizer.detokenize(tokens, out)?)
    }

    fn tokens_within(&self, charset: &[u8]) -> Vec<TokenId> {
        self.tokenizer.tokens_within(charset)
    }

    fn prefill(
        &mut self,
        windows: &[&[TokenId]],
        spec: &TableSpec,
        visit: &mut PrefillVisitor<'_>,
    ) -> lmgc_core::Result<()> {
        if let Some(w) = windows.iter().find(|w| w.len() > self.max_window()) {
            return Err(Error::Unsupported(format!(
                "a window of {} tokens; this model takes at most {}",
                w.len(),
                self.max_window()
            ))
            .into());
        }
        self.use_mask(spec);
        // Every token but each window's last is an input; rows go in window order, in
        // chunks of PREFILL_ROWS, with one cache per window alive while it is being read.
        let inputs: Vec<(usize, usize)> = windows
            .iter()
            .enumerate()
            .flat_map(|(w, win)| (0..win.len().saturating_sub(1)).map(move |t| (w, t)))
            .collect();
        let mut caches: Vec<KvCache> = Vec::new();
        let mut slot_of: Vec<Option<usize>> = vec![None; windows.len()];
        let mut full = Vec::new();
        for chunk in inputs.chunks(PREFILL_ROWS) {
            let rows: Vec<Row> = chunk
                .iter()
                .map(|&(w, t)| {
                    let slot = *slot_of[w].get_or_insert_with(|| {
                        caches.push(self.model.new_cache());
                        caches.len() - 1
                    });
                    Row {
                        cache: slot,
                        token: windows[w][t],
                    }
                })
                .collect();
            let scores = self.model.forward(&rows, &mut caches)?;
            for (&(w, t), s) in chunk.iter().zip(&scores) {
                visit(w, t + 1, &self.table(s, spec, &mut full)?)?;
            }
            // Windows before the chunk's last one are complete: free their caches.
            if let Some(&(last, _)) = chunk.last() {
                for &slot in slot_of[..last].iter().flatten() {
                    caches[slot] = KvCache::default();
                }
            }
        }
        Ok(())
    }

    fn state_bytes_per_position(&self) -> usize {
        self.model.cache_bytes_per_position()
    }

    fn start(&mut self, n: usize) -> lmgc_core::Result<()> {
        self.caches = (0..n).map(|_| self.model.new_cache()).collect();
        Ok(())
    }

    fn step(
        &mut self,
        inputs: &[(usize, TokenId)],
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> lmgc_core::Result<()> {
        self.use_mask(spec);
        let rows: Vec<Row> = inputs
            .iter()
            .map(|&(cache, token)| Row { cache, token })
            .collect();
        let mut caches = std::mem::take(&mut self.caches);
        let scores = self.model.forward(&rows, &mut caches);
        self.caches = caches;
        let mut full = Vec::new();
        for (&(w, _), s) in inputs.iter().zip(&scores?) {
            visit(w, &self.table(s, spec, &mut full)?)?;
        }
        Ok(())
    }
}
