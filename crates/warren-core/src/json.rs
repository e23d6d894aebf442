//! AMQP field tables as JSON, the way RabbitMQ's management API and its
//! definitions.json show and take them: strings, numbers, booleans, arrays
//! and nested objects. Used by the HTTP API and the definitions import/export
//! (and by policies, whose values are JSON).

use crate::shortstr::ShortStr;
use crate::table::{FieldTable, FieldValue};
use bytes::Bytes;
use serde_json::{Map, Number, Value};

/// A table as a JSON object (keys in table order).
pub fn table_to_json(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.iter() {
        m.insert(k.to_string_lossy().into_owned(), value_to_json(v));
    }
    Value::Object(m)
}

/// One value as JSON. Binary strings that are not UTF-8 are shown lossily;
/// timestamps as their seconds; decimals as numbers; void as null.
pub fn value_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => Number::from_f64(*f as f64).map_or(Value::Null, Value::Number),
        FieldValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Decimal(scale, unscaled) => {
            Number::from_f64(*unscaled as f64 / 10f64.powi(*scale as i32))
                .map_or(Value::Null, Value::Number)
        }
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        FieldValue::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
        other => other.as_i64().map_or(Value::Null, Value::from),
    }
}

/// A JSON object as a table, with RabbitMQ's types: strings become long
/// strings, integers longs (`l`), other numbers doubles, objects tables.
/// `None` if `v` is not an object.
pub fn json_to_table(v: &Value) -> Option<FieldTable> {
    let m = v.as_object()?;
    Some(FieldTable(
        m.iter()
            .map(|(k, v)| (ShortStr::from(k.as_str()), json_to_value(v)))
            .collect(),
    ))
}

/// One JSON value as a field value (see [`json_to_table`]).
pub fn json_to_value(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes())),
        Value::Array(a) => FieldValue::Array(a.iter().map(json_to_value).collect()),
        Value::Object(_) => FieldValue::Table(json_to_table(v).unwrap_or_default()),
    }
}

/// A JSON value as RabbitMQ's validation messages print the Erlang term it
/// decodes to: strings as binaries (`<<"x">>`), the rest as JSON.
pub fn erl_term(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{}\">>", s),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_round_trip_through_json() {
        let j = json!({"x-max-length": 10, "s": "v", "b": true, "a": [1, "x"], "t": {"k": 1.5}});
        let t = json_to_table(&j).expect("object");
        assert_eq!(t.get("x-max-length"), Some(&FieldValue::I64(10)));
        assert_eq!(table_to_json(&t), j);
        assert!(json_to_table(&json!([1])).is_none());
    }
}
