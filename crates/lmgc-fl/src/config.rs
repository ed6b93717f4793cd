//! Configuration files of the aggregator and of a client (TOML).
//!
//! Relative paths are taken from the working directory of the process, as on a command
//! line. Every field has a default except what identifies a deployment (the client's name
//! and token); `deny_unknown_fields` makes a typo an error instead of a silently ignored
//! setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lmgc_core::payload::{PayloadClass, PayloadSpec};
use serde::Deserialize;

use crate::aggregator::{PayloadStep, RoundPolicy, StragglerPolicy};
use crate::wire::{ClientId, UpdateKind};
use crate::{Error, Result};

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// `configs/aggregator.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where round state, models, accepted and partial updates, the TLS identity and the
    /// metrics live. Created if missing; an existing one is resumed.
    pub state_dir: PathBuf,
    /// Rounds to run.
    pub rounds: u64,
    /// Clients selected per round.
    pub clients_per_round: usize,
    /// Fewest accepted updates a round may close with.
    pub min_clients: usize,
    /// Seconds a round waits for its selected clients (and, before it starts, for
    /// `clients_per_round` clients to connect) before the straggler policy applies.
    pub round_timeout_secs: f64,
    /// What happens to clients that miss the deadline.
    pub straggler: StragglerPolicy,
    /// Whether clients send deltas or whole models.
    pub update: UpdateKind,
    /// Seed of client selection.
    pub seed: u64,
    /// Largest update accepted, in bytes as sent.
    pub max_update_bytes: u64,
    /// Codecs this aggregator decodes, in order of preference.
    pub codecs: Vec<String>,
    /// Payload classes accepted from clients: `dense`, `quantized` (8/4-bit values with
    /// scales), `sparse` (top-k). Default: all three. Each selected client sends its own
    /// first choice among the classes its round accepts.
    pub payloads: Vec<PayloadClass>,
    /// Changes of `payloads` from a given round on, by ascending round
    /// (`[[payload_schedule]]` tables of `from_round` and `payloads`).
    pub payload_schedule: Vec<PayloadStep>,
    /// Whether a client whose preferred codec is not available may fall back to another
    /// codec both sides have; otherwise the handshake fails.
    pub codec_fallback: bool,
    /// Initial global model (safetensors, f32 tensors), used when `state_dir` holds none.
    pub initial_model: Option<PathBuf>,
    /// JSON-lines metrics file; default `<state_dir>/metrics.jsonl`.
    pub metrics: Option<PathBuf>,
    /// Seconds of silence after which a connection counts as lost (keep-alives go every
    /// quarter of it).
    pub idle_timeout_secs: f64,
    /// After the last round, seconds to stay up for clients of that round that have not yet
    /// fetched the final model (reconnecting ones); the aggregator exits earlier once all have.
    pub linger_secs: f64,
    /// Settings of the LLM codecs (model, backend, ...), read by the front end that builds
    /// the codecs.
    pub lm: toml::Table,
    /// TLS identity.
    pub tls: ServerTls,
    /// Client authentication.
    pub auth: ServerAuth,
}

/// The aggregator's certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTls {
    /// PEM certificate chain. Without `cert` and `key`, a self-signed certificate is made on
    /// first start and kept in `<state_dir>/tls/`.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Names the self-signed certificate is made for.
    pub names: Vec<String>,
}

/// How clients prove who they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerAuth {
    /// File of `client-id token` lines (`#` comments); required.
    pub tokens: Option<PathBuf>,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            listen: "127.0.0.1:4433".parse().expect("a valid address"),
            state_dir: PathBuf::from("fl-state"),
            rounds: 3,
            clients_per_round: 2,
            min_clients: 1,
            round_timeout_secs: 600.0,
            straggler: StragglerPolicy::Drop,
            update: UpdateKind::Delta,
            seed: 0,
            max_update_bytes: 1 << 30,
            codecs: vec![
                "auto".into(),
                "lm".into(),
                "bytegroup".into(),
                "store".into(),
            ],
            codec_fallback: true,
            payloads: PayloadClass::ALL.to_vec(),
            payload_schedule: Vec::new(),
            initial_model: None,
            metrics: None,
            idle_timeout_secs: 20.0,
            linger_secs: 60.0,
            lm: toml::Table::new(),
            tls: ServerTls::default(),
            auth: ServerAuth::default(),
        }
    }
}

