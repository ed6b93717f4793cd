//! Serializers: tensor bytes as text, in every format of the LM-GC paper.
//!
//! Text is a sequence of latin-1 characters stored one byte each (`iso` uses all 256; hex
//! only ASCII). Bytes are cut into groups of `group` bytes with a separator between groups;
//! within each element the bytes come in little-endian order (`le`, the paper's: the
//! sign/exponent byte of a float comes last) or big-endian (`be`: exponent first).
//! Parsing is positional (it knows every group's width), so even `iso` with a separator
//! that also occurs in the data is exactly invertible.
//!
//! `token` is not text for a tokenizer: each byte becomes one token of the prior's own
//! choosing ([`crate::byte_tokens`]; for SmolLM2 the word-initial letters ` a`, ` b`, ... that
//! `iso-space` text of an exponent byte tokenizes to). Its text form is the bytes themselves,
//! so lengths and spans count bytes. One token per byte instead of `hex-space`'s three.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How each byte becomes characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// Each byte as one latin-1 character (the paper's "iso").
    Iso,
    /// Each byte as two lowercase hexadecimal digits.
    Hex,
    /// Each byte as one token of the prior ([`crate::byte_tokens`]); no separator.
    Token,
}

/// What stands between groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Separator {
    /// Nothing: groups run together.
    None,
    /// `' '`
    Space,
    /// `','`
    Comma,
    /// `", "`
    CommaSpace,
    /// `';'`
    Semicolon,
}

impl Separator {
    /// The separator's characters.
    pub const fn text(self) -> &'static [u8] {
        match self {
            Separator::None => b"",
            Separator::Space => b" ",
            Separator::Comma => b",",
            Separator::CommaSpace => b", ",
            Separator::Semicolon => b";",
        }
    }
    const fn name(self) -> &'static str {
        match self {
            Separator::None => "none",
            Separator::Space => "space",
            Separator::Comma => "comma",
            Separator::CommaSpace => "comma-space",
            Separator::Semicolon => "semicolon",
        }
    }
}

/// Byte order within each element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ByteOrder {
    /// Little-endian, as stored (the paper's order).
    Le,
    /// Big-endian: most significant byte (a float's sign and exponent) first.
    Be,
}

/// A complete serializer: encoding, separator, group size, byte order.
///
/// Written as `ENCODING-SEPARATOR[-gN][-le|-be]`, e.g. `hex-none` (the paper's default),
/// `hex-space-be`, `hex-comma-space-g2`, `iso-none`. Without `-gN` a group is one element
/// (4 bytes of `f32`); with separator `none` groups do not matter. `token`, `token-be`: one
/// token per byte, no separator.
///
/// ```
/// use lmgc_core::serialize::SerializerSpec;
/// let spec: SerializerSpec = "hex-space-be".parse().unwrap();
/// let text = spec.serialize(4, &1.5f32.to_le_bytes());
/// assert_eq!(text, b"3fc00000");
/// assert_eq!(spec.deserialize(4, &text, 4).unwrap(), 1.5f32.to_le_bytes());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SerializerSpec {
    /// Characters per byte.
    pub encoding: Encoding,
    /// Between groups.
    pub separator: Separator,
    /// Bytes per group; `None` means one element.
    pub group: Option<u8>,
    /// Byte order within elements.
    pub order: ByteOrder,
}

