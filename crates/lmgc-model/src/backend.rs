//! Choosing the burn backend at run time.
//!
//! The numerics contract makes the choice invisible in the output: every backend yields the
//! same frequency tables. It changes only speed and where the memory lives.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use lmgc_core::Prior;

use crate::prior::LlmPrior;
use crate::{Error, Result};

/// A burn backend lmgc can run the model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// CPU, always available.
    #[default]
    Ndarray,
    /// Vulkan/Metal/DX12 through wgpu (build feature `wgpu`).
    Wgpu,
    /// NVIDIA GPUs (build feature `cuda`; loads the driver at run time).
    Cuda,
}

impl BackendKind {
    /// Every backend, compiled in or not.
    pub const ALL: [BackendKind; 3] = [BackendKind::Ndarray, BackendKind::Wgpu, BackendKind::Cuda];

    /// Whether this build includes the backend.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Ndarray => true,
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    fn feature(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.feature())
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ndarray" | "cpu" => Ok(BackendKind::Ndarray),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            other => Err(Error::Unsupported(format!(
                "backend {other:?}; use ndarray, wgpu or cuda"
            ))),
        }
    }
}

/// Loads a model (a GGUF file, or a Hugging Face directory) as a prior on the chosen backend.
pub fn open(kind: BackendKind, path: &Path, name: &str) -> Result<Box<dyn Prior>> {
    if !kind.compiled() {
        return Err(Error::Unsupported(format!(
            "this build has no {kind} backend; rebuild with `--features {}`",
            kind.feature()
        )));
    }
    match kind {
        BackendKind::Ndarray => Ok(Box::new(LlmPrior::<burn::backend::NdArray<f32>>::open(
            path,
            name,
            burn::backend::ndarray::NdArrayDevice::Cpu,
        )?)),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(Box::new(LlmPrior::<burn::backend::Wgpu>::open(
            path,
            name,
            burn::backend::wgpu::WgpuDevice::default(),
        )?)),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Box::new(LlmPrior::<burn::backend::Cuda>::open(
            path,
            name,
            burn::backend::cuda::CudaDevice::default(),
        )?)),
        #[allow(unreachable_patterns)]
        _ => unreachable!("checked by compiled()"),
    }
}
