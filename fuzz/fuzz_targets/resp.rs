//! Fuzz target: RESP framing (`kombu_redis::resp::FrameBuf`). The same bytes are fed whole, one byte
//! at a time, in pseudo-random chunks, and through `spare`/`filled` as a socket read would; the frames
//! taken off the buffer, and whether it ends in an error, must not depend on how the input was split.
//! Every frame also goes through the pub/sub classifier.

#![no_main]

use kombu_redis::resp::{classify, Frame, FrameBuf};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    error: bool,
    pending: usize,
}

/// Feeds `data` in the chunk sizes `sizes` yields (via `extend`, or `spare`+`filled`).
fn feed(data: &[u8], mut sizes: impl FnMut() -> usize, socket_like: bool) -> Outcome {
    let mut fb = FrameBuf::new();
    let mut out = Outcome { frames: Vec::new(), error: false, pending: 0 };
    let mut rest = data;
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if socket_like {
            // A read that asks for more room than it fills, like a socket read.
            let spare = fb.spare(n + 7);
            let len = spare.len();
            spare[..n].copy_from_slice(chunk);
            fb.filled(len, n);
        } else {
            fb.extend(chunk);
        }
        loop {
            match fb.next_frame() {
                Ok(Some(frame)) => out.frames.push(frame),
                Ok(None) => break,
                Err(_) => {
                    out.error = true;
                    return out;
                }
            }
        }
    }
    out.pending = fb.pending();
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = feed(data, || usize::MAX, false);
    let bytewise = feed(data, || 1, false);
    assert_eq!(bytewise, whole, "one byte at a time");
    // xorshift, seeded from the input, for chunk sizes 1..=16.
    let mut state =
        data.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 16) as usize + 1
    };
    assert_eq!(feed(data, &mut next, false), whole, "random chunks");
    assert_eq!(feed(data, &mut next, true), whole, "spare/filled");
    for frame in whole.frames {
        let _ = classify(frame, b"__redis__:invalidate");
    }
});