impl Default for SerializerSpec {
    /// The LM-GC paper's format: `hex-none-le`.
    fn default() -> Self {
        SerializerSpec {
            encoding: Encoding::Hex,
            separator: Separator::None,
            group: None,
            order: ByteOrder::Le,
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl SerializerSpec {
    /// Characters per byte.
    pub const fn chars_per_byte(&self) -> usize {
        match self.encoding {
            Encoding::Iso | Encoding::Token => 1,
            Encoding::Hex => 2,
        }
    }

    /// Whether the parts fit together (`token` takes no separator). Parsed specs always do;
    /// a spec read from a file is checked before use.
    pub fn check(&self) -> Result<()> {
        if self.encoding == Encoding::Token && self.separator != Separator::None {
            return Err(Error::InvalidArgument {
                what: "format",
                reason: format!(
                    "the token encoding with separator {:?}: token takes no separator",
                    self.separator.name()
                ),
            });
        }
        Ok(())
    }

    fn group_bytes(&self, width: usize) -> usize {
        self.group.map_or(width, usize::from).max(1)
    }

    /// The characters this serializer can emit (the alphabet an LLM prior may be masked to).
    pub fn charset(&self) -> Vec<u8> {
        let mut set: Vec<u8> = match self.encoding {
            Encoding::Iso | Encoding::Token => (0..=255).collect(),
            Encoding::Hex => HEX.to_vec(),
        };
        set.extend_from_slice(self.separator.text());
        set.sort_unstable();
        set.dedup();
        set
    }

    /// Exact length of the text for `n` bytes of elements `width` bytes wide.
    pub fn text_len(&self, width: usize, n: u64) -> u64 {
        let g = self.group_bytes(width) as u64;
        let sep = self.separator.text().len() as u64;
        let groups = n.div_ceil(g);
        n * self.chars_per_byte() as u64 + groups.saturating_sub(1) * sep
    }

    fn check_width(width: usize, n: usize) {
        debug_assert!(
            width > 0 && n.is_multiple_of(width),
            "caller passes whole elements"
        );
    }

    /// Serializes `bytes` (whole elements of `width` bytes, little-endian as stored).
    pub fn serialize(&self, width: usize, bytes: &[u8]) -> Vec<u8> {
        Self::check_width(width, bytes.len());
        let mut out = Vec::with_capacity(self.text_len(width, bytes.len() as u64) as usize);
        let g = self.group_bytes(width);
        let sep = self.separator.text();
        let mut emit = |i: usize, b: u8| {
            if i > 0 && i.is_multiple_of(g) {
                out.extend_from_slice(sep);
            }
            match self.encoding {
                Encoding::Iso | Encoding::Token => out.push(b),
                Encoding::Hex => {
                    out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]])
                }
            }
        };
        match self.order {
            ByteOrder::Le => bytes.iter().enumerate().for_each(|(i, &b)| emit(i, b)),
            ByteOrder::Be => {
                let mut i = 0;
                for element in bytes.chunks_exact(width) {
                    for &b in element.iter().rev() {
                        emit(i, b);
                        i += 1;
                    }
                }
            }
        }
        out
    }

    /// Parses text back into `n` bytes of elements `width` bytes wide.
    pub fn deserialize(&self, width: usize, text: &[u8], n: usize) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Parse {
            spec: self.to_string(),
            reason,
        };
        if width == 0 || !n.is_multiple_of(width) {
            return Err(fail(format!(
                "{n} bytes is not a whole number of {width}-byte elements"
            )));
        }
        if text.len() as u64 != self.text_len(width, n as u64) {
            return Err(fail(format!(
                "{} characters, expected {} for {n} bytes",
                text.len(),
                self.text_len(width, n as u64)
            )));
        }
        let g = self.group_bytes(width);
        let sep = self.separator.text();
        let unit = self.chars_per_byte();
        let mut out = Vec::with_capacity(n);
        let mut pos = 0;
        for i in 0..n {
            if i > 0 && i % g == 0 {
                if &text[pos..pos + sep.len()] != sep {
                    return Err(fail(format!(
                        "expected separator {:?} at character {pos}",
                        String::from_utf8_lossy(sep)
                    )));
                }
                pos += sep.len();
            }
            let b = match self.encoding {
                Encoding::Iso | Encoding::Token => text[pos],
                Encoding::Hex => match (hex_value(text[pos]), hex_value(text[pos + 1])) {
                    (Some(h), Some(l)) => h << 4 | l,
                    _ => return Err(fail(format!("not a lowercase hex pair at character {pos}"))),
                },
            };
            out.push(b);
            pos += unit;
        }
        if self.order == ByteOrder::Be {
            out.chunks_exact_mut(width).for_each(<[u8]>::reverse);
        }
        Ok(out)
    }
}

