//! Bearer tokens (RFC 6750) on slamon's APIs: who may change the SLA set, and who may
//! read.
//!
//! Tokens come from files, one per line (blank lines and `#` comments ignored), so a
//! Kubernetes Secret or a compose volume can hold them and several can be valid at once
//! (rotation: add the new one, move clients over, remove the old). A file is read again
//! when its modification time or size changes (checked at most once a second); a file
//! that becomes unreadable or empty keeps the tokens last read, and says so in the log.
//! Tokens are compared as SHA-256 digests in constant time ([`subtle`]), every
//! configured token each time, so the answer's timing says nothing about a token.
//!
//! Rules ([`Access::check`]): a write (any method but GET, HEAD and OPTIONS) needs a
//! write token when write tokens are configured; a read needs a read or a write token
//! when read tokens are configured. `/livez` and `/readyz` are always open (probes
//! carry no token). A refusal is `401` with `WWW-Authenticate: Bearer realm="slamon"`
//! (plus `error="invalid_token"` for a wrong one) and the JSON error body; gRPC answers
//! `UNAUTHENTICATED`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How often a token file is checked for changes, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// A token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file holds no token.
    #[error("the token file {path} holds no token (one per line)")]
    Empty { path: PathBuf },
}

/// The tokens of one file, read again when it changes.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    /// `(modified, len)` of the file as last read.
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
    digests: Vec<[u8; 32]>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// The tokens of a file's text: one per line, trimmed; blank lines and `#` comments skipped.
fn parse(text: &str) -> Vec<[u8; 32]> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|t| digest(t.as_bytes())).collect()
}

/// The first token of a token file, for a client that sends it.
///
/// # Errors
/// [`TokenFileError`] when the file cannot be read or holds no token.
pub fn first_token(path: &Path) -> Result<String, TokenFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TokenFileError::Read { path: path.to_owned(), source })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| TokenFileError::Empty { path: path.to_owned() })
}

fn stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}

impl TokenFile {
    /// Reads the tokens of `path`.
    ///
    /// # Errors
    /// [`TokenFileError`] when the file cannot be read or holds no token: a service
    /// told to require a token does not start without one.
    pub fn open(path: &Path) -> Result<Self, TokenFileError> {
        let read = |source| TokenFileError::Read { path: path.to_owned(), source };
        let stamp = stamp(path).map_err(read)?;
        let digests = parse(&std::fs::read_to_string(path).map_err(read)?);
        if digests.is_empty() {
            return Err(TokenFileError::Empty { path: path.to_owned() });
        }
        let state = Loaded { stamp: Some(stamp), checked: Instant::now(), digests };
        Ok(Self { path: path.to_owned(), state: Mutex::new(state) })
    }

    /// Whether `token` is one of the file's tokens (reading the file again first when it
    /// changed).
    pub fn accepts(&self, token: &str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            self.reload(&mut state);
        }
        let presented = digest(token.as_bytes());
        // every token is compared, whatever the earlier ones gave
        state.digests.iter().fold(subtle::Choice::from(0), |found, d| found | d.ct_eq(&presented)).into()
    }

    fn reload(&self, state: &mut Loaded) {
        let now = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the token file; keeping its tokens");
                return;
            }
        };
        if state.stamp == Some(now) {
            return;
        }
        match std::fs::read_to_string(&self.path).map(|t| parse(&t)) {
            Ok(digests) if !digests.is_empty() => {
                tracing::info!(path = %self.path.display(), tokens = digests.len(), "token file read again");
                state.digests = digests;
                state.stamp = Some(now);
            }
            Ok(_) => {
                tracing::warn!(path = %self.path.display(), "the token file holds no token now; keeping its tokens")
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the token file; keeping its tokens")
            }
        }
    }
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

