//! [`LlmPrior`]: an integer-exact Llama model and its tokenizer as an [`lmgc_core::Prior`].

use std::path::Path;

use burn::tensor::backend::Backend;
use lmgc_core::TokenId;
use lmgc_core::cdf::FrequencyTable;
use lmgc_core::prior::{PrefillVisitor, Prior, PriorFingerprint, StepVisitor, TableSpec};

use crate::engine::{Engine, HostEngine};
use crate::exact::tables::SCORE_FRAC_BITS;
use crate::exact::{ExactModel, RECIPE_VERSION, Row};
use crate::fetch::sha256_file;
use crate::gguf::Gguf;
use crate::tokenizer::BpeTokenizer;
use crate::weights::LlamaWeights;
use crate::{Error, Result};

/// The longest window any model is built for (RoPE tables and KV caches grow with it).
pub const MAX_WINDOW: usize = 8192;

/// An LLM prior: frequency tables from the integer-exact forward pass of an [`Engine`].
pub struct LlmPrior {
    name: String,
    engine: Box<dyn Engine>,
    tokenizer: BpeTokenizer,
    model_sha256: [u8; 32],
    /// Seconds in the engine's forward passes and in building tables from their scores.
    seconds: [f64; 2],
    /// Groups a decoder's batch steps in on an engine that frees the host.
    /// `LMGC_STEP_GROUPS` when set: the groups whatever the batch.
    step_groups: Option<usize>,
    /// The last `step_deferred` call's score rows and inputs, not yet visited.
    kept: Option<Kept>,
    /// Threads that build tables beside a device engine's forward calls, one core short of
    /// the machine to leave one to the thread launching the device's work (on an H100's host,
    /// 16 threads encoded as fast and 8 decoded slower: docs/perf.md, stop 26); `None` for
    /// host engines (rayon's global pool).
    table_pool: Option<std::sync::Arc<rayon::ThreadPool>>,
    /// Allowed tokens of the current mask (see `use_mask`).
    subset: Option<std::sync::Arc<[u32]>>,
}

impl std::fmt::Debug for LlmPrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmPrior")
            .field("name", &self.name)
            .field("config", self.engine.config())
            .finish_non_exhaustive()
    }
}

/// A model file read into weights and tokenizer, before an engine is built.
pub struct Loaded {
    /// The f32 weights.
    pub weights: LlamaWeights,
    /// The tokenizer.
    pub tokenizer: BpeTokenizer,
    /// SHA-256 of the file (or of the directory's files) they came from.
    pub sha256: [u8; 32],
}

impl Loaded {
    /// Reads a GGUF file or, for a directory, a Hugging Face model (see [`crate::hf`]).
    pub fn read(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let m = crate::hf::load_dir(path)?;
            Ok(Loaded {
                weights: m.weights,
                tokenizer: m.tokenizer,
                sha256: m.sha256,
            })
        } else {
            let g = Gguf::read(path)?;
            // Three independent reads of one file, on as many cores.
            let (sha256, (weights, tokenizer)) = rayon::join(
                || sha256_file(path),
                || {
                    rayon::join(
                        || LlamaWeights::from_gguf(&g),
                        || BpeTokenizer::from_gguf(&g),
                    )
                },
            );
            Ok(Loaded {
                sha256: hex_to_bytes(&sha256?),
                weights: weights?,
                tokenizer: tokenizer?,
            })
        }
    }

    /// Window positions an engine for these weights is built for.
    pub fn positions(&self) -> usize {
        self.weights.config.context_len.min(MAX_WINDOW)
    }
}

impl LlmPrior {
    /// Loads a GGUF file or, for a directory, a Hugging Face model onto a burn backend's
    /// `device`. `name` goes into the fingerprint.
    pub fn open<B: Backend>(path: &Path, name: &str, device: B::Device) -> Result<Self> {
        let l = Loaded::read(path)?;
        let positions = l.positions();
        let model = ExactModel::<B>::new(l.weights, device, positions)?;
        Self::new(
            name,
            l.tokenizer,
            l.sha256,
            Box::new(HostEngine::new(model)),
        )
    }