impl AggregatorConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self> {
        let c: Self = read_toml(path)?;
        c.policy()?;
        c.idle_timeout()?;
        c.linger()?;
        Ok(c)
    }

    /// The round rules, validated.
    pub fn policy(&self) -> Result<RoundPolicy> {
        let p = RoundPolicy {
            rounds: self.rounds,
            clients_per_round: self.clients_per_round,
            min_clients: self.min_clients,
            round_timeout: Duration::try_from_secs_f64(self.round_timeout_secs).map_err(|_| {
                Error::Config(format!(
                    "round_timeout_secs = {}: give a positive number of seconds",
                    self.round_timeout_secs
                ))
            })?,
            straggler: self.straggler,
            update: self.update,
            seed: self.seed,
            max_update_bytes: self.max_update_bytes,
            ack_every: 1 << 20,
            payloads: self.payloads.clone(),
            payload_schedule: self.payload_schedule.clone(),
        };
        p.validate()?;
        Ok(p)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Result<Duration> {
        idle(self.idle_timeout_secs)
    }

    /// How long to linger after the last round.
    pub fn linger(&self) -> Result<Duration> {
        Duration::try_from_secs_f64(self.linger_secs).map_err(|_| {
            Error::Config(format!(
                "linger_secs = {}: give a non-negative number of seconds",
                self.linger_secs
            ))
        })
    }

    /// Where metrics go.
    pub fn metrics_path(&self) -> PathBuf {
        self.metrics
            .clone()
            .unwrap_or_else(|| self.state_dir.join("metrics.jsonl"))
    }
}

/// `configs/client.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The aggregator's address, `host:port`.
    #[serde(default = "default_server")]
    pub server: String,
    /// The name in the aggregator's certificate.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// This client's name.
    pub client_id: ClientId,
    /// This client's token, or
    #[serde(default)]
    pub token: Option<String>,
    /// a file holding it (first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the aggregator's certificate (hex, `:` allowed), as `lmgc
    /// serve` prints it; or
    #[serde(default)]
    pub server_fingerprint: Option<String>,
    /// a PEM file of CA certificates to verify the aggregator with.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Where the pending update is kept, so a restarted client resumes its upload.
    #[serde(default = "default_client_state")]
    pub state_dir: PathBuf,
    /// Codecs to encode updates with, most preferred first.
    #[serde(default = "default_client_codecs")]
    pub codecs: Vec<String>,
    /// What the client can send (`lmgc payload` names), most preferred first and
    /// comma-separated: `dense`, `q8`, `q4` (`-channel`, `-stochastic`), `topP%`; e.g.
    /// `top1%,q4,dense`. Each round the client sends its first payload whose class the
    /// round accepts (the aggregator names the class when it starts the round).
    #[serde(default = "default_payload")]
    pub payload: String,
    /// Carry what a lossy payload left out into the next round's update (error feedback).
    #[serde(default = "default_true")]
    pub error_feedback: bool,
    /// Upload bandwidth cap in bytes per second (0: none).
    #[serde(default)]
    pub max_upload_rate: u64,
    /// Seconds to keep retrying to reach the aggregator, from the moment the connection is
    /// lost, before giving up.
    #[serde(default = "default_reconnect")]
    pub reconnect_secs: f64,
    /// Seconds of silence after which the connection counts as lost.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: f64,
    /// Settings of the LLM codecs (model, backend, ...), read by the front end.
    #[serde(default)]
    pub lm: toml::Table,
    /// The trainer's own settings, read by the front end that builds it.
    #[serde(default)]
    pub train: toml::Table,
}

fn default_server() -> String {
    "127.0.0.1:4433".into()
}
fn default_server_name() -> String {
    "localhost".into()
}
fn default_client_state() -> PathBuf {
    PathBuf::from("fl-client")
}
fn default_client_codecs() -> Vec<String> {
    vec!["bytegroup".into()]
}
fn default_payload() -> String {
    "dense".into()
}
fn default_true() -> bool {
    true
}
fn default_reconnect() -> f64 {
    300.0
}
fn default_idle() -> f64 {
    20.0
}

fn idle(secs: f64) -> Result<Duration> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        _ => Err(Error::Config(format!(
            "idle_timeout_secs = {secs}: give at least 0.1 seconds"
        ))),
    }
}

