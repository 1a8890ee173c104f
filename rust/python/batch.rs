//! Append bodies: `BatchBuilder`, over the batch assembler of [`crate::batch`].

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use crate::batch::Batch;

use super::encode::encode_value;
use super::errors::{json_err, type_name};

#[pyclass(module = "durable_streams._core._native", name = "BatchBuilder")]
pub(crate) struct BatchBuilder {
    core: Batch,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    fn push_one(&mut self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
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
        if !self.core.json_mode() {
            return Err(PyTypeError::new_err(format!(
                "BatchBuilder without json_mode takes str or bytes-like items, not {}",
                type_name(item)
            )));
        }
        self.scratch.clear();
        encode_value(&mut self.scratch, item, 0)?;
        Ok(self.core.push_encoded(&self.scratch))
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
            scratch: Vec::new(),
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
