//! The range coder: [`constriction`]'s queue (FIFO) range coder with 32-bit words and 24-bit
//! probabilities, driven by [`FrequencyTable`]s.
//!
//! Tables of lower precision are coded exactly by scaling them up to 24 bits (multiplying
//! every frequency by a power of two does not change a probability). A stream is a whole
//! number of 32-bit words, stored little-endian.

use std::borrow::Borrow;
use std::num::NonZeroU32;

use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel};
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::{Decode, Encode};

use crate::cdf::{FrequencyTable, Precision};
use crate::{Error, Result};

const CODER_PRECISION: usize = 24;

/// Adapts a table to constriction's model traits.
struct Model<'a> {
    table: &'a FrequencyTable,
    shift: u32,
}

impl<'a> Model<'a> {
    fn new(table: &'a FrequencyTable) -> Self {
        Model {
            table,
            shift: u32::from(Precision::MAX.bits() - table.precision().bits()),
        }
    }
}

impl EntropyModel<CODER_PRECISION> for Model<'_> {
    type Symbol = usize;
    type Probability = u32;
}

impl DecoderModel<CODER_PRECISION> for Model<'_> {
    fn quantile_function(&self, quantile: u32) -> (usize, u32, NonZeroU32) {
        let (s, start, f) = self.table.lookup(quantile >> self.shift);
        // `lookup` only returns symbols of non-zero frequency.
        let f = NonZeroU32::new(f << self.shift).unwrap_or(NonZeroU32::MIN);
        (s, start << self.shift, f)
    }
}

/// A symbol's share of the coder's range: `[cumulative, cumulative + frequency)` out of
/// `2^24`. All an encoder needs from a table, so a table can be dropped (or never leave the
/// device that built it) once its symbol's interval is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Start of the interval, in units of `2^-24`.
    pub cumulative: u32,
    /// Width of the interval (> 0), in units of `2^-24`.
    pub frequency: NonZeroU32,
}

impl Interval {
    /// The interval of `symbol` under `table`; `None` for a symbol of frequency 0.
    pub fn of(symbol: usize, table: &FrequencyTable) -> Option<Self> {
        let shift = u32::from(Precision::MAX.bits() - table.precision().bits());
        Some(Interval {
            cumulative: table.cumulative(symbol) << shift,
            frequency: NonZeroU32::new(table.frequency(symbol) << shift)?,
        })
    }
}

impl EntropyModel<CODER_PRECISION> for Interval {
    type Symbol = ();
    type Probability = u32;
}

impl EncoderModel<CODER_PRECISION> for Interval {
    fn left_cumulative_and_probability(&self, _: impl Borrow<()>) -> Option<(u32, NonZeroU32)> {
        Some((self.cumulative, self.frequency))
    }
}

/// Encodes symbols into one stream.
#[derive(Debug, Default)]
pub struct Encoder {
    inner: DefaultRangeEncoder,
}

impl Encoder {
    /// A fresh, empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `symbol` under `table`. A symbol of frequency 0 is an error.
    pub fn encode(&mut self, symbol: usize, table: &FrequencyTable) -> Result<()> {
        let interval = Interval::of(symbol, table).ok_or_else(|| {
            Error::Internal(format!(
                "symbol {symbol} has zero probability under its table"
            ))
        })?;
        self.encode_interval(interval)
    }

    /// Appends a symbol given by its interval (see [`Interval::of`]).
    pub fn encode_interval(&mut self, interval: Interval) -> Result<()> {
        if u64::from(interval.cumulative) + u64::from(interval.frequency.get())
            > 1 << CODER_PRECISION
        {
            return Err(Error::Internal(format!(
                "interval {interval:?} exceeds 2^24"
            )));
        }
        self.inner
            .encode_symbol((), interval)
            .map_err(|e| Error::Internal(format!("range coder refused {interval:?}: {e}")))
    }