impl Operation {
    /// GET, HEAD and OPTIONS read; every other method writes.
    pub fn of(method: &Method) -> Self {
        if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
            Operation::Read
        } else {
            Operation::Write
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Authorization: Bearer` token.
    #[error("this operation needs a bearer token (Authorization: Bearer <token>)")]
    Missing,
    /// A token that is not one of the configured ones.
    #[error("invalid bearer token")]
    Invalid,
    /// A read token presented for a write.
    #[error("this token may read, not change the SLA set")]
    ReadOnly,
}

impl Denied {
    /// The `WWW-Authenticate` challenge of the refusal (RFC 6750 §3).
    pub fn challenge(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Denied::Missing => "Bearer realm=\"slamon\"",
            Denied::Invalid => "Bearer realm=\"slamon\", error=\"invalid_token\"",
            Denied::ReadOnly => "Bearer realm=\"slamon\", error=\"insufficient_scope\"",
        })
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.to_string()});
        // RFC 6750 §3.1: a valid token without the scope is 403
        let status = match self {
            Denied::ReadOnly => axum::http::StatusCode::FORBIDDEN,
            Denied::Missing | Denied::Invalid => axum::http::StatusCode::UNAUTHORIZED,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, self.challenge());
        response
    }
}

impl From<Denied> for tonic::Status {
    fn from(d: Denied) -> Self {
        match d {
            Denied::ReadOnly => tonic::Status::permission_denied(d.to_string()),
            Denied::Missing | Denied::Invalid => tonic::Status::unauthenticated(d.to_string()),
        }
    }
}

/// Who may read and who may write: the write and read token files, each optional.
#[derive(Debug, Clone, Default)]
pub struct Access {
    write: Option<Arc<TokenFile>>,
    read: Option<Arc<TokenFile>>,
}

impl Access {
    /// No token needed for anything.
    pub fn open() -> Self {
        Self::default()
    }

    /// Tokens from `write` (needed to write; they read too) and `read` (needed to read).
    ///
    /// # Errors
    /// [`TokenFileError`] when a given file cannot be read or holds no token.
    pub fn from_files(write: Option<&Path>, read: Option<&Path>) -> Result<Self, TokenFileError> {
        let open = |p: Option<&Path>| p.map(TokenFile::open).transpose().map(|f| f.map(Arc::new));
        Ok(Self { write: open(write)?, read: open(read)? })
    }

    /// Whether writes need a token.
    pub fn protects_writes(&self) -> bool {
        self.write.is_some()
    }

    /// Whether reads need a token.
    pub fn protects_reads(&self) -> bool {
        self.read.is_some()
    }

    /// Whether a request with `headers` may do `operation`.
    ///
    /// # Errors
    /// [`Denied`] when a token is needed and missing or wrong.
    pub fn check(&self, operation: Operation, headers: &HeaderMap) -> Result<(), Denied> {
        self.check_token(operation, bearer(headers.get(header::AUTHORIZATION)))
    }

    /// [`Access::check`] of a token already taken from its header (`None`: none given).
    ///
    /// # Errors
    /// [`Denied`] when a token is needed and missing or wrong.
    pub fn check_token(&self, operation: Operation, token: Option<&str>) -> Result<(), Denied> {
        let accepted: &[&Option<Arc<TokenFile>>] = match operation {
            Operation::Write => &[&self.write],
            Operation::Read if self.read.is_some() => &[&self.read, &self.write],
            Operation::Read => &[],
        };
        let files: Vec<&TokenFile> = accepted.iter().filter_map(|f| f.as_deref()).collect();
        if files.is_empty() {
            return Ok(());
        }
        let token = token.ok_or(Denied::Missing)?;
        // both files are asked, so a read token costs the same as a write token
        let ok = files.iter().fold(false, |ok, f| f.accepts(token) | ok);
        if ok {
            Ok(())
        } else if operation == Operation::Write && self.read.as_ref().is_some_and(|r| r.accepts(token)) {
            Err(Denied::ReadOnly)
        } else {
            Err(Denied::Invalid)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(value: Option<&HeaderValue>) -> Option<&str> {
    bearer_token(value?.to_str().ok()?)
}

/// The token of an `Authorization` value `Bearer <token>` (an HTTP header or gRPC
/// metadata); `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Paths every probe reaches without a token.
fn is_probe(path: &str) -> bool {
    path == "/livez" || path == "/readyz"
}

/// The middleware of [`Access`] on a router:
/// `router.layer(axum::middleware::from_fn_with_state(access, slamon_web::auth::require))`.
pub async fn require(
    axum::extract::State(access): axum::extract::State<Access>,
    request: Request,
    next: Next,
) -> Response {
    if !is_probe(request.uri().path()) {
        if let Err(denied) = access.check(Operation::of(request.method()), request.headers()) {
            return denied.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn writes_need_a_write_token_and_reads_a_read_or_write_one() {
        let dir = tempfile::tempdir().unwrap();
        let write = file(dir.path(), "w", "# writers\nw-one\n\n  w-two  \n");
        let read = file(dir.path(), "r", "r-one\n");
        let access = Access::from_files(Some(&write), Some(&read)).unwrap();
        let none = HeaderMap::new();
        assert_eq!(access.check(Operation::Write, &none), Err(Denied::Missing));
        assert_eq!(access.check(Operation::Write, &headers("Bearer r-one")), Err(Denied::ReadOnly));
        assert_eq!(access.check(Operation::Write, &headers("Bearer w-one")), Ok(()));
        assert_eq!(access.check(Operation::Write, &headers("bearer w-two")), Ok(()));
        assert_eq!(access.check(Operation::Write, &headers("Basic w-one")), Err(Denied::Missing));
        assert_eq!(access.check(Operation::Write, &headers("Bearer # writers")), Err(Denied::Invalid));
        assert_eq!(access.check(Operation::Read, &none), Err(Denied::Missing));
        assert_eq!(access.check(Operation::Read, &headers("Bearer nope")), Err(Denied::Invalid));
        assert_eq!(access.check(Operation::Read, &headers("Bearer r-one")), Ok(()));
        assert_eq!(access.check(Operation::Read, &headers("Bearer w-one")), Ok(()));

        // without read tokens, reads are open; without write tokens, so are writes
        let writes_only = Access::from_files(Some(&write), None).unwrap();
        assert_eq!(writes_only.check(Operation::Read, &none), Ok(()));
        assert_eq!(Access::open().check(Operation::Write, &none), Ok(()));
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_its_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "w", "old\n");
        let tokens = TokenFile::open(&path).unwrap();
        assert!(tokens.accepts("old"));
        std::thread::sleep(RECHECK);
        std::fs::write(&path, "new-token\nanother\n").unwrap();
        assert!(tokens.accepts("new-token"), "the new file is read");
        assert!(!tokens.accepts("old"));
        std::thread::sleep(RECHECK);
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(tokens.accepts("another"), "an empty file keeps the last tokens");
        std::thread::sleep(RECHECK);
        std::fs::remove_file(&path).unwrap();
        assert!(tokens.accepts("another"), "a missing file keeps the last tokens");
    }

    #[test]
    fn an_empty_or_missing_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let empty = file(dir.path(), "e", "\n# none\n");
        assert!(matches!(TokenFile::open(&empty), Err(TokenFileError::Empty { .. })));
        assert!(matches!(TokenFile::open(&dir.path().join("missing")), Err(TokenFileError::Read { .. })));
    }

    #[test]
    fn a_refusal_is_a_json_401_with_a_bearer_challenge() {
        let r = Denied::Invalid.into_response();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer realm=\"slamon\"") && challenge.contains("invalid_token"));
        assert_eq!(tonic::Status::from(Denied::Missing).code(), tonic::Code::Unauthenticated);
    }
}
