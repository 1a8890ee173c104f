//! The one mapping from the core's errors to the classes of `durable_streams._errors`
//! (imported once and cached), shared by every binding.

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use crate::http::HttpError;
use crate::json::JsonError;
use crate::sse::SseError;

#[derive(Clone, Copy)]
pub(crate) enum ErrorClass {
    Json,
    Sse,
    TooLarge,
    Base64,
    Http,
}

/// An error of the core, ready to become a Python exception; or one Python raised while the
/// core built objects (out of memory), which goes on as it is.
pub(crate) struct Fault {
    pub(crate) class: ErrorClass,
    pub(crate) message: Cow<'static, str>,
    pub(crate) position: u64,
    pub(crate) raised: Option<PyErr>,
}

impl Fault {
    pub(crate) fn new(
        class: ErrorClass,
        message: impl Into<Cow<'static, str>>,
        position: u64,
    ) -> Self {
        Self {
            class,
            message: message.into(),
            position,
            raised: None,
        }
    }
}

static JSON_PARSE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SSE_PARSE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EVENT_TOO_LARGE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BASE64_DECODE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static HTTP_PARSE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

impl From<Fault> for PyErr {
    fn from(f: Fault) -> PyErr {
        if let Some(raised) = f.raised {
            return raised;
        }
        Python::attach(|py| {
            let (cell, name) = match f.class {
                ErrorClass::Json => (&JSON_PARSE_ERROR, "JSONParseError"),
                ErrorClass::Sse => (&SSE_PARSE_ERROR, "SSEParseError"),
                ErrorClass::TooLarge => (&EVENT_TOO_LARGE_ERROR, "EventTooLargeError"),
                ErrorClass::Base64 => (&BASE64_DECODE_ERROR, "Base64DecodeError"),
                ErrorClass::Http => (&HTTP_PARSE_ERROR, "HTTPParseError"),
            };
            let build = || -> PyResult<PyErr> {
                let cls = cell.import(py, "durable_streams._errors", name)?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("position", f.position)?;
                Ok(PyErr::from_value(
                    cls.call((f.message.as_ref(),), Some(&kwargs))?,
                ))
            };
            build().unwrap_or_else(|e| e)
        })
    }
}

impl From<JsonError> for Fault {
    fn from(e: JsonError) -> Self {
        Fault::new(ErrorClass::Json, e.kind.message(), e.position as u64)
    }
}

impl From<SseError> for PyErr {
    fn from(e: SseError) -> PyErr {
        let class = match e {
            SseError::TooLarge { .. } => ErrorClass::TooLarge,
            SseError::InvalidUtf8 { .. } => ErrorClass::Sse,
        };
        Fault::new(class, e.message(), e.position()).into()
    }
}

impl From<HttpError> for PyErr {
    fn from(e: HttpError) -> PyErr {
        Fault::new(ErrorClass::Http, e.kind.message(), e.position).into()
    }
}

pub(crate) fn json_err(e: JsonError) -> PyErr {
    Fault::from(e).into()
}

/// The name of `v`'s type, for the messages of `TypeError`s.
pub(crate) fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}
