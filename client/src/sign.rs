//! SigV4 signing of the client's requests, for servers that check signatures
//! (`shardline serve --auth FILE`, or AWS).
//!
//! Credentials come from the environment only: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! optional `AWS_SESSION_TOKEN`; the region from `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
//! `us-east-1`. Without keys requests go unsigned, which a server without `--auth` accepts.
//!
//! The requests are always `POST` with no query string and a small fixed set of headers, so
//! the canonical request is built directly: the signed headers are `content-type`, `host`,
//! `x-amz-date`, `x-amz-security-token` (when there is a token) and `x-amz-target`, in that
//! (sorted) order. The root package's tests (`src/cli/mod.rs`) check the result against the
//! server's verifier, which is itself tested against AWS's published SigV4 suite.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "kinesis";
const TERMINATOR: &str = "aws4_request";
const DEFAULT_REGION: &str = "us-east-1";

/// Signs requests with one set of credentials. No `Debug`: it holds the secret key.
pub struct Signer {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    region: String,
}

impl Signer {
    /// A signer with these credentials, for `region`.
    pub fn new(
        access_key: &str,
        secret_key: &str,
        session_token: Option<&str>,
        region: &str,
    ) -> Signer {
        Signer {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            session_token: session_token.map(str::to_string),
            region: region.to_string(),
        }
    }

    /// The environment's credentials, if both keys are set and non-empty.
    pub fn from_env() -> Option<Signer> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(Signer {
            access_key: var("AWS_ACCESS_KEY_ID")?,
            secret_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
        })
    }

    /// The headers to add to a `POST` to `path` on `host` carrying `headers` (lower-case
    /// names, without `host`) and `body`: `x-amz-date`, `x-amz-security-token` if any, and
    /// `authorization`.
    pub fn sign(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        self.sign_at(host, path, headers, body, Utc::now())
    }

    /// [`Signer::sign`] as of `now`.
    pub fn sign_at(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = &amz_date[..8];
        let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", amz_date.clone())];
        if let Some(token) = &self.session_token {
            added.push(("x-amz-security-token", token.clone()));
        }
        let mut signed: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), canonical_value(v)))
            .chain(std::iter::once(("host".to_string(), canonical_value(host))))
            .chain(
                added
                    .iter()
                    .map(|(n, v)| (n.to_string(), canonical_value(v))),
            )
            .collect();
        signed.sort();
        let names = signed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let path = if path.is_empty() { "/" } else { path };
        let canonical_request = format!(
            "POST\n{}\n\n{canonical_headers}\n{names}\n{}",
            uri_encode_path(path),
            hex::encode(Sha256::digest(body))
        );
        let scope = format!("{day}/{}/{SERVICE}/{TERMINATOR}", self.region);
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let key = signing_key(&self.secret_key, day, &self.region, SERVICE);
        let signature = hex::encode(hmac(&key, &string_to_sign));
        added.push((
            "authorization",
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
                self.access_key
            ),
        ));
        added
    }
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces collapsed.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SigV4's URI encoding for services other than S3, applied to the path as sent: every byte
/// but `A-Z a-z 0-9 - _ . ~ /` as `%XX`.
fn uri_encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("invariant: HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// SigV4 step 3: the signing key for one day, region and service.
fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), day);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    hmac(&k, TERMINATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encoding_keeps_slashes_and_unreserved_bytes() {
        assert_eq!(uri_encode_path("/a b/c~d"), "/a%20b/c~d");
    }

    /// The derivation example of the AWS SigV4 documentation ("Derive a signing key").
    #[test]
    fn signing_key_matches_the_aws_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
