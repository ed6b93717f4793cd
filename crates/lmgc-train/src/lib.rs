//! # lmgc-train
//!
//! The training side of lmgc, the source of the gradients every benchmark reports on:
//!
//! - [`cifar`]: CIFAR-10 in its standard binary layout, found on disk;
//! - [`download`]: fetching it from the dataset's address, checksums verified;
//! - [`batch`]: normalization and the paper's crop + flip augmentation;
//! - [`convnet`]: the LM-GC paper's ConvNet on burn, its gradients named as in PyTorch;
//! - [`collect`]: training with the paper's settings, saving raw gradients as safetensors;
//! - [`local`]: a federated client's data shard (IID or Dirichlet) and local SGD;
//! - [`rng`]: the seeded generator behind shuffles and augmentation.

pub mod batch;
pub mod cifar;
pub mod collect;
pub mod convnet;
pub mod download;
mod error;
pub mod local;
pub mod rng;

pub use error::{Error, Result};
