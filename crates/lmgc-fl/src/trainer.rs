//! The boundary to local training: what a client does between receiving the global model
//! and sending its update.

use std::path::PathBuf;

use lmgc_core::Gradient;
use lmgc_core::io::{Format, SourceFile};

use crate::wire::{ClientId, Round};
use crate::{Error, Result};

/// A client's contribution to a round.
#[derive(Debug, Clone)]
pub struct LocalUpdate {
    /// The update: a delta or whole weights, as the aggregator's `update` setting says,
    /// with the global model's tensor names and shapes.
    pub update: Gradient,
    /// Training samples behind it: its FedAvg weight.
    pub samples: u64,
}

/// Local training. Called on a blocking thread, once per round the client is selected for
/// (a client that resumes an upload after a restart does not train again).
pub trait Trainer: Send {
    /// Trains from `global` and returns the update.
    fn train(&mut self, round: Round, global: &Gradient) -> Result<LocalUpdate>;
}

/// Updates written by another program: `template` with `{round}` and `{client}` replaced
/// names a safetensors file per round.
#[derive(Debug, Clone)]
pub struct FileTrainer {
    template: String,
    client: ClientId,
    samples: u64,
}

impl FileTrainer {
    /// Reads `template` (e.g. `updates/{client}/round-{round}.safetensors`) with weight
    /// `samples`.
    pub fn new(template: impl Into<String>, client: ClientId, samples: u64) -> Result<Self> {
        let template = template.into();
        if !template.contains("{round}") && !template.contains("{round:0") {
            return Err(Error::Config(format!(
                "update file template {template:?} has no {{round}} (or {{round:06}})"
            )));
        }
        if samples == 0 {
            return Err(Error::Config("samples must be at least 1".into()));
        }
        Ok(FileTrainer {
            template,
            client,
            samples,
        })
    }

    /// The file of `round`: `{round}`, `{round:0N}` (zero-padded to N digits) and
    /// `{client}` replaced.
    pub fn path(&self, round: Round) -> PathBuf {
        let mut s = self
            .template
            .replace("{round}", &round.0.to_string())
            .replace("{client}", self.client.as_str());
        while let Some(at) = s.find("{round:0") {
            let rest = &s[at + 8..];
            let Some(end) = rest.find('}') else { break };
            let width: usize = rest[..end].parse().unwrap_or(0);
            let padded = format!("{:0width$}", round.0);
            s.replace_range(at..at + 8 + end + 1, &padded);
        }
        PathBuf::from(s)
    }
}

impl Trainer for FileTrainer {
    fn train(&mut self, round: Round, _global: &Gradient) -> Result<LocalUpdate> {
        let path = self.path(round);
        if !path.exists() {
            return Err(Error::Train(format!(
                "no update file for round {round}: {} does not exist",
                path.display()
            )));
        }
        let source = SourceFile::read(&path, Format::Safetensors)?;
        Ok(LocalUpdate {
            update: source.gradient,
            samples: self.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_each_round() {
        let c = ClientId::new("site-1").unwrap();
        let t = FileTrainer::new("u/{client}/step{round:06}.safetensors", c.clone(), 1).unwrap();
        assert_eq!(
            t.path(Round(42)),
            PathBuf::from("u/site-1/step000042.safetensors")
        );
        let t = FileTrainer::new("r{round}.safetensors", c.clone(), 1).unwrap();
        assert_eq!(t.path(Round(3)), PathBuf::from("r3.safetensors"));
        assert!(FileTrainer::new("fixed.safetensors", c.clone(), 1).is_err());
        assert!(FileTrainer::new("{round}", c, 0).is_err());
    }
}
