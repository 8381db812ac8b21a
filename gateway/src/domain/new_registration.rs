//! Turning the request body into a [`NewRegistration`], collecting every field's problem.

use serde::Deserialize;

pub use reliable_messaging::service::endpoints::problem::FieldError;
use serde_json::Value;

use super::{DisplayName, EmailAddress, Password};

/// A sign-up request whose every field is valid.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub email: EmailAddress,
    pub name: DisplayName,
    pub password: Password,
}

/// The body as received: any JSON object. Fields are raw values so that a missing field or
/// a number where a string belongs becomes a field error (422) like any other, instead of a
/// deserialisation failure that could only name the first problem. No `Debug`: it holds
/// the plaintext password.
#[derive(Deserialize)]
pub struct RegistrationForm {
    email: Option<Value>,
    name: Option<Value>,
    password: Option<Value>,
}

impl TryFrom<RegistrationForm> for NewRegistration {
    type Error = Vec<FieldError>;

    fn try_from(form: RegistrationForm) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let email = field(&mut errors, "email", form.email, |s| EmailAddress::parse(&s));
        let name = field(&mut errors, "name", form.name, |s| DisplayName::parse(&s));
        let password = field(&mut errors, "password", form.password, Password::parse);
        match (email, name, password) {
            (Some(email), Some(name), Some(password)) => Ok(Self { email, name, password }),
            _ => Err(errors),
        }
    }
}

fn field<T>(
    errors: &mut Vec<FieldError>,
    name: &str,
    value: Option<Value>,
    parse: impl FnOnce(String) -> Result<T, String>,
) -> Option<T> {
    let result = match value {
        None | Some(Value::Null) => Err("is required".to_owned()),
        Some(Value::String(s)) => parse(s),
        Some(_) => Err("must be a string".to_owned()),
    };
    result.map_err(|message| errors.push(FieldError::new(name, message))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<NewRegistration, Vec<FieldError>> {
        NewRegistration::try_from(serde_json::from_value::<RegistrationForm>(body).unwrap())
    }

    #[test]
    fn valid_body_is_normalised() {
        let r = parse(json!({"email": " Ada@Example.com", "name": " Ada ", "password": "correct horse"})).unwrap();
        assert_eq!(r.email.as_str(), "ada@example.com");
        assert_eq!(r.name.as_str(), "Ada");
        assert_eq!(r.password.expose(), "correct horse");
    }

    #[test]
    fn lists_one_error_per_invalid_field() {
        let errors = parse(json!({"email": "nope", "name": 42})).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "name", "password"]);
        assert_eq!(errors[1].message, "must be a string");
        assert_eq!(errors[2].message, "is required");
    }
}
