//! State Protocol: `fold_changes`, which folds change messages straight into the dicts of a
//! state, with no object per message.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySet, PyString};

use crate::state;

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
pub(crate) fn fold_changes<'py>(
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
