//! The JSON framers must never panic. Every element the whole-body framer returns must itself
//! be one valid value; a body read in parts, cut anywhere, must give the same elements, or
//! fail exactly when the whole body fails, at the same byte for any cut.
#![no_main]

use durable_streams_core::framer::ArrayFramer;
use durable_streams_core::json::{self, JsonError, JsonResult};
use libfuzzer_sys::fuzz_target;

fn in_parts(body: &[u8], step: usize, min_group: usize) -> JsonResult<Vec<Vec<u8>>> {
    let mut framer = ArrayFramer::new(min_group);
    let mut out = Vec::new();
    let mut take = |framer: &mut ArrayFramer, finished: bool| -> JsonResult<()> {
        if let Some((group, base)) = framer.group(finished)? {
            let mut elements = Vec::new();
            json::scan_group(group, |a, b| elements.push(group[a..b].to_vec())).map_err(|e| {
                JsonError {
                    kind: e.kind,
                    position: base + e.position,
                }
            })?;
            out.extend(elements);
            framer.consume();
        }
        Ok(())
    };
    for piece in body.chunks(step) {
        framer.push(piece)?;
        take(&mut framer, false)?;
    }
    take(&mut framer, true)?;
    Ok(out)
}

fuzz_target!(|input: &[u8]| {
    let Some((&knobs, data)) = input.split_first() else {
        return;
    };
    let whole = json::split_array(data);
    if let Ok(ranges) = &whole {
        for &(a, b) in ranges {
            assert_eq!(json::validate_value(&data[a..b]), Ok((0, b - a)));
        }
    }
    let _ = json::validate_value(data);

    let step = usize::from(knobs & 0x0f) + 1;
    let min_group = usize::from(knobs >> 4);
    let parts = in_parts(data, step, min_group);
    let at_once = in_parts(data, data.len().max(1), 0);
    match (&whole, &parts) {
        (Ok(ranges), Ok(elements)) => {
            let expect: Vec<Vec<u8>> = ranges.iter().map(|&(a, b)| data[a..b].to_vec()).collect();
            assert_eq!(&expect, elements);
        }
        (Err(_), Err(e)) => assert_eq!(at_once.unwrap_err(), *e),
        _ => panic!("whole {whole:?} but in parts {parts:?}"),
    }
});
