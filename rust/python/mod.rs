//! The Python module `durable_streams._core._native`: the only code that knows PyO3. One file per
//! capability, named after the parsing module it binds; [`errors`] maps every error of those
//! modules, once, to a class of `durable_streams._errors`, and [`pybuild`] builds Python
//! objects straight from JSON text.

mod batch;
mod encode;
mod errors;
mod http;
mod json;
mod pybuild;
mod sse;
mod state;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<sse::Control>()?;
    m.add_class::<sse::SseDecoder>()?;
    m.add_class::<batch::BatchBuilder>()?;
    m.add_class::<http::HttpResponseDecoder>()?;
    m.add_class::<json::JsonArrayReader>()?;
    m.add_function(wrap_pyfunction!(json::parse_json_array, m)?)?;
    m.add_function(wrap_pyfunction!(json::split_json_array, m)?)?;
    m.add_function(wrap_pyfunction!(encode::encode_json, m)?)?;
    m.add_function(wrap_pyfunction!(state::fold_changes, m)?)?;
    Ok(())
}
