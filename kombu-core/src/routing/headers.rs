//! Headers exchanges: match message headers against a binding's arguments (`x-match` `all` or `any`).

use crate::fields::{FieldTable, FieldValue};

/// Whether `headers` satisfy a headers-exchange binding with `binding_args`.
///
/// `x-match` is `all` (the default: every bound header must be present and equal) or `any` (at least
/// one). Arguments starting with `x-` are not matched; a bound `Void` only asks for presence. Values
/// compare with [`FieldValue::same_value`] (integers by value, whatever their kind).
///
/// ```
/// use kombu_core::routing::headers_match;
/// use kombu_core::{FieldTable, FieldValue};
/// let bind: FieldTable = [("x-match", FieldValue::from("any")), ("a", 1.into()), ("b", 2.into())].into_iter().collect();
/// let msg: FieldTable = [("b", 2i64)].into_iter().collect();
/// assert!(headers_match(&bind, &msg));
/// ```
pub fn headers_match(binding_args: &FieldTable, headers: &FieldTable) -> bool {
    let any = matches!(binding_args.get("x-match").and_then(|v| v.as_str()), Some("any" | "any-with-x"));
    let mut wanted = binding_args.iter().filter(|(k, _)| !k.starts_with("x-")).peekable();
    if wanted.peek().is_none() {
        return !any;
    }
    let mut hit = |(k, v): (&str, &FieldValue)| match headers.get(k) {
        Some(have) => v.is_void() || have.same_value(v),
        None => false,
    };
    if any {
        wanted.any(&mut hit)
    } else {
        wanted.all(&mut hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: serde_json::Value) -> FieldTable {
        v.as_object().cloned().unwrap_or_default().into()
    }

    #[test]
    fn all_and_any() {
        let all = t(json!({"x-match": "all", "a": "1", "b": 2}));
        assert!(headers_match(&all, &t(json!({"a": "1", "b": 2, "c": 3}))));
        assert!(!headers_match(&all, &t(json!({"a": "1"}))));
        assert!(!headers_match(&all, &t(json!({"a": "1", "b": 3}))));
        let any = t(json!({"x-match": "any", "a": "1", "b": 2}));
        assert!(headers_match(&any, &t(json!({"b": 2}))));
        assert!(!headers_match(&any, &t(json!({"b": 1}))));
        assert!(!headers_match(&any, &t(json!({}))));
        let default_all = t(json!({"a": "1"}));
        assert!(headers_match(&default_all, &t(json!({"a": "1"}))));
        let presence = t(json!({"a": null}));
        assert!(headers_match(&presence, &t(json!({"a": 5}))));
        assert!(!headers_match(&presence, &t(json!({}))));
        // An integer matches whatever its kind; a float or string of the same number does not.
        let narrow: FieldTable = [("a", FieldValue::U8(1))].into_iter().collect();
        assert!(headers_match(&narrow, &t(json!({"a": 1}))));
        assert!(!headers_match(&narrow, &t(json!({"a": 1.0}))));
        assert!(!headers_match(&narrow, &t(json!({"a": "1"}))));
    }
}