    /// Finishes the stream and returns its bytes.
    pub fn finish(self) -> Vec<u8> {
        let words = match self.inner.into_compressed() {
            Ok(w) => w,
            Err(never) => match never {},
        };
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// Decodes symbols from one stream.
pub struct Decoder {
    inner: DefaultRangeDecoder,
}

impl Decoder {
    /// Opens a stream. Its length must be a whole number of 32-bit words.
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(4) {
            return Err(Error::corrupt(format!(
                "stream of {} bytes is not a whole number of words",
                bytes.len()
            )));
        }
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let inner = match DefaultRangeDecoder::from_compressed(words) {
            Ok(d) => d,
            Err(never) => match never {},
        };
        Ok(Decoder { inner })
    }

    /// Decodes the next symbol under `table`.
    pub fn decode(&mut self, table: &FrequencyTable) -> Result<usize> {
        self.inner
            .decode_symbol(Model::new(table))
            .map_err(|_| Error::corrupt("range decoder reached an invalid state (corrupt stream)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A deterministic pseudo-random sequence (splitmix64).
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn long_stream_is_within_a_tenth_of_a_percent_of_ideal() {
        let mut next = rng(7);
        let tables: Vec<FrequencyTable> = (0..16)
            .map(|_| {
                let w: Vec<u64> = (0..64)
                    .map(|_| next() % 1000 + (next() % 3) * 100_000)
                    .collect();
                FrequencyTable::from_weights(&w, None, Precision::MAX).unwrap()
            })
            .collect();
        let mut enc = Encoder::new();
        let mut ideal = 0.0;
        let mut symbols = Vec::new();
        for i in 0..200_000 {
            let t = &tables[i % tables.len()];
            // Sample from the table so the ideal length is what a good model would pay.
            let (s, _, _) = t.lookup((next() % u64::from(Precision::MAX.total())) as u32);
            ideal += t.cost_bits(s);
            enc.encode(s, t).unwrap();
            symbols.push(s);
        }
        let bytes = enc.finish();
        let real = bytes.len() as f64 * 8.0;
        assert!(real <= ideal * 1.001, "real {real} bits, ideal {ideal}");
        let mut dec = Decoder::new(&bytes).unwrap();
        for (i, &s) in symbols.iter().enumerate() {
            assert_eq!(dec.decode(&tables[i % tables.len()]).unwrap(), s);
        }
    }

    proptest! {
        #[test]
        fn round_trip_any_precision(bits in 16u8..=24, symbols in prop::collection::vec(0usize..5, 0..500)) {
            let t = FrequencyTable::from_weights(&[5, 1, 0, 9, 1], Some(&[true, true, false, true, true]), Precision::new(bits).unwrap()).unwrap();
            let symbols: Vec<usize> = symbols.into_iter().filter(|&s| s != 2).collect();
            let mut enc = Encoder::new();
            for &s in &symbols { enc.encode(s, &t).unwrap(); }
            let bytes = enc.finish();
            let mut dec = Decoder::new(&bytes).unwrap();
            for &s in &symbols { prop_assert_eq!(dec.decode(&t).unwrap(), s); }
        }

        #[test]
        fn garbage_streams_do_not_panic(words in prop::collection::vec(any::<u32>(), 0..20)) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let t = FrequencyTable::from_weights(&[1, 1, 0, 3], Some(&[true, true, false, true]), Precision::MAX).unwrap();
            let mut dec = Decoder::new(&bytes).unwrap();
            for _ in 0..100 {
                match dec.decode(&t) { Ok(s) => prop_assert!(s != 2), Err(_) => break }
            }
        }
    }

    #[test]
    fn masked_symbol_is_refused() {
        let t =
            FrequencyTable::from_weights(&[1, 1], Some(&[true, false]), Precision::MAX).unwrap();
        assert!(Encoder::new().encode(1, &t).is_err());
        assert!(Decoder::new(&[0; 3]).is_err());
    }
}
