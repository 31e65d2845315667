//! The fields of a request as the client sent them, before they mean anything: a JSON object
//! (`/v1/images/generations`) or the text fields of a multipart form (`/v1/images/edits`).
//! [`Fields`] hands each known field out once, typed the way pydantic's lax mode reads it
//! (SGLang's request models): a number may come as a string, `null` is absent. What is left at
//! the end are the fields the server does not know, which it names in `x-ignored-fields`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;

/// One value as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// From a JSON body.
    Json(Value),
    /// A multipart text field.
    Text(String),
}

/// A `seed` field: one seed, or one per output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeds {
    One(i64),
    List(Vec<i64>),
}

/// The request's fields by name (a multipart field may repeat).
#[derive(Debug, Clone, Default)]
pub struct Fields {
    map: BTreeMap<String, Vec<Raw>>,
}

impl Fields {
    /// The fields of a JSON body, which must be an object.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(ApiError::malformed(
                "the body must be a JSON object such as {\"prompt\": \"…\"}",
            ));
        };
        let mut f = Self::default();
        for (k, v) in obj {
            f.map.entry(k).or_default().push(Raw::Json(v));
        }
        Ok(f)
    }

    /// Add a multipart text field.
    pub fn push_text(&mut self, name: &str, value: String) {
        self.map
            .entry(name.to_string())
            .or_default()
            .push(Raw::Text(value));
    }

    /// Whether the client sent `name` (with a value other than `null`).
    pub fn has(&self, name: &str) -> bool {
        self.map
            .get(name)
            .is_some_and(|v| v.iter().any(|r| !matches!(r, Raw::Json(Value::Null))))
    }

    /// Take `name` out: its one value, `None` when absent or `null`; a repeated field is an error.
    fn take_one(&mut self, name: &str) -> Result<Option<Raw>, ApiError> {
        let Some(mut values) = self.map.remove(name) else {
            return Ok(None);
        };
        values.retain(|r| !matches!(r, Raw::Json(Value::Null)));
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            n => Err(ApiError::field(name, format!("{name} is given {n} times"))),
        }
    }

    /// A string field.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.take_one(name)? {
            None => Ok(None),
            Some(Raw::Text(s)) | Some(Raw::Json(Value::String(s))) => Ok(Some(s)),
            Some(Raw::Json(v)) => Err(type_error(name, "a string", &v)),
        }
    }

    /// An integer field (a whole number, or a string of one).
    pub fn int(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.take_one(name)? else {
            return Ok(None);
        };
        int_of(name, &raw).map(Some)
    }

    /// A number field (a finite number, or a string of one).
    pub fn float(&mut self, name: &str) -> Result<Option<f64>, ApiError> {
        let v = match self.take_one(name)? {
            None => return Ok(None),
            Some(Raw::Json(Value::Number(n))) => n.as_f64(),
            Some(Raw::Text(s)) | Some(Raw::Json(Value::String(s))) => s.trim().parse().ok(),
            Some(Raw::Json(v)) => return Err(type_error(name, "a number", &v)),
        };
        match v {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ApiError::field(
                name,
                format!("{name} must be a finite number"),
            )),
        }
    }

    /// A boolean field (`true`/`false`, or pydantic's spellings in a form: 1/0, yes/no, on/off).
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        let text = match self.take_one(name)? {
            None => return Ok(None),
            Some(Raw::Json(Value::Bool(b))) => return Ok(Some(b)),
            Some(Raw::Text(s)) | Some(Raw::Json(Value::String(s))) => s,
            Some(Raw::Json(Value::Number(n))) => n.to_string(),
            Some(Raw::Json(v)) => return Err(type_error(name, "true or false", &v)),
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
            _ => Err(ApiError::field(
                name,
                format!("{name} must be true or false, not `{text}`"),
            )),
        }
    }

    /// A seed: one integer, or a list of them (a JSON array; in a form, the field repeated).
    pub fn seeds(&mut self, name: &str) -> Result<Option<Seeds>, ApiError> {
        let Some(values) = self.map.remove(name) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut list = values.len() > 1;
        for raw in values {
            match raw {
                Raw::Json(Value::Null) => {}
                Raw::Json(Value::Array(items)) => {
                    list = true;
                    for item in items {
                        out.push(int_of(name, &Raw::Json(item))?);
                    }
                }
                other => out.push(int_of(name, &other)?),
            }
        }
        Ok(match (list, out.as_slice()) {
            (false, []) => None,
            (false, [one]) => Some(Seeds::One(*one)),
            _ => Some(Seeds::List(out)),
        })
    }

    /// Every string value of `name` (a JSON string or array of strings; form fields repeated).
    pub fn strings(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for raw in self.map.remove(name).unwrap_or_default() {
            match raw {
                Raw::Json(Value::Null) => {}
                Raw::Text(s) | Raw::Json(Value::String(s)) => out.push(s),
                Raw::Json(Value::Array(items)) => {
                    for item in items {
                        match item {
                            Value::String(s) => out.push(s),
                            v => return Err(type_error(name, "a list of strings", &v)),
                        }
                    }
                }
                Raw::Json(v) => return Err(type_error(name, "a string", &v)),
            }
        }
        Ok(out)
    }

    /// Drop a field the server accepts but has no use for (it is then not "unknown").
    pub fn discard(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    /// The names of the fields nobody took, sorted.
    pub fn leftover(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
}

fn int_of(name: &str, raw: &Raw) -> Result<i64, ApiError> {
    let bad = || ApiError::field(name, format!("{name} must be a whole number"));
    match raw {
        Raw::Json(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                // pydantic takes 5.0 for 5, not 5.5.
                n.as_f64()
                    .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
                    .map(|x| x as i64)
            })
            .ok_or_else(bad),
        Raw::Text(s) | Raw::Json(Value::String(s)) => s.trim().parse().map_err(|_| bad()),
        Raw::Json(v) => Err(type_error(name, "a whole number", v)),
    }
}

fn type_error(name: &str, wanted: &str, got: &Value) -> ApiError {
    let what = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    ApiError::field(name, format!("{name} must be {wanted}, not {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_read_as_pydantic_reads_them() {
        let mut f = Fields::from_json(
            br#"{"n": "2", "seed": [1, 2], "cfg": "yes", "x": 5.0, "g": null, "s": 3}"#,
        )
        .unwrap();
        assert_eq!(f.int("n").unwrap(), Some(2));
        assert_eq!(f.seeds("seed").unwrap(), Some(Seeds::List(vec![1, 2])));
        assert_eq!(f.bool("cfg").unwrap(), Some(true));
        assert_eq!(f.int("x").unwrap(), Some(5));
        assert_eq!(f.float("g").unwrap(), None);
        let e = f.string("s").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("s"));
        assert!(f.leftover().is_empty());
        assert!(Fields::from_json(b"[1]").is_err());
        assert!(Fields::from_json(b"{").is_err());
    }

    #[test]
    fn form_fields_repeat_only_where_a_list_is_meant() {
        let mut f = Fields::default();
        f.push_text("url", "a".into());
        f.push_text("url", "b".into());
        f.push_text("n", "1".into());
        f.push_text("n", "2".into());
        f.push_text("extra", "x".into());
        assert_eq!(f.strings("url").unwrap(), vec!["a", "b"]);
        assert!(f.int("n").unwrap_err().message.contains("2 times"));
        assert_eq!(f.leftover(), vec!["extra".to_string()]);
    }
}
