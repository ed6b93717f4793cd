//! The LM-GC paper's ConvNet (from the dataset-condensation line of work): three blocks of
//! 3×3 convolution (width 128) → instance norm (affine) → ReLU → 2×2 average pooling, then a
//! linear classifier over the 128×4×4 features.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::ElementConversion;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use lmgc_core::{DType, Gradient};

use crate::cifar::{CLASSES, Split};
use crate::{Error, Result, batch};

/// Width of every convolution.
pub const WIDTH: usize = 128;
/// Convolution blocks.
pub const DEPTH: usize = 3;

/// One convolution block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    conv: Conv2d<B>,
    norm: InstanceNorm<B>,
    pool: AvgPool2d,
    relu: Relu,
}

/// The ConvNet.
#[derive(Module, Debug)]
pub struct ConvNet<B: Backend> {
    blocks: Vec<Block<B>>,
    classifier: Linear<B>,
}

impl<B: Backend> ConvNet<B> {
    /// A freshly initialized network (burn's default initializers; seed the backend for
    /// repeatable runs).
    pub fn new(device: &B::Device) -> Self {
        let blocks = (0..DEPTH)
            .map(|i| Block {
                conv: Conv2dConfig::new([if i == 0 { 3 } else { WIDTH }, WIDTH], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
                norm: InstanceNormConfig::new(WIDTH)
                    .with_affine(true)
                    .init(device),
                pool: AvgPool2dConfig::new([2, 2]).init(),
                relu: Relu::new(),
            })
            .collect();
        let side = 32 >> DEPTH;
        ConvNet {
            blocks,
            classifier: LinearConfig::new(WIDTH * side * side, CLASSES).init(device),
        }
    }

    /// Logits for a `b × 3 × 32 × 32` batch.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.blocks.iter().fold(x, |x, b| {
            let y = conv3x3(
                x,
                b.conv.weight.val(),
                b.conv.bias.as_ref().map(|p| p.val()),
            );
            b.pool.forward(b.relu.forward(b.norm.forward(y)))
        });
        self.classifier.forward(x.flatten(1, 3))
    }

    /// Test accuracy over `split`, in batches of `batch`.
    pub fn accuracy(&self, split: &Split, batch: usize, device: &B::Device) -> f64 {
        let mut correct = 0usize;
        let all: Vec<usize> = (0..split.len()).collect();
        for idx in all.chunks(batch.max(1)) {
            let (x, y) = batch::tensors::<B>(split, idx, None, device);
            let pred = self.forward(x).argmax(1).flatten::<1>(0, 1);
            correct += pred.equal(y).int().sum().into_scalar().elem::<i64>() as usize;
        }
        correct as f64 / split.len().max(1) as f64
    }

    /// Every parameter as `(name, shape, values)`, in PyTorch's layout and naming of the
    /// paper's model (`features.{4i}` convolutions, `features.{4i+1}` norms, `classifier`;
    /// linear weights `[out, in]`).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        self.for_each_param(|name, p| out.push((name, p.0, p.1)), |t| Some(host(t)));
        out
    }

    /// Sets every parameter from `params`, named and laid out as [`ConvNet::parameters`]
    /// returns them (a global model received from an aggregator).
    pub fn load_parameters(mut self, params: &Gradient, device: &B::Device) -> Result<Self> {
        let ours = self.parameters();
        if params.tensors().len() != ours.len() {
            return Err(Error::InvalidArgument {
                what: "parameters",
                reason: format!(
                    "{} tensors given, the ConvNet has {}",
                    params.tensors().len(),
                    ours.len()
                ),
            });
        }
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = params.get(name).ok_or_else(|| Error::InvalidArgument {
                what: "parameters",
                reason: format!("no tensor {name:?}"),
            })?;
            let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            match t.to_f32() {
                Some(v) if t.shape() == want.as_slice() && t.dtype() == DType::F32 => Ok(v),
                _ => Err(Error::InvalidArgument {
                    what: "parameters",
                    reason: format!(
                        "{name}: {:?} {}, the ConvNet needs {shape:?} f32",
                        t.shape(),
                        t.dtype()
                    ),
                }),
            }
        };
        fn param<B: Backend, const D: usize>(
            v: Vec<f32>,
            shape: [usize; D],
            device: &B::Device,
        ) -> Param<Tensor<B, D>> {
            Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), device))
        }
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let (c, n) = (4 * i, 4 * i + 1);
            let dims = b.conv.weight.dims();
            b.conv.weight = param(get(&format!("features.{c}.weight"), &dims)?, dims, device);
            if let Some(bias) = &b.conv.bias {
                let dims = bias.dims();
                b.conv.bias = Some(param(
                    get(&format!("features.{c}.bias"), &dims)?,
                    dims,
                    device,
                ));
            }
            if let Some(g) = &b.norm.gamma {
                let dims = g.dims();
                b.norm.gamma = Some(param(
                    get(&format!("features.{n}.weight"), &dims)?,
                    dims,
                    device,
                ));
            }
            if let Some(beta) = &b.norm.beta {
                let dims = beta.dims();
                b.norm.beta = Some(param(
                    get(&format!("features.{n}.bias"), &dims)?,
                    dims,
                    device,
                ));
            }
        }
        // burn stores the linear weight [in, out]; the file has PyTorch's [out, in].
        let [inp, out] = self.classifier.weight.dims();
        let w = get("classifier.weight", &[out, inp])?;
        let t: Tensor<B, 2> = Tensor::from_data(TensorData::new(w, [out, inp]), device);
        self.classifier.weight = Param::from_tensor(t.transpose());
        if let Some(bias) = &self.classifier.bias {
            let dims = bias.dims();
            self.classifier.bias = Some(param(get("classifier.bias", &dims)?, dims, device));
        }
        Ok(self)
    }

    /// Visits each parameter with its name, mapping it through `f` first (`None` skips it).
    fn for_each_param(
        &self,
        mut visit: impl FnMut(String, (Vec<usize>, Vec<f32>)),
        mut f: impl FnMut(&AnyParam<'_, B>) -> Option<(Vec<usize>, Vec<f32>)>,
    ) {
        for (i, b) in self.blocks.iter().enumerate() {
            let (c, n) = (4 * i, 4 * i + 1);
            let mut one = |name: String, p: AnyParam<'_, B>| {
                if let Some(v) = f(&p) {
                    visit(name, v);
                }
            };
            one(format!("features.{c}.weight"), AnyParam::D4(&b.conv.weight));
            if let Some(bias) = &b.conv.bias {
                one(format!("features.{c}.bias"), AnyParam::D1(bias));
            }
            if let Some(g) = &b.norm.gamma {
                one(format!("features.{n}.weight"), AnyParam::D1(g));
            }
            if let Some(beta) = &b.norm.beta {
                one(format!("features.{n}.bias"), AnyParam::D1(beta));
            }
        }
        if let Some(v) = f(&AnyParam::Linear(&self.classifier.weight)) {
            visit("classifier.weight".into(), v);
        }
        if let Some(bias) = &self.classifier.bias
            && let Some(v) = f(&AnyParam::D1(bias))
        {
            visit("classifier.bias".into(), v);
        }
    }
}

