//! The SSE decoder must never panic, and chunking must never change what it produces.
#![no_main]

use durable_streams_core::sse::{Decoder, Event, SseError};
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[&[u8]], cap: usize) -> Result<Vec<(u8, Vec<u8>, u64)>, SseError> {
    let mut dec = Decoder::new(cap);
    let mut out = Vec::new();
    for c in chunks {
        dec.feed(c, |e: Event<'_>| {
            let kind = e.kind as u8;
            let _ = durable_streams_core::control::parse(e.data);
            let _ = durable_streams_core::base64::decode(e.data);
            let _ = durable_streams_core::json::split_array(e.data);
            out.push((kind, e.data.to_vec(), e.stream_position(e.data.len())));
            Ok::<(), SseError>(())
        })?;
    }
    Ok(out)
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else { return };
    let cap = 1 + usize::from(split) * 4;
    let at = usize::from(split) % (data.len() + 1);
    let (a, b) = data.split_at(at);
    let whole = run(&[data], cap);
    let parts = run(&[a, b], cap);
    assert_eq!(whole, parts);
});
