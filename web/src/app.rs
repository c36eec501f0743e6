//! What each request gets: the login, the session and CSRF checks every
//! signed-in request passes, and the pages.

use std::fs::File;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use mailgate_ipc::protocol::qmgr::Action;
use mailgate_log::{info, warning};
use mailgate_stats::{Graph, STATS_FILE, Snapshot, svg, unix_now};

use crate::auth::{Authenticator, LoginContext};
use crate::http::{Method, Request, Response, Status};
use crate::pages::{self, Frame};
use crate::session::{LOGIN_COOKIE, SESSION_COOKIE, Session, Sessions, same, token};
use crate::spool;

/// How much of the log's end the log page reads, and how many lines it shows.
const LOG_TAIL_BYTES: u64 = 256 * 1024;
const LOG_LINES: usize = 300;
/// A failed login answers only after this, to slow down guessing.
const LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);

pub struct App {
    pub sessions: Sessions,
    pub auth: Box<dyn Authenticator>,
    /// web_admin_users: who may log in at all.
    pub admins: Vec<String>,
    /// maillog_file, opened before the sandbox; None when the log goes
    /// to the master's standard error.
    pub log: Option<File>,
    pub tls: bool,
}

/// Who is asking, as the server saw the connection.
pub struct Peer {
    pub ip: IpAddr,
}

impl App {
    pub async fn respond(&self, request: Request, peer: &Peer) -> Response {
        let head = request.method == Method::Get;
        match (&request.method, request.path.as_str()) {
            (Method::Get, "/style.css") => {
                return Response::typed(
                    "text/css; charset=utf-8",
                    pages::STYLE.as_bytes().to_vec(),
                );
            }
            // Browsers ask for it by themselves; a redirect to the login
            // would replace the login form's token cookie.
            (Method::Get, "/favicon.ico") => {
                return Response::error(Status::NotFound, "no icon");
            }
            (Method::Get, "/login") => return self.login_page(None),
            (Method::Post, "/login") => return self.login(&request, peer).await,
            (Method::Other(_), _) => {
                return Response::error(Status::MethodNotAllowed, "method not allowed");
            }
            _ => {}
        }
        let session_id = request.cookie(SESSION_COOKIE).unwrap_or_default();
        let Some(session) = self.sessions.get(&session_id) else {
            let page = !request.path.starts_with("/graph/");
            return if head && page {
                Response::redirect("/login")
            } else {
                Response::error(Status::Forbidden, "not logged in (or the session expired)")
            };
        };
        if request.method == Method::Post {
            if let Some(problem) = forged(&request, &session) {
                warning!(
                    "web: refused a {} from {} for {}: {problem}",
                    request.path,
                    peer.ip,
                    session.user
                );
                return Response::error(Status::Forbidden, problem);
            }
            return self.post(&request, &session_id, &session, peer).await;
        }
        self.get(&request, &session).await
    }

    fn login_page(&self, error: Option<&str>) -> Response {
        let token = token();
        Response::html(Status::Ok, pages::login(&token, error))
            .with_header("Set-Cookie", self.cookie(LOGIN_COOKIE, &token))
    }

