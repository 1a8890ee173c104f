//! HTTP/1.1 responses: `HttpResponseDecoder`, over the decoder of [`crate::http`].

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::http::{self, Part};

#[pyclass(module = "durable_streams._core._native", name = "HttpResponseDecoder")]
pub(crate) struct HttpResponseDecoder {
    core: http::ResponseDecoder,
}

#[pymethods]
impl HttpResponseDecoder {
    #[new]
    #[pyo3(signature = (max_head_bytes = 65_536, no_body = false))]
    fn new(max_head_bytes: i64, no_body: bool) -> PyResult<Self> {
        if max_head_bytes <= 0 {
            return Err(PyValueError::new_err("max_head_bytes must be positive"));
        }
        let cap = usize::try_from(max_head_bytes).unwrap_or(usize::MAX);
        Ok(Self {
            core: http::ResponseDecoder::for_request(cap, no_body),
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
