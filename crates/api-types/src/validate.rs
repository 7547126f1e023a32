//! Type checks on JSON values shared by the body parsers, each returning the
//! FastAPI-style error for its location. They follow pydantic's lax JSON mode where it
//! matters to SDK users (`5.0` is an integer) and are stricter where lax mode surprises
//! (`true` is not an integer, `"5"` is not a number).

use serde_json::{Map, Value};

use crate::errors::{FieldError, LocItem, at};

/// `obj[key]`, with an explicit `null` read as absent: the SDK sends `null` for a
/// parameter passed as `None`, and every optional field accepts it.
pub(crate) fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|value| !value.is_null())
}

pub(crate) fn string<'a>(value: &'a Value, loc: &[LocItem]) -> Result<&'a str, FieldError> {
    value
        .as_str()
        .ok_or_else(|| FieldError::string_type(loc.to_vec(), value))
}

pub(crate) fn owned_string(value: &Value, loc: &[LocItem]) -> Result<String, FieldError> {
    string(value, loc).map(str::to_owned)
}

pub(crate) fn non_empty_string<'a>(
    value: &'a Value,
    loc: &[LocItem],
) -> Result<&'a str, FieldError> {
    let text = string(value, loc)?;
    if text.is_empty() {
        return Err(FieldError::new(
            loc.to_vec(),
            "string_too_short",
            "String should have at least 1 character",
            Some(value.clone()),
        ));
    }
    Ok(text)
}

pub(crate) fn boolean(value: &Value, loc: &[LocItem]) -> Result<bool, FieldError> {
    value
        .as_bool()
        .ok_or_else(|| FieldError::bool_type(loc.to_vec(), value))
}

pub(crate) fn object<'a>(
    value: &'a Value,
    loc: &[LocItem],
) -> Result<&'a Map<String, Value>, FieldError> {
    value
        .as_object()
        .ok_or_else(|| FieldError::dict_type(loc.to_vec(), value))
}

pub(crate) fn list<'a>(value: &'a Value, loc: &[LocItem]) -> Result<&'a [Value], FieldError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| FieldError::list_type(loc.to_vec(), value))
}