    /// A prior from a model file's tokenizer and SHA-256 and the engine built from its
    /// weights.
    pub fn new(
        name: &str,
        tokenizer: BpeTokenizer,
        sha256: [u8; 32],
        engine: Box<dyn Engine>,
    ) -> Result<Self> {
        if tokenizer.vocab_size() > engine.config().vocab {
            return Err(Error::Unsupported(format!(
                "tokenizer has {} tokens, the model {}",
                tokenizer.vocab_size(),
                engine.config().vocab
            )));
        }
        let table_pool = table_pool(&*engine)?;
        Ok(LlmPrior {
            name: name.to_owned(),
            engine,
            tokenizer,
            model_sha256: sha256,
            seconds: [0.0; 2],
            step_groups: step_groups()?,
            kept: None,
            table_pool,
            subset: None,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    /// Longest window (BOS included) this prior accepts.
    pub fn max_window(&self) -> usize {
        self.engine.max_positions()
    }

    fn use_mask(&mut self, spec: &TableSpec) -> Result<()> {
        let vocab = self.engine.config().vocab;
        let rows: Option<Vec<usize>> = spec.mask.as_ref().map(|m| {
            m.iter()
                .enumerate()
                .filter(|&(i, &ok)| ok && i < vocab)
                .map(|(i, _)| i)
                .collect()
        });
        // The output rows the tokenizer can produce: the engine's rows are sorted, so these
        // come first and the subset table reads their scores as a prefix.
        let tok_vocab = self.tokenizer.vocab_size();
        self.subset = rows.as_ref().map(|r| {
            r.iter()
                .filter(|&&t| t < tok_vocab)
                .map(|&t| t as u32)
                .collect::<Vec<_>>()
                .into()
        });
        self.engine.set_output_rows(rows.as_deref())
    }

    /// The engine's forward pass of `input` while `tables` (an earlier call's tables and
    /// coding, if any) runs on another thread; books both times and returns the scores, one
    /// row per input.
    fn forward_beside(
        &mut self,
        input: &[Row],
        tables: Option<impl FnOnce() -> lmgc_core::Result<f64> + Send>,
    ) -> lmgc_core::Result<Vec<Vec<i32>>> {
        let engine = &mut self.engine;
        let (scores, model, tables) = std::thread::scope(|s| {
            let tables = tables.map(|f| s.spawn(f));
            let t0 = std::time::Instant::now();
            let scores = engine.forward(input);
            let model = t0.elapsed().as_secs_f64();
            let tables = tables.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            (scores, model, tables)
        });
        if let Some(t) = tables {
            self.seconds[1] += t?;
        }
        self.seconds[0] += model;
        let scores = scores?;
        rows_returned(&scores, input.len())?;
        Ok(scores)
    }

    /// What building a table from the current output's scores needs, apart from the engine.
    fn table_maker(&self) -> TableMaker {
        TableMaker {
            pool: self.table_pool.clone(),
            vocab: self.tokenizer.vocab_size(),
            subset: self
                .subset
                .clone()
                .filter(|_| self.engine.output_rows().is_some()),
        }
    }
}

/// The table threads for `engine`: for an engine that frees the host, `LMGC_TABLE_THREADS`
/// threads (0 or unset: one fewer than the machine's cores, at least one).
fn table_pool(engine: &dyn Engine) -> Result<Option<std::sync::Arc<rayon::ThreadPool>>> {
    if !engine.frees_host() {
        return Ok(None);
    }
    let threads = match std::env::var("LMGC_TABLE_THREADS") {
        Err(_) => 0,
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= 1024)
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "LMGC_TABLE_THREADS={v}: set a whole number of threads, 0 for the cores but one"
                ))
            })?,
    };
    let threads = if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1)
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("lmgc-tables-{i}"))
        .build()
        .map(|p| Some(std::sync::Arc::new(p)))
        .map_err(|e| Error::Backend(format!("cannot start {threads} table threads: {e}")))
}