/// 3×3 convolution, stride 1, padding 1, as nine shifted views of the input and one matrix
/// product (`[o, 9c] × [9c, b·h·w]`). Same result as burn's `Conv2d::forward` up to the
/// order of float additions, but its backward pass is matrix products and slice gradients:
/// burn-ndarray computes a convolution's input gradient with a scalar loop
/// (`conv_transpose2d`) that took 85% of CPU training time (docs/perf.md).
///
/// # Shapes
/// `x`: `[b, c, h, w]`, `weight`: `[o, c, 3, 3]`, `bias`: `[o]` → `[b, o, h, w]`.
fn conv3x3<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let o = weight.dims()[0];
    let padded = x.pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
    let shifts: Vec<Tensor<B, 4>> = (0..9)
        .map(|k| {
            let (dy, dx) = (k / 3, k % 3);
            padded.clone().slice([0..n, 0..c, dy..dy + h, dx..dx + w])
        })
        .collect();
    // [b, c, 9, h, w] → [c·9, b·h·w], rows in the weight's (c, ky, kx) order.
    let patches: Tensor<B, 5> = Tensor::stack(shifts, 2);
    let patches = patches.permute([1, 2, 0, 3, 4]).reshape([c * 9, n * h * w]);
    let out = weight.reshape([o, c * 9]).matmul(patches);
    let out = match bias {
        Some(b) => out + b.reshape([o, 1]),
        None => out,
    };
    out.reshape([o, n, h, w]).swap_dims(0, 1)
}

