//! SSE: `SseDecoder`, which turns each event into its Python value in the stream's data
//! mode, and `Control`, the value of a `control` event.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::base64::{self, Base64Error};
use crate::control::{self, ControlError};
use crate::sse::{self, Event, EventKind};

use super::errors::{type_name, ErrorClass, Fault};
use super::json::{parse_array_py, split_array_py};

#[pyclass(
    frozen,
    eq,
    hash,
    module = "durable_streams._core._native",
    name = "Control"
)]
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct Control {
    #[pyo3(get)]
    next_offset: String,
    #[pyo3(get)]
    cursor: Option<String>,
    #[pyo3(get)]
    up_to_date: bool,
    #[pyo3(get)]
    closed: bool,
}

#[pymethods]
impl Control {
    #[new]
    #[pyo3(signature = (next_offset, cursor = None, up_to_date = false, closed = false))]
    fn new(next_offset: String, cursor: Option<String>, up_to_date: bool, closed: bool) -> Self {
        Self {
            next_offset,
            cursor,
            up_to_date,
            closed,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let next_offset = PyString::new(py, &self.next_offset).repr()?;
        let cursor = match &self.cursor {
            Some(c) => PyString::new(py, c).repr()?.to_string(),
            None => "None".to_owned(),
        };
        let b = |v: bool| if v { "True" } else { "False" };
        Ok(format!(
            "Control(next_offset={next_offset}, cursor={cursor}, up_to_date={}, closed={})",
            b(self.up_to_date),
            b(self.closed)
        ))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DataMode {
    Json,
    JsonRaw,
    Text,
    Base64,
}

#[pyclass(module = "durable_streams._core._native", name = "SseDecoder")]
pub(crate) struct SseDecoder {
    core: sse::Decoder,
    mode: DataMode,
    /// An error met after some events of a chunk completed: they are returned first.
    held: Option<PyErr>,
}

/// The Python value of one dispatched `data` or `control` event.
fn interpret<'py>(py: Python<'py>, mode: DataMode, ev: &Event<'_>) -> PyResult<Bound<'py, PyAny>> {
    let at = |off: usize| ev.stream_position(off);
    match ev.kind {
        EventKind::Control => match control::parse(ev.data) {
            Ok(c) => Ok(Bound::new(
                py,
                Control {
                    next_offset: c.next_offset,
                    cursor: c.cursor,
                    up_to_date: c.up_to_date,
                    closed: c.closed,
                },
            )?
            .into_any()),
            Err(ControlError { message, offset }) => {
                Err(Fault::new(ErrorClass::Sse, message, at(offset)).into())
            }
        },
        _ => match mode {
            DataMode::Json => parse_array_py(py, ev.data)
                .map(Bound::into_any)
                .map_err(|f| {
                    let position = at(f.position as usize);
                    Fault { position, ..f }.into()
                }),
            DataMode::JsonRaw => split_array_py(py, ev.data)
                .map(Bound::into_any)
                .map_err(|f| {
                    let position = at(f.position as usize);
                    Fault { position, ..f }.into()
                }),
            DataMode::Text => match std::str::from_utf8(ev.data) {
                Ok(s) => Ok(PyString::new(py, s).into_any()),
                Err(e) => Err(Fault::new(
                    ErrorClass::Sse,
                    "invalid UTF-8 in SSE data",
                    at(e.valid_up_to()),
                )
                .into()),
            },
            DataMode::Base64 => match base64::decode(ev.data) {
                Ok(bytes) => Ok(PyBytes::new(py, &bytes).into_any()),
                Err(Base64Error { kind, position }) => {
                    Err(Fault::new(ErrorClass::Base64, kind.message(), at(position)).into())
                }
            },
        },
    }
}

#[pymethods]
impl SseDecoder {
    #[new]
    #[pyo3(signature = (data_mode, max_event_bytes = 16_777_216))]
    fn new(data_mode: &Bound<'_, PyAny>, max_event_bytes: i64) -> PyResult<Self> {
        let Ok(name) = data_mode.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "data_mode must be a str, not {}",
                type_name(data_mode)
            )));
        };
        let mode = match name.to_str()? {
            "json" => DataMode::Json,
            "json-raw" => DataMode::JsonRaw,
            "text" => DataMode::Text,
            "base64" => DataMode::Base64,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "data_mode must be 'json', 'json-raw', 'text' or 'base64', not {}",
                    name.repr()?
                )))
            }
        };
        if max_event_bytes <= 0 {
            return Err(PyValueError::new_err("max_event_bytes must be positive"));
        }
        let cap = usize::try_from(max_event_bytes).unwrap_or(usize::MAX);
        Ok(Self {
            core: sse::Decoder::new(cap),
            mode,
            held: None,
        })
    }

    #[getter]
    fn max_event_bytes(&self) -> usize {
        self.core.max_event_bytes()
    }

    #[getter]
    fn last_event_id(&self) -> &str {
        self.core.last_event_id()
    }

    #[getter]
    fn retry_ms(&self) -> Option<u64> {
        self.core.retry_ms()
    }

    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        chunk: &Bound<'py, PyBytes>,
    ) -> PyResult<Bound<'py, PyList>> {
        if let Some(held) = self.held.take() {
            return Err(held);
        }
        let out = PyList::empty(py);
        let mode = self.mode;
        let fed = self
            .core
            .feed(chunk.as_bytes(), |ev: Event<'_>| -> PyResult<()> {
                out.append(interpret(py, mode, &ev)?)
            });
        match fed {
            Ok(()) => Ok(out),
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                self.held = Some(e);
                Ok(out)
            }
        }
    }

    /// The error held back by the last `feed`, which returned the events before it.
    fn take_error(&mut self) -> Option<PyErr> {
        self.held.take()
    }

    fn flush<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyList> {
        self.core.reset();
        PyList::empty(py)
    }
}
