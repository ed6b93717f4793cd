//! CIFAR-10 in its standard binary layout: `data_batch_1.bin` … `data_batch_5.bin` and
//! `test_batch.bin`, each record one label byte then 3,072 pixel bytes (the R, G and B planes
//! of a 32×32 image).
//!
//! [`locate`] looks in the directory given, then `$LMGC_CIFAR10_DIR`, then the cache
//! directory (`<cache>/cifar10`); in each it accepts the files themselves or the
//! `cifar-10-batches-bin/` folder the official archive unpacks to. Any subset of the training
//! batches works (fewer images).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Pixels per image: 3 planes of 32×32.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes per record: the label, then the pixels.
pub const RECORD_BYTES: usize = IMAGE_BYTES + 1;
/// Classes.
pub const CLASSES: usize = 10;
/// The training batch files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The most records one file may hold (the official files hold 10,000); checked before
/// anything is read, so a wrong file cannot make us allocate gigabytes.
const MAX_RECORDS_PER_FILE: u64 = 60_000;

/// Labelled images, pixels as stored (`u8`, planar RGB).
#[derive(Debug, Clone, Default)]
pub struct Split {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Split {
    /// Builds a split from raw records, checking the layout and every label.
    pub fn from_records(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadDataset {
            path: origin.to_path_buf(),
            reason,
        };
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
            return Err(bad(format!(
                "{} bytes is not a whole number of {RECORD_BYTES}-byte records; is this the \
                 binary version of CIFAR-10 (not the Python or MATLAB one)?",
                bytes.len()
            )));
        }
        let n = bytes.len() / RECORD_BYTES;
        let mut split = Split {
            images: Vec::with_capacity(n * IMAGE_BYTES),
            labels: Vec::with_capacity(n),
        };
        for (i, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            if usize::from(rec[0]) >= CLASSES {
                return Err(bad(format!("record {i} has label {} (not 0-9)", rec[0])));
            }
            split.labels.push(rec[0]);
            split.images.extend_from_slice(&rec[1..]);
        }
        Ok(split)
    }

    /// Appends the records of `other`.
    pub fn extend(&mut self, other: Split) {
        self.images.extend(other.images);
        self.labels.extend(other.labels);
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.images.truncate(n * IMAGE_BYTES);
        self.labels.truncate(n);
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i` (planar RGB).
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

/// The training and test splits found in one directory.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    /// Where the files were read from.
    pub dir: PathBuf,
    /// The training batch files that were present.
    pub train_files: Vec<&'static str>,
    /// Training images.
    pub train: Split,
    /// Test images.
    pub test: Split,
}

impl Cifar10 {
    /// Loads every training batch present in `dir` (at least one) and the test batch.
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = batches_dir(dir).ok_or_else(|| Error::NoDataset {
            looked: dir.display().to_string(),
        })?;
        let mut train = Split::default();
        let mut train_files = Vec::new();
        for name in TRAIN_FILES {
            let path = dir.join(name);
            if path.is_file() {
                train.extend(read_file(&path)?);
                train_files.push(name);
            }
        }
        let test = read_file(&dir.join(TEST_FILE))?;
        Ok(Cifar10 {
            dir,
            train_files,
            train,
            test,
        })
    }
}

fn read_file(path: &Path) -> Result<Split> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_RECORDS_PER_FILE * RECORD_BYTES as u64 {
        return Err(Error::BadDataset {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is more than any CIFAR-10 batch file holds"),
        });
    }
    // Read at most the checked size: the file may grow between the check and the read.
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, len),
        &mut bytes,
    )
    .map_err(io)?;
    Split::from_records(&bytes, path)
}

/// `dir` itself or its `cifar-10-batches-bin/` when it holds a training batch and the test
/// batch.
fn batches_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join(TEST_FILE).is_file() && TRAIN_FILES.iter().any(|f| d.join(f).is_file()))
}

/// Finds a CIFAR-10 directory: `explicit`, then `$LMGC_CIFAR10_DIR`, then `<cache>/cifar10`.
/// An explicit directory without the files is an error even if another place has them, so
/// a typo never silently trains on something else.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut looked = Vec::new();
    let candidates: Vec<PathBuf> = match explicit {
        Some(d) => vec![d.to_path_buf()],
        None => std::env::var_os("LMGC_CIFAR10_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain(lmgc_core::fsutil::cache_dir().map(|c| c.join("cifar10")))
            .collect(),
    };
    for dir in candidates {
        if let Some(found) = batches_dir(&dir) {
            return Ok(found);
        }
        looked.push(dir.display().to_string());
    }
    Err(Error::NoDataset {
        looked: if looked.is_empty() {
            "nowhere: no LMGC_CIFAR10_DIR and no cache directory".into()
        } else {
            looked.join(", ")
        },
    })
}

/// [`locate`]; when nothing is found and no directory was given, downloads CIFAR-10 from its
/// canonical address into `<cache>/cifar10` (162 MB, checksums verified), telling `say`
/// first and reporting bytes to `progress`.
pub fn locate_or_download(
    explicit: Option<&Path>,
    say: &dyn Fn(&str),
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<PathBuf> {
    match locate(explicit) {
        Err(Error::NoDataset { looked }) if explicit.is_none() => {
            let Some(cache) = lmgc_core::fsutil::cache_dir() else {
                return Err(Error::NoDataset { looked });
            };
            let dest = cache.join("cifar10");
            say(&format!(
                "CIFAR-10 not found (looked in {looked}); downloading {} ({} MB) into {}",
                crate::download::URL,
                crate::download::SIZE / 1_000_000,
                dest.display()
            ));
            crate::download::download(&dest, &crate::download::Source::default(), progress)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(labels: &[u8]) -> Vec<u8> {
        labels
            .iter()
            .flat_map(|&l| std::iter::once(l).chain((0..IMAGE_BYTES).map(move |i| (i as u8) ^ l)))
            .collect()
    }

    #[test]
    fn reads_records_and_refuses_bad_layouts() {
        let s = Split::from_records(&records(&[3, 9]), Path::new("x")).unwrap();
        assert_eq!((s.len(), s.label(1)), (2, 9));
        assert_eq!(s.image(1)[5], 5 ^ 9);
        let e = Split::from_records(&records(&[3])[..100], Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = Split::from_records(&records(&[10]), Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("label 10"), "{e}");
    }

    #[test]
    fn locates_the_archive_folder_and_names_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let inner = tmp.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&inner).unwrap();
        let e = locate(Some(tmp.path())).unwrap_err();
        assert!(
            e.to_string().contains(&tmp.path().display().to_string()),
            "{e}"
        );
        std::fs::write(inner.join("data_batch_2.bin"), records(&[1, 2, 3])).unwrap();
        std::fs::write(inner.join(TEST_FILE), records(&[4])).unwrap();
        assert_eq!(locate(Some(tmp.path())).unwrap(), inner);
        let c = Cifar10::load(tmp.path()).unwrap();
        assert_eq!(c.train_files, ["data_batch_2.bin"]);
        assert_eq!((c.train.len(), c.test.len()), (3, 1));
    }
}
