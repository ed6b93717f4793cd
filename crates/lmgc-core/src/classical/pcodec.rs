//! pcodec (`pco`) on numeric blocks. Dtypes pco has no number type for (u8, i8, bool, bf16,
//! f16) are stored as they are, so every block still round-trips.

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress_into};

use crate::{DType, Error, Result};

trait LeBytes: pco::data_types::Number + Default {
    fn read(b: &[u8]) -> Self;
    fn write(self, out: &mut Vec<u8>);
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            fn read(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("caller passes one element"))
            }
            fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_bytes!(f64, f32, i64, i32, i16, u64, u32, u16);

fn enc<T: LeBytes>(data: &[u8]) -> Result<Vec<u8>> {
    let values: Vec<T> = data.chunks_exact(size_of::<T>()).map(T::read).collect();
    simple_compress(&values, &ChunkConfig::default())
        .map_err(|e| Error::Internal(format!("pco encoder: {e}")))
}

fn dec<T: LeBytes>(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    let n = len / size_of::<T>();
    let mut values = vec![T::default(); n];
    let progress = simple_decompress_into(coded, &mut values)
        .map_err(|e| Error::corrupt(format!("pco stream: {e}")))?;
    if progress.n_processed != n || !progress.finished {
        return Err(Error::corrupt(format!(
            "pco stream holds {} values, expected {n}",
            progress.n_processed
        )));
    }
    let mut out = Vec::with_capacity(len);
    for v in values {
        v.write(&mut out);
    }
    Ok(out)
}

pub fn encode(dtype: DType, data: &[u8]) -> Result<Vec<u8>> {
    match dtype {
        DType::F64 => enc::<f64>(data),
        DType::F32 => enc::<f32>(data),
        DType::I64 => enc::<i64>(data),
        DType::I32 => enc::<i32>(data),
        DType::I16 => enc::<i16>(data),
        DType::U64 => enc::<u64>(data),
        DType::U32 => enc::<u32>(data),
        DType::U16 => enc::<u16>(data),
        _ => Ok(data.to_vec()),
    }
}

pub fn decode(dtype: DType, coded: &[u8], len: usize) -> Result<Vec<u8>> {
    match dtype {
        DType::F64 => dec::<f64>(coded, len),
        DType::F32 => dec::<f32>(coded, len),
        DType::I64 => dec::<i64>(coded, len),
        DType::I32 => dec::<i32>(coded, len),
        DType::I16 => dec::<i16>(coded, len),
        DType::U64 => dec::<u64>(coded, len),
        DType::U32 => dec::<u32>(coded, len),
        DType::U16 => dec::<u16>(coded, len),
        _ => Ok(coded.to_vec()),
    }
}