/// `LMGC_STEP_GROUPS`, if set.
fn step_groups() -> Result<Option<usize>> {
    match std::env::var("LMGC_STEP_GROUPS") {
        Err(_) => Ok(None),
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=16).contains(p))
            .map(Some)
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "LMGC_STEP_GROUPS={v}: set a whole number from 1 to 16"
                ))
            }),
    }
}

/// An engine returns one row of scores per input row; anything else is a bug in it, reported
/// rather than coded.
fn rows_returned(scores: &[Vec<i32>], inputs: usize) -> Result<()> {
    if scores.len() == inputs {
        Ok(())
    } else {
        Err(Error::Backend(format!(
            "the engine returned {} rows of scores for {inputs} inputs",
            scores.len()
        )))
    }
}

/// Rows whose tables are built at once (in parallel) before the coder takes them in order:
/// bounds the tables held, which for an unmasked 49,152-token vocabulary are 200 kB each.
const TABLE_ROWS: usize = 1024;

/// Largest score rows (bytes) a prefill keeps while the engine computes the next call's, so
/// that their tables are built meanwhile: a masked output (a few hundred scores per row) always
/// fits, an unmasked vocabulary's 1.6 GB of a GPU call is handled before the next call instead.
const OVERLAP_SCORE_BYTES: usize = 512 << 20;

/// Windows a decoder steps in lockstep on an engine that frees the host, unless told otherwise:
/// two groups of [`STEP_GROUP_ROWS`] (on an H100, steps of 4,096 rows cost 5.6 µs per row
/// against 8.4 at 1,254: docs/perf.md).
const DEVICE_BATCH: usize = 4096;

/// Fewest windows per group of a decoder's batch stepped in groups (below, one group):
/// smaller forward calls cost a device engine more than the tables they hide (on an H100,
/// steps of 1,254 rows took 12% longer as two calls, steps of 4,096 rows 5–11% less with
/// the second half's tables still exposed: docs/perf.md).
const STEP_GROUP_ROWS: usize = 2048;

/// Groups a device engine's decoder steps a batch of at least `STEP_GROUPS ·
/// STEP_GROUP_ROWS` windows in (`LMGC_STEP_GROUPS`, 1 to 16, sets the groups for any batch):
/// each call's tables and coding run while the engine computes the next group's step.
const STEP_GROUPS: usize = 2;

/// Builds frequency tables from output scores; shareable across threads.
struct TableMaker {
    /// Where the tables are built (`None`: rayon's global pool).
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
    vocab: usize,
    /// The allowed tokens when the engine computes only their rows (masked output).
    subset: Option<std::sync::Arc<[u32]>>,
}

impl TableMaker {
    /// A frequency table from scores over the model's output rows: over the allowed tokens
    /// only when the output is masked (the cost then follows the mask, not the vocabulary).
    fn table(&self, scores: &[i32], spec: &TableSpec) -> lmgc_core::Result<FrequencyTable> {
        match &self.subset {
            Some(symbols) => FrequencyTable::from_scores_subset(
                symbols.clone(),
                self.vocab,
                &scores[..symbols.len()],
                SCORE_FRAC_BITS as u8,
                spec.precision,
            ),
            None => FrequencyTable::from_scores(
                &scores[..self.vocab],
                SCORE_FRAC_BITS as u8,
                spec.mask.as_deref(),
                spec.precision,
            ),
        }
    }

