//! One repository of one registry, spoken to over the distribution
//! protocol: requests with authentication, retries and errors that say
//! where and what.
//!
//! - Authentication, as container tools do it: `GET /v2/` first; a 200 is
//!   anonymous access; a 401 names the scheme in `WWW-Authenticate`.
//!   `Basic`: every request carries the credentials.  `Bearer
//!   realm=…,service=…`: a token is fetched from the realm (with the
//!   credentials as Basic, or anonymously) for the scope
//!   `repository:NAME:pull,push` (and `pull` on the repositories blobs are
//!   mounted from), and renewed when it expires or when a request gets a 401.
//! - Transient failures (a connection refused or reset, a timeout, 429,
//!   500, 502, 503, 504) are retried, up to [`ATTEMPTS`] times with a
//!   backoff doubling from 250 ms (or the registry's `Retry-After`, up to
//!   30 s); a cancellation stops the wait.
//! - An error names the registry, the repository, what was asked (the
//!   blob, the manifest), the HTTP status and the registry's own message
//!   (the protocol's JSON `errors`).  Secrets ([`Secret`]) never appear.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http;

use super::credentials::{Credentials, Secret};
use crate::destination::RegistryReference;
use crate::error::{Error, ErrorKind, Result};

/// Tries of one request, the first included.
pub const ATTEMPTS: u32 = 6;
/// The first wait before a retry; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before a retry.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a connection may take to open, and a response to come.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);
/// Error bodies read at most.
const BODY_LIMIT: u64 = 1 << 20;

/// How the registry wants to be spoken to.
#[derive(Debug, Clone)]
enum Scheme {
    Anonymous,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

struct Token {
    value: Secret,
    /// When it is to be renewed.
    renew_at: Instant,
}

/// A request: method, URL, headers, body, and what it is for (in errors).
pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: String) -> Request<'a> {
        Request { method, url, headers: Vec::new(), body: None }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }
}

/// A response: its status, the headers a push reads, and its body (read
/// whole: registries answer a push with small bodies).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub range: Option<String>,
    pub retry_after: Option<Duration>,
    authenticate: Option<String>,
    /// `Docker-Content-Digest`: the digest of the manifest or blob asked about.
    pub digest: Option<String>,
    pub content_type: Option<String>,
    /// `OCI-Subject`: a manifest with a subject was taken in by the
    /// registry's referrers API.
    pub oci_subject: Option<String>,
    pub body: String,
}

/// A failed request: transient or not.
enum Failure {
    /// No answer (connection refused or reset, timeout): worth retrying.
    Transport(String, bool),
}

/// A repository of a registry.
pub struct Client {
    agent: ureq::Agent,
    /// `https://HOST[:PORT]` or `http://…`.
    base: String,
    /// The registry as named, for messages.
    pub registry: String,
    pub repository: String,
    credentials: Option<Credentials>,
    /// Where the credentials came from (`(from …)`), or, with none, the
    /// sentence saying where they were looked for.
    credentials_origin: String,
    scheme: Mutex<Scheme>,
    token: Mutex<Option<Token>>,
    /// Repositories whose blobs may be mounted: their pull scope is asked for too.
    mount_sources: Vec<String>,
    cancel: Option<Arc<AtomicBool>>,
}

/// The registry's JSON `errors`, as one line: `CODE: message (detail)`.
pub fn registry_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors = value.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            let mut text = match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("{code}: {message}"),
                (false, true) => code.to_string(),
                _ => message.to_string(),
            };
            match e.get("detail") {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) if s.is_empty() => {}
                Some(serde_json::Value::String(s)) => text.push_str(&format!(" ({})", cut(s, 200))),
                Some(other) => text.push_str(&format!(" ({})", cut(&other.to_string(), 200))),
            }
            text
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// Whether a status is worth retrying.
fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// The value of `key` in a `WWW-Authenticate` challenge's parameters
/// (`realm="…",service="…"`).
fn challenge_param(params: &str, key: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        if name.eq_ignore_ascii_case(key) {
            return Some(value);
        }
    }
}

