//! The Remoting frame decoder (`cluster::wire::read_frame`,
//! `decode_payload`) on arbitrary bytes.
//!
//! The input is a byte stream as a peer would send it: frames are read
//! from it until the first error. Every frame that decodes must encode
//! again, and that encoding must decode to the same frame (round trip). The
//! whole input is also decoded as one bare payload. Allocation is bounded by
//! the frame limit (`MAX_FRAME` here) plus what the decoder allocates for
//! what it actually read; `-malloc_limit_mb` in `scripts/fuzz-smoke` turns a
//! larger allocation into a crash.
#![no_main]

use cluster::wire::{Frame, HEADER_LEN, WireError, decode_payload, encode_frame, read_frame};
use libfuzzer_sys::fuzz_target;

/// The frame limit for the fuzz run: small, so that a header promising more
/// is refused as it is in production (1 MiB there).
const MAX_FRAME: usize = 64 * 1024;

fn round_trip(frame: &Frame) {
    let bytes = encode_frame(frame, usize::MAX).expect("a decoded frame encodes");
    let again: Frame = decode_payload(&bytes[HEADER_LEN..]).expect("an encoded frame decodes");
    assert_eq!(&again, frame, "decode, encode, decode changed the frame");
}

fuzz_target!(|data: &[u8]| {
    // A stream of frames, as `read_frame` sees it from a socket. Reading a
    // slice never waits, so `block_on` cannot hang.
    let mut stream = data;
    futures::executor::block_on(async {
        loop {
            match read_frame::<Frame, _>(&mut stream, MAX_FRAME).await {
                Ok(frame) => round_trip(&frame),
                Err(WireError::Closed { .. }) => break,
                Err(e) => {
                    // Every failure has a stable code.
                    assert!(e.code().starts_with("wire."), "{e:?}");
                    break;
                }
            }
        }
    });
    // The bare payload decoder on the whole input.
    if let Ok(frame) = decode_payload::<Frame>(data) {
        round_trip(&frame);
    }
});