    /// Each row's table, `TABLE_ROWS` at a time built on every core, handed to `visit` in
    /// row order (the coder's order: the tables are pure functions of the scores, so the
    /// threads change no bit of the output).
    fn each_table(
        &self,
        scores: &[Vec<i32>],
        spec: &TableSpec,
        mut visit: impl FnMut(usize, &FrequencyTable) -> lmgc_core::Result<()>,
    ) -> lmgc_core::Result<()> {
        use rayon::prelude::*;
        for (c, chunk) in scores.chunks(TABLE_ROWS).enumerate() {
            let build = || {
                chunk
                    .par_iter()
                    .map(|s| self.table(s, spec))
                    .collect::<lmgc_core::Result<Vec<_>>>()
            };
            let tables = match &self.pool {
                Some(pool) => pool.install(build)?,
                None => build()?,
            };
            for (i, t) in tables.iter().enumerate() {
                visit(c * TABLE_ROWS + i, t)?;
            }
        }
        Ok(())
    }
}

/// A decoding step's score rows and its inputs, kept for the next call to visit.
struct Kept {
    scores: Vec<Vec<i32>>,
    inputs: Vec<(usize, TokenId)>,
}

/// One forward call's score rows and the (window, input position) of each, not yet visited.
struct Scored {
    scores: Vec<Vec<i32>>,
    rows: Vec<(usize, usize)>,
}

/// Hands the tables of one call's score rows (`rows[i]` = (window, input position)) to
/// `visit` in order; returns the seconds it took.
fn visit_tables(
    maker: &TableMaker,
    scores: &[Vec<i32>],
    rows: &[(usize, usize)],
    spec: &TableSpec,
    visit: &mut PrefillVisitor<'_>,
) -> lmgc_core::Result<f64> {
    let t0 = std::time::Instant::now();
    maker.each_table(scores, spec, |i, table| {
        let (w, t) = rows[i];
        visit(w, t + 1, table)
    })?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Hands the tables of a step's score rows (`inputs[i]` the i-th row's window and
/// token) to `visit` in order; returns the seconds it took.
fn visit_step(
    maker: &TableMaker,
    scores: &[Vec<i32>],
    inputs: &[(usize, TokenId)],
    spec: &TableSpec,
    visit: &mut StepVisitor<'_>,
) -> lmgc_core::Result<f64> {
    let t0 = std::time::Instant::now();
    maker.each_table(scores, spec, |i, table| visit(inputs[i].0, table))?;
    Ok(t0.elapsed().as_secs_f64())
}

fn hex_to_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    out
}

impl Prior for LlmPrior {
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

    fn byte_tokens(&self) -> lmgc_core::Result<lmgc_core::byte_tokens::ByteTokens> {
        lmgc_core::byte_tokens::ByteTokens::new(self.tokenizer.byte_tokens()?)
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
        self.use_mask(spec)?;
        let maker = self.table_maker();
        let mut pending: Option<Scored> = None;
        // Every token but each window's last is an input. Windows go in groups of about
        // `prefill_rows` inputs (at least one window), each group's windows open together
        // and its rows in window order, in chunks of `prefill_rows`.
        let per_call = self.engine.prefill_rows().max(1);
        let longest = windows.iter().map(|w| w.len()).max().unwrap_or(0);
        let mut start = 0;
        while start < windows.len() {
            let mut end = start;
            let mut inputs = 0;
            while end < windows.len() {
                let more = windows[end].len().saturating_sub(1);
                if end > start && inputs + more > per_call {
                    break;
                }
                inputs += more;
                end += 1;
            }
            self.engine.open(end - start, longest)?;
            let rows: Vec<(usize, usize)> = (start..end)
                .flat_map(|w| (0..windows[w].len().saturating_sub(1)).map(move |t| (w, t)))
                .collect();
            for chunk in rows.chunks(per_call) {
                let input: Vec<Row> = chunk
                    .iter()
                    .map(|&(w, t)| Row {
                        cache: w - start,
                        token: windows[w][t],
                    })
                    .collect();
                // The previous call's tables go to `visit` on another thread while the
                // engine runs this call (the GPU engine mostly waits for its device).
                let job = pending.take().map(|j| {
                    let (visit, maker) = (&mut *visit, &maker);
                    move || visit_tables(maker, &j.scores, &j.rows, spec, visit)
                });
                let scores = self.forward_beside(&input, job)?;
                let held = scores.iter().map(|r| r.len() * 4).sum::<usize>();
                if held <= OVERLAP_SCORE_BYTES {
                    pending = Some(Scored {
                        scores,
                        rows: chunk.to_vec(),
                    });
                } else {
                    self.seconds[1] += visit_tables(&maker, &scores, chunk, spec, visit)?;
                }
            }
            start = end;
        }
        if let Some(j) = pending {
            self.seconds[1] += visit_tables(&maker, &j.scores, &j.rows, spec, visit)?;
        }
        Ok(())
    }

