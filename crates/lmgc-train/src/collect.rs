//! Gradient collection: train the ConvNet with the paper's settings (SGD, momentum 0.9,
//! weight decay 5e-4, batch 128, cosine schedule, crop + flip augmentation) and write the raw
//! gradient of every `every`-th step, taken before the optimizer step, as
//! `step{N:06}.safetensors`. This is the corpus `lmgc bench` and the LLM codec report on.
//!
//! The peak learning rate defaults to 0.03, not the paper's 0.1: measured on an H200 (CIFAR-10
//! `data_batch_1`, seed 0), 0.1 kills every ReLU of this instance-norm ConvNet by step 33
//! (all convolution gradients exactly zero, which [`collect`] refuses), while 0.03 reaches
//! 57.6% test accuracy after 500 steps and 0.01 55.9% (docs/perf.md).

use std::path::{Path, PathBuf};

use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use crate::cifar::Cifar10;
use crate::convnet::ConvNet;
use crate::rng::Rng;
use crate::{Error, Result, batch};

/// What to train and what to keep.
#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// Optimizer steps in all (the cosine schedule spans them).
    pub steps: usize,
    /// Write the gradient of steps 0, `every`, 2·`every`, …
    pub every: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay (applied by the optimizer, not in the saved gradients).
    pub weight_decay: f64,
    /// Random crop + flip.
    pub augment: bool,
    /// Seed of the shuffle and the augmentation.
    pub seed: u64,
    /// Use at most this many training images (`0`: all).
    pub max_images: usize,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            steps: 200,
            every: 50,
            batch: 128,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 5e-4,
            augment: true,
            seed: 0,
            max_images: 0,
        }
    }
}

impl CollectConfig {
    fn validate(&self) -> Result<()> {
        let bad = |what, reason: &str| {
            Err(Error::InvalidArgument {
                what,
                reason: reason.into(),
            })
        };
        if self.steps == 0 || self.steps > 10_000_000 {
            return bad("steps", "must be between 1 and 10,000,000");
        }
        if self.every == 0 {
            return bad("every", "must be at least 1");
        }
        if self.batch == 0 || self.batch > 65_536 {
            return bad("batch", "must be between 1 and 65,536");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) || !(0.0..1.0).contains(&self.weight_decay) {
            return bad("momentum/weight decay", "must be in [0, 1)");
        }
        Ok(())
    }

    /// The learning rate at `step` (cosine from `lr` to 0 over `steps`).
    pub fn lr_at(&self, step: usize) -> f64 {
        let t = step as f64 / self.steps as f64;
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// One step's report.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The step (0-based).
    pub step: usize,
    /// Training loss on its batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// The gradient file written at this step, if any.
    pub saved: Option<PathBuf>,
}

/// Trains a fresh ConvNet on `data` and writes gradients into `out`; calls `report` after
/// every step. Returns the files written and the trained network.
pub fn collect<B: AutodiffBackend>(
    data: &Cifar10,
    cfg: &CollectConfig,
    out: &Path,
    device: &B::Device,
    mut report: impl FnMut(&StepReport),
) -> Result<(Vec<PathBuf>, ConvNet<B>)> {
    cfg.validate()?;
    let n = match cfg.max_images {
        0 => data.train.len(),
        m => m.min(data.train.len()),
    };
    if n < cfg.batch {
        return Err(Error::InvalidArgument {
            what: "batch",
            reason: format!("{} images cannot fill a batch of {}", n, cfg.batch),
        });
    }
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    B::seed(device, cfg.seed);
    let mut model = ConvNet::<B>::new(device);
    let mut optim = crate::local::sgd::<B>(cfg.momentum, cfg.weight_decay);
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut cursor = n; // forces a shuffle before the first batch
    let mut written = Vec::new();
    for step in 0..cfg.steps {
        if cursor + cfg.batch > n {
            rng.shuffle(&mut order);
            cursor = 0;
        }
        let idx = &order[cursor..cursor + cfg.batch];
        cursor += cfg.batch;
        let (x, y) = batch::tensors::<B>(&data.train, idx, cfg.augment.then_some(&mut rng), device);
        let (loss, gradient, grads) = model.loss_and_gradient(x, y, step)?;
        // A collapsed network (every ReLU dead) still "trains" its classifier bias; its
        // convolution gradients are exactly zero, which would fill the corpus with zeros.
        let mut convs = gradient
            .tensors()
            .iter()
            .filter(|t| t.name().starts_with("features."))
            .peekable();
        // Compared as floats: -0.0 is as dead as 0.0.
        if convs.peek().is_some()
            && convs.all(|t| {
                t.data()
                    .chunks_exact(4)
                    .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) == 0.0)
            })
        {
            return Err(Error::Diverged {
                step,
                what: "every convolution gradient is exactly zero (all ReLUs dead); lower --lr"
                    .into(),
            });
        }
        let saved = if step % cfg.every == 0 {
            let path = out.join(format!("step{step:06}.safetensors"));
            lmgc_core::io::write_safetensors(&path, &gradient)?;
            written.push(path.clone());
            Some(path)
        } else {
            None
        };
        let lr = cfg.lr_at(step);
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(lr, model, grads);
        report(&StepReport {
            step,
            loss,
            lr,
            saved,
        });
    }
    Ok((written, model))
}
