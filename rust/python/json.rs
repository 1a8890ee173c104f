//! JSON-mode bodies as Python objects or raw element bytes: whole (`parse_json_array`,
//! `split_json_array`) or as they arrive (`JsonArrayReader`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::framer::ArrayFramer;
use crate::json::{self, JsonError};

use super::errors::{json_err, ErrorClass, Fault};
use super::pybuild::{self, Stop};

/// A JSON-mode body as a list of Python objects; errors are at offsets into `body`.
pub(crate) fn parse_array_py<'py>(
    py: Python<'py>,
    body: &[u8],
) -> Result<Bound<'py, PyList>, Fault> {
    // The builder checks UTF-8 as it goes; a failure goes to the scanner, which checks it first.
    let start = json::skip_ws(body, 0);
    if start == body.len() {
        return Ok(PyList::empty(py));
    }
    if body[start] != b'[' {
        json::check_utf8(body)?;
        return Err(JsonError {
            kind: json::JsonErrorKind::ExpectedArray,
            position: start,
        }
        .into());
    }
    let built = match pybuild::build_array(py, body, start) {
        Ok((list, end)) if json::skip_ws(body, end) == body.len() => return Ok(list),
        Ok(_) => Stop::Invalid,
        Err(stop) => stop,
    };
    Err(match json::array_error(body) {
        Some(e) => e.into(),
        None => stopped(built, 0),
    })
}

/// A build the scanner found no fault in: Python raised (out of memory: that exception goes
/// on), or (never expected) the two disagree.
#[cold]
fn stopped(stop: Stop, position: usize) -> Fault {
    match stop {
        Stop::Raised(e) => Fault {
            raised: Some(e),
            ..Fault::new(ErrorClass::Json, "", position as u64)
        },
        Stop::Invalid => Fault::new(ErrorClass::Json, "invalid JSON", position as u64),
    }
}

/// The raw bytes of each element `scan` finds in `s`; its errors pass through `json_fault`.
fn element_bytes<'py>(
    py: Python<'py>,
    s: &[u8],
    scan: impl FnOnce(&mut dyn FnMut(usize, usize)) -> json::JsonResult<()>,
    json_fault: impl FnOnce(JsonError) -> Fault,
) -> Result<Bound<'py, PyList>, Fault> {
    let list = PyList::empty(py);
    let mut err = None;
    scan(&mut |a, b| {
        if err.is_none() {
            err = list.append(PyBytes::new(py, &s[a..b])).err();
        }
    })
    .map_err(json_fault)?;
    match err {
        None => Ok(list),
        Some(e) => Err(Fault::new(ErrorClass::Json, e.to_string(), 0)),
    }
}

pub(crate) fn split_array_py<'py>(
    py: Python<'py>,
    body: &[u8],
) -> Result<Bound<'py, PyList>, Fault> {
    element_bytes(py, body, |f| json::scan_array(body, f), Fault::from)
}

#[pyfunction]
pub(crate) fn parse_json_array<'py>(py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyList>> {
    Ok(parse_array_py(py, body)?)
}

#[pyfunction]
pub(crate) fn split_json_array<'py>(py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyList>> {
    Ok(split_array_py(py, body)?)
}

/// A group of a body read in parts (see `framer`) as Python objects, or as the raw bytes
/// of each element; errors are at body positions (`base` is the group's).
fn group_py<'py>(
    py: Python<'py>,
    group: &[u8],
    base: usize,
    raw: bool,
) -> Result<Bound<'py, PyList>, Fault> {
    let at_base = |e: JsonError| -> Fault {
        JsonError {
            kind: e.kind,
            position: base + e.position,
        }
        .into()
    };
    if raw {
        return element_bytes(py, group, |f| json::scan_group(group, f), at_base);
    }
    let built = match pybuild::build_array(py, group, 0) {
        Ok((list, end)) if end == group.len() => return Ok(list),
        Ok(_) => Stop::Invalid,
        Err(stop) => stop,
    };
    Err(match json::scan_group(group, |_, _| {}) {
        Err(e) => at_base(e),
        Ok(()) => stopped(built, base),
    })
}

fn group_bytes(bytes: i64) -> PyResult<usize> {
    if bytes < 0 {
        return Err(PyValueError::new_err(
            "min_group_bytes must not be negative",
        ));
    }
    Ok(usize::try_from(bytes).unwrap_or(usize::MAX))
}

/// Reads a JSON-mode body as it arrives: whole elements come out a group at a time, each
/// of about `min_group_bytes` however much arrives at once.
#[pyclass(module = "durable_streams._core._native", name = "JsonArrayReader")]
pub(crate) struct JsonArrayReader {
    framer: ArrayFramer,
    raw: bool,
}

impl JsonArrayReader {
    fn take<'py>(&mut self, py: Python<'py>, finished: bool) -> PyResult<Bound<'py, PyList>> {
        let list = match self.framer.group(finished).map_err(json_err)? {
            None => return Ok(PyList::empty(py)),
            Some((group, base)) => group_py(py, group, base, self.raw)?,
        };
        self.framer.consume();
        Ok(list)
    }
}

#[pymethods]
impl JsonArrayReader {
    #[new]
    #[pyo3(signature = (raw = false, min_group_bytes = 1_048_576))]
    fn new(raw: bool, min_group_bytes: i64) -> PyResult<Self> {
        Ok(Self {
            framer: ArrayFramer::new(group_bytes(min_group_bytes)?),
            raw,
        })
    }

    #[getter]
    fn saw_array(&self) -> bool {
        self.framer.saw_array()
    }

    #[getter]
    fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    #[getter]
    fn get_min_group_bytes(&self) -> usize {
        self.framer.min_group_bytes()
    }

    #[setter]
    fn set_min_group_bytes(&mut self, bytes: i64) -> PyResult<()> {
        self.framer.set_min_group_bytes(group_bytes(bytes)?);
        Ok(())
    }

    /// The next bytes of the body; returns the elements of the first group they made ready
    /// (`next_group` gives the others).
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &[u8]) -> PyResult<Bound<'py, PyList>> {
        self.framer.push(chunk).map_err(json_err)?;
        self.take(py, false)
    }

    /// The elements of the next group ready in the bytes fed so far; `[]` when none is.
    fn next_group<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.take(py, false)
    }

    /// The body ended: the elements not returned yet; raises if the array is incomplete.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.take(py, true)
    }
}