    fn state_bytes_per_position(&self) -> usize {
        self.engine.cache_bytes_per_position()
    }

    fn state_budget(&self) -> usize {
        self.engine.cache_budget()
    }

    /// `model`: seconds in forward passes (device work included); `tables_and_coder`:
    /// seconds building tables from scores and in the visitor (the range coder); in a
    /// prefill, mostly while the next forward pass runs.
    fn profile(&self) -> Vec<(&'static str, f64)> {
        let mut v = vec![
            ("model", self.seconds[0]),
            ("tables_and_coder", self.seconds[1]),
        ];
        v.extend(self.engine.profile());
        v
    }

    fn start(&mut self, n: usize, positions: usize) -> lmgc_core::Result<()> {
        if positions > self.max_window() {
            return Err(Error::Unsupported(format!(
                "windows of {positions} tokens; this model takes at most {}",
                self.max_window()
            ))
            .into());
        }
        // Tables a failed decode left behind belong to windows that are gone.
        self.kept = None;
        Ok(self.engine.open(n, positions)?)
    }

    fn step(
        &mut self,
        inputs: &[(usize, TokenId)],
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> lmgc_core::Result<()> {
        self.finish_steps(spec, visit)?;
        self.step_deferred(inputs, spec, visit)?;
        self.finish_steps(spec, visit)
    }

    fn prefill_tokens(&self) -> usize {
        if self.engine.frees_host() {
            lmgc_core::prior_codec::ENCODE_TOKENS
        } else {
            0
        }
    }

    fn preferred_batch(&self) -> usize {
        if self.engine.frees_host() {
            DEVICE_BATCH
        } else {
            lmgc_core::prior_codec::DEFAULT_BATCH
        }
    }

    fn step_groups(&self, windows: usize) -> usize {
        match self.step_groups {
            _ if !self.engine.frees_host() => 1,
            Some(g) => g,
            None => STEP_GROUPS.min(windows / STEP_GROUP_ROWS).max(1),
        }
    }

    fn step_deferred(
        &mut self,
        inputs: &[(usize, TokenId)],
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> lmgc_core::Result<()> {
        self.use_mask(spec)?;
        let rows: Vec<Row> = inputs
            .iter()
            .map(|&(cache, token)| Row { cache, token })
            .collect();
        let maker = self.table_maker();
        // The previous call's tables go to `visit` on another thread while the engine runs
        // this call (other windows: the decoder steps a window only once its table is coded).
        let kept = self.kept.take();
        let job = kept.as_ref().map(|k| {
            let (visit, maker) = (&mut *visit, &maker);
            move || visit_step(maker, &k.scores, &k.inputs, spec, visit)
        });
        let scores = self.forward_beside(&rows, job)?;
        self.kept = Some(Kept {
            scores,
            inputs: inputs.to_vec(),
        });
        Ok(())
    }

    fn finish_steps(
        &mut self,
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> lmgc_core::Result<()> {
        if let Some(k) = self.kept.take() {
            // The mask is the one `step_deferred` set for these rows.
            let maker = self.table_maker();
            self.seconds[1] += visit_step(&maker, &k.scores, &k.inputs, spec, visit)?;
        }
        Ok(())
    }
}
