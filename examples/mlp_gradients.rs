//! Real gradients without a deep-learning framework: a 3072-256-10 ReLU MLP trained with
//! plain SGD on CIFAR-10 (standard binary layout), saving the raw pre-step gradient of
//! every step as safetensors. The end-to-end tests use it as their real-data fixture; the
//! burn ConvNet of `fedavg_cifar` is the project's main gradient source.
//!
//! Needs `data_batch_1.bin` in `$LMGC_CIFAR10_DIR` (or the directory given with --data).
//!
//! cargo run --release --example mlp_gradients -- --out grads/ --steps 4

#![allow(missing_docs)] // An example, not an API.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lmgc::core::{Gradient, Tensor, io::write_safetensors};

const INPUT: usize = 3072;
const HIDDEN: usize = 256;
const CLASSES: usize = 10;

/// CIFAR-10 images of one batch file, scaled to [-1, 1], and their labels.
pub fn load_cifar(dir: &Path, max: usize) -> anyhow::Result<(Vec<f32>, Vec<u8>)> {
    let path = dir.join("data_batch_1.bin");
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (set LMGC_CIFAR10_DIR)", path.display()))?;
    if bytes.len() % (INPUT + 1) != 0 {
        bail!("{} is not in the CIFAR-10 binary layout", path.display());
    }
    let n = (bytes.len() / (INPUT + 1)).min(max);
    let mut images = Vec::with_capacity(n * INPUT);
    let mut labels = Vec::with_capacity(n);
    for rec in bytes.chunks_exact(INPUT + 1).take(n) {
        labels.push(rec[0]);
        images.extend(rec[1..].iter().map(|&p| f32::from(p) / 127.5 - 1.0));
    }
    Ok((images, labels))
}

/// Deterministic pseudo-random numbers (splitmix64), for initialization.
fn rng(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// The MLP's parameters, row-major `[out][in]`.
pub struct Mlp {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Mlp {
    pub fn new(seed: u64) -> Self {
        let mut r = rng(seed);
        let s1 = (1.0 / INPUT as f32).sqrt();
        let s2 = (1.0 / HIDDEN as f32).sqrt();
        Mlp {
            w1: (0..HIDDEN * INPUT).map(|_| r() * s1).collect(),
            b1: vec![0.0; HIDDEN],
            w2: (0..CLASSES * HIDDEN).map(|_| r() * s2).collect(),
            b2: vec![0.0; CLASSES],
        }
    }

    /// Mean cross-entropy gradient over a batch, and the loss.
    pub fn gradient(&self, x: &[f32], y: &[u8]) -> (Gradient, f32) {
        let n = y.len();
        let mut gw1 = vec![0f32; HIDDEN * INPUT];
        let mut gb1 = vec![0f32; HIDDEN];
        let mut gw2 = vec![0f32; CLASSES * HIDDEN];
        let mut gb2 = vec![0f32; CLASSES];
        let mut loss = 0.0;
        for (xi, &yi) in x.chunks_exact(INPUT).zip(y) {
            let h: Vec<f32> = (0..HIDDEN)
                .map(|j| (self.b1[j] + dot(&self.w1[j * INPUT..(j + 1) * INPUT], xi)).max(0.0))
                .collect();
            let z: Vec<f32> = (0..CLASSES)
                .map(|k| self.b2[k] + dot(&self.w2[k * HIDDEN..(k + 1) * HIDDEN], &h))
                .collect();
            let m = z.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            loss += -(e[yi as usize] / s).ln();
            let dz: Vec<f32> = (0..CLASSES)
                .map(|k| (e[k] / s - f32::from(k == yi as usize)) / n as f32)
                .collect();
            let mut dh = vec![0f32; HIDDEN];
            for k in 0..CLASSES {
                gb2[k] += dz[k];
                for j in 0..HIDDEN {
                    gw2[k * HIDDEN + j] += dz[k] * h[j];
                    dh[j] += dz[k] * self.w2[k * HIDDEN + j];
                }
            }
            for j in 0..HIDDEN {
                if h[j] > 0.0 {
                    gb1[j] += dh[j];
                    for (g, &xv) in gw1[j * INPUT..(j + 1) * INPUT].iter_mut().zip(xi) {
                        *g += dh[j] * xv;
                    }
                }
            }
        }
        let t = |name: &str, shape: Vec<u64>, v: &[f32]| {
            Tensor::new(
                name,
                lmgc::core::DType::F32,
                shape,
                v.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
            .expect("shape matches")
        };
        let g = Gradient::new(vec![
            t("fc1.weight", vec![HIDDEN as u64, INPUT as u64], &gw1),
            t("fc1.bias", vec![HIDDEN as u64], &gb1),
            t("fc2.weight", vec![CLASSES as u64, HIDDEN as u64], &gw2),
            t("fc2.bias", vec![CLASSES as u64], &gb2),
        ])
        .expect("unique names");
        (g, loss / n as f32)
    }

    /// `params -= lr * grad`.
    pub fn step(&mut self, g: &Gradient, lr: f32) {
        for (p, t) in [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2]
            .into_iter()
            .zip(g.tensors())
        {
            for (w, d) in p.iter_mut().zip(t.to_f32().expect("f32 gradient")) {
                *w -= lr * d;
            }
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Trains for `steps` SGD steps of `batch` images and returns each step's gradient.
pub fn collect(dir: &Path, steps: usize, batch: usize) -> anyhow::Result<Vec<Gradient>> {
    let (x, y) = load_cifar(dir, steps * batch)?;
    if y.len() < steps * batch {
        bail!("need {} images, the data has {}", steps * batch, y.len());
    }
    let mut mlp = Mlp::new(42);
    let mut out = Vec::with_capacity(steps);
    for s in 0..steps {
        let (g, _loss) = mlp.gradient(
            &x[s * batch * INPUT..(s + 1) * batch * INPUT],
            &y[s * batch..(s + 1) * batch],
        );
        mlp.step(&g, 0.05);
        out.push(g);
    }
    Ok(out)
}

#[allow(dead_code)] // The tests include this file for `collect` only.
fn main() -> anyhow::Result<()> {
    let mut out = PathBuf::from("grads");
    let mut steps = 4;
    let mut data = std::env::var_os("LMGC_CIFAR10_DIR").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().context("--out needs a directory")?.into(),
            "--steps" => steps = args.next().context("--steps needs a number")?.parse()?,
            "--data" => data = Some(args.next().context("--data needs a directory")?.into()),
            other => bail!("unknown argument {other:?}; see the file header"),
        }
    }
    let data = data.context("set LMGC_CIFAR10_DIR or pass --data DIR")?;
    std::fs::create_dir_all(&out)?;
    for (i, g) in collect(&data, steps, 128)?.iter().enumerate() {
        let path = out.join(format!("mlp_step{i}.safetensors"));
        write_safetensors(&path, g)?;
        println!("{}", path.display());
    }
    Ok(())
}
