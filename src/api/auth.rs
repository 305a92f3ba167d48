//! SigV4 verification for `serve --auth FILE`.
//!
//! Without `--auth` the server takes any signature (or none), as local AWS tools expect. With
//! it, every Kinesis request must carry a valid AWS Signature Version 4 made with one of the
//! file's keys, in the `Authorization` header or in the query string (`X-Amz-Algorithm`,
//! `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders`, `X-Amz-Signature`).
//!
//! # Keys file
//!
//! One `ACCESS_KEY_ID SECRET_ACCESS_KEY` pair per line, separated by spaces or tabs. Blank
//! lines and lines whose first non-blank character is `#` are ignored. A key id listed twice
//! is an error, as is a line without exactly two fields.
//!
//! ```text
//! # shardline keys
//! AKIDEXAMPLE  wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
//! ```
//!
//! # Checks
//!
//! In AWS's order (recorded against DynamoDB, which shares Kinesis's front end), each failing
//! with AWS's error type and wording, all HTTP 400:
//! 1. no signature at all: MissingAuthenticationTokenException;
//! 2. both header and query-string signature: InvalidSignatureException;
//! 3. missing `Credential`, `SignedHeaders`, `Signature` or date: IncompleteSignatureException;
//! 4. date not ISO-8601 basic: IncompleteSignatureException; more than 15 minutes from the
//!    server's clock: InvalidSignatureException (`Signature expired` / `not yet current`);
//! 5. `host` not signed: InvalidSignatureException;
//! 6. algorithm other than `AWS4-HMAC-SHA256`: IncompleteSignatureException;
//! 7. credential scope not 5 elements: IncompleteSignatureException; wrong region, service,
//!    terminator or date: InvalidSignatureException;
//! 8. unknown access key: UnrecognizedClientException;
//! 9. signature mismatch: InvalidSignatureException.
//!
//! The canonical request follows the SigV4 rules for services other than S3: the path is
//! URI-encoded again (so `%` becomes `%25`), query parameters are decoded, re-encoded and
//! sorted, signed headers' values are trimmed with inner runs of spaces collapsed, and the
//! payload hash is the SHA-256 of the body. An `x-amz-content-sha256` header must equal that
//! hash: trusting it instead would let a replayed signature carry a different body
//! (`UNSIGNED-PAYLOAD` is S3-only and refused the same way).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// The one algorithm SigV4 defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's date may be from the server's clock (AWS: 15 minutes).
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const TERMINATOR: &str = "aws4_request";
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
const UNKNOWN_KEY: &str = "The security token included in the request is invalid.";

/// A keys file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysFileError {
    #[error("reading keys file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keys file {path} line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("keys file {path} lists no keys")]
    Empty { path: PathBuf },
}

/// Access keys and their secrets.
#[derive(Clone, Default)]
pub struct Credentials {
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log.
        f.debug_struct("Credentials")
            .field("access_keys", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Reads a keys file (format in the module docs).
    ///
    /// # Errors
    /// [`KeysFileError`] when the file cannot be read, has a malformed line or no keys.
    pub fn load(path: &Path) -> Result<Credentials, KeysFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Credentials::parse(&text, path)
    }

    /// Parses a keys file's text; `path` names it in errors.
    ///
    /// # Errors
    /// [`KeysFileError::Line`] for a malformed line, [`KeysFileError::Empty`] for no keys.
    pub fn parse(text: &str, path: &Path) -> Result<Credentials, KeysFileError> {
        let mut secrets = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| KeysFileError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let mut fields = line.split_whitespace();
            let (Some(key), Some(secret), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("expected ACCESS_KEY_ID SECRET_ACCESS_KEY"));
            };
            if secrets
                .insert(key.to_string(), secret.to_string())
                .is_some()
            {
                return Err(bad("access key id listed twice"));
            }
        }
        if secrets.is_empty() {
            return Err(KeysFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Credentials { secrets })
    }

    fn secret(&self, access_key: &str) -> Option<&str> {
        self.secrets.get(access_key).map(String::as_str)
    }
}

/// The parts of a request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`; empty when there is none.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// The URI's authority, standing in for `host` on HTTP/2.
    pub authority: Option<&'a str>,
    pub body: &'a [u8],
}

