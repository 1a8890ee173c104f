//! Append bodies: `BatchBuilder`, over the batch assembler of [`crate::batch`].

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};
use pyo3::{PyTraverseError, PyVisit};

use crate::batch::Batch;

use super::encode::encode_value;
use super::errors::{json_err, type_name};

/// What [`BatchBuilder::offer`] leaves the producer to do.
const TAKEN: u8 = 0;
const TAKEN_FIRST: u8 = 1;
const TAKEN_FILLED: u8 = 2;
const NOT_TAKEN: u8 = 3;

#[pyclass(module = "durable_streams._core._native", name = "BatchBuilder")]
pub(crate) struct BatchBuilder {
    core: Batch,
    /// `offer` takes a message only while the open batch is below this many bytes.
    #[pyo3(get, set)]
    room: i64,
    /// `offer` says when the open batch reaches this many messages (0: no limit).
    #[pyo3(get, set)]
    max_items: usize,
    /// `offer` takes nothing while false.
    #[pyo3(get, set)]
    accepting: bool,
    /// What `add` calls with `(item, outcome)` when `offer` leaves something to do.
    #[pyo3(get, set)]
    on_outcome: Option<Py<PyAny>>,
}

impl BatchBuilder {
    fn push_one(&mut self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        let json_mode = self.core.json_mode();
        // The usual JSON message first, written straight into the body.
        if json_mode && (item.cast_exact::<PyDict>().is_ok() || item.cast_exact::<PyList>().is_ok())
        {
            return self.core.push_written(|buf| encode_value(buf, item, 0));
        }
        if let Ok(b) = item.cast::<PyBytes>() {
            return self.push_bytes(b.as_bytes());
        }
        if let Ok(s) = item.cast::<PyString>() {
            return self.push_bytes(s.to_str()?.as_bytes());
        }
        if let Ok(b) = item.cast::<PyByteArray>() {
            return self.push_bytes(&b.to_vec());
        }
        if item.is_instance_of::<pyo3::types::PyMemoryView>() {
            let bytes = item.call_method0("tobytes")?;
            return self.push_bytes(bytes.cast::<PyBytes>()?.as_bytes());
        }
        if !json_mode {
            return Err(PyTypeError::new_err(format!(
                "BatchBuilder without json_mode takes str or bytes-like items, not {}",
                type_name(item)
            )));
        }
        self.core.push_written(|buf| encode_value(buf, item, 0))
    }

    fn push_bytes(&mut self, b: &[u8]) -> PyResult<bool> {
        if self.core.json_mode() {
            self.core.push_json_text(b).map_err(json_err)
        } else {
            Ok(self.core.push_encoded(b))
        }
    }
}

#[pymethods]
impl BatchBuilder {
    #[new]
    fn new(json_mode: bool, max_batch_bytes: i64) -> PyResult<Self> {
        if max_batch_bytes <= 0 {
            return Err(PyValueError::new_err("max_batch_bytes must be positive"));
        }
        let cap = usize::try_from(max_batch_bytes).unwrap_or(usize::MAX);
        Ok(Self {
            core: Batch::new(json_mode, cap),
            room: i64::MAX,
            max_items: 0,
            accepting: true,
            on_outcome: None,
        })
    }

    #[getter]
    fn json_mode(&self) -> bool {
        self.core.json_mode()
    }

    #[getter]
    fn max_batch_bytes(&self) -> usize {
        self.core.max_bytes()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.core.nbytes()
    }

    fn __len__(&self) -> usize {
        self.core.len()
    }

    fn push(&mut self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.push_one(item)
    }

    /// One message for a producer, in one call: `NOT_TAKEN` (3) while not accepting, when
    /// the open batch has `room` bytes or more, or when the message does not fit it (seal,
    /// then push); otherwise taken, and `TAKEN_FIRST` (1) when it opened the batch,
    /// `TAKEN_FILLED` (2) when the batch now has `max_items`, else `TAKEN` (0).
    fn offer(&mut self, item: &Bound<'_, PyAny>) -> PyResult<u8> {
        if !self.accepting || i64::try_from(self.core.nbytes()).unwrap_or(i64::MAX) >= self.room {
            return Ok(NOT_TAKEN);
        }
        if !self.push_one(item)? {
            return Ok(NOT_TAKEN);
        }
        let count = self.core.len();
        Ok(if count == self.max_items {
            TAKEN_FILLED
        } else if count == 1 {
            TAKEN_FIRST
        } else {
            TAKEN
        })
    }

    /// `offer(item)`, then `on_outcome(item, outcome)` unless the outcome is `TAKEN`: a
    /// producer's `append_nowait` in one call from Python, its own code run only when there
    /// is something to do (a batch to open or seal, or the slow path).
    fn add(slf: &Bound<'_, Self>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let outcome = slf.borrow_mut().offer(item)?;
        if outcome == TAKEN {
            return Ok(());
        }
        let on_outcome = slf
            .borrow()
            .on_outcome
            .as_ref()
            .map(|f| f.clone_ref(slf.py()));
        match on_outcome {
            Some(f) => f.call1(slf.py(), (item, outcome)).map(drop),
            None => Err(PyValueError::new_err(
                "BatchBuilder.add needs on_outcome for what offer leaves to do",
            )),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(f) = &self.on_outcome {
            visit.call(f)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.on_outcome = None;
    }

    fn push_many(&mut self, items: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut n = 0;
        if let Ok(list) = items.cast::<PyList>() {
            for item in list.iter() {
                if !self.push_one(&item)? {
                    break;
                }
                n += 1;
            }
        } else {
            for item in items.try_iter()? {
                if !self.push_one(&item?)? {
                    break;
                }
                n += 1;
            }
        }
        Ok(n)
    }

    fn take<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.core.take())
    }
}
