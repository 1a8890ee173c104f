//! Durable Streams SSE `control` events: a JSON object with `streamNextOffset` (string,
//! required), `streamCursor` (string), `upToDate` and `streamClosed` (bools). Absent or
//! `null` optional fields take their defaults; unknown fields are ignored; for duplicate keys
//! the last one wins.

use jiter::JsonValue;

use crate::json::{self, skip_ws};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControlFields {
    pub next_offset: String,
    pub cursor: Option<String>,
    pub up_to_date: bool,
    pub closed: bool,
}

/// Why a control event was rejected, and the offset in its data text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    pub message: String,
    pub offset: usize,
}

fn fail<T>(message: impl Into<String>, offset: usize) -> Result<T, ControlError> {
    Err(ControlError {
        message: message.into(),
        offset,
    })
}

pub fn parse(data: &[u8]) -> Result<ControlFields, ControlError> {
    if let Err(e) = json::validate_value(data) {
        return fail(
            format!("control event is not valid JSON: {}", e.kind.message()),
            e.position,
        );
    }
    let start = skip_ws(data, 0);
    let Ok(JsonValue::Object(pairs)) = JsonValue::parse(data, false) else {
        return fail("control event is not a JSON object", start);
    };
    let (mut next_offset, mut cursor, mut up_to_date, mut closed) = (None, None, None, None);
    for (key, value) in pairs.iter() {
        match key.as_ref() {
            "streamNextOffset" => next_offset = Some(value),
            "streamCursor" => cursor = Some(value),
            "upToDate" => up_to_date = Some(value),
            "streamClosed" => closed = Some(value),
            _ => {}
        }
    }
    let next_offset = match next_offset {
        Some(JsonValue::Str(s)) => s.to_string(),
        _ => return fail("control event without a string streamNextOffset", start),
    };
    let cursor = match cursor {
        None | Some(JsonValue::Null) => None,
        Some(JsonValue::Str(s)) => Some(s.to_string()),
        Some(_) => return fail("control event streamCursor is not a string", start),
    };
    let flag = |v: Option<&JsonValue<'_>>, name: &str| match v {
        None | Some(JsonValue::Null) => Ok(false),
        Some(JsonValue::Bool(b)) => Ok(*b),
        Some(_) => fail(format!("control event {name} is not a boolean"), start),
    };
    Ok(ControlFields {
        next_offset,
        cursor,
        up_to_date: flag(up_to_date, "upToDate")?,
        closed: flag(closed, "streamClosed")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_control_events() {
        let c = parse(br#"{"streamNextOffset":"1_2","streamCursor":"c","upToDate":true,"x":[1]}"#)
            .unwrap();
        assert_eq!(
            c,
            ControlFields {
                next_offset: "1_2".into(),
                cursor: Some("c".into()),
                up_to_date: true,
                closed: false
            }
        );
        let c = parse(br#" {"streamNextOffset":"a","streamClosed":true,"streamCursor":null,"streamNextOffset":"b"}"#)
            .unwrap();
        assert_eq!(
            c,
            ControlFields {
                next_offset: "b".into(),
                cursor: None,
                up_to_date: false,
                closed: true
            }
        );
    }

    #[test]
    fn rejects_malformed_control_events() {
        let off = |s: &[u8]| parse(s).unwrap_err().offset;
        assert_eq!(off(b" [1]"), 1);
        assert_eq!(off(b"{\"streamNextOffset\":1}"), 0);
        assert_eq!(off(b"{}"), 0);
        assert_eq!(off(b"{\"streamNextOffset\":\"a\",\"upToDate\":1}"), 0);
        assert_eq!(off(b"{\"streamNextOffset\" \"a\"}"), 20);
    }
}
