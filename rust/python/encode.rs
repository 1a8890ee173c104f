//! Python values to compact JSON text (`encode_json`, and the items of a JSON-mode
//! `BatchBuilder`); the text itself is written by [`crate::encode`].

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{ffi, Borrowed};

use crate::encode;

use super::errors::type_name;

/// Deepest container nesting `encode_json` follows (also what stops reference cycles).
const MAX_ENCODE_DEPTH: usize = 500;

pub(crate) fn encode_value(out: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: usize) -> PyResult<()> {
    // Exact-type checks are one pointer comparison each; the subclass checks below need a
    // call into the interpreter under the stable ABI, so common values skip them.
    if let Ok(s) = v.cast_exact::<PyString>() {
        encode::push_str(out, s.to_str()?);
        return Ok(());
    }
    if let Ok(i) = v.cast_exact::<PyInt>() {
        if let Ok(n) = i.extract::<i64>() {
            encode::push_i64(out, n);
            return Ok(());
        }
    }
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        if encode::push_f64(out, f.value()) {
            return Ok(());
        }
    }
    if let Ok(d) = v.cast_exact::<PyDict>() {
        return encode_dict(out, d, depth);
    }
    if let Ok(l) = v.cast_exact::<PyList>() {
        return encode_list(out, l, depth);
    }
    // The three singletons are compared by address; bool cannot be subclassed.
    let ptr = v.as_ptr();
    if ptr == unsafe { ffi::Py_True() } {
        out.extend_from_slice(b"true");
    } else if ptr == unsafe { ffi::Py_False() } {
        out.extend_from_slice(b"false");
    } else if v.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(s) = v.cast::<PyString>() {
        encode::push_str(out, s.to_str()?);
    } else if let Ok(i) = v.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => encode::push_i64(out, n),
            Err(_) => {
                let text = v.py().get_type::<PyInt>().call_method1("__repr__", (i,))?;
                out.extend_from_slice(text.cast::<PyString>()?.to_str()?.as_bytes());
            }
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        let x = f.value();
        if !encode::push_f64(out, x) {
            let repr = v
                .py()
                .get_type::<PyFloat>()
                .call_method1("__repr__", (f,))?;
            return Err(PyValueError::new_err(format!(
                "Out of range float values are not JSON compliant: {repr}"
            )));
        }
    } else if let Ok(d) = v.cast::<PyDict>() {
        encode_dict(out, d, depth)?;
    } else if let Ok(l) = v.cast::<PyList>() {
        encode_list(out, l, depth)?;
    } else if let Ok(t) = v.cast::<PyTuple>() {
        enter(depth)?;
        out.push(b'[');
        for (n, item) in t.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            encode_value(out, &item, depth + 1)?;
        }
        out.push(b']');
    } else {
        return Err(PyTypeError::new_err(format!(
            "Object of type {} is not JSON serializable",
            type_name(v)
        )));
    }
    Ok(())
}

fn encode_dict(out: &mut Vec<u8>, d: &Bound<'_, PyDict>, depth: usize) -> PyResult<()> {
    enter(depth)?;
    out.push(b'{');
    let py = d.py();
    let (mut pos, mut key, mut value) = (0, std::ptr::null_mut(), std::ptr::null_mut());
    let mut first = true;
    // Safety: the entries are borrowed, without a reference count of their own: nothing
    // below runs Python code that could change the dict (the encoder calls no user code and
    // never lets go of the GIL), so each stays alive and in place while it is written.
    while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut key, &mut value) } != 0 {
        if !first {
            out.push(b',');
        }
        first = false;
        let k = unsafe { Borrowed::from_ptr(py, key) };
        if let Ok(s) = k.cast_exact::<PyString>() {
            encode::push_str(out, s.to_str()?);
        } else if let Ok(s) = k.cast::<PyString>() {
            encode::push_str(out, s.to_str()?);
        } else {
            return Err(PyTypeError::new_err(format!(
                "keys must be str, not {}",
                type_name(&k)
            )));
        }
        out.push(b':');
        let v = unsafe { Borrowed::from_ptr(py, value) };
        encode_value(out, &v, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

fn encode_list(out: &mut Vec<u8>, l: &Bound<'_, PyList>, depth: usize) -> PyResult<()> {
    enter(depth)?;
    out.push(b'[');
    for (n, item) in l.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        encode_value(out, &item, depth + 1)?;
    }
    out.push(b']');
    Ok(())
}

fn enter(depth: usize) -> PyResult<()> {
    if depth >= MAX_ENCODE_DEPTH {
        return Err(PyValueError::new_err(
            "JSON nesting deeper than 500 levels (or a reference cycle)",
        ));
    }
    Ok(())
}

#[pyfunction]
pub(crate) fn encode_json<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    encode_value(&mut out, value, 0)?;
    Ok(PyBytes::new(py, &out))
}