/// The scheme a `WWW-Authenticate` header asks for.
fn parse_challenge(header: &str) -> Option<Scheme> {
    let header = header.trim();
    let (name, params) = header.split_once(' ').unwrap_or((header, ""));
    if name.eq_ignore_ascii_case("basic") {
        Some(Scheme::Basic)
    } else if name.eq_ignore_ascii_case("bearer") {
        let realm = challenge_param(params, "realm")?;
        Some(Scheme::Bearer { realm, service: challenge_param(params, "service") })
    } else {
        None
    }
}

/// Percent-encodes a query value.
pub fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// Connects to the registry of `reference`: checks that it answers
    /// (`GET /v2/`) and authenticates as it asks.
    pub fn connect(
        reference: &RegistryReference,
        credentials: Option<Credentials>,
        credentials_origin: String,
        tls: ureq::tls::TlsConfig,
        tls_verify: bool,
        mount_sources: Vec<String>,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<Client> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .max_redirects(0)
            .user_agent(concat!("guix-docker-native/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let host = reference.api_host().to_string();
        let mut client = Client {
            agent,
            base: format!("https://{host}"),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            credentials,
            credentials_origin,
            scheme: Mutex::new(Scheme::Anonymous),
            token: Mutex::new(None),
            mount_sources,
            cancel,
        };
        // With --tls-verify=false, as skopeo: HTTPS without a check, and
        // plain HTTP when the registry does not speak TLS.
        let ping = match client.ping() {
            Err(Failure::Transport(why, _)) if !tls_verify => {
                client.base = format!("http://{host}");
                client.ping().map_err(|Failure::Transport(plain, _)| {
                    client.unreachable(&format!("over HTTPS: {why}; over HTTP: {plain}"))
                })?
            }
            Err(Failure::Transport(why, _)) => return Err(client.unreachable(&why)),
            Ok(r) => r,
        };
        match ping.status {
            200..=299 => {}
            401 => {
                let scheme = ping.authenticate.as_deref().and_then(parse_challenge).ok_or_else(|| {
                    client.error("GET /v2/", &ping, "answers 401 without a WWW-Authenticate challenge this program knows (Basic or Bearer)")
                })?;
                *client.scheme.lock().unwrap() = scheme.clone();
                match scheme {
                    Scheme::Bearer { .. } => client.renew_token()?,
                    Scheme::Basic => {
                        // Checks the credentials now, before any layer is made.
                        let again = client.send(Request::new("GET", format!("{}/v2/", client.base)), "GET /v2/")?;
                        if again.status == 401 {
                            return Err(client.unauthorized("GET /v2/", &again));
                        }
                    }
                    Scheme::Anonymous => {}
                }
            }
            _ => return Err(client.error("GET /v2/", &ping, "is not a registry (distribution API v2) or failed")),
        }
        Ok(client)
    }

    /// `registry HOST, repository NAME`.
    pub fn where_(&self) -> String {
        format!("registry {}, repository {}", self.registry, self.repository)
    }

    fn unreachable(&self, why: &str) -> Error {
        Error::new(ErrorKind::Output, format!("{}: cannot reach the registry at {}: {why}", self.where_(), self.base))
    }

    /// The error of `what` answered by `response`, with `context`.
    pub fn error(&self, what: &str, response: &Response, context: &str) -> Error {
        let mut message =
            format!("{}: {what}: HTTP {} {}", self.where_(), response.status, reason(response.status)).trim_end().to_string();
        if !context.is_empty() {
            message.push_str(&format!(" ({context})"));
        }
        match registry_message(&response.body) {
            Some(m) => message.push_str(&format!(": {m}")),
            None if !response.body.trim().is_empty() && response.body.len() < 300 => {
                message.push_str(&format!(": {}", response.body.trim()))
            }
            None => {}
        }
        Error::new(ErrorKind::Output, message)
    }

    /// The error of a 401 or 403: says where credentials were looked for.
    pub fn unauthorized(&self, what: &str, response: &Response) -> Error {
        let context = match &self.credentials {
            Some(c) => format!("refused the credentials of user '{}' {}", c.username, self.credentials_origin),
            None => self.credentials_origin.clone(),
        };
        self.error(what, response, &context)
    }

    fn ping(&self) -> std::result::Result<Response, Failure> {
        let mut last = None;
        // Two tries: an unreachable registry is said at once.
        for attempt in 0..2 {
            match self.once(&Request::new("GET", format!("{}/v2/", self.base)), None) {
                Ok(r) => return Ok(r),
                Err(Failure::Transport(why, transient)) => {
                    if !transient {
                        return Err(Failure::Transport(why, transient));
                    }
                    last = Some(why);
                    if attempt == 0 {
                        std::thread::sleep(FIRST_BACKOFF);
                    }
                }
            }
        }
        Err(Failure::Transport(last.unwrap_or_default(), true))
    }

    /// Fetches a token from the realm.
    fn renew_token(&self) -> Result<()> {
        let Scheme::Bearer { realm, service } = self.scheme.lock().unwrap().clone() else { return Ok(()) };
        let mut url = realm.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        let mut params = Vec::new();
        if let Some(service) = &service {
            params.push(format!("service={}", query_value(service)));
        }
        params.push(format!("scope={}", query_value(&format!("repository:{}:pull,push", self.repository))));
        for source in &self.mount_sources {
            params.push(format!("scope={}", query_value(&format!("repository:{source}:pull"))));
        }
        url.push_str(&params.join("&"));
        let mut request = Request::new("GET", url);
        if let Some(c) = &self.credentials {
            request = request.header("authorization", c.basic_authorization().expose());
        }
        let what = format!("token from the realm {realm}");
        let response = self.retrying(&request, &what, None)?;
        if response.status == 401 || response.status == 403 {
            return Err(self.unauthorized(&what, &response));
        }
        if response.status != 200 {
            return Err(self.error(&what, &response, ""));
        }
        let value: serde_json::Value = serde_json::from_str(&response.body)
            .map_err(|_| self.error(&what, &response, "the answer is not JSON"))?;
        let token = value
            .get("token")
            .or_else(|| value.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::new(ErrorKind::Output, format!("{}: {what}: the answer holds no token", self.where_())))?;
        // 60 s when not said, as the token specification has it; renewed
        // a little before it ends.
        let lifetime = value.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(60).max(1);
        let renew_at = Instant::now() + Duration::from_secs(lifetime) * 9 / 10;
        *self.token.lock().unwrap() = Some(Token { value: Secret::new(token), renew_at });
        Ok(())
    }

    /// The `Authorization` header for a request now, renewing an expired token.
    fn authorization(&self) -> Result<Option<String>> {
        let scheme = self.scheme.lock().unwrap().clone();
        match scheme {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.credentials.as_ref().map(|c| c.basic_authorization().expose().to_string())),
            Scheme::Bearer { .. } => {
                let expired = self.token.lock().unwrap().as_ref().is_none_or(|t| Instant::now() >= t.renew_at);
                if expired {
                    self.renew_token()?;
                }
                Ok(self.token.lock().unwrap().as_ref().map(|t| format!("Bearer {}", t.value.expose())))
            }
        }
    }

    /// One request, once.
    fn once(&self, request: &Request, authorization: Option<&str>) -> std::result::Result<Response, Failure> {
        let mut builder = http::Request::builder().method(request.method).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(auth) = authorization {
            builder = builder.header("authorization", auth);
        }
        let result = match request.body {
            Some(body) => builder.body(body).map_err(|e| Failure::Transport(e.to_string(), false)).and_then(|r| {
                self.agent.run(r).map_err(transport_failure)
            }),
            None => builder.body(()).map_err(|e| Failure::Transport(e.to_string(), false)).and_then(|r| {
                self.agent.run(r).map_err(transport_failure)
            }),
        };
        let mut response = result?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let (location, range, authenticate) = (header("location"), header("range"), header("www-authenticate"));
        let (digest, content_type) = (header("docker-content-digest"), header("content-type"));
        let oci_subject = header("oci-subject");
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
        let status = response.status().as_u16();
        let body = if request.method == "HEAD" {
            String::new()
        } else {
            match response.body_mut().with_config().limit(BODY_LIMIT).read_to_string() {
                Ok(body) => body,
                // A body cut off is a connection that failed.
                Err(e) => return Err(transport_failure(e)),
            }
        };
        Ok(Response { status, location, range, retry_after, authenticate, digest, content_type, oci_subject, body })
    }

    /// Sends `request`, authenticated, retrying transient failures; a 401
    /// with a bearer token renews it once.  `what` names it in errors.
    pub fn send(&self, request: Request, what: &str) -> Result<Response> {
        let mut renewed = false;
        loop {
            let auth = self.authorization()?;
            let response = self.retrying(&request, what, auth.as_deref())?;
            if response.status == 401 && !renewed && matches!(*self.scheme.lock().unwrap(), Scheme::Bearer { .. }) {
                renewed = true;
                self.renew_token()?;
                continue;
            }
            return Ok(response);
        }
    }

    /// Sends `request` up to [`ATTEMPTS`] times while it fails transiently.
    fn retrying(&self, request: &Request, what: &str, auth: Option<&str>) -> Result<Response> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            self.check_cancel()?;
            let wait = match self.once(request, auth) {
                Ok(r) if transient_status(r.status) && attempt < ATTEMPTS => r.retry_after.unwrap_or(backoff).min(MAX_BACKOFF),
                Ok(r) => return Ok(r),
                Err(Failure::Transport(why, transient)) => {
                    if !transient || attempt == ATTEMPTS {
                        let tries = if attempt > 1 { format!(" (after {attempt} tries)") } else { String::new() };
                        return Err(Error::new(ErrorKind::Output, format!("{}: {what}: {why}{tries}", self.where_())));
                    }
                    backoff
                }
            };
            self.sleep(wait)?;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        unreachable!("the last attempt returns")
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::cancelled());
        }
        Ok(())
    }

    /// Waits `d`, or less when cancelled.
    fn sleep(&self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.check_cancel()?;
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        self.check_cancel()
    }

    /// `BASE/v2/REPOSITORY/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// A `Location` made absolute.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// `docker://REGISTRY/REPOSITORY`.
    pub fn shown(&self) -> String {
        format!("docker://{}/{}", self.registry, self.repository)
    }
}