/// A parameter of one of the ranks the ConvNet has; `Linear` is a 2-D weight stored
/// `[in, out]` by burn and reported `[out, in]`.
enum AnyParam<'a, B: Backend> {
    D1(&'a Param<Tensor<B, 1>>),
    D4(&'a Param<Tensor<B, 4>>),
    Linear(&'a Param<Tensor<B, 2>>),
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let data: TensorData = t.into_data();
    let v = data
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("converted to f32 just above");
    (shape, v)
}

fn host<B: Backend>(p: &AnyParam<'_, B>) -> (Vec<usize>, Vec<f32>) {
    match p {
        AnyParam::D1(p) => values(p.val()),
        AnyParam::D4(p) => values(p.val()),
        AnyParam::Linear(p) => values(p.val().transpose()),
    }
}

impl<B: AutodiffBackend> ConvNet<B> {
    /// Cross-entropy loss on one batch and the gradient of every parameter (before any
    /// optimizer step: no weight decay, no momentum), as a [`Gradient`] named like
    /// [`ConvNet::parameters`]. Also returns burn's gradients for the optimizer.
    pub fn loss_and_gradient(
        &self,
        x: Tensor<B, 4>,
        y: Tensor<B, 1, burn::tensor::Int>,
        step: usize,
    ) -> Result<(f64, Gradient, B::Gradients)> {
        let logits = self.forward(x);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, y);
        let value = loss.clone().into_scalar().elem::<f64>();
        if !value.is_finite() {
            return Err(Error::Diverged {
                step,
                what: format!("loss {value}"),
            });
        }
        let grads = loss.backward();
        let mut tensors = Vec::new();
        let mut missing = None;
        self.for_each_param(
            |name, (shape, v)| tensors.push((name, shape, v)),
            |p| {
                let g = match p {
                    AnyParam::D1(p) => p.grad(&grads).map(values),
                    AnyParam::D4(p) => p.grad(&grads).map(values),
                    AnyParam::Linear(p) => p.grad(&grads).map(|g| values(g.transpose())),
                };
                if g.is_none() {
                    missing = Some(p.kind());
                }
                g
            },
        );
        if let Some(kind) = missing {
            return Err(Error::Diverged {
                step,
                what: format!("a {kind} parameter got no gradient"),
            });
        }
        let mut out = Vec::with_capacity(tensors.len());
        for (name, shape, v) in tensors {
            if let Some(bad) = v.iter().find(|g| !g.is_finite()) {
                return Err(Error::Diverged {
                    step,
                    what: format!("{name} has gradient {bad}"),
                });
            }
            let data = v.iter().flat_map(|g| g.to_le_bytes()).collect();
            let shape = shape.iter().map(|&s| s as u64).collect();
            out.push(lmgc_core::Tensor::new(name, DType::F32, shape, data)?);
        }
        Ok((value, Gradient::new(out)?, grads))
    }
}

impl<B: Backend> AnyParam<'_, B> {
    fn kind(&self) -> &'static str {
        match self {
            AnyParam::D1(_) => "1-D",
            AnyParam::D4(_) => "convolution",
            AnyParam::Linear(_) => "linear",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Int, activation::softmax};

    #[test]
    fn the_matrix_convolution_equals_burns() {
        let device = Default::default();
        let conv = Conv2dConfig::new([5, 7], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 4>::random(
            [2, 5, 6, 4],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let want = conv.forward(x.clone());
        let got = conv3x3(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
        assert_eq!(got.dims(), want.dims());
        let diff = (got - want).abs().max().into_scalar();
        assert!(diff < 1e-4, "{diff}");
    }

    type B = Autodiff<NdArray>;

    #[test]
    fn gradients_are_named_shaped_and_right_for_the_classifier_bias() {
        let device = Default::default();
        let model = ConvNet::<B>::new(&device);
        let x = Tensor::<B, 4>::random(
            [3, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let labels = [2i64, 7, 2];
        let y = Tensor::<B, 1, Int>::from_data(
            TensorData::new(labels.to_vec(), [3])
                .convert::<<B as burn::tensor::backend::BackendTypes>::IntElem>(),
            &device,
        );
        let probs: Vec<f32> = softmax(model.forward(x.clone()), 1)
            .into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap();
        let (loss, g, _) = model.loss_and_gradient(x, y, 0).unwrap();
        assert!(loss.is_finite() && loss > 0.0);
        let shapes: Vec<(&str, Vec<u64>)> = g
            .tensors()
            .iter()
            .map(|t| (t.name(), t.shape().to_vec()))
            .collect();
        assert_eq!(shapes.len(), 4 * DEPTH + 2);
        assert_eq!(shapes[0], ("features.0.weight", vec![128, 3, 3, 3]));
        assert_eq!(shapes[4], ("features.4.weight", vec![128, 128, 3, 3]));
        assert_eq!(shapes[3], ("features.1.bias", vec![128]));
        assert_eq!(shapes[12], ("classifier.weight", vec![10, 2048]));
        // Mean cross-entropy: ∂L/∂b_o = mean over the batch of (p_o − [o = label]).
        let bias = g.tensors().last().unwrap();
        assert_eq!(bias.name(), "classifier.bias");
        for o in 0..CLASSES {
            let want: f32 = (0..3)
                .map(|n| probs[n * CLASSES + o] - f32::from(labels[n] == o as i64))
                .sum::<f32>()
                / 3.0;
            let got = f32::from_le_bytes(bias.data()[4 * o..4 * o + 4].try_into().unwrap());
            assert!((got - want).abs() < 1e-5, "class {o}: {got} vs {want}");
        }
    }
}
