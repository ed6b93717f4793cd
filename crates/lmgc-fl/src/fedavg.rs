//! FedAvg: the sample-weighted mean of client updates.
//!
//! Sums run in `f64` in the order updates are added (the aggregator adds them sorted by
//! client id), so a restarted aggregator that re-reads the same accepted updates computes the
//! same bits.

use lmgc_core::{DType, Gradient, Tensor};

use crate::wire::UpdateKind;
use crate::{Error, Result};

/// Largest FedAvg weight a client may claim: far above any real dataset, low enough that
/// sums of weights cannot overflow.
pub const MAX_SAMPLES: u64 = 1 << 40;

/// Checks that `update` has the global model's tensors (names, order, shapes) in `f32`
/// with finite values.
pub fn check_update(global: &Gradient, update: &Gradient) -> Result<()> {
    let (g, u) = (global.tensors(), update.tensors());
    if g.len() != u.len() {
        return Err(Error::Mismatch(format!(
            "{} tensors, the model has {}",
            u.len(),
            g.len()
        )));
    }
    for (gt, ut) in g.iter().zip(u) {
        if gt.name() != ut.name() || gt.shape() != ut.shape() || ut.dtype() != DType::F32 {
            return Err(Error::Mismatch(format!(
                "tensor {:?} {:?} {}, the model has {:?} {:?} {}",
                ut.name(),
                ut.shape(),
                ut.dtype(),
                gt.name(),
                gt.shape(),
                gt.dtype()
            )));
        }
        if let Some(bad) = ut
            .data()
            .chunks_exact(4)
            .position(|c| !f32::from_le_bytes(c.try_into().expect("4 bytes")).is_finite())
        {
            return Err(Error::Mismatch(format!(
                "{}[{bad}] is not finite",
                ut.name()
            )));
        }
    }
    Ok(())
}

/// Checks that a global model can be averaged: `f32` tensors only.
pub fn check_model(global: &Gradient) -> Result<()> {
    match global.tensors().iter().find(|t| t.dtype() != DType::F32) {
        Some(t) => Err(Error::Config(format!(
            "model tensor {:?} is {}; FedAvg averages f32 tensors only",
            t.name(),
            t.dtype()
        ))),
        None => Ok(()),
    }
}

/// A running weighted sum.
#[derive(Debug)]
pub struct FedAvg {
    sums: Vec<Vec<f64>>,
    weight: u64,
    count: usize,
}

impl FedAvg {
    /// An empty sum shaped like `global`.
    pub fn new(global: &Gradient) -> Result<Self> {
        check_model(global)?;
        Ok(FedAvg {
            sums: global
                .tensors()
                .iter()
                .map(|t| vec![0.0; t.numel() as usize])
                .collect(),
            weight: 0,
            count: 0,
        })
    }

    /// Adds `samples · update`; `update` must have passed [`check_update`].
    pub fn add(&mut self, update: &Gradient, samples: u64) -> Result<()> {
        if samples == 0 || samples > MAX_SAMPLES {
            return Err(Error::Mismatch(format!(
                "weight {samples}: must be 1..={MAX_SAMPLES} samples"
            )));
        }
        if update.tensors().len() != self.sums.len() {
            return Err(Error::Internal(
                "update not checked against the model".into(),
            ));
        }
        let w = samples as f64;
        for (sum, t) in self.sums.iter_mut().zip(update.tensors()) {
            if sum.len() * 4 != t.data().len() {
                return Err(Error::Internal(
                    "update not checked against the model".into(),
                ));
            }
            for (s, c) in sum.iter_mut().zip(t.data().chunks_exact(4)) {
                *s += w * f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes")));
            }
        }
        self.weight += samples;
        self.count += 1;
        Ok(())
    }

    /// Updates added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The new global model.
    pub fn finish(self, global: &Gradient, kind: UpdateKind) -> Result<Gradient> {
        if self.count == 0 {
            return Err(Error::Internal("FedAvg of no updates".into()));
        }
        let total = self.weight as f64;
        let tensors = global
            .tensors()
            .iter()
            .zip(self.sums)
            .map(|(g, sum)| {
                let data: Vec<u8> = g
                    .data()
                    .chunks_exact(4)
                    .zip(sum)
                    .flat_map(|(c, s)| {
                        let mean = s / total;
                        let v = match kind {
                            UpdateKind::Weights => mean,
                            UpdateKind::Delta => {
                                f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))) + mean
                            }
                        };
                        (v as f32).to_le_bytes()
                    })
                    .collect();
                Tensor::new(g.name(), DType::F32, g.shape().to_vec(), data)
            })
            .collect::<lmgc_core::Result<Vec<_>>>()?;
        Ok(Gradient::new(tensors)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model(vals: &[f32]) -> Gradient {
        Gradient::new(vec![Tensor::from_f32("w", vals)]).unwrap()
    }

    fn values(g: &Gradient) -> Vec<f32> {
        g.tensors()[0].to_f32().unwrap()
    }

    #[test]
    fn weighted_mean_of_weights_and_deltas() {
        let global = model(&[1.0, 2.0]);
        let mut avg = FedAvg::new(&global).unwrap();
        avg.add(&model(&[3.0, 0.0]), 1).unwrap();
        avg.add(&model(&[0.0, 4.0]), 3).unwrap();
        assert_eq!(
            values(&avg.finish(&global, UpdateKind::Weights).unwrap()),
            [0.75, 3.0]
        );
        let mut avg = FedAvg::new(&global).unwrap();
        avg.add(&model(&[3.0, 0.0]), 1).unwrap();
        avg.add(&model(&[0.0, 4.0]), 3).unwrap();
        assert_eq!(
            values(&avg.finish(&global, UpdateKind::Delta).unwrap()),
            [1.75, 5.0]
        );
    }

    #[test]
    fn mismatched_and_non_finite_updates_are_refused() {
        let global = model(&[1.0, 2.0]);
        assert!(check_update(&global, &model(&[1.0])).is_err());
        assert!(check_update(&global, &model(&[1.0, f32::NAN])).is_err());
        let renamed = Gradient::new(vec![Tensor::from_f32("v", &[0.0, 0.0])]).unwrap();
        assert!(matches!(
            check_update(&global, &renamed),
            Err(Error::Mismatch(_))
        ));
        assert!(FedAvg::new(&global).unwrap().add(&global, 0).is_err());
        let ints = Gradient::new(vec![
            Tensor::new("n", DType::I32, vec![1], vec![0; 4]).unwrap(),
        ])
        .unwrap();
        assert!(matches!(FedAvg::new(&ints), Err(Error::Config(_))));
    }

    proptest! {
        #[test]
        fn equals_the_direct_weighted_mean(
            ups in proptest::collection::vec((proptest::collection::vec(-1e3f32..1e3, 4), 1u64..1000), 1..8)
        ) {
            let global = model(&[0.0; 4]);
            let mut avg = FedAvg::new(&global).unwrap();
            for (v, n) in &ups {
                avg.add(&model(v), *n).unwrap();
            }
            let got = values(&avg.finish(&global, UpdateKind::Weights).unwrap());
            let total: u64 = ups.iter().map(|u| u.1).sum();
            for (i, g) in got.iter().enumerate() {
                let direct: f64 = ups.iter().map(|(v, n)| f64::from(v[i]) * *n as f64).sum::<f64>() / total as f64;
                prop_assert_eq!(*g, direct as f32);
            }
        }
    }
}
