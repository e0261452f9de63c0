//! Typed readers for the fields of JSON config files (`config.json`,
//! `preprocessor_config.json`, timm's `pretrained_cfg`).
//!
//! Both readers of those files follow the same rules: a key that is missing
//! or `null` is absent (transformers and timm then use their defaults), and a
//! value of the wrong type is an error naming the field, what it should be
//! and what it is. Each caller turns a [`WrongType`] into its own error type
//! with `From`, so it words the message in its own voice.

use serde_json::Value;

/// `obj[key]`, with `null` read as absent; `None` also when `obj` is not an object.
pub(crate) fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The optional field `key` of `obj`, read as a `T`.
pub(crate) fn optional<'a, T: FromJson<'a>>(
    obj: &'a Value,
    key: &str,
) -> Result<Option<T>, WrongType> {
    field(obj, key).map(|v| read(key, v)).transpose()
}

/// `v`, the value of `field`, read as a `T`.
pub(crate) fn read<'a, T: FromJson<'a>>(field: &str, v: &'a Value) -> Result<T, WrongType> {
    T::from_json(v).ok_or_else(|| WrongType {
        field: field.to_owned(),
        expected: T::EXPECTED,
        found: v.to_string(),
    })
}

/// A Rust type a JSON value can be read as.
pub(crate) trait FromJson<'a>: Sized {
    /// What a value of this type looks like, for error messages ("a number").
    const EXPECTED: &'static str;
    /// The value as `Self`, or `None` if it is of another type or out of range.
    fn from_json(v: &'a Value) -> Option<Self>;
}

impl FromJson<'_> for bool {
    const EXPECTED: &'static str = "true or false";
    fn from_json(v: &Value) -> Option<Self> {
        v.as_bool()
    }
}

impl FromJson<'_> for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_json(v: &Value) -> Option<Self> {
        v.as_f64()
    }
}

impl FromJson<'_> for f32 {
    const EXPECTED: &'static str = "a number";
    fn from_json(v: &Value) -> Option<Self> {
        v.as_f64().map(|x| x as f32)
    }
}

impl FromJson<'_> for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_json(v: &Value) -> Option<Self> {
        v.as_u64()
    }
}

impl FromJson<'_> for usize {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_json(v: &Value) -> Option<Self> {
        v.as_u64().and_then(|n| usize::try_from(n).ok())
    }
}

impl<'a> FromJson<'a> for &'a str {
    const EXPECTED: &'static str = "a string";
    fn from_json(v: &'a Value) -> Option<Self> {
        v.as_str()
    }
}

/// A field whose value has the wrong type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WrongType {
    /// The field's key (or dotted path, e.g. `size.height`).
    pub field: String,
    /// What the value should be, e.g. "a number" ([`FromJson::EXPECTED`]).
    pub expected: &'static str,
    /// The value found, as JSON text.
    pub found: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn missing_and_null_fields_are_absent() {
        let obj = json!({"a": null, "b": 3});
        assert_eq!(optional::<usize>(&obj, "a"), Ok(None));
        assert_eq!(optional::<usize>(&obj, "missing"), Ok(None));
        assert_eq!(optional::<usize>(&obj, "b"), Ok(Some(3)));
        assert_eq!(field(&json!([1, 2]), "a"), None);
    }

    #[test]
    fn a_wrong_type_names_field_expectation_and_value() {
        let obj = json!({"flag": "yes", "size": -1, "name": 7, "eps": "small"});
        let wrong = optional::<bool>(&obj, "flag").unwrap_err();
        assert_eq!(
            wrong,
            WrongType {
                field: "flag".to_owned(),
                expected: "true or false",
                found: "\"yes\"".to_owned(),
            }
        );
        assert_eq!(
            optional::<usize>(&obj, "size").unwrap_err().expected,
            "a non-negative integer"
        );
        assert_eq!(optional::<&str>(&obj, "name").unwrap_err().found, "7");
        assert_eq!(
            optional::<f64>(&obj, "eps").unwrap_err().expected,
            "a number"
        );
    }
}
