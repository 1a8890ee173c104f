//! Native core of the `durable_streams` Python client.
//!
//! The parsing modules ([`json`], [`framer`], [`sse`], [`control`], [`http`], [`base64`],
//! [`encode`], [`batch`], [`state`]) are plain Rust: no Python types, errors that carry byte
//! positions, testable with `cargo test --no-default-features`. [`python`] (feature `python`)
//! is the binding, split by capability: it builds Python objects and maps every error, once,
//! to the classes of `durable_streams._errors`.

pub mod base64;
pub mod batch;
pub mod control;
pub mod encode;
pub mod framer;
pub mod http;
pub mod json;
pub mod sse;
pub mod state;

#[cfg(feature = "python")]
mod python;
