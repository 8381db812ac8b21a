//! Kafka headers as the JSON text stored in `parked_messages.headers`.
//!
//! An array of `{"key": ..., "value": ...}` objects in record order (Kafka allows repeated
//! keys). Values that are UTF-8 are stored as text so an operator can read them in SQL; other
//! values (binary, like Spring's partition numbers) as `value_base64`; null values as `"value": null`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::message::Header;

#[derive(Serialize, Deserialize)]
struct StoredHeader {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

pub fn headers_to_json(headers: &[Header]) -> String {
    let stored: Vec<serde_json::Value> = headers
        .iter()
        .map(|h| match h.value.as_deref() {
            None => serde_json::json!({"key": h.key, "value": null}),
            Some(bytes) => match printable_text(bytes) {
                Some(text) => serde_json::json!({"key": h.key, "value": text}),
                None => serde_json::json!({
                    "key": h.key,
                    "value_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                }),
            },
        })
        .collect();
    serde_json::Value::Array(stored).to_string()
}

/// The value as text when it is UTF-8 without control characters (a binary integer such as
/// Spring's `\0\0\0\x03` is valid UTF-8, but not readable).
fn printable_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).then_some(text)
}

/// Reads headers back; `Err` names what is wrong with the stored text.
pub fn headers_from_json(text: &str) -> Result<Vec<Header>, String> {
    let stored: Vec<StoredHeader> =
        serde_json::from_str(text).map_err(|e| format!("stored headers are not valid: {e}"))?;
    stored
        .into_iter()
        .map(|h| {
            let value = match (h.value, h.value_base64) {
                (Some(text), _) => Some(text.into_bytes()),
                (None, Some(b64)) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|_| format!("stored header {} is not base64", h.key))?,
                ),
                (None, None) => None,
            };
            Ok(Header { key: h.key, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_binary_and_null_values_round_trip_in_order() {
        let headers = vec![
            Header { key: "x-request-id".into(), value: Some(b"0c3f".to_vec()) },
            Header { key: "kafka_dlt-original-partition".into(), value: Some(3i32.to_be_bytes().to_vec()) },
            Header { key: "empty".into(), value: None },
            Header { key: "x-request-id".into(), value: Some(b"second".to_vec()) },
        ];
        let json = headers_to_json(&headers);
        assert!(json.contains(r#""value":"0c3f""#), "text stays readable: {json}");
        assert!(json.contains("value_base64"), "binary is base64: {json}");
        assert_eq!(headers_from_json(&json).unwrap(), headers);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(headers_from_json("not json").is_err());
        assert!(headers_from_json(r#"[{"key":"a","value_base64":"%%%"}]"#).is_err());
    }
}
