//! Console sessions: a login with an admin token yields a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie and a CSRF token that every form posts back. Sessions live in this
//! process's memory (a restart logs everyone out) and expire after a fixed time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::RngCore as _;

use crate::admin_tokens::constant_time_eq;

pub const COOKIE: &str = "console_session";
/// How long a session lasts from its login.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

#[derive(Clone, Debug)]
pub struct Session {
    /// The admin token's name: the actor of this session's actions.
    pub actor: String,
    pub csrf: String,
    expires: Instant,
}

#[derive(Clone, Default)]
pub struct Sessions {
    by_id: Arc<Mutex<HashMap<String, Session>>>,
}

/// 32 random bytes, hex: unguessable, and safe in a cookie and a form field.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Starts a session for `actor`; returns its id (for the cookie).
    pub fn start(&self, actor: String) -> String {
        let id = random_token();
        let session = Session { actor, csrf: random_token(), expires: Instant::now() + LIFETIME };
        let mut map = self.by_id.lock().expect("session lock");
        map.retain(|_, s| s.expires > Instant::now());
        map.insert(id.clone(), session);
        id
    }

    /// The live session the request's cookie names.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, COOKIE)?;
        let map = self.by_id.lock().expect("session lock");
        let session = map.get(&id).filter(|s| s.expires > Instant::now())?.clone();
        Some((id, session))
    }

    pub fn end(&self, id: &str) {
        self.by_id.lock().expect("session lock").remove(id);
    }
}

impl Session {
    /// Whether a posted CSRF token is this session's.
    pub fn csrf_ok(&self, posted: &str) -> bool {
        constant_time_eq(posted.as_bytes(), self.csrf.as_bytes())
    }
}

/// The `Set-Cookie` value of a session: not readable by scripts, never sent cross-site, only
/// to the console's paths.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs())
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends() {
        let sessions = Sessions::default();
        let id = sessions.start("alice".into());
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, format!("other=1; {COOKIE}={id}").parse().unwrap());
        let (found, session) = sessions.from_headers(&headers).unwrap();
        assert_eq!((found.as_str(), session.actor.as_str()), (id.as_str(), "alice"));
        assert!(session.csrf_ok(&session.csrf.clone()));
        assert!(!session.csrf_ok("forged"));
        sessions.end(&id);
        assert!(sessions.from_headers(&headers).is_none());
        assert!(set_cookie(&id).contains("HttpOnly; SameSite=Strict"));
    }
}
