//! Untrusted tensor files: safetensors, npy and raw parsers. Whatever parses must write back
//! to the very same bytes, and densifying it as an FL payload must return or err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lmgc_core::io::{Format, SourceFile};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Safetensors, Format::Npy, Format::RawF32] {
        if let Ok(file) = SourceFile::parse(format, data) {
            assert_eq!(file.to_bytes(), data);
            let _ = lmgc_core::payload::densify(&file.gradient, 1 << 26);
        }
    }
});
