//! The OpenAPI 3.1 description of the gateway's public API, written by hand: three routes do
//! not need a generator, and the integration test checks it against the routes the public
//! listener serves. `/metrics` and the probes are on the internal listener and not part of
//! the public contract.

use serde_json::{json, Value};

use crate::domain::DisplayName;
use crate::idempotency::MAX_KEY_LEN;
use crate::json_body::MAX_BODY_BYTES;

pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Registration gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sign-up over HTTP. A registration is answered 202 only after the message broker \
                            has acknowledged it durably; its outcome is then available at the Location returned. \
                            Every error is an RFC 9457 problem document (application/problem+json)."
        },
        "paths": {
            "/registrations": {
                "post": {
                    "operationId": "register",
                    "summary": "Request a registration",
                    "parameters": [{
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": false,
                        "description": "Retries with the same key get the same request id and never create a \
                                        second user. Reusing a key with a different body is a 409.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LEN, "pattern": "^[\\x20-\\x7E]+$"}
                    }],
                    "requestBody": {
                        "required": true,
                        "description": format!("At most {MAX_BODY_BYTES} bytes."),
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RegistrationRequest"}}}
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted: the broker has the registration durably.",
                            "headers": {
                                "Location": {"description": "Where to ask for the outcome.", "schema": {"type": "string"}},
                                "x-request-id": {"schema": {"type": "string", "format": "uuid"}}
                            },
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}
                        },
                        "400": problem_response("Malformed JSON or invalid Idempotency-Key."),
                        "408": problem_response("The body did not arrive within the body read timeout; the \
                                                 connection is closed."),
                        "409": problem_response("Idempotency-Key reused with a different request."),
                        "413": problem_response("Request body too large."),
                        "415": problem_response("Content-Type is not application/json."),
                        "422": problem_response("Invalid fields, listed one by one in `errors`."),
                        "429": retry_response("Not accepted: this client's sign-up budget is used up (a token \
                                               bucket per client address). Retry after Retry-After seconds."),
                        "503": retry_response("Not accepted: the broker did not acknowledge in time, or too many \
                                               requests are being processed. Retry after Retry-After seconds.")
                    }
                }
            },
            "/registrations/{request_id}": {
                "get": {
                    "operationId": "registrationStatus",
                    "summary": "The outcome of a registration",
                    "parameters": [{
                        "name": "request_id",
                        "in": "path",
                        "required": true,
                        "schema": {"type": "string", "format": "uuid"}
                    }],
                    "responses": {
                        "200": {
                            "description": "The current status.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RegistrationStatus"}}}
                        },
                        "400": problem_response("Not a UUID."),
                        "404": problem_response("No registration with this id was accepted here."),
                        "503": retry_response("The status store is unreachable.")
                    }
                },
                "delete": {
                    "operationId": "withdrawRegistration",
                    "summary": "Withdraw a sign-up: its account is deleted (or never stored) and a tombstone remains",
                    "description": "The request id is the capability. 202 only once the broker has the withdrawal; GET on the same URL then reads `withdrawn`. Repeating it is harmless.",
                    "parameters": [{
                        "name": "request_id",
                        "in": "path",
                        "required": true,
                        "schema": {"type": "string", "format": "uuid"}
                    }],
                    "responses": {
                        "202": {
                            "description": "Withdrawal accepted; follow it at Location.",
                            "headers": {"Location": {"description": "The status URL.", "schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WithdrawalAccepted"}}}
                        },
                        "400": problem_response("Not a UUID."),
                        "404": problem_response("No registration with this id was accepted here."),
                        "503": retry_response("Not accepted (broker or status store unreachable); repeat it.")
                    }
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            }
        },
        "components": {
            "schemas": {
                "RegistrationRequest": {
                    "type": "object",
                    "required": ["email", "name", "password"],
                    "properties": {
                        "email": {"type": "string", "format": "email", "maxLength": 254,
                                  "description": "Used in canonical form: trimmed, the local part in Unicode NFC and lower-cased (nothing else folded), the domain in its ASCII (IDNA) form. Two sign-ups are for the same address exactly when these forms are equal."},
                        "name": {"type": "string", "pattern": DisplayName::pattern(),
                                 "description": "Trimmed of Unicode white space, then 1 to 100 characters, none of them \
                                                 a control character (Unicode Cc). The pattern is exactly this rule."},
                        "password": {"type": "string", "minLength": 8, "maxLength": 128, "writeOnly": true}
                    }
                },
                "Accepted": {
                    "type": "object",
                    "required": ["request_id", "status"],
                    "properties": {
                        "request_id": {"type": "string", "format": "uuid"},
                        "status": {"const": "pending"}
                    }
                },
                "WithdrawalAccepted": {
                    "type": "object",
                    "required": ["request_id", "status"],
                    "properties": {
                        "request_id": {"type": "string", "format": "uuid"},
                        "status": {"const": "withdrawal_pending"}
                    }
                },
                "RegistrationStatus": {
                    "type": "object",
                    "required": ["request_id", "status", "retry_count", "reason", "updated_at"],
                    "properties": {
                        "request_id": {"type": "string", "format": "uuid"},
                        "status": {"enum": ["pending", "completed", "rejected", "retrying", "parked", "withdrawn", "erased"]},
                        "retry_count": {"type": "integer", "minimum": 0},
                        "reason": {"type": ["string", "null"]},
                        "updated_at": {"type": ["string", "null"], "format": "date-time"}
                    }
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details.",
                    "required": ["type", "title", "status"],
                    "properties": {
                        "type": {"type": "string", "format": "uri-reference"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string", "format": "uri-reference"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                            }
                        }
                    }
                }
            }
        }
    })
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn retry_response(description: &str) -> Value {
    let mut response = problem_response(description);
    response["headers"] = json!({
        "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 1}}
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let name: String = text[i + 21..].chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(doc["components"]["schemas"].get(&name).is_some(), "dangling $ref to {name}");
        }
    }

    #[test]
    fn delete_registration_lists_its_responses() {
        let doc = document();
        let responses = doc["paths"]["/registrations/{request_id}"]["delete"]["responses"].as_object().unwrap();
        for code in ["202", "400", "404", "503"] {
            assert!(responses.contains_key(code), "missing {code}");
        }
    }

    #[test]
    fn post_registrations_lists_its_responses() {
        let doc = document();
        let responses = doc["paths"]["/registrations"]["post"]["responses"].as_object().unwrap();
        for code in ["202", "400", "409", "413", "415", "422", "429", "503"] {
            assert!(responses.contains_key(code), "missing {code}");
        }
    }
}
