//! Every codec by name: the one place the CLI and `lmgc bench` learn which codecs exist.
//! A new codec (the LLM codec) joins here and nowhere else.

use std::fmt;
use std::str::FromStr;

use lmgc_core::cdf::Precision;
use lmgc_core::classical::{Classical, ClassicalCodec};
use lmgc_core::codec::{BytegroupCodec, Codec, PriorCodecSpec, StoreCodec};
use lmgc_core::context_prior::ContextPrior;
use lmgc_core::prior::Prior;
use lmgc_core::prior_codec::{DEFAULT_BATCH, PriorCodec};
use lmgc_core::serialize::SerializerSpec;
use lmgc_core::{Error, Result};

/// A codec chosen by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// No compression.
    Store,
    /// Byte planes + adaptive context models.
    Bytegroup,
    /// LM-GC with the built-in context prior.
    Context,
    /// A classical baseline.
    Classical(Classical),
}

impl CodecChoice {
    /// Every codec `lmgc bench --codecs all` runs, strongest expected first.
    pub fn all() -> Vec<CodecChoice> {
        let mut v = vec![CodecChoice::Bytegroup];
        v.extend(Classical::ALL.map(CodecChoice::Classical));
        v.push(CodecChoice::Context);
        v.push(CodecChoice::Store);
        v
    }

    /// Parses `all` or a comma-separated list of names.
    pub fn parse_list(s: &str) -> Result<Vec<CodecChoice>> {
        if s == "all" {
            return Ok(Self::all());
        }
        s.split(',').map(|n| n.trim().parse()).collect()
    }

    /// Runs `f` with the codec built from `options`.
    pub fn with<R>(
        self,
        options: &CodecOptions,
        f: impl FnOnce(&mut dyn Codec) -> Result<R>,
    ) -> Result<R> {
        match self {
            CodecChoice::Store => f(&mut StoreCodec),
            CodecChoice::Bytegroup => f(&mut BytegroupCodec),
            CodecChoice::Classical(c) => {
                c.available()?;
                f(&mut ClassicalCodec(c))
            }
            CodecChoice::Context => {
                let mut prior = ContextPrior::new(options.order)?;
                let spec = PriorCodecSpec {
                    prior: prior.fingerprint(),
                    serializer: options.format,
                    window: options.window,
                    precision: options.precision,
                    mask: options.mask,
                };
                f(&mut PriorCodec::new(&mut prior, spec, options.batch)?)
            }
        }
    }
}

impl fmt::Display for CodecChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecChoice::Store => f.write_str("store"),
            CodecChoice::Bytegroup => f.write_str("bytegroup"),
            CodecChoice::Context => f.write_str("context"),
            CodecChoice::Classical(c) => f.write_str(&c.name()),
        }
    }
}

impl FromStr for CodecChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "store" => Ok(CodecChoice::Store),
            "bytegroup" => Ok(CodecChoice::Bytegroup),
            "context" => Ok(CodecChoice::Context),
            _ => Classical::from_name(s)
                .map(CodecChoice::Classical)
                .ok_or_else(|| Error::InvalidArgument {
                    what: "codec",
                    reason: format!(
                        "{s:?}; choose from {} (or `all` for bench)",
                        Self::all()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
        }
    }
}

/// Parameters of the prior codecs (ignored by the others).
#[derive(Debug, Clone)]
pub struct CodecOptions {
    /// Serializer.
    pub format: SerializerSpec,
    /// Tokens per window, BOS included.
    pub window: u32,
    /// Windows per prior call.
    pub batch: usize,
    /// Table precision.
    pub precision: Precision,
    /// Alphabet mask on.
    pub mask: bool,
    /// Order of the built-in context prior.
    pub order: usize,
}

impl Default for CodecOptions {
    fn default() -> Self {
        CodecOptions {
            format: SerializerSpec::default(),
            window: 2048,
            batch: DEFAULT_BATCH,
            precision: Precision::MAX,
            mask: true,
            order: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in CodecChoice::all() {
            assert_eq!(c.to_string().parse::<CodecChoice>().unwrap(), c);
        }
        assert!("zip".parse::<CodecChoice>().is_err());
        assert_eq!(CodecChoice::parse_list("zstd, xz9").unwrap().len(), 2);
    }
}