/// Where the signature's parameters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Query,
}

struct Params<'a> {
    source: Source,
    algorithm: String,
    credential: String,
    signed_headers: String,
    signature: String,
    /// `X-Amz-Date` (or the query's), else the `Date` header.
    date: &'a str,
    date_is_amz: bool,
}

/// Verifies `req`'s SigV4 signature for `service` (`kinesis`) against `creds` at `now`.
///
/// # Errors
/// The AWS error for the first failed check (module docs, "Checks").
pub fn verify(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    service: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let query = decode_query(req.query);
    let p = params(req, &query)?;
    let time = parse_date(p.date, p.date_is_amz)?;
    check_skew(time, now)?;
    let signed: Vec<&str> = p.signed_headers.split(';').collect();
    if !signed.iter().any(|h| h.eq_ignore_ascii_case("host")) {
        return Err(ApiError::InvalidSignature(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if p.algorithm != ALGORITHM {
        return Err(ApiError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{}' (only {ALGORITHM} for now). ",
            p.algorithm
        )));
    }
    let amz_date = time.format(AMZ_DATE_FORMAT).to_string();
    let scope = p.credential.trim_end_matches('/');
    let parts: Vec<&str> = scope.split('/').collect();
    let [key_id, day, region, scope_service, terminator] = parts[..] else {
        return Err(ApiError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            p.credential
        )));
    };
    let mut wrong = Vec::new();
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        wrong.push(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        ));
    }
    if scope_service != service {
        wrong.push(format!(
            "Credential should be scoped to correct service: '{service}'."
        ));
    }
    if terminator != TERMINATOR {
        wrong.push(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'."
        ));
    }
    if day != &amz_date[..8] {
        wrong.push(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{day}' != '{}', from '{}'.",
            &amz_date[..8],
            p.date
        ));
    }
    if !wrong.is_empty() {
        return Err(ApiError::InvalidSignature(wrong.join(" ")));
    }
    let secret = creds
        .secret(key_id)
        .ok_or_else(|| ApiError::UnrecognizedClient(UNKNOWN_KEY.into()))?;
    let payload_hash = hex::encode(Sha256::digest(req.body));
    if header(req.headers, "x-amz-content-sha256")
        .is_some_and(|claimed| !claimed.eq_ignore_ascii_case(&payload_hash))
    {
        return Err(ApiError::InvalidSignature(SIGNATURE_MISMATCH.into()));
    }
    let canonical = canonical_request(req, &query, p.source, &signed, &payload_hash);
    let credential_scope = format!("{day}/{region}/{scope_service}/{terminator}");
    let to_sign = string_to_sign(&amz_date, &credential_scope, &canonical);
    let key = signing_key(secret, day, region, scope_service);
    let provided = hex::decode(&p.signature).unwrap_or_default();
    let mut mac =
        HmacSha256::new_from_slice(&key).expect("invariant: HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    if mac.verify_slice(&provided).is_err() {
        tracing::debug!(
            "signature mismatch for {key_id}; canonical request:\n{canonical}\nstring to sign:\n{to_sign}"
        );
        return Err(ApiError::InvalidSignature(SIGNATURE_MISMATCH.into()));
    }
    Ok(())
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Finds the signature's parameters and reports what is missing, as AWS words it.
fn params<'a>(
    req: &SignedRequest<'a>,
    query: &'a [(String, String)],
) -> Result<Params<'a>, ApiError> {
    let auth = header(req.headers, "authorization");
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let in_query = q("X-Amz-Algorithm").is_some();
    match (auth, in_query) {
        (None, false) => Err(ApiError::MissingAuthenticationToken),
        (Some(_), true) => Err(ApiError::InvalidSignature(
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.".into(),
        )),
        (Some(auth), false) => {
            let (algorithm, rest) = auth.trim().split_once(' ').unwrap_or((auth.trim(), ""));
            let fields: HashMap<&str, &str> = rest
                .split([',', ' '])
                .filter_map(|kv| kv.trim().split_once('='))
                .collect();
            let amz_date = header(req.headers, "x-amz-date");
            let date = amz_date.or_else(|| header(req.headers, "date"));
            let mut msg = String::new();
            for name in ["Credential", "Signature", "SignedHeaders"] {
                if fields.get(name).is_none_or(|v| v.is_empty()) {
                    msg += &format!("Authorization header requires '{name}' parameter. ");
                }
            }
            if date.is_none() {
                msg += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
            }
            if !msg.is_empty() {
                return Err(ApiError::IncompleteSignature(format!(
                    "{msg}Authorization={auth}"
                )));
            }
            let field = |name: &str| fields.get(name).copied().unwrap_or_default().to_string();
            Ok(Params {
                source: Source::Header,
                algorithm: algorithm.to_string(),
                credential: field("Credential"),
                signed_headers: field("SignedHeaders"),
                signature: field("Signature"),
                date: date.unwrap_or_default(),
                date_is_amz: amz_date.is_some(),
            })
        }
        (None, true) => {
            let names = [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Signature",
                "X-Amz-SignedHeaders",
                "X-Amz-Date",
            ];
            let mut msg = String::new();
            for name in names {
                if q(name).is_none_or(str::is_empty) {
                    msg += &format!("AWS query-string parameters must include '{name}'. ");
                }
            }
            if !msg.is_empty() {
                return Err(ApiError::IncompleteSignature(
                    msg + "Re-examine the query-string parameters.",
                ));
            }
            let get = |name: &str| q(name).unwrap_or_default().to_string();
            Ok(Params {
                source: Source::Query,
                algorithm: get("X-Amz-Algorithm"),
                credential: get("X-Amz-Credential"),
                signed_headers: get("X-Amz-SignedHeaders"),
                signature: get("X-Amz-Signature"),
                date: q("X-Amz-Date").unwrap_or_default(),
                date_is_amz: true,
            })
        }
    }
}