impl ClientConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self> {
        let c: Self = read_toml(path)?;
        c.token()?;
        c.idle_timeout()?;
        c.payloads()?;
        Ok(c)
    }

    /// The payloads the client can send, most preferred first; at most one per class (a
    /// round names a class, so a second one of the same class would never be sent).
    pub fn payloads(&self) -> Result<Vec<PayloadSpec>> {
        let mut out: Vec<PayloadSpec> = Vec::new();
        for name in self.payload.split(',').map(str::trim) {
            let spec: PayloadSpec = name
                .parse()
                .map_err(|e| Error::Config(format!("payload = {:?}: {e}", self.payload)))?;
            if let Some(other) = out.iter().find(|o| o.class() == spec.class()) {
                return Err(Error::Config(format!(
                    "payload = {:?}: {other} and {spec} are both {}; give one payload per class",
                    self.payload,
                    spec.class()
                )));
            }
            out.push(spec);
        }
        Ok(out)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Result<Duration> {
        idle(self.idle_timeout_secs)
    }

    /// The token, from `token` or `token_file`.
    pub fn token(&self) -> Result<String> {
        match (&self.token, &self.token_file) {
            (Some(t), None) => Ok(t.clone()),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
                Ok(text.lines().next().unwrap_or("").trim().to_owned())
            }
            _ => Err(Error::Config(
                "give the client's token as exactly one of `token` and `token_file`".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "rounds = 2\nclient_per_round = 3\n").unwrap();
        let e = AggregatorConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("client_per_round"), "{e}");
        std::fs::write(&p, "rounds = 2\nmin_clients = 3\nclients_per_round = 2\n").unwrap();
        assert!(AggregatorConfig::load(&p).is_err());
        std::fs::write(&p, "round_timeout_secs = -1\n").unwrap();
        assert!(AggregatorConfig::load(&p).is_err());
        std::fs::write(
            &p,
            "rounds = 2\nstraggler = \"wait\"\n[auth]\ntokens = \"t\"\n",
        )
        .unwrap();
        let c = AggregatorConfig::load(&p).unwrap();
        assert_eq!(c.straggler, StragglerPolicy::Wait);
        std::fs::write(&p, "client_id = \"a/b\"\ntoken = \"x\"\n").unwrap();
        assert!(ClientConfig::load(&p).is_err());
        std::fs::write(&p, "client_id = \"a\"\n").unwrap();
        assert!(ClientConfig::load(&p).is_err(), "a token is required");
        std::fs::write(
            &p,
            "client_id = \"a\"\ntoken = \"x\"\n[train]\nkind = \"files\"\n",
        )
        .unwrap();
        let c = ClientConfig::load(&p).unwrap();
        assert_eq!(c.train["kind"].as_str(), Some("files"));
        let payloads = |list: &str| {
            let c = ClientConfig {
                payload: list.into(),
                ..c.clone()
            };
            c.payloads()
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(payloads(" q4 , dense").unwrap(), ["q4", "dense"]);
        assert!(
            payloads("q4,q8")
                .unwrap_err()
                .to_string()
                .contains("one payload per class")
        );
        assert!(payloads("q4,").is_err());
    }

    #[test]
    fn payload_schedules_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        let head = "rounds = 6\npayloads = [\"dense\"]\n";
        std::fs::write(
            &p,
            format!(
                "{head}[[payload_schedule]]\nfrom_round = 2\npayloads = [\"quantized\", \"dense\"]\n\
                 [[payload_schedule]]\nfrom_round = 4\npayloads = [\"sparse\"]\n"
            ),
        )
        .unwrap();
        let policy = AggregatorConfig::load(&p).unwrap().policy().unwrap();
        use PayloadClass::*;
        let at = |r| policy.payloads_for(crate::wire::Round(r)).to_vec();
        assert_eq!((at(0), at(1)), (vec![Dense], vec![Dense]));
        assert_eq!(
            (at(2), at(3)),
            (vec![Quantized, Dense], vec![Quantized, Dense])
        );
        assert_eq!(at(5), vec![Sparse]);
        assert_eq!(policy.payloads_of_run(), vec![Dense, Quantized, Sparse]);
        assert_eq!(
            policy.assign(crate::wire::Round(3), &[Sparse, Dense]),
            Some(Dense)
        );
        assert_eq!(policy.assign(crate::wire::Round(4), &[Dense]), None);
        for (bad, why) in [
            (
                "from_round = 4\npayloads = [\"dense\"]\n[[payload_schedule]]\nfrom_round = 4\npayloads = [\"sparse\"]",
                "ascending",
            ),
            ("from_round = 6\npayloads = [\"sparse\"]", "never apply"),
            ("from_round = 1\npayloads = []", "empty"),
            (
                "from_round = 1\npayloads = [\"sparse\", \"sparse\"]",
                "twice",
            ),
            ("from_round = 1\npayload = [\"sparse\"]", "unknown field"),
        ] {
            std::fs::write(&p, format!("{head}[[payload_schedule]]\n{bad}\n")).unwrap();
            let e = AggregatorConfig::load(&p).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A schedule from round 0 replaces `payloads` entirely.
        std::fs::write(
            &p,
            format!("{head}[[payload_schedule]]\nfrom_round = 0\npayloads = [\"sparse\"]\n"),
        )
        .unwrap();
        let policy = AggregatorConfig::load(&p).unwrap().policy().unwrap();
        assert_eq!(policy.payloads_of_run(), vec![Sparse]);
        let step: PayloadStep = "3:quantized+dense".parse().unwrap();
        assert_eq!(
            (step.from_round, step.to_string()),
            (3, "3:quantized+dense".to_string())
        );
        for bad in ["3", "x:dense", "3:dense+q4", "3:"] {
            assert!(bad.parse::<PayloadStep>().is_err(), "{bad}");
        }
    }
}
