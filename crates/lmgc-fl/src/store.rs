//! The aggregator's state directory: everything a restart needs, written so that a crash at
//! any instant leaves either the old or the new version of each file.
//!
//! ```text
//! state_dir/
//!   state.json                      RoundState (atomic: temp + fsync + rename)
//!   models/global-r<round>.lmgc     each round's global model, as broadcast (atomic)
//!   accepted/r<round>-<client>.safetensors   decoded accepted updates (atomic)
//!   partial/r<round>-<client>-<digest>.part  uploads in progress (appended, synced at acks)
//!   tls/cert.pem, tls/key.pem       the self-signed identity, if one was generated
//!   metrics.jsonl                   one line per closed round
//! ```
//!
//! An accepted update's file is written before the state that names it, and a model before
//! the state that moves to its round, so the state never points at a missing file.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use lmgc_core::fsutil::write_atomic;

use crate::aggregator::{RoundState, UploadKey};
use crate::wire::{ClientId, Round};
use crate::{Error, Result};

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating) `root` and its sub-folders.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["models", "accepted", "partial", "tls"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(StateDir {
            root: root.to_owned(),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// The persisted state, if a run was started here.
    pub fn load_state(&self) -> Result<Option<RoundState>> {
        let p = self.state_path();
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Config(format!(
                    "{}: unreadable ({e}); restore it or start with an empty state_dir",
                    p.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// Writes the state durably.
    pub fn save_state(&self, state: &RoundState) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomic(&self.state_path(), &json)?;
        Ok(())
    }

    /// Where round `round`'s global model (as broadcast) lives.
    pub fn model_path(&self, round: Round) -> PathBuf {
        self.root
            .join("models")
            .join(format!("global-r{}.lmgc", round.0))
    }

    /// Where an accepted update lives.
    pub fn accepted_path(&self, round: Round, client: &ClientId) -> PathBuf {
        self.root
            .join("accepted")
            .join(format!("r{}-{client}.safetensors", round.0))
    }

    /// Where the bytes of an upload in progress live.
    pub fn partial_path(&self, key: &UploadKey) -> PathBuf {
        self.root.join("partial").join(key.file_name())
    }

    /// The self-signed identity's files.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.root.join("tls").join("cert.pem"),
            self.root.join("tls").join("key.pem"),
        )
    }

    /// Uploads in progress and the bytes each holds; files of other names are ignored.
    pub fn partials(&self) -> Result<Vec<(UploadKey, u64)>> {
        let dir = self.root.join("partial");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name();
            if let Some(key) = name.to_str().and_then(UploadKey::from_file_name) {
                let len = entry
                    .metadata()
                    .map_err(|e| Error::io(entry.path(), e))?
                    .len();
                out.push((key, len));
            }
        }
        Ok(out)
    }

    /// Opens an upload's file for writing from `offset` (cutting anything after it).
    pub fn open_partial(&self, key: &UploadKey, offset: u64) -> Result<File> {
        let p = self.partial_path(key);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        let len = f.metadata().map_err(|e| Error::io(&p, e))?.len();
        if len < offset {
            return Err(Error::Internal(format!(
                "{} holds {len} bytes, the upload resumes at {offset}",
                p.display()
            )));
        }
        f.set_len(offset).map_err(|e| Error::io(&p, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(&p, e))?;
        Ok(f)
    }

    /// Makes an upload's bytes durable (before they are acknowledged).
    pub fn sync_partial(&self, key: &UploadKey) -> Result<()> {
        let p = self.partial_path(key);
        match File::open(&p) {
            Ok(f) => f.sync_data().map_err(|e| Error::io(&p, e)),
            // Already decoded and removed: nothing left to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// Deletes an upload's bytes; a missing file is fine.
    pub fn discard_partial(&self, key: &UploadKey) -> Result<()> {
        remove_if_present(&self.partial_path(key))
    }

    /// Deletes models and accepted updates of rounds before `state.round`. With
    /// `orphans`, also the accepted updates of the current round that `state` does not name
    /// (written just before a crash): only at start-up, when no decode is in flight. Files
    /// of other names (temporary files of writes in progress) are left alone.
    pub fn prune(&self, state: &RoundState, orphans: bool) -> Result<()> {
        let round_of = |p: &Path, prefix: &str, sep: char| -> Option<u64> {
            let name = p.file_name()?.to_str()?.strip_prefix(prefix)?;
            name.split(sep).next()?.parse().ok()
        };
        let models = self.root.join("models");
        for entry in fs::read_dir(&models).map_err(|e| Error::io(&models, e))? {
            let p = entry.map_err(|e| Error::io(&models, e))?.path();
            if round_of(&p, "global-r", '.').is_some_and(|r| r < state.round.0) {
                remove_if_present(&p)?;
            }
        }
        let keep: Vec<PathBuf> = state
            .accepted
            .iter()
            .map(|a| self.accepted_path(state.round, &a.client))
            .collect();
        let acc = self.root.join("accepted");
        for entry in fs::read_dir(&acc).map_err(|e| Error::io(&acc, e))? {
            let p = entry.map_err(|e| Error::io(&acc, e))?.path();
            let stale = match round_of(&p, "r", '-') {
                Some(r) if r < state.round.0 => true,
                Some(r) if r == state.round.0 => orphans && !keep.contains(&p),
                _ => false,
            };
            if stale {
                remove_if_present(&p)?;
            }
        }
        Ok(())
    }

    /// Appends one JSON line to the metrics file.
    pub fn append_metrics(path: &Path, line: &serde_json::Value) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io(path, e))
    }
}

fn remove_if_present(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Digest;

    #[test]
    fn partials_round_trip_through_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let key = UploadKey {
            round: Round(3),
            client: ClientId::new("site-a.1").unwrap(),
            digest: Digest([0xab; 32]),
        };
        let mut f = s.open_partial(&key, 0).unwrap();
        f.write_all(b"hello world").unwrap();
        drop(f);
        std::fs::write(dir.path().join("partial/junk.part"), b"x").unwrap();
        assert_eq!(s.partials().unwrap(), [(key.clone(), 11)]);
        // Resuming at 5 cuts what came after.
        let mut f = s.open_partial(&key, 5).unwrap();
        f.write_all(b"!").unwrap();
        drop(f);
        assert_eq!(std::fs::read(s.partial_path(&key)).unwrap(), b"hello!");
        assert!(s.open_partial(&key, 100).is_err());
        s.discard_partial(&key).unwrap();
        s.discard_partial(&key).unwrap();
        assert!(s.partials().unwrap().is_empty());
    }

    #[test]
    fn state_survives_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.load_state().unwrap(), None);
        let st = RoundState::fresh(Digest([5; 32]));
        s.save_state(&st).unwrap();
        assert_eq!(s.load_state().unwrap(), Some(st));
        std::fs::write(dir.path().join("state.json"), b"{not json").unwrap();
        assert!(matches!(s.load_state(), Err(Error::Config(_))));
    }
}
