//! The Python binding: with the object builder it calls (`pybuild`), the only module that
//! knows PyO3. Every error of the parsing modules is mapped here, once, to a class of
//! `durable_streams._errors` (imported and cached).

mod encode;
mod errors;
mod json;
mod pybuild;
mod sse;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PySet, PyString};

use crate::batch::Batch;
use crate::http::{self, Part};
use crate::state;

use encode::encode_value;
use errors::{json_err, type_name};

// ---------------------------------------------------------------------------------------------
// Batches.

#[pyclass(module = "durable_streams._core", name = "BatchBuilder")]
struct BatchBuilder {
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

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 responses.

#[pyclass(module = "durable_streams._core", name = "HttpResponseDecoder")]
struct HttpResponseDecoder {
    core: http::ResponseDecoder,
}

#[pymethods]
impl HttpResponseDecoder {
    #[new]
    #[pyo3(signature = (max_head_bytes = 65_536))]
    fn new(max_head_bytes: i64) -> PyResult<Self> {
        if max_head_bytes <= 0 {
            return Err(PyValueError::new_err("max_head_bytes must be positive"));
        }
        let cap = usize::try_from(max_head_bytes).unwrap_or(usize::MAX);
        Ok(Self {
            core: http::ResponseDecoder::new(cap),
        })
    }

    #[getter]
    fn done(&self) -> bool {
        self.core.done()
    }

    #[getter]
    fn close_delimited(&self) -> bool {
        self.core.close_delimited()
    }

    /// `(head, body, taken)`: the head `(status, headers)` if it completed in `data`, the
    /// body bytes in `data`, and how many bytes of `data` belong to this response.
    #[allow(clippy::type_complexity)]
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyBytes>,
    ) -> PyResult<(
        Option<(u16, Bound<'py, PyDict>)>,
        Bound<'py, PyBytes>,
        usize,
    )> {
        let input = data.as_bytes();
        let mut head: Option<(u16, Bound<'py, PyDict>)> = None;
        let mut first: Option<(usize, usize)> = None;
        let mut joined: Option<Vec<u8>> = None;
        let base = input.as_ptr() as usize;
        let taken = self.core.feed(input, |part: Part<'_>| -> PyResult<()> {
            match part {
                Part::Head(h) => {
                    let headers = PyDict::new(py);
                    let fields = &h.headers;
                    for (i, (name, value)) in fields.iter().enumerate() {
                        // A repeated field goes in once, its values joined; a head holds a
                        // few dozen fields, so looking back and ahead costs less than a
                        // dict lookup per field.
                        if fields[..i].iter().any(|(seen, _)| seen == name) {
                            continue;
                        }
                        if fields[i + 1..].iter().any(|(later, _)| later == name) {
                            headers.set_item(name, h.get(name))?;
                        } else {
                            headers.set_item(name, value)?;
                        }
                    }
                    head = Some((h.status, headers));
                }
                Part::Body(b) if !b.is_empty() => match (&mut joined, first) {
                    (Some(all), _) => all.extend_from_slice(b),
                    (None, Some((start, len))) => {
                        let mut all = input[start..start + len].to_vec();
                        all.extend_from_slice(b);
                        joined = Some(all);
                    }
                    (None, None) => first = Some((b.as_ptr() as usize - base, b.len())),
                },
                Part::Body(_) | Part::End => {}
            }
            Ok(())
        })?;
        let body = match (joined, first) {
            (Some(all), _) => PyBytes::new(py, &all),
            (None, Some((0, len))) if len == input.len() => data.clone(),
            (None, Some((start, len))) => PyBytes::new(py, &input[start..start + len]),
            (None, None) => PyBytes::new(py, b""),
        };
        Ok((head, body, taken))
    }

    /// The connection closed: raises if the response had not ended.
    fn finish(&mut self) -> PyResult<()> {
        Ok(self.core.finish()?)
    }
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// State Protocol: folding change messages.

/// A non-empty `str` field of a message, or None (absent, null, another type, or empty).
fn nonempty_str<'py>(
    d: &Bound<'py, PyDict>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    Ok(match d.get_item(name)? {
        Some(v) => match v.cast_into_exact::<PyString>() {
            Ok(s) if s.len()? > 0 => Some(s),
            _ => None,
        },
        None => None,
    })
}

