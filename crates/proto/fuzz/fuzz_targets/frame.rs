//! Any byte stream, cut into any chunks, through the frame decoder and then the message
//! decoder: never a panic, never a frame above the limit, always progress.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_proto::{Encoding, FrameDecoder, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(knobs % 64) * 16 + 1;
    let chunk = usize::from(knobs / 64) * 7 + 1;
    let mut decoder = FrameDecoder::new(max);
    for piece in stream.chunks(chunk) {
        let mut input = piece;
        let mut rounds = 0;
        while !input.is_empty() {
            rounds += 1;
            assert!(rounds <= piece.len() + 1, "no progress");
            if let Ok(Some(frame)) = decoder.decode(&mut input) {
                assert!(!frame.is_empty() && frame.len() <= max);
                let _ = decode(&frame, Encoding::MessagePack, max);
            }
        }
    }
});
