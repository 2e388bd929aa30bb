//! Any bytes through both message decoders: must return a message or an error, never panic.
//! A message that decodes must encode again and decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_proto::{Encoding, decode, encode, limits};

fuzz_target!(|data: &[u8]| {
    for enc in [Encoding::MessagePack, Encoding::Json] {
        if let Ok(message) = decode(data, enc, limits::MAX_RELAY_FRAME) {
            let bytes = encode(&message, enc).expect("a decoded message encodes");
            let again = decode(&bytes, enc, usize::MAX).expect("an encoded message decodes");
            assert_eq!(again, message);
        }
    }
});
