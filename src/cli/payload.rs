//! `lmgc payload`: make a low-precision FL payload from an update, or densify one.

use anyhow::Context;
use lmgc::core::io::{Format, SourceFile, write_safetensors};
use lmgc::core::payload::{self, PayloadSpec};
use lmgc::core::{DType, Gradient, Tensor};
use serde_json::json;

use super::{Output, PayloadArgs};

/// `new - old`, tensor by tensor (same names, shapes and dtype `f32`).
fn minus(new: &Gradient, old: &Gradient) -> anyhow::Result<Gradient> {
    let tensors = new
        .tensors()
        .iter()
        .map(|t| {
            let o = old
                .get(t.name())
                .with_context(|| format!("{} is missing from --minus", t.name()))?;
            match (t.to_f32(), o.to_f32()) {
                (Some(a), Some(b))
                    if t.dtype() == DType::F32
                        && o.dtype() == DType::F32
                        && t.shape() == o.shape() =>
                {
                    let d: Vec<u8> = a
                        .iter()
                        .zip(&b)
                        .flat_map(|(x, y)| (x - y).to_le_bytes())
                        .collect();
                    Ok(Tensor::new(t.name(), DType::F32, t.shape().to_vec(), d)?)
                }
                _ if t == o => Ok(t.clone()),
                _ => anyhow::bail!(
                    "{}: {} {:?} against {} {:?}; deltas need f32 tensors of the same shape",
                    t.name(),
                    t.dtype(),
                    t.shape(),
                    o.dtype(),
                    o.shape()
                ),
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Gradient::new(tensors)?)
}

fn read(path: &std::path::Path) -> anyhow::Result<Gradient> {
    let format = Format::from_path(path)?;
    Ok(SourceFile::read(path, format)
        .with_context(|| format!("reading {}", path.display()))?
        .gradient)
}

/// Relative L2 error of `approx` against `exact` over their common f32 tensors.
fn relative_error(exact: &Gradient, approx: &Gradient) -> Option<f64> {
    let (mut err, mut norm) = (0f64, 0f64);
    for t in exact.tensors() {
        let (Some(a), Some(b)) = (t.to_f32(), approx.get(t.name()).and_then(Tensor::to_f32)) else {
            continue;
        };
        for (x, y) in a.iter().zip(&b) {
            err += (f64::from(*x) - f64::from(*y)).powi(2);
            norm += f64::from(*x).powi(2);
        }
    }
    (norm > 0.0).then(|| (err / norm).sqrt())
}

pub fn run(a: PayloadArgs, out: Output) -> anyhow::Result<()> {
    let spec: PayloadSpec = a.to.parse()?;
    let spec = match a.seed {
        Some(seed) => spec.with_stochastic_rounding(seed),
        None => spec,
    };
    let mut update = read(&a.input)?;
    if let Some(old) = &a.minus {
        update = minus(&update, &read(old)?)?;
    }
    let (result, error) = if a.densify {
        (payload::densify(&update, a.max_output)?, None)
    } else {
        let p = payload::reduce(&update, &spec)?;
        let err = relative_error(&update, &payload::densify(&p, u64::MAX)?);
        (p, err)
    };
    write_safetensors(&a.output, &result)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let (before, after) = (update.data_len(), result.data_len());
    if out.json {
        super::print_json(&json!({
            "input": a.input, "output": a.output, "payload": if a.densify { "dense".to_string() } else { spec.to_string() },
            "input_tensor_bytes": before, "output_tensor_bytes": after,
            "relative_l2_error": error,
        }));
    } else if !out.quiet {
        eprintln!(
            "{} -> {}: {} tensor bytes -> {after} ({:.2}%){}",
            a.input.display(),
            a.output.display(),
            before,
            after as f64 * 100.0 / before.max(1) as f64,
            error.map_or(String::new(), |e| format!(", relative L2 error {e:.3e}"))
        );
    }
    Ok(())
}
