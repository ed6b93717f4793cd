//! A federated client's side of training: its share of the data (IID or Dirichlet non-IID)
//! and local SGD from the global model.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use lmgc_core::{DType, Gradient, Tensor};

use crate::cifar::{CLASSES, Split};
use crate::convnet::ConvNet;
use crate::rng::Rng;
use crate::{Error, Result, batch};

/// Local SGD settings.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Epochs over the client's shard (a partial last batch is dropped).
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Learning rate (constant within a round).
    pub lr: f64,
    /// SGD momentum (fresh each round).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Random crop and flip.
    pub augment: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            epochs: 1,
            batch: 32,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 5e-4,
            augment: true,
        }
    }
}

/// The paper's optimizer: SGD with momentum (no dampening) and weight decay.
pub fn sgd<B: AutodiffBackend>(momentum: f64, weight_decay: f64) -> impl Optimizer<ConvNet<B>, B> {
    SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)))
        .init::<B, ConvNet<B>>()
}

/// Splits `n` images into `clients` shards of (almost) equal size at random.
pub fn iid_shards(n: usize, clients: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if clients == 0 || clients > n {
        return Err(Error::InvalidArgument {
            what: "clients",
            reason: format!("{clients} clients for {n} images"),
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    Ok((0..clients)
        .map(|c| {
            let mut s: Vec<usize> = order[c * n / clients..(c + 1) * n / clients].to_vec();
            s.sort_unstable();
            s
        })
        .collect())
}

/// Splits images by label with Dirichlet(`alpha`) class proportions per client (the usual
/// non-IID benchmark split: small `alpha`, few classes per client). Every client gets at
/// least one image.
pub fn dirichlet_shards(
    labels: &[u8],
    clients: usize,
    alpha: f64,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    if clients == 0 || clients > labels.len() || !(alpha > 0.0 && alpha.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "dirichlet split",
            reason: format!("{clients} clients, alpha {alpha}, {} images", labels.len()),
        });
    }
    let mut rng = Rng::new(seed);
    let mut shards = vec![Vec::new(); clients];
    for class in 0..CLASSES as u8 {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        let weights: Vec<f64> = (0..clients).map(|_| rng.gamma(alpha)).collect();
        let total: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut start = 0usize;
        let mut acc = 0.0;
        for (c, w) in weights.iter().enumerate() {
            acc += w / total;
            let end = if c + 1 == clients {
                idx.len()
            } else {
                ((acc * idx.len() as f64).round() as usize).min(idx.len())
            };
            shards[c].extend_from_slice(&idx[start..end.max(start)]);
            start = end.max(start);
        }
    }
    // A client left empty takes one image from the largest shard.
    for c in 0..clients {
        if shards[c].is_empty() {
            let big = (0..clients)
                .max_by_key(|&i| shards[i].len())
                .expect("clients > 0");
            let img = shards[big].pop().expect("the largest shard is not empty");
            shards[c].push(img);
        }
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    Ok(shards)
}

/// Trains `model` on the images `shard` of `split` and returns it with the mean loss.
pub fn train_local<B: AutodiffBackend>(
    mut model: ConvNet<B>,
    split: &Split,
    shard: &[usize],
    cfg: &LocalConfig,
    seed: u64,
    device: &B::Device,
) -> Result<(ConvNet<B>, f64)> {
    let batch_size = cfg.batch.min(shard.len()).max(1);
    let mut optim = sgd::<B>(cfg.momentum, cfg.weight_decay);
    let mut rng = Rng::new(seed);
    let mut order = shard.to_vec();
    let (mut loss_sum, mut steps) = (0.0, 0usize);
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for idx in order.chunks_exact(batch_size) {
            let (x, y) = batch::tensors::<B>(split, idx, cfg.augment.then_some(&mut rng), device);
            let (loss, _, grads) = model.loss_and_gradient(x, y, steps)?;
            let grads = GradientsParams::from_grads(grads, &model);
            model = optim.step(cfg.lr, model, grads);
            loss_sum += loss;
            steps += 1;
        }
    }
    Ok((model, loss_sum / steps.max(1) as f64))
}

/// `after - before`, tensor by tensor (both named and shaped alike).
pub fn delta(after: &Gradient, before: &Gradient) -> Result<Gradient> {
    let tensors = after
        .tensors()
        .iter()
        .zip(before.tensors())
        .map(|(a, b)| {
            let (av, bv) = (a.to_f32(), b.to_f32());
            match (av, bv) {
                (Some(av), Some(bv)) if a.name() == b.name() && a.shape() == b.shape() => {
                    let data = av
                        .iter()
                        .zip(&bv)
                        .flat_map(|(x, y)| (x - y).to_le_bytes())
                        .collect();
                    Ok(Tensor::new(a.name(), DType::F32, a.shape().to_vec(), data)?)
                }
                _ => Err(Error::InvalidArgument {
                    what: "delta",
                    reason: format!("{} and {} do not match", a.name(), b.name()),
                }),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Gradient::new(tensors)?)
}

/// The network's parameters as a [`Gradient`] (named as [`ConvNet::parameters`]).
pub fn parameters<B: burn::tensor::backend::Backend>(model: &ConvNet<B>) -> Result<Gradient> {
    let tensors = model
        .parameters()
        .into_iter()
        .map(|(name, shape, v)| {
            let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            Tensor::new(
                name,
                DType::F32,
                shape.iter().map(|&d| d as u64).collect(),
                data,
            )
        })
        .collect::<lmgc_core::Result<Vec<_>>>()?;
    Ok(Gradient::new(tensors)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = Autodiff<NdArray>;

    #[test]
    fn shards_partition_the_images() {
        let s = iid_shards(103, 4, 1).unwrap();
        let mut all: Vec<usize> = s.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert!(s.iter().all(|x| x.len() == 25 || x.len() == 26));
        assert!(iid_shards(3, 4, 1).is_err());
        let labels: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
        let d = dirichlet_shards(&labels, 5, 0.1, 3).unwrap();
        let mut all: Vec<usize> = d.concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(d.iter().all(|x| !x.is_empty()));
        // Small alpha: most clients see few classes.
        let classes = |s: &Vec<usize>| {
            let mut c: Vec<u8> = s.iter().map(|&i| labels[i]).collect();
            c.sort_unstable();
            c.dedup();
            c.len()
        };
        assert!(d.iter().map(classes).sum::<usize>() < 5 * 10);
        assert!(dirichlet_shards(&labels, 5, 0.0, 3).is_err());
    }

    #[test]
    fn parameters_load_back_exactly() {
        let device = Default::default();
        let a = ConvNet::<B>::new(&device);
        let p = parameters(&a).unwrap();
        let b = ConvNet::<B>::new(&device)
            .load_parameters(&p, &device)
            .unwrap();
        assert_eq!(parameters(&b).unwrap(), p);
        let zero = delta(&p, &p).unwrap();
        assert!(
            zero.tensors()
                .iter()
                .all(|t| t.to_f32().unwrap().iter().all(|&v| v == 0.0))
        );
        let short = Gradient::new(p.tensors()[..3].to_vec()).unwrap();
        assert!(
            ConvNet::<B>::new(&device)
                .load_parameters(&short, &device)
                .is_err()
        );
    }
}
