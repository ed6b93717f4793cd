//! Client authentication by per-client tokens.
//!
//! The aggregator keeps only SHA-256 digests of the tokens in memory and compares digests
//! in constant time, so neither a timing side channel nor a memory dump of a running
//! aggregator gives a token away.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::wire::ClientId;
use crate::{Error, Result};

/// Shortest token accepted: 128 bits as hex.
pub const MIN_TOKEN_LEN: usize = 32;

/// The clients an aggregator admits.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: HashMap<ClientId, [u8; 32]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("clients", &self.tokens.len())
            .finish()
    }
}

impl Auth {
    /// Parses `client-id token` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(id), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(Error::Config(format!(
                    "tokens line {}: expected `client-id token`",
                    i + 1
                )));
            };
            let id = ClientId::new(id)?;
            if token.len() < MIN_TOKEN_LEN {
                return Err(Error::Config(format!(
                    "tokens line {}: the token of {id} has {} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 16`)",
                    i + 1,
                    token.len()
                )));
            }
            if tokens.insert(id.clone(), digest(token)).is_some() {
                return Err(Error::Config(format!(
                    "tokens line {}: {id} appears twice",
                    i + 1
                )));
            }
        }
        if tokens.is_empty() {
            return Err(Error::Config(
                "the tokens file names no client; add `client-id token` lines".into(),
            ));
        }
        Ok(Auth { tokens })
    }

    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Auth::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Whether `token` is `client`'s. Unknown clients cost the same comparison as known ones.
    pub fn check(&self, client: &ClientId, token: &str) -> bool {
        let given = digest(token);
        let (expected, known) = match self.tokens.get(client) {
            Some(d) => (*d, true),
            None => ([0u8; 32], false),
        };
        let diff = given
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        known & (diff == 0)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when no client is admitted.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn tokens_admit_exactly_their_client() {
        let auth = Auth::parse(&format!("# demo\nalice {T1}\n\nbob {T1}ff\n")).unwrap();
        let alice = ClientId::new("alice").unwrap();
        let bob = ClientId::new("bob").unwrap();
        assert!(auth.check(&alice, T1));
        assert!(!auth.check(&bob, T1));
        assert!(!auth.check(&ClientId::new("eve").unwrap(), T1));
        assert!(!auth.check(&alice, ""));
    }

    #[test]
    fn bad_files_are_refused() {
        for bad in [
            "",
            "alice short",
            &format!("alice {T1} extra"),
            &format!("alice {T1}\nalice {T1}"),
            &format!("../x {T1}"),
        ] {
            assert!(Auth::parse(bad).is_err(), "{bad:?}");
        }
    }
}
