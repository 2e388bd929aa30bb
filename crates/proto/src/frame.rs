//! Length-prefixed framing for the WebTransport control stream, as a sans-IO encoder/decoder.
//!
//! Owns the stream's byte layout: each frame is a 4-byte big-endian payload length followed by
//! that many bytes (one MessagePack message). The decoder is fed whatever bytes arrived and
//! hands out complete frames; it never holds more than one frame's payload, and an oversized
//! frame is skipped (its length is known) so one bad frame does not cost the connection.

use crate::error::FrameError;

/// Bytes in a frame's length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Appends `payload` to `out` as one frame.
pub fn encode_frame(payload: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= max_len)
        .ok_or(FrameError::TooLarge {
            len: payload.len(),
            max: max_len,
        })?;
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[derive(Debug)]
enum State {
    Header {
        bytes: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    Payload {
        len: usize,
        buf: Vec<u8>,
    },
    Skip {
        remaining: usize,
    },
}

/// Turns a byte stream back into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    max_len: usize,
    state: State,
}

const FRESH: State = State::Header {
    bytes: [0; FRAME_HEADER_LEN],
    have: 0,
};

/// Growth step for a payload buffer, so a peer's claimed length does not reserve memory it
/// never sends.
const GROW_STEP: usize = 64 * 1024;

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameDecoder {
            max_len,
            state: FRESH,
        }
    }

    /// Consumes bytes from the front of `input` up to the end of the next frame.
    ///
    /// Returns `Ok(Some(frame))` when a frame completed, `Ok(None)` when `input` ran out first
    /// (feed more later), and an error for a bad frame, after which decoding simply goes on:
    /// call again with the rest of `input`.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            match &mut self.state {
                State::Header { bytes, have } => {
                    let take = (FRAME_HEADER_LEN - *have).min(input.len());
                    bytes[*have..*have + take].copy_from_slice(&input[..take]);
                    *have += take;
                    *input = &input[take..];
                    if *have < FRAME_HEADER_LEN {
                        return Ok(None);
                    }
                    let len = u32::from_be_bytes(*bytes) as usize;
                    if len == 0 {
                        self.state = FRESH;
                        return Err(FrameError::Empty);
                    }
                    if len > self.max_len {
                        self.state = State::Skip { remaining: len };
                        return Err(FrameError::TooLarge {
                            len,
                            max: self.max_len,
                        });
                    }
                    self.state = State::Payload {
                        len,
                        buf: Vec::with_capacity(len.min(GROW_STEP)),
                    };
                }
                State::Payload { len, buf } => {
                    let take = (*len - buf.len()).min(input.len());
                    buf.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if buf.len() < *len {
                        return Ok(None);
                    }
                    let frame = std::mem::take(buf);
                    self.state = FRESH;
                    return Ok(Some(frame));
                }
                State::Skip { remaining } => {
                    let take = (*remaining).min(input.len());
                    *remaining -= take;
                    *input = &input[take..];
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    self.state = FRESH;
                }
            }
        }
    }

    /// Whether the decoder is between frames (nothing partial buffered).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(decoder: &mut FrameDecoder, mut input: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match decoder.decode(&mut input) {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    #[test]
    fn frames_survive_any_split() {
        let mut stream = Vec::new();
        encode_frame(b"hello", 100, &mut stream).unwrap();
        encode_frame(&[7; 70], 100, &mut stream).unwrap();
        for split in 0..=stream.len() {
            let mut d = FrameDecoder::new(100);
            let mut got = frames_of(&mut d, &stream[..split]);
            got.extend(frames_of(&mut d, &stream[split..]));
            assert_eq!(
                got,
                vec![Ok(b"hello".to_vec()), Ok(vec![7; 70])],
                "split {split}"
            );
            assert!(d.is_idle());
        }
    }

    #[test]
    fn byte_at_a_time_works() {
        let mut stream = Vec::new();
        encode_frame(b"abc", 10, &mut stream).unwrap();
        let mut d = FrameDecoder::new(10);
        let mut got = Vec::new();
        for b in &stream {
            got.extend(frames_of(&mut d, std::slice::from_ref(b)));
        }
        assert_eq!(got, vec![Ok(b"abc".to_vec())]);
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_the_next_one_decodes() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&50u32.to_be_bytes());
        stream.extend_from_slice(&[1; 50]);
        encode_frame(b"ok", 10, &mut stream).unwrap();
        let mut d = FrameDecoder::new(10);
        assert_eq!(
            frames_of(&mut d, &stream),
            vec![
                Err(FrameError::TooLarge { len: 50, max: 10 }),
                Ok(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn an_empty_frame_is_an_error_and_decoding_goes_on() {
        let mut stream = vec![0, 0, 0, 0];
        encode_frame(b"x", 10, &mut stream).unwrap();
        let mut d = FrameDecoder::new(10);
        assert_eq!(
            frames_of(&mut d, &stream),
            vec![Err(FrameError::Empty), Ok(b"x".to_vec())]
        );
    }

    #[test]
    fn a_huge_claimed_length_reserves_little() {
        let mut d = FrameDecoder::new(usize::MAX);
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(d.decode(&mut input), Ok(None));
        match &d.state {
            State::Payload { buf, .. } => assert!(buf.capacity() <= GROW_STEP),
            other => panic!("unexpected state {other:?}"),
        }
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut out = Vec::new();
        assert_eq!(
            encode_frame(&[0; 11], 10, &mut out),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(encode_frame(&[], 10, &mut out), Err(FrameError::Empty));
        assert!(out.is_empty());
    }
}
