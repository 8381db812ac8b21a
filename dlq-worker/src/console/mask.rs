//! Secrets masked before a payload or a header reaches a console page: password hashes, tokens,
//! keys. An operator needs to see what a message was about, never a credential in it.

use reliable_messaging::message::Header;

const MASK: &str = "•••• masked";

/// Whether a field or header of this name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "authorization", "cookie", "api_key", "apikey", "hash", "credential"]
        .iter()
        .any(|s| n.contains(s))
}

/// The payload for display: JSON with secret fields masked (at any depth), or the text as it
/// is when it is not JSON, or a note when it is binary.
pub fn payload(bytes: Option<&[u8]>) -> String {
    let Some(bytes) = bytes else { return "(no payload)".to_owned() };
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut value) => {
            mask_value(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => format!("({} bytes, not UTF-8)", bytes.len()),
        },
    }
}

fn mask_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_name(k) && !v.is_null() {
                    *v = serde_json::Value::String(MASK.to_owned());
                } else {
                    mask_value(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_value),
        _ => {}
    }
}

/// Headers for display, secret ones masked; binary values as a note.
pub fn headers(headers: &[Header]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            let value = match h.value.as_deref() {
                None => "(null)".to_owned(),
                Some(_) if is_secret_name(&h.key) => MASK.to_owned(),
                Some(v) => match std::str::from_utf8(v) {
                    Ok(t) if !t.chars().any(|c| c.is_control()) => t.to_owned(),
                    _ => format!("({} bytes)", v.len()),
                },
            };
            (h.key.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_and_tokens_are_masked_names_are_not() {
        let shown =
            payload(Some(br#"{"name":"<script>","password_hash":"$argon2id$v=19$abc","nested":{"api_token":"t"}}"#));
        assert!(!shown.contains("argon2id") && !shown.contains("\"t\""), "{shown}");
        assert!(shown.contains("<script>"), "escaping is the page's job, not masking's: {shown}");
        let h = headers(&[
            Header { key: "authorization".into(), value: Some(b"Bearer x".to_vec()) },
            Header { key: "x-request-id".into(), value: Some(b"r1".to_vec()) },
        ]);
        assert_eq!(h[0].1, MASK);
        assert_eq!(h[1].1, "r1");
    }
}