fn transport_failure(e: ureq::Error) -> Failure {
    use std::io::ErrorKind as K;
    let transient = match &e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
                | K::TimedOut
                | K::Interrupted
                | K::NotConnected
        ),
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => true,
        // The other end closed or cut the answer.
        ureq::Error::Protocol(_) => true,
        _ => false,
    };
    Failure::Transport(e.to_string(), transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        let Some(Scheme::Bearer { realm, service }) =
            parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#)
        else {
            panic!()
        };
        assert_eq!(realm, "https://auth.example/token");
        assert_eq!(service.as_deref(), Some("registry.example"));
        assert!(matches!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Scheme::Basic)));
        assert!(parse_challenge("Negotiate").is_none());
        assert!(parse_challenge("Bearer service=x").is_none(), "a bearer challenge needs a realm");
        assert_eq!(challenge_param(r#"realm="a\"b", x=y"#, "x").as_deref(), Some("y"));
        assert_eq!(challenge_param(r#"realm="a\"b", x=y"#, "realm").as_deref(), Some("a\"b"));
    }

    #[test]
    fn the_registry_s_errors_are_read() {
        let body = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#;
        assert_eq!(registry_message(body).unwrap(), "MANIFEST_BLOB_UNKNOWN: blob unknown to registry (sha256:ab)");
        let body = r#"{"errors":[{"code":"DENIED","message":"no","detail":{"a":1}},{"code":"X"}]}"#;
        assert_eq!(registry_message(body).unwrap(), r#"DENIED: no ({"a":1}); X"#);
        assert!(registry_message("<html>").is_none());
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(query_value("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
        assert_eq!(query_value("sha256:0f"), "sha256%3A0f");
    }
}