    fn cookie(&self, name: &str, value: &str) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
    }

    async fn login(&self, request: &Request, peer: &Peer) -> Response {
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
        let cookie = request.cookie(LOGIN_COOKIE).unwrap_or_default();
        if cookie.is_empty() || !same(field("token"), &cookie) {
            warning!(
                "web: login from {} with {} token: the form was not the one this page gave out",
                peer.ip,
                if cookie.is_empty() { "no" } else { "another" }
            );
            return self.login_page(Some("The login form expired; please log in again."));
        }
        let (user, password) = (field("user"), field("password"));
        let context = LoginContext {
            remote_ip: peer.ip.to_string(),
            secured: self.tls || peer.ip.is_loopback(),
        };
        // The backend is asked even for users who may not log in here, so
        // the answer's timing does not tell who is an administrator.
        let verdict = self.auth.check(user, password, &context).await;
        let allowed = self.admins.iter().any(|a| a == user);
        match verdict {
            Ok(true) if allowed => {
                info!("web: {user} logged in from {}", peer.ip);
                let id = self.sessions.create(user);
                Response::redirect("/")
                    .with_header("Set-Cookie", self.cookie(SESSION_COOKIE, &id))
                    .with_header(
                        "Set-Cookie",
                        format!("{LOGIN_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
                    )
            }
            Ok(good) => {
                let why = if good {
                    "not in web_admin_users"
                } else {
                    "bad password"
                };
                warning!("web: login failed for {user:?} from {}: {why}", peer.ip);
                tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
                self.login_page(Some("Login failed."))
            }
            Err(e) => {
                warning!("web: login for {user:?} from {} not checked: {e}", peer.ip);
                tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
                let mut response = self.login_page(Some(
                    "Logins cannot be checked right now (the login backend is unavailable).",
                ));
                response.status = Status::Unavailable;
                response
            }
        }
    }

    async fn get(&self, request: &Request, session: &Session) -> Response {
        let path = request.path.as_str();
        let frame = |here: &'static str| Frame {
            user: &session.user,
            csrf: &session.csrf,
            flash: session.flash.as_deref(),
            here,
        };
        if let Some(name) = path
            .strip_prefix("/graph/")
            .and_then(|n| n.strip_suffix(".svg"))
        {
            let Some(graph) = Graph::parse(name) else {
                return Response::error(Status::NotFound, "no such graph");
            };
            return match blocking(|| {
                Snapshot::read(Path::new(STATS_FILE)).map_err(|e| e.to_string())
            })
            .await
            {
                Ok(snapshot) => Response::typed(
                    "image/svg+xml",
                    svg(&snapshot, graph, unix_now()).into_bytes(),
                ),
                Err(e) => Response::error(Status::NotFound, &e),
            };
        }
        let (title, here, content) = match path {
            "/" => {
                let result =
                    blocking(|| Snapshot::read(Path::new(STATS_FILE)).map_err(|e| e.to_string()))
                        .await;
                let content = match &result {
                    Ok(snapshot) => pages::overview(Some(snapshot), unix_now(), None),
                    Err(e) => pages::overview(
                        None,
                        0,
                        Some(&format!(
                            "No statistics ({e}): the stats service writes them (see master.cf)."
                        )),
                    ),
                };
                ("Overview", "/", content)
            }
            "/graphs" => ("Graphs", "/graphs", pages::graphs()),
            "/queue" => {
                let (entries, trouble) = blocking(spool::queue).await;
                (
                    "Queue",
                    "/queue",
                    pages::queue(&entries, &trouble, &session.csrf),
                )
            }
            "/quarantine" => {
                let (entries, trouble) = blocking(spool::quarantine).await;
                (
                    "Quarantine",
                    "/quarantine",
                    pages::quarantine(&entries, &trouble, &session.csrf),
                )
            }
            "/log" => {
                let (lines, problem) = self.log_tail();
                ("Log", "/log", pages::log(&lines, problem.as_deref()))
            }
            _ => {
                let (quarantined, id) = match (
                    path.strip_prefix("/queue/"),
                    path.strip_prefix("/quarantine/"),
                ) {
                    (Some(id), _) => (false, id.to_string()),
                    (_, Some(id)) => (true, id.to_string()),
                    _ => return Response::error(Status::NotFound, "no such page"),
                };
                let shown = {
                    let id = id.clone();
                    blocking(move || {
                        if quarantined {
                            spool::show_quarantined(&id)
                        } else {
                            spool::show_queued(&id)
                        }
                    })
                    .await
                };
                let content = match shown {
                    Ok(message) => pages::message(&message, &session.csrf, quarantined),
                    Err(e) => return Response::error(Status::NotFound, &e),
                };
                let (title, here) = if quarantined {
                    ("Quarantined message", "/quarantine")
                } else {
                    ("Queued message", "/queue")
                };
                let html = pages::page(&frame(here), &format!("{title} {id}"), &content);
                return Response::html(Status::Ok, html);
            }
        };
        Response::html(Status::Ok, pages::page(&frame(here), title, &content))
    }

    async fn post(
        &self,
        request: &Request,
        session_id: &str,
        session: &Session,
        peer: &Peer,
    ) -> Response {
        let form = request.form();
        let id = form.get("id").cloned().unwrap_or_default();
        let action = form.get("action").map(String::as_str).unwrap_or("");
        let (outcome, back) = match request.path.as_str() {
            "/logout" => {
                info!("web: {} logged out", session.user);
                self.sessions.remove(session_id);
                return Response::redirect("/login").with_header(
                    "Set-Cookie",
                    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
                );
            }
            "/queue" => {
                let action = match action {
                    "hold" => Action::Hold,
                    "release" => Action::Release,
                    "delete" => Action::Delete,
                    "requeue" => Action::Requeue,
                    _ => return Response::error(Status::BadRequest, "unknown action"),
                };
                (spool::act(action, &id).await, "/queue")
            }
            "/quarantine" => {
                let outcome = match action {
                    "release" => spool::release(&id).await,
                    "delete" => {
                        let id = id.clone();
                        blocking(move || spool::delete_quarantined(&id)).await
                    }
                    _ => return Response::error(Status::BadRequest, "unknown action"),
                };
                (outcome, "/quarantine")
            }
            _ => return Response::error(Status::NotFound, "no such action"),
        };
        let text = match outcome {
            Ok(done) => done,
            Err(problem) => format!("Not done: {problem}"),
        };
        info!(
            "web: {} from {}: {} {action} {id}: {text}",
            session.user, peer.ip, request.path
        );
        self.sessions.flash(session_id, text);
        Response::redirect(back)
    }

    /// The last lines of maillog_file, read through the descriptor opened
    /// before the sandbox.
    fn log_tail(&self) -> (Vec<String>, Option<String>) {
        let Some(log) = &self.log else {
            return (
                Vec::new(),
                Some("maillog_file is not set: the log goes to the master's standard error (the journal).".into()),
            );
        };
        let size = match log.metadata() {
            Ok(m) => m.len(),
            Err(e) => return (Vec::new(), Some(format!("cannot read the log: {e}"))),
        };
        let start = size.saturating_sub(LOG_TAIL_BYTES);
        let mut bytes = vec![0u8; (size - start) as usize];
        let mut done = 0;
        while done < bytes.len() {
            match log.read_at(&mut bytes[done..], start + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return (Vec::new(), Some(format!("cannot read the log: {e}"))),
            }
        }
        bytes.truncate(done);
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if start > 0 && !lines.is_empty() {
            // The first line was cut.
            lines.remove(0);
        }
        let skip = lines.len().saturating_sub(LOG_LINES);
        (lines[skip..].iter().map(|l| l.to_string()).collect(), None)
    }
}

