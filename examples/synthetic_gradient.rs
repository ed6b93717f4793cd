//! A synthetic gradient with known structure: Laplace-distributed `f32` values whose scale
//! steps up every 500 values (like rows of a layer), plus one `i64` step counter. The test
//! suite benchmarks the same file (`tests/cli.rs`).
//!
//! cargo run --release --example synthetic_gradient -- synthetic.safetensors

#![allow(missing_docs)] // An example, not an API.

use lmgc::core::io::safetensors_bytes;
use lmgc::core::{DType, Gradient, Tensor};

/// `n` Laplace(0, 1e-3 · (1 + i/500)) values from a fixed seed, and a step counter.
pub fn synthetic_gradient(n: usize) -> Gradient {
    let mut state = 7u64;
    let values: Vec<f32> = (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((state >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
            let sign = if state & 1 == 0 { 1.0 } else { -1.0 };
            (sign * -u.ln() * 1e-3 * (1.0 + (i / 500) as f64)) as f32
        })
        .collect();
    Gradient::new(vec![
        Tensor::from_f32("conv.weight", &values),
        Tensor::new("steps", DType::I64, vec![1], 3i64.to_le_bytes().to_vec()).expect("8 bytes"),
    ])
    .expect("unique names")
}

#[allow(dead_code)] // The tests include this file for `synthetic_gradient` only.
fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "synthetic.safetensors".into());
    let n = match std::env::args().nth(2) {
        Some(n) => n.parse()?,
        None => 250_000,
    };
    std::fs::write(&out, safetensors_bytes(&synthetic_gradient(n)))?;
    println!("{out}");
    Ok(())
}
