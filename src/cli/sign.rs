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
//! (sorted) order. The tests check the result against the server's verifier
//! (`crate::api::auth`), which is itself tested against AWS's published SigV4 suite.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::api::auth::{hmac, signing_key};

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

    fn sign_at(
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use hyper::HeaderMap;

    use super::*;
    use crate::api::auth::{verify, Credentials, SignedRequest};

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn signer(token: Option<&str>) -> Signer {
        Signer {
            access_key: KEY_ID.into(),
            secret_key: SECRET.into(),
            session_token: token.map(str::to_string),
            region: "eu-west-1".into(),
        }
    }

    fn verify_signed(signer: &Signer, secret_on_server: &str, tamper: bool) -> bool {
        let now = Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap();
        let body = br#"{"StreamName":"orders"}"#;
        let fixed = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.DescribeStreamSummary"),
        ];
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:4567".parse().unwrap());
        for (n, v) in fixed {
            headers.insert(n, v.parse().unwrap());
        }
        for (n, v) in signer.sign_at("127.0.0.1:4567", "/", &fixed, body, now) {
            headers.insert(n, v.parse().unwrap());
        }
        let body: &[u8] = if tamper { b"{}" } else { body };
        let creds = Credentials::parse(
            &format!("{KEY_ID} {secret_on_server}\n"),
            std::path::Path::new("keys"),
        )
        .unwrap();
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            authority: None,
            body,
        };
        verify(&creds, &req, "kinesis", now).is_ok()
    }

    #[test]
    fn signatures_verify_with_the_servers_checker() {
        assert!(verify_signed(&signer(None), SECRET, false));
        assert!(verify_signed(&signer(Some("session token")), SECRET, false));
    }

    #[test]
    fn wrong_secret_or_changed_body_fails_verification() {
        assert!(!verify_signed(&signer(None), "another-secret", false));
        assert!(!verify_signed(&signer(None), SECRET, true));
    }

    #[test]
    fn path_encoding_keeps_slashes_and_unreserved_bytes() {
        assert_eq!(uri_encode_path("/a b/c~d"), "/a%20b/c~d");
    }
}
