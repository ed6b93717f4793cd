//! An adaptive frequency model: counts that learn from the symbols seen, turned into a
//! [`FrequencyTable`] every so often. Encoder and decoder update it identically.

use crate::Result;
use crate::cdf::{FrequencyTable, Precision};

/// What a symbol adds to its count.
const INCREMENT: u32 = 24;
/// Counts are halved when their sum passes this, so the model tracks drifting statistics.
const COUNT_LIMIT: u32 = 1 << 16;
/// The table is rebuilt after this many updates at most (sooner while the model is young).
const MAX_PERIOD: u32 = 256;

/// Adaptive model over symbols `0..n`, every symbol always codable.
#[derive(Debug, Clone)]
pub struct AdaptiveModel {
    counts: Vec<u64>,
    total: u32,
    table: FrequencyTable,
    since_rebuild: u32,
    period: u32,
}

impl AdaptiveModel {
    /// A model over `n` symbols (`1 <= n <= 2^16`), starting uniform.
    pub fn new(n: usize) -> Result<Self> {
        let counts = vec![1u64; n];
        let table = FrequencyTable::from_weights(&counts, None, Precision::MAX)?;
        Ok(AdaptiveModel {
            counts,
            total: n as u32,
            table,
            since_rebuild: 0,
            period: 1,
        })
    }

    /// The current table.
    pub fn table(&self) -> &FrequencyTable {
        &self.table
    }

    /// Learns from one occurrence of `symbol`.
    pub fn update(&mut self, symbol: usize) {
        self.counts[symbol] += u64::from(INCREMENT);
        self.total += INCREMENT;
        if self.total > COUNT_LIMIT {
            self.total = 0;
            for c in &mut self.counts {
                *c = (*c).div_ceil(2);
                self.total += *c as u32;
            }
        }
        self.since_rebuild += 1;
        if self.since_rebuild >= self.period {
            self.since_rebuild = 0;
            self.period = (self.period * 2).min(MAX_PERIOD);
            // Cannot fail: the symbol count was valid at construction.
            let _ = self.table.refill_from_weights(&self.counts, None);
        }
    }
}
