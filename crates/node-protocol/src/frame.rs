//! Length-prefixed frames: `u32` big-endian length, then the payload. The reader learns the
//! length from the first four bytes ([`frame_len`]) and refuses anything above the cap before
//! allocating.

use crate::error::ProtocolError;

/// Largest frame payload: a 32 MiB module plus the request around it.
pub const MAX_FRAME_LEN: usize = (32 << 20) + (64 << 10);

/// The payload length announced by a frame header, checked against [`MAX_FRAME_LEN`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_FRAME_LEN => Ok(len),
        _ => Err(ProtocolError::FrameTooLarge {
            len: u64::from(len),
            max: MAX_FRAME_LEN,
        }),
    }
}

/// `payload` with its header.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME_LEN)
        .ok_or(ProtocolError::FrameTooLarge {
            len: payload.len() as u64,
            max: MAX_FRAME_LEN,
        })?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Splits one complete frame off the front of `buf`: `Ok(None)` when more bytes are needed,
/// else the payload and the bytes consumed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = frame_len(*header)?;
    Ok(buf.get(4..4 + len).map(|payload| (payload, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_more_bytes() {
        let frame = encode_frame(b"hello").unwrap_or_default();
        assert_eq!(&frame[..4], &[0, 0, 0, 5]);
        assert_eq!(split_frame(&frame), Ok(Some((&b"hello"[..], 9))));
        assert_eq!(split_frame(&frame[..8]), Ok(None));
        assert_eq!(split_frame(&frame[..3]), Ok(None));
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let err = frame_len([0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert!(frame_len((MAX_FRAME_LEN as u32).to_be_bytes()).is_ok());
        assert!(frame_len((MAX_FRAME_LEN as u32 + 1).to_be_bytes()).is_err());
    }
}
