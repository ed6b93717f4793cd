//! From stored images to network inputs: per-channel normalization and the paper's
//! augmentation (random 32×32 crop of the image zero-padded by 4, random horizontal flip).

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::cifar::{IMAGE_BYTES, Split};
use crate::rng::Rng;

/// Per-channel mean of CIFAR-10's training pixels (in [0, 1]).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of CIFAR-10's training pixels.
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
const SIDE: usize = 32;
const PAD: usize = 4;

/// Normalized pixels of `indices`, `b × 3 × 32 × 32` row-major; augmented when `rng` is given.
pub fn pixels(split: &Split, indices: &[usize], mut rng: Option<&mut Rng>) -> Vec<f32> {
    let mut out = Vec::with_capacity(indices.len() * IMAGE_BYTES);
    for &i in indices {
        let img = split.image(i);
        let (dy, dx, flip) = match rng.as_deref_mut() {
            Some(r) => (r.below(2 * PAD + 1), r.below(2 * PAD + 1), r.below(2) == 1),
            None => (PAD, PAD, false),
        };
        for c in 0..3 {
            let plane = &img[c * SIDE * SIDE..(c + 1) * SIDE * SIDE];
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let xs = if flip { SIDE - 1 - x } else { x };
                    // Coordinates in the padded image, then back into the stored one.
                    let (sy, sx) = ((y + dy).wrapping_sub(PAD), (xs + dx).wrapping_sub(PAD));
                    let raw = if sy < SIDE && sx < SIDE {
                        f32::from(plane[sy * SIDE + sx]) / 255.0
                    } else {
                        0.0
                    };
                    out.push((raw - MEAN[c]) / STD[c]);
                }
            }
        }
    }
    out
}

/// The images and labels of `indices` as tensors on `device`.
pub fn tensors<B: Backend>(
    split: &Split,
    indices: &[usize],
    rng: Option<&mut Rng>,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let b = indices.len();
    let x = TensorData::new(pixels(split, indices, rng), [b, 3, SIDE, SIDE]);
    let y = TensorData::new(
        indices
            .iter()
            .map(|&i| i64::from(split.label(i)))
            .collect::<Vec<_>>(),
        [b],
    );
    (
        Tensor::from_data(x, device),
        Tensor::from_data(y.convert::<B::IntElem>(), device),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::RECORD_BYTES;

    #[test]
    fn centre_crop_without_flip_is_the_image() {
        let mut rec = vec![0u8; RECORD_BYTES];
        rec[1..]
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = i as u8);
        let split = Split::from_records(&rec, std::path::Path::new("x")).unwrap();
        let px = pixels(&split, &[0], None);
        for (i, &v) in px.iter().enumerate() {
            let c = i / 1024;
            let want = (f32::from(i as u8) / 255.0 - MEAN[c]) / STD[c];
            assert_eq!(v, want);
        }
        let mut rng = Rng::new(1);
        let aug = pixels(&split, &[0], Some(&mut rng));
        assert_eq!(aug.len(), px.len());
        // Every augmented value is an original pixel value of its plane or the padding.
        for (i, &v) in aug.iter().enumerate() {
            let c = i / 1024;
            let pad = -MEAN[c] / STD[c];
            assert!(v == pad || px[c * 1024..(c + 1) * 1024].contains(&v));
        }
    }
}