fn parse_date(date: &str, is_amz: bool) -> Result<DateTime<Utc>, ApiError> {
    let parsed = if is_amz {
        NaiveDateTime::parse_from_str(date, AMZ_DATE_FORMAT)
            .ok()
            .map(|t| t.and_utc())
    } else {
        DateTime::parse_from_rfc2822(date)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    parsed.ok_or_else(|| {
        ApiError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })
}

fn check_skew(time: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ApiError> {
    let f = |t: DateTime<Utc>| t.format(AMZ_DATE_FORMAT).to_string();
    if time < now - MAX_CLOCK_SKEW {
        return Err(ApiError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            f(time),
            f(now - MAX_CLOCK_SKEW),
            f(now)
        )));
    }
    if time > now + MAX_CLOCK_SKEW {
        return Err(ApiError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            f(time),
            f(now + MAX_CLOCK_SKEW),
            f(now)
        )));
    }
    Ok(())
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` (and `/` when `keep_slash`)
/// as `%XX`, upper-case hex.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; a malformed escape stays as it is. `+` stays `+`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's parameters, decoded, in request order.
fn decode_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Removes `.` and `..` segments, as clients do before signing.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/').skip(1) {
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::from("/");
    s.push_str(&out.join("/"));
    if (path.ends_with("/.") || path.ends_with("/..")) && !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// A header's canonical value: each value trimmed, inner runs of spaces collapsed, several
/// values joined by commas.
fn canonical_header_value(headers: &HeaderMap, name: &str, authority: Option<&str>) -> String {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    if values.is_empty() && name == "host" {
        return authority.unwrap_or_default().to_string();
    }
    values.join(",")
}

/// SigV4 step 1: the canonical request.
fn canonical_request(
    req: &SignedRequest<'_>,
    query: &[(String, String)],
    source: Source,
    signed: &[&str],
    payload_hash: &str,
) -> String {
    let mut params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !(source == Source::Query && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed {
        let name = name.to_ascii_lowercase();
        let value = canonical_header_value(req.headers, &name, req.authority);
        headers.push_str(&format!("{name}:{value}\n"));
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(&normalize_path(req.path), true),
        canonical_query,
        headers,
        signed.join(";"),
        payload_hash
    )
}

/// SigV4 step 2: the string to sign; `scope` is `day/region/service/aws4_request`.
fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

pub(crate) fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac =
        HmacSha256::new_from_slice(key).expect("invariant: HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// SigV4 step 3: the signing key for one day, region and service (the CLI signs with it too).
pub(crate) fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), day);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    hmac(&k, TERMINATOR)
}

#[cfg(test)]
mod tests;