/// An integer: a JSON integer, or a float without a fractional part. Wide enough for
/// every `u64` and `i64`.
pub(crate) fn integer(value: &Value, loc: &[LocItem]) -> Result<i128, FieldError> {
    let Value::Number(number) = value else {
        return Err(FieldError::new(
            loc.to_vec(),
            "int_type",
            "Input should be a valid integer",
            Some(value.clone()),
        ));
    };
    if let Some(n) = number.as_i64() {
        return Ok(i128::from(n));
    }
    if let Some(n) = number.as_u64() {
        return Ok(i128::from(n));
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    if float.is_finite() && float.fract() == 0.0 && float.abs() < 1e30 {
        // In range for i128 and exact: the check above rules out fractions.
        return Ok(float as i128);
    }
    Err(FieldError::new(
        loc.to_vec(),
        "int_from_float",
        "Input should be a valid integer, got a number with a fractional part",
        Some(value.clone()),
    ))
}

pub(crate) fn number(value: &Value, loc: &[LocItem]) -> Result<f64, FieldError> {
    value.as_f64().ok_or_else(|| {
        FieldError::new(
            loc.to_vec(),
            "float_type",
            "Input should be a valid number",
            Some(value.clone()),
        )
    })
}

/// An integer in `[min, max]`, with pydantic's `greater_than_equal` /
/// `less_than_equal` errors at the bounds.
pub(crate) fn integer_in(
    value: &Value,
    loc: &[LocItem],
    min: i128,
    max: i128,
) -> Result<i128, FieldError> {
    let n = integer(value, loc)?;
    check_range(n, loc, min, max, || value.clone())
}

pub(crate) fn check_range(
    n: i128,
    loc: &[LocItem],
    min: i128,
    max: i128,
    input: impl FnOnce() -> Value,
) -> Result<i128, FieldError> {
    if n < min {
        return Err(FieldError::new(
            loc.to_vec(),
            "greater_than_equal",
            format!("Input should be greater than or equal to {min}"),
            Some(input()),
        ));
    }
    if n > max {
        return Err(FieldError::new(
            loc.to_vec(),
            "less_than_equal",
            format!("Input should be less than or equal to {max}"),
            Some(input()),
        ));
    }
    Ok(n)
}

/// An integer > 0 (pydantic's `gt=0`, whose error is `greater_than`), at most `max`.
pub(crate) fn positive_integer(
    value: &Value,
    loc: &[LocItem],
    max: i128,
) -> Result<i128, FieldError> {
    let n = integer(value, loc)?;
    greater_than_zero(n as f64, loc, value)?;
    check_range(n, loc, 1, max, || value.clone())
}

pub(crate) fn greater_than_zero(n: f64, loc: &[LocItem], input: &Value) -> Result<f64, FieldError> {
    if n > 0.0 {
        Ok(n)
    } else {
        Err(FieldError::new(
            loc.to_vec(),
            "greater_than",
            "Input should be greater than 0",
            Some(input.clone()),
        ))
    }
}

/// Collects the errors of one parse while letting each field's check stay a plain
/// `Result`.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    /// The value, or `None` after recording the error.
    pub(crate) fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error);
                None
            }
        }
    }

    /// The value, or `None` after recording all its errors.
    pub(crate) fn take_all<T>(&mut self, result: Result<T, Vec<FieldError>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(errors) => {
                self.0.extend(errors);
                None
            }
        }
    }

    /// Checks `fields[key]` (at `here.key`), recording `missing` when it is absent.
    pub(crate) fn required<'a, T>(
        &mut self,
        fields: &'a Map<String, Value>,
        key: &str,
        here: &[LocItem],
        check: impl FnOnce(&'a Value, &[LocItem]) -> Result<T, FieldError>,
    ) -> Option<T> {
        let loc = at(here, key);
        match fields.get(key) {
            None => {
                self.0.push(FieldError::missing(loc));
                None
            }
            Some(value) => self.take(check(value, &loc)),
        }
    }

    /// Checks `fields[key]` (at `here.key`) when it is present and not null.
    pub(crate) fn optional<'a, T>(
        &mut self,
        fields: &'a Map<String, Value>,
        key: &str,
        here: &[LocItem],
        check: impl FnOnce(&'a Value, &[LocItem]) -> Result<T, FieldError>,
    ) -> Option<T> {
        let value = present(fields, key)?;
        self.take(check(value, &at(here, key)))
    }

    pub(crate) fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub(crate) fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::loc;

    #[test]
    fn integers_accept_whole_floats_and_refuse_bools_strings_and_fractions() {
        let here = loc!["body", "n"];
        assert_eq!(integer(&json!(5), &here).unwrap(), 5);
        assert_eq!(integer(&json!(5.0), &here).unwrap(), 5);
        assert_eq!(
            integer(&json!(u64::MAX), &here).unwrap(),
            i128::from(u64::MAX)
        );
        assert_eq!(integer(&json!(true), &here).unwrap_err().kind, "int_type");
        assert_eq!(integer(&json!("5"), &here).unwrap_err().kind, "int_type");
        assert_eq!(
            integer(&json!(5.5), &here).unwrap_err().kind,
            "int_from_float"
        );
    }

    #[test]
    fn numbers_refuse_bools() {
        let here = loc!["body", "n"];
        assert_eq!(number(&json!(2), &here).unwrap(), 2.0);
        assert_eq!(number(&json!(true), &here).unwrap_err().kind, "float_type");
    }

    #[test]
    fn ranges_report_the_bound_that_failed() {
        let here = loc!["body", "n"];
        let low = integer_in(&json!(0), &here, 1, 10).unwrap_err();
        assert_eq!(low.kind, "greater_than_equal");
        assert_eq!(low.msg, "Input should be greater than or equal to 1");
        let high = integer_in(&json!(11), &here, 1, 10).unwrap_err();
        assert_eq!(high.kind, "less_than_equal");
        assert_eq!(high.input, Some(json!(11)));
    }
}