impl fmt::Display for SerializerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = match self.encoding {
            Encoding::Iso => "iso",
            Encoding::Hex => "hex",
            Encoding::Token => "token",
        };
        f.write_str(enc)?;
        if self.encoding != Encoding::Token {
            write!(f, "-{}", self.separator.name())?;
        }
        if let Some(g) = self.group {
            write!(f, "-g{g}")?;
        }
        f.write_str(match self.order {
            ByteOrder::Le => "-le",
            ByteOrder::Be => "-be",
        })
    }
}

impl FromStr for SerializerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidArgument {
            what: "format",
            reason: format!(
                "{s:?}: {reason}; expected ENCODING-SEPARATOR[-gN][-le|-be] with ENCODING iso|hex, \
                 SEPARATOR none|space|comma|comma-space|semicolon, N 1|2|3|4|8 (e.g. hex-space-be), \
                 or token[-le|-be]"
            ),
        };
        let (encoding, rest) = if let Some(r) = s.strip_prefix("hex") {
            (Encoding::Hex, r)
        } else if let Some(r) = s.strip_prefix("iso") {
            (Encoding::Iso, r)
        } else if let Some(r) = s.strip_prefix("token") {
            (Encoding::Token, r)
        } else {
            return Err(bad("unknown encoding".into()));
        };
        let mut spec = SerializerSpec {
            encoding,
            ..SerializerSpec::default()
        };
        let mut rest = match rest {
            "" => rest,
            r => r
                .strip_prefix('-')
                .ok_or_else(|| bad("a '-' must follow the encoding".into()))?,
        };
        for sep in [
            Separator::CommaSpace,
            Separator::None,
            Separator::Space,
            Separator::Comma,
            Separator::Semicolon,
        ] {
            if let Some(r) = rest.strip_prefix(sep.name())
                && (r.is_empty() || r.starts_with('-'))
            {
                spec.separator = sep;
                rest = r;
                break;
            }
        }
        for part in rest.split('-').filter(|p| !p.is_empty()) {
            match part {
                "le" => spec.order = ByteOrder::Le,
                "be" => spec.order = ByteOrder::Be,
                g if g.starts_with('g') => match g[1..].parse::<u8>() {
                    Ok(n @ (1 | 2 | 3 | 4 | 8)) => spec.group = Some(n),
                    _ => return Err(bad(format!("bad group size {g:?}"))),
                },
                other => return Err(bad(format!("unknown part {other:?}"))),
            }
        }
        if spec.encoding == Encoding::Token && spec.separator != Separator::None {
            return Err(bad(
                "token has no separator (its byte tokens, such as ` a`, carry their own)".into(),
            ));
        }
        if spec.separator == Separator::None {
            // Groups only place separators; normalize so equal formats compare equal.
            spec.group = None;
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn specs() -> impl Strategy<Value = SerializerSpec> {
        (
            prop_oneof![
                Just(Encoding::Iso),
                Just(Encoding::Hex),
                Just(Encoding::Token)
            ],
            prop_oneof![
                Just(Separator::None),
                Just(Separator::Space),
                Just(Separator::Comma),
                Just(Separator::CommaSpace),
                Just(Separator::Semicolon)
            ],
            prop_oneof![
                Just(None),
                Just(Some(1u8)),
                Just(Some(2)),
                Just(Some(3)),
                Just(Some(4)),
                Just(Some(8))
            ],
            prop_oneof![Just(ByteOrder::Le), Just(ByteOrder::Be)],
        )
            .prop_map(|(encoding, separator, group, order)| {
                // `token` takes no separator, so its groups do not matter either.
                let (separator, group) = if encoding == Encoding::Token {
                    (Separator::None, None)
                } else {
                    (separator, group)
                };
                SerializerSpec {
                    encoding,
                    separator,
                    group,
                    order,
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip_any_bits(spec in specs(), width in prop_oneof![Just(1usize), Just(2), Just(4), Just(8)],
                               elements in prop::collection::vec(any::<u64>(), 0..64)) {
            let bytes: Vec<u8> = elements.iter().flat_map(|e| e.to_le_bytes()[..width].to_vec()).collect();
            let text = spec.serialize(width, &bytes);
            prop_assert_eq!(text.len() as u64, spec.text_len(width, bytes.len() as u64));
            let charset = spec.charset();
            prop_assert!(text.iter().all(|c| charset.contains(c)));
            prop_assert_eq!(spec.deserialize(width, &text, bytes.len()).unwrap(), bytes);
        }

        #[test]
        fn spec_strings_round_trip(spec in specs()) {
            let parsed: SerializerSpec = spec.to_string().parse().unwrap();
            let normalized = if spec.separator == Separator::None { SerializerSpec { group: None, ..spec } } else { spec };
            prop_assert_eq!(parsed, normalized);
        }

        #[test]
        fn garbage_text_is_an_error_not_a_panic(spec in specs(), text in prop::collection::vec(any::<u8>(), 0..40), n in 0usize..12) {
            let _ = spec.deserialize(4, &text, n * 4);
        }
    }

    #[test]
    fn paper_formats() {
        let x = [0x00u8, 0x00, 0xc0, 0x3f, 0x01, 0x00, 0x80, 0xbf]; // 1.5, -1.0000001
        let s = |f: &str| {
            String::from_utf8_lossy(&f.parse::<SerializerSpec>().unwrap().serialize(4, &x))
                .into_owned()
        };
        assert_eq!(s("hex-none"), "0000c03f010080bf");
        assert_eq!(s("hex-none-be"), "3fc00000bf800001");
        assert_eq!(s("hex-space-be"), "3fc00000 bf800001");
        assert_eq!(s("hex-comma-space-g2"), "0000, c03f, 0100, 80bf");
        assert_eq!(s("hex-semicolon-g3"), "0000c0;3f0100;80bf");
        assert_eq!(s("hex-comma-g8"), "0000c03f010080bf");
        assert_eq!(
            "iso-space-g1"
                .parse::<SerializerSpec>()
                .unwrap()
                .serialize(4, &x)
                .len(),
            15
        );
    }

    #[test]
    fn iso_separator_inside_data_still_parses() {
        let spec: SerializerSpec = "iso-comma-g1".parse().unwrap();
        let data = b",,a,";
        let text = spec.serialize(1, data);
        assert_eq!(text, b",,,,a,,");
        assert_eq!(spec.deserialize(1, &text, 4).unwrap(), data);
    }

    #[test]
    fn token_is_one_character_per_byte_without_separators() {
        let spec: SerializerSpec = "token-be".parse().unwrap();
        assert_eq!(spec.to_string(), "token-be");
        assert_eq!(
            "token".parse::<SerializerSpec>().unwrap().to_string(),
            "token-le"
        );
        let x = 1.5f32.to_le_bytes();
        assert_eq!(spec.serialize(4, &x), [0x3f, 0xc0, 0, 0]);
        assert_eq!(spec.text_len(4, 8), 8);
        assert!(spec.check().is_ok());
        let crafted = SerializerSpec {
            separator: Separator::Space,
            ..spec
        };
        assert!(crafted.check().is_err());
    }

    #[test]
    fn bad_specs_are_errors() {
        for s in [
            "",
            "b64",
            "hex-tab",
            "hex-space-g5",
            "hex-space-xx",
            "hexspace",
            "token-space",
            "token-comma-g2",
            "tokens",
        ] {
            assert!(s.parse::<SerializerSpec>().is_err(), "{s}");
        }
    }
}
