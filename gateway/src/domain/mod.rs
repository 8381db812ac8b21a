//! The registration as the gateway accepts it: newtypes that can only hold valid values, so
//! code past the parsing step never re-checks them ("parse, don't validate").

mod display_name;
mod email_address;
mod new_registration;
mod password;

pub use display_name::DisplayName;
pub use email_address::EmailAddress;
pub use new_registration::{FieldError, NewRegistration, RegistrationForm};
pub use password::Password;