/// Folds change messages `messages[start..]` into `types` (`{type: {key: value}}`) and their
/// txids into `txids`, as `State.apply` would, until one it does not take: a control, or
/// anything that is not a valid change. Returns that message's index (the list's length
/// when every one was folded); the caller passes it through the checked path.
#[pyfunction]
fn fold_changes<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
    start: usize,
    types: &Bound<'py, PyDict>,
    txids: &Bound<'py, PySet>,
) -> PyResult<usize> {
    let headers_key = intern!(py, "headers");
    let operation_key = intern!(py, "operation");
    let type_key = intern!(py, "type");
    let key_key = intern!(py, "key");
    let value_key = intern!(py, "value");
    let txid_key = intern!(py, "txid");
    let timestamp_key = intern!(py, "timestamp");
    let n = messages.len();
    for i in start..n {
        // Exact types only: subclasses (with lookups of their own) take the checked path.
        let item = messages.get_item(i)?;
        let Ok(message) = item.cast_exact::<PyDict>() else {
            return Ok(i);
        };
        let Some(headers) = message.get_item(headers_key)? else {
            return Ok(i);
        };
        let Ok(headers) = headers.cast_exact::<PyDict>() else {
            return Ok(i);
        };
        let Some(operation) = nonempty_str(headers, operation_key)? else {
            return Ok(i);
        };
        let delete = match operation.to_str() {
            Ok("insert" | "update" | "upsert") => false,
            Ok("delete") => true,
            _ => return Ok(i),
        };
        let (Some(kind), Some(key)) = (
            nonempty_str(message, type_key)?,
            nonempty_str(message, key_key)?,
        ) else {
            return Ok(i);
        };
        let txid = match headers.get_item(txid_key)? {
            Some(t) if !t.is_none() => match nonempty_str(headers, txid_key)? {
                Some(t) => Some(t),
                None => return Ok(i),
            },
            _ => None,
        };
        if let Some(stamp) = headers.get_item(timestamp_key)? {
            if !stamp.is_none() {
                let Ok(stamp) = stamp.cast_exact::<PyString>() else {
                    return Ok(i);
                };
                match stamp.to_str() {
                    Ok(text) if state::is_rfc3339(text.as_bytes()) => {}
                    _ => return Ok(i),
                }
            }
        }
        let keys = match types.get_item(&kind)? {
            Some(keys) => match keys.cast_into_exact::<PyDict>() {
                Ok(keys) => Some(keys),
                Err(_) => return Ok(i),
            },
            None => None,
        };
        if delete {
            if let Some(keys) = keys {
                if keys.contains(&key)? {
                    keys.del_item(&key)?;
                }
            }
        } else {
            let Some(value) = message.get_item(value_key)? else {
                return Ok(i);
            };
            let keys = match keys {
                Some(keys) => keys,
                None => {
                    let keys = PyDict::new(py);
                    types.set_item(&kind, &keys)?;
                    keys
                }
            };
            keys.set_item(&key, value)?;
        }
        if let Some(txid) = txid {
            txids.add(txid)?;
        }
    }
    Ok(n)
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<sse::Control>()?;
    m.add_class::<sse::SseDecoder>()?;
    m.add_class::<BatchBuilder>()?;
    m.add_class::<HttpResponseDecoder>()?;
    m.add_class::<json::JsonArrayReader>()?;
    m.add_function(wrap_pyfunction!(json::parse_json_array, m)?)?;
    m.add_function(wrap_pyfunction!(json::split_json_array, m)?)?;
    m.add_function(wrap_pyfunction!(encode::encode_json, m)?)?;
    m.add_function(wrap_pyfunction!(fold_changes, m)?)?;
    Ok(())
}
