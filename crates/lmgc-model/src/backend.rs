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
    /// NVIDIA GPUs: the whole forward pass as CUDA kernels (build feature `cuda`; loads the
    /// driver, NVRTC and cuBLAS at run time).
    Cuda,
    /// NVIDIA GPUs through burn's CUDA backend: only the GEMMs on the device (build feature
    /// `cuda`); the yardstick for the native kernels.
    CudaBurn,
}

impl BackendKind {
    /// Every backend, compiled in or not.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Ndarray,
        BackendKind::Wgpu,
        BackendKind::Cuda,
        BackendKind::CudaBurn,
    ];

    /// Whether this build includes the backend.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Ndarray => true,
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda | BackendKind::CudaBurn => cfg!(feature = "cuda"),
        }
    }

    /// The build feature that brings this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda | BackendKind::CudaBurn => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::CudaBurn => "cuda-burn",
            other => other.feature(),
        })
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ndarray" | "cpu" => Ok(BackendKind::Ndarray),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            "cuda-burn" => Ok(BackendKind::CudaBurn),
            other => Err(Error::Unsupported(format!(
                "backend {other:?}; use ndarray, wgpu, cuda or cuda-burn"
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
        BackendKind::Ndarray => Ok(Box::new(LlmPrior::open::<burn::backend::NdArray<f32>>(
            path,
            name,
            burn::backend::ndarray::NdArrayDevice::Cpu,
        )?)),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(Box::new(LlmPrior::open::<burn::backend::Wgpu>(
            path,
            name,
            burn::backend::wgpu::WgpuDevice::default(),
        )?)),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            // NVRTC compiles the kernels while the model file is read and dequantized.
            let (kernels, loaded, read_s) = std::thread::scope(|s| {
                let kernels = s.spawn(crate::cuda::CompiledKernels::compile);
                let started = std::time::Instant::now();
                let loaded = crate::prior::Loaded::read(path);
                let read_s = started.elapsed().as_secs_f64();
                let kernels = kernels.join().unwrap_or_else(|_| {
                    Err(Error::Backend("compiling the CUDA kernels panicked".into()))
                });
                (kernels, loaded, read_s)
            });
            let loaded = loaded?;
            let mut engine = crate::cuda::CudaEngine::with_kernels(
                &loaded.weights,
                0,
                loaded.positions(),
                kernels?,
            )?;
            engine.note_load_phase("load_read", read_s);
            Ok(Box::new(LlmPrior::new(
                name,
                loaded.tokenizer,
                loaded.sha256,
                Box::new(engine),
            )?))
        }
        #[cfg(feature = "cuda")]
        BackendKind::CudaBurn => Ok(Box::new(LlmPrior::open::<burn::backend::Cuda>(
            path,
            name,
            burn::backend::cuda::CudaDevice::default(),
        )?)),
        #[allow(unreachable_patterns)]
        _ => unreachable!("checked by compiled()"),
    }
}
