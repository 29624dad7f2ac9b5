//! Framing: a `u32` big-endian length, then that many bytes of MessagePack.

use std::io::{self, Cursor};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::WireError;

/// The default limit on a frame's payload: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// Length of a frame header (the big-endian `u32` payload length).
pub const HEADER_LEN: usize = 4;

/// The limit actually in force: `max`, capped at what a `u32` header can
/// express.
fn effective_max(max: usize) -> usize {
    max.min(u32::MAX as usize)
}

/// Checks a payload length against the limit.
fn check_len(len: u64, max: usize) -> Result<(), WireError> {
    if len == 0 {
        return Err(WireError::Empty);
    }
    let max = effective_max(max);
    if len > max as u64 {
        return Err(WireError::Oversized { len, max });
    }
    Ok(())
}

/// Encodes `value` as one complete frame (header and payload), refusing a
/// payload over `max` bytes with `wire.oversized`.
pub fn encode_frame<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let mut buf = vec![0u8; HEADER_LEN];
    rmp_serde::encode::write(&mut buf, value).map_err(|e| WireError::Encode(e.to_string()))?;
    let len = (buf.len() - HEADER_LEN) as u64;
    check_len(len, max)?;
    // `check_len` capped `len` at `u32::MAX`.
    let header = u32::try_from(len)
        .map_err(|_| WireError::Oversized { len, max })?
        .to_be_bytes();
    buf[..HEADER_LEN].copy_from_slice(&header);
    Ok(buf)
}

/// Decodes one frame payload (without its header): it must hold exactly
/// one value and nothing after it.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(payload));
    let value = T::deserialize(&mut de).map_err(|e| WireError::Decode(e.to_string()))?;
    let used = de.position();
    if used != payload.len() as u64 {
        return Err(WireError::Decode(format!(
            "{} trailing bytes after the value",
            payload.len() as u64 - used
        )));
    }
    Ok(value)
}

fn read_error(e: io::Error) -> WireError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        WireError::Closed { mid_frame: true }
    } else {
        WireError::Io(e)
    }
}

/// Reads one frame and decodes its payload.
///
/// The header is checked before anything is allocated: a length of zero is
/// `wire.empty`, one over `max` is `wire.oversized` (the payload is then
/// left unread: drop the connection). A close between frames is
/// `wire.closed` with `mid_frame: false`, one inside a frame `mid_frame:
/// true`.
///
/// Not cancel safe: dropping the future part way loses the bytes read so
/// far, so keep one task reading a connection rather than racing this in a
/// `select!`.
pub async fn read_frame<T, R>(reader: &mut R, max: usize) -> Result<T, WireError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    // The first read tells a clean close (nothing at all) from a cut frame.
    let n = reader.read(&mut header).await.map_err(WireError::Io)?;
    if n == 0 {
        return Err(WireError::Closed { mid_frame: false });
    }
    reader
        .read_exact(&mut header[n..])
        .await
        .map_err(read_error)?;
    let len = u32::from_be_bytes(header);
    check_len(u64::from(len), max)?;
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await.map_err(read_error)?;
    decode_payload(&payload)
}

/// Encodes `value` and writes it as one frame, then flushes. A payload over
/// `max` bytes is refused with `wire.oversized` and nothing is written.
pub async fn write_frame<T, W>(writer: &mut W, value: &T, max: usize) -> Result<(), WireError>
where
    T: Serialize + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let buf = encode_frame(value, max)?;
    writer.write_all(&buf).await.map_err(WireError::Io)?;
    writer.flush().await.map_err(WireError::Io)
}
