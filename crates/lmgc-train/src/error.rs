//! The one error type of `lmgc-train`.

use std::path::PathBuf;

/// Everything that can go wrong loading data or training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No CIFAR-10 copy was found where one was looked for.
    #[error(
        "no CIFAR-10 found (looked in {looked}); pass --data-dir, set LMGC_CIFAR10_DIR, or put \
         the binary batches (data_batch_1.bin …, test_batch.bin) in the cache directory"
    )]
    NoDataset {
        /// Where it looked, in order.
        looked: String,
    },
    /// Downloading the dataset failed.
    #[error(
        "downloading CIFAR-10 from {url} failed: {reason}; without network access, copy the \
         binary batches (cifar-10-binary.tar.gz unpacked) into the cache directory's cifar10/ \
         folder or point LMGC_CIFAR10_DIR at them"
    )]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A dataset file is not in the CIFAR-10 binary layout.
    #[error("{path}: {reason}")]
    BadDataset {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range.
    #[error("{what}: {reason}")]
    InvalidArgument {
        /// The option.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Training diverged (a non-finite loss or gradient).
    #[error("training diverged at step {step}: {what}")]
    Diverged {
        /// The step.
        step: usize,
        /// What was not finite.
        what: String,
    },
    /// Writing a gradient file failed.
    #[error(transparent)]
    Core(#[from] lmgc_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