/// Why a signed-in POST is refused: no or a wrong CSRF token, or an
/// Origin that is not this page.
fn forged(request: &Request, session: &Session) -> Option<&'static str> {
    let form = request.form();
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !same(token, &session.csrf) {
        return Some("the form's token does not match the session (reload the page)");
    }
    if let Some(origin) = request.header("origin") {
        let host = request.header("host").unwrap_or("");
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        if host.is_empty() || origin_host != host {
            return Some("the request comes from another site");
        }
    }
    None
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn post(csrf: &str, origin: Option<&str>) -> Request {
        let mut headers = HashMap::new();
        headers.insert("host".to_string(), "127.0.0.1:8025".to_string());
        if let Some(origin) = origin {
            headers.insert("origin".to_string(), origin.to_string());
        }
        Request {
            method: Method::Post,
            path: "/queue".into(),
            headers,
            body: format!("csrf={csrf}&id=A&action=hold").into_bytes(),
        }
    }

    #[test]
    fn forged_posts_are_recognised() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.create("ann");
        let session = sessions.get(&id).unwrap();
        let good = session.csrf.clone();
        assert_eq!(forged(&post(&good, None), &session), None);
        assert_eq!(
            forged(&post(&good, Some("https://127.0.0.1:8025")), &session),
            None
        );
        assert!(forged(&post(&good, Some("https://evil.example")), &session).is_some());
        assert!(forged(&post(&good, Some("null")), &session).is_some());
        assert!(forged(&post("", None), &session).is_some());
        assert!(forged(&post(&token(), None), &session).is_some());
    }
}
