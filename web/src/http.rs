//! A small, strict HTTP/1.1 server side: one request per connection,
//! bounded head and body, forms and cookies, and responses that always
//! carry the security headers. Nothing here knows the pages.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Request line and headers together.
const MAX_HEAD: usize = 16 * 1024;
/// Forms are small: ids, actions, a login.
const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other(String),
}

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path without the query, percent-decoded.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// Why a request could not be read; each maps to an answer, never a panic.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The client went away or sent nothing.
    Closed,
    TooLarge,
    Malformed(&'static str),
    LengthRequired,
}

impl RequestError {
    pub fn status(&self) -> Option<Status> {
        match self {
            RequestError::Closed => None,
            RequestError::TooLarge => Some(Status::TooLarge),
            RequestError::Malformed(_) => Some(Status::BadRequest),
            RequestError::LengthRequired => Some(Status::LengthRequired),
        }
    }
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header("cookie")?.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    }

    /// The body as an application/x-www-form-urlencoded form.
    pub fn form(&self) -> HashMap<String, String> {
        parse_query(&String::from_utf8_lossy(&self.body))
    }
}

/// Reads one request. The head is parsed by httparse; a body is read only
/// with a Content-Length within MAX_BODY (no chunked uploads).
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Request, RequestError> {
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| RequestError::Closed)?;
        if n == 0 {
            return Err(RequestError::Closed);
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(RequestError::TooLarge);
        }
    };
    if head_end > MAX_HEAD {
        return Err(RequestError::TooLarge);
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(&buffer[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(RequestError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooLarge),
        Err(_) => return Err(RequestError::Malformed("bad request head")),
    }
    let method = match parsed.method.unwrap_or("") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => Method::Other(other.to_string()),
    };
    let target = parsed.path.unwrap_or("/");
    let mut headers = HashMap::new();
    for header in parsed.headers.iter() {
        let value = String::from_utf8_lossy(header.value).into_owned();
        headers.insert(header.name.to_ascii_lowercase(), value);
    }
    // No page takes query parameters.
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if !path.starts_with('/') {
        return Err(RequestError::Malformed("the target must be a path"));
    }
    let path = percent_decode(path).ok_or(RequestError::Malformed("bad percent escape"))?;
    let mut body = buffer[head_end..].to_vec();
    if headers.contains_key("transfer-encoding") {
        return Err(RequestError::LengthRequired);
    }
    let length = match headers.get("content-length") {
        Some(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| RequestError::Malformed("bad Content-Length"))?,
        None if method == Method::Post => return Err(RequestError::LengthRequired),
        None => 0,
    };
    if length > MAX_BODY {
        return Err(RequestError::TooLarge);
    }
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| RequestError::Closed)?;
        if n == 0 {
            return Err(RequestError::Closed);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `a=1&b=two+words` with percent escapes; malformed pairs are dropped.
pub fn parse_query(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(&key.replace('+', " "))?;
            let value = percent_decode(&value.replace('+', " "))?;
            Some((key, value))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a value for a URL query or path segment.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    SeeOther,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    LengthRequired,
    TooLarge,
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::SeeOther => "303 See Other",
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::LengthRequired => "411 Length Required",
            Status::TooLarge => "413 Content Too Large",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn html(status: Status, body: String) -> Response {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    pub fn typed(content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status: Status::Ok,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    pub fn redirect(to: &str) -> Response {
        let mut response = Response::typed("text/plain; charset=utf-8", Vec::new());
        response.status = Status::SeeOther;
        response.headers.push(("Location".into(), to.into()));
        response
    }

    pub fn error(status: Status, text: &str) -> Response {
        let mut response = Response::typed(
            "text/plain; charset=utf-8",
            format!("{text}\n").into_bytes(),
        );
        response.status = status;
        response
    }

    pub fn with_header(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.to_string(), value));
        self
    }

    /// The bytes on the wire, with the headers every answer carries: no
    /// caching of pages that show mail, no framing, no sniffing, a content
    /// security policy that allows no script at all.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
             Referrer-Policy: same-origin\r\n\
             Content-Security-Policy: default-src 'none'; img-src 'self'; style-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n",
            self.status.line(),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Values are ours; a newline in one would split the header.
            let value = value.replace(['\r', '\n'], " ");
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
    head_only: bool,
) {
    let _ = stream.write_all(&response.to_bytes(head_only)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        let mut stream = bytes;
        read_request(&mut stream).await
    }

    #[tokio::test]
    async fn requests_are_parsed_and_bounded() {
        let r = parse(b"GET /queue/AB%43?x=1&y=a+b HTTP/1.1\r\nHost: h\r\nCookie: a=1; mg_session=abc\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            (r.method.clone(), r.path.as_str()),
            (Method::Get, "/queue/ABC")
        );
        assert_eq!(parse_query("y=a+b&z=%41")["y"], "a b");
        assert_eq!(r.cookie("mg_session").as_deref(), Some("abc"));
        assert_eq!(r.cookie("nope"), None);

        let r =
            parse(b"POST /login HTTP/1.1\r\nContent-Length: 24\r\n\r\nuser=a%40b&password=x%26")
                .await
                .unwrap();
        assert_eq!(r.form()["user"], "a@b");
        assert_eq!(r.form()["password"], "x&");

        assert_eq!(parse(b"").await.unwrap_err(), RequestError::Closed);
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\n\r\n").await.unwrap_err(),
            RequestError::LengthRequired
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap_err(),
            RequestError::LengthRequired
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
                .await
                .unwrap_err(),
            RequestError::TooLarge
        );
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse(huge.as_bytes()).await.unwrap_err(),
            RequestError::TooLarge
        );
        assert!(matches!(
            parse(b"GET /%zz HTTP/1.1\r\n\r\n").await.unwrap_err(),
            RequestError::Malformed(_)
        ));
        assert!(matches!(
            parse(b"\x00\x01 nonsense\r\n\r\n").await.unwrap_err(),
            RequestError::Malformed(_)
        ));
    }

    #[test]
    fn responses_carry_the_security_headers() {
        let r = Response::redirect("/x\r\nSet-Cookie: evil=1").to_bytes(false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 303 See Other\r\n"));
        assert!(text.contains("Content-Security-Policy: default-src 'none';"));
        assert!(text.contains("X-Frame-Options: DENY\r\n"));
        assert!(text.contains("Location: /x  Set-Cookie: evil=1\r\n"));
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
