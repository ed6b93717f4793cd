//! Frames on QUIC streams.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{self, check_len};
use crate::{Error, Result};

pub(crate) async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, msg: &T) -> Result<()> {
    send.write_all(&wire::encode(msg))
        .await
        .map_err(|e| Error::Connection(format!("sending: {e}")))
}

/// The next frame, or `None` when the stream ends cleanly between frames.
pub(crate) async fn read_frame<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<Option<T>> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(_)) => {
            return Err(Error::Protocol("stream ended inside a frame length".into()));
        }
        Err(quinn::ReadExactError::ReadError(e)) => {
            return Err(Error::Connection(format!("receiving: {e}")));
        }
    }
    let n = check_len(u32::from_le_bytes(len))?;
    let mut body = vec![0u8; n];
    recv.read_exact(&mut body).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => {
            Error::Protocol("stream ended inside a frame".into())
        }
        quinn::ReadExactError::ReadError(e) => Error::Connection(format!("receiving: {e}")),
    })?;
    wire::decode(&body).map(Some)
}
