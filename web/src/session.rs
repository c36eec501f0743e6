//! Logged-in sessions and their CSRF tokens, in memory (a restart logs
//! everyone out). A session id is 32 random bytes in an HttpOnly,
//! SameSite=Strict cookie; every form carries the session's own token,
//! compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// More sessions than this and the oldest is dropped.
const MAX_SESSIONS: usize = 256;

pub const SESSION_COOKIE: &str = "mg_session";
/// The token of the login form, before there is a session.
pub const LOGIN_COOKIE: &str = "mg_login";

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    /// A message for the next page (the outcome of an action).
    pub flash: Option<String>,
    last_seen: Instant,
}

pub struct Sessions {
    timeout: Duration,
    table: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex, from getrandom(2) (allowed in every sandbox).
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled tail of
        // `bytes`, which getrandom writes at most that many bytes into.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // Without randomness there can be no secure session; never
            // fall back to something guessable.
            mailgate_sandbox::die("getrandom failed: cannot make a session token");
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal strings, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(timeout: Duration) -> Sessions {
        Sessions {
            timeout,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// A new session for `user`: its id (for the cookie).
    pub fn create(&self, user: &str) -> String {
        let id = token();
        let session = Session {
            user: user.to_string(),
            csrf: token(),
            flash: None,
            last_seen: Instant::now(),
        };
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let timeout = self.timeout;
        table.retain(|_, s| s.last_seen.elapsed() < timeout);
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
        table.insert(id.clone(), session);
        id
    }

    /// The session with this id, if it exists and has not timed out; a
    /// request renews it. The flash message is taken.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let expired = table
            .get(id)
            .is_some_and(|s| s.last_seen.elapsed() >= self.timeout);
        if expired {
            table.remove(id);
            return None;
        }
        let session = table.get_mut(id)?;
        session.last_seen = Instant::now();
        let copy = session.clone();
        session.flash = None;
        Some(copy)
    }

    pub fn flash(&self, id: &str, message: String) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = table.get_mut(id) {
            session.flash = Some(message);
        }
    }

    pub fn remove(&self, id: &str) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_tokens_are_random() {
        let a = token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, token());
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));

        let sessions = Sessions::new(Duration::from_millis(200));
        let id = sessions.create("ann");
        let s = sessions.get(&id).unwrap();
        assert_eq!(s.user, "ann");
        sessions.flash(&id, "done".into());
        assert_eq!(sessions.get(&id).unwrap().flash.as_deref(), Some("done"));
        assert_eq!(sessions.get(&id).unwrap().flash, None);
        assert!(sessions.get("nonsense").is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(sessions.get(&id).is_none());
        let id = sessions.create("bob");
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }
}
