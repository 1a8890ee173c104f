//! The HTTP response decoder must never panic, never hand out more body than it was given,
//! and chunking must never change what it produces (parts, where it stops, its error).
#![no_main]

use durable_streams_core::http::{HttpError, Part, ResponseDecoder};
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<(u8, Vec<u8>)>, usize, Result<(), HttpError>);

fn run(chunks: &[&[u8]], cap: usize) -> Outcome {
    let mut dec = ResponseDecoder::new(cap);
    let mut out = Vec::new();
    let mut taken = 0;
    for c in chunks {
        let step = dec.feed(c, |p: Part<'_>| {
            out.push(match p {
                Part::Head(h) => (0, format!("{} {:?}", h.status, h.headers).into_bytes()),
                Part::Body(b) => (1, b.to_vec()),
                Part::End => (2, Vec::new()),
            });
            Ok::<(), HttpError>(())
        });
        match step {
            Ok(n) => {
                taken += n;
                if n < c.len() {
                    return (merge(out), taken, Ok(()));
                }
            }
            Err(e) => return (merge(out), taken, Err(e)),
        }
    }
    let end = dec.finish();
    (merge(out), taken, end)
}

/// Adjacent body slices joined: how the body is sliced depends on the chunking.
fn merge(parts: Vec<(u8, Vec<u8>)>) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    for (kind, bytes) in parts {
        match out.last_mut() {
            Some((1, last)) if kind == 1 => last.extend_from_slice(&bytes),
            _ => out.push((kind, bytes)),
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else { return };
    let cap = 16 + usize::from(split) * 8;
    let at = usize::from(split) % (data.len() + 1);
    let (a, b) = data.split_at(at);
    let whole = run(&[data], cap);
    let body: usize = whole.0.iter().filter(|p| p.0 == 1).map(|p| p.1.len()).sum();
    assert!(body <= data.len());
    // An error cuts the input short: the parts before it may differ by where the cut fell,
    // but the error itself must be the same.
    let parts = run(&[a, b], cap);
    if whole.2.is_ok() && parts.2.is_ok() {
        assert_eq!(whole, parts);
    } else {
        assert_eq!(whole.2, parts.2);
    }
});
