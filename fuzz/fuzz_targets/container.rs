//! Untrusted `.lmgc` bytes through parse, validation and decoding (every codec, including the
//! built-in prior). Must never panic, and anything that decodes must match its checksum.
//!
//! Each input is tried as it is and once more with its header hash recomputed: the hash
//! rejects almost every mutated header, which would hide the header decoder and the
//! validation behind it from the fuzzer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lmgc_core::container::{decompress, parse, DecodeLimits};
use xxhash_rust::xxh3::xxh3_64;

fn run(data: &[u8]) {
    // A small output cap keeps each run fast; the limit check itself is under test too.
    let limits = DecodeLimits { max_output: 1 << 20, trusted_input: false };
    if let Ok(c) = parse(data, &limits) {
        assert!(c.header.payload_len <= limits.max_output);
    }
    let _ = decompress(data, &limits, None, &|_| {});
}

fuzz_target!(|data: &[u8]| {
    run(data);
    if data.len() >= 13 {
        let header_len = u32::from_le_bytes([data[9], data[10], data[11], data[12]]) as usize;
        if let Some(end) = 13usize.checked_add(header_len).filter(|&e| e + 8 <= data.len()) {
            let mut fixed = data.to_vec();
            let hash = xxh3_64(&data[13..end]).to_le_bytes();
            fixed[end..end + 8].copy_from_slice(&hash);
            run(&fixed);
        }
    }
});
