//! [`Engine`]: where the exact forward pass runs — the boundary between the prior (tokens,
//! tables, windows) and the arithmetic (host integer code with burn GEMMs, or CUDA kernels).
//!
//! Every engine computes the recipe of [`crate::exact`] to the bit; an engine owns the KV
//! caches of the windows it is running, because where they live (host vectors, device
//! memory) is the engine's business.

use burn::tensor::backend::Backend;

use crate::Result;
use crate::config::LlamaConfig;
use crate::exact::{ExactModel, KvCache, Row};

/// An integer-exact Llama forward pass with caches for a set of windows.
pub trait Engine: Send {
    /// The model's shape.
    fn config(&self) -> &LlamaConfig;
    /// The longest window the engine was built for.
    fn max_positions(&self) -> usize;
    /// Cache bytes per window position.
    fn cache_bytes_per_position(&self) -> usize;
    /// Cache bytes all open windows may hold together.
    fn cache_budget(&self) -> usize;
    /// Rows per [`Engine::forward`] call that keep the engine busy without holding too much.
    fn prefill_rows(&self) -> usize;
    /// Whether a forward pass leaves the host's cores free (a device engine), so that the
    /// prior builds tables meanwhile; a host engine needs them for itself.
    fn frees_host(&self) -> bool {
        false
    }
    /// Restricts the scored outputs to `rows` (sorted token ids); `None` scores every token.
    fn set_output_rows(&mut self, rows: Option<&[usize]>) -> Result<()>;
    /// The output rows [`Engine::forward`] scores, `None` for all.
    fn output_rows(&self) -> Option<&[usize]>;
    /// Forgets every window and opens `n` empty ones of up to `positions` tokens.
    fn open(&mut self, n: usize, positions: usize) -> Result<()>;
    /// Seconds per stage of the engine's own work, when it measures (e.g. per kernel), and
    /// counts named for what they count (the CUDA engine's `*_registers` per kernel and
    /// `att_row_blocks_per_sm`).
    fn profile(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Appends each row's token to its window (rows of one window in order) and returns the
    /// log2-domain scores (1/1024 bit) of each row's next token over the output rows.
    fn forward(&mut self, rows: &[Row]) -> Result<Vec<Vec<i32>>>;
}

/// The host engine: [`ExactModel`] on a burn backend with caches in host memory.
pub struct HostEngine<B: Backend> {
    model: ExactModel<B>,
    caches: Vec<KvCache>,
}

impl<B: Backend> HostEngine<B> {
    /// Wraps a model.
    pub fn new(model: ExactModel<B>) -> Self {
        HostEngine {
            model,
            caches: Vec::new(),
        }
    }

    /// The model.
    pub fn model(&self) -> &ExactModel<B> {
        &self.model
    }
}

/// Rows per forward call on the host: bounds the activations held at once.
pub const HOST_PREFILL_ROWS: usize = 512;

impl<B: Backend> Engine for HostEngine<B> {
    fn config(&self) -> &LlamaConfig {
        self.model.config()
    }
    fn max_positions(&self) -> usize {
        self.model.max_positions()
    }
    fn cache_bytes_per_position(&self) -> usize {
        self.model.cache_bytes_per_position()
    }
    fn cache_budget(&self) -> usize {
        lmgc_core::prior_codec::STATE_BUDGET
    }
    fn prefill_rows(&self) -> usize {
        HOST_PREFILL_ROWS
    }
    fn set_output_rows(&mut self, rows: Option<&[usize]>) -> Result<()> {
        self.model.set_output_rows(rows);
        Ok(())
    }
    fn output_rows(&self) -> Option<&[usize]> {
        self.model.output_rows()
    }
    fn open(&mut self, n: usize, _positions: usize) -> Result<()> {
        // Host caches grow as tokens arrive.
        self.caches = (0..n).map(|_| self.model.new_cache()).collect();
        Ok(())
    }
    fn forward(&mut self, rows: &[Row]) -> Result<Vec<Vec<i32>>> {
        self.model.forward(rows, &mut self.caches)
    }
}
