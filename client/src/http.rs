//! One endpoint and one `call` per operation.
//!
//! Every call is `POST /` with `X-Amz-Target: <prefix>.<Op>` (`Kinesis_20131202` for the
//! Kinesis API, `ShardlineLeases_20261126` for the lease API) and an awsJson1.1 body, over
//! HTTP/1.1 on a pooled keep-alive connection; streaming calls (SubscribeToShard) go over
//! HTTP/2 with prior knowledge (h2c). A non-200 answer becomes [`Error::Service`]
//! from the body's `__type` (any `…#` prefix and `:…` suffix dropped, as botocore does) and
//! `message` (or `Message`). Only `http://` endpoints: there is no TLS client here yet.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, CALL_TIMEOUT_SECS};
use crate::sign::Signer;

/// Where the commands go when neither `--endpoint` nor the environment says otherwise:
/// `shardline serve`'s default `--listen`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4567";
const JSON_TYPE: &str = "application/x-amz-json-1.1";
/// The Kinesis API's `X-Amz-Target` prefix.
pub const KINESIS_TARGET: &str = "Kinesis_20131202";
const CALL_TIMEOUT: Duration = Duration::from_secs(CALL_TIMEOUT_SECS);
/// The largest response body read: GetRecords answers at most 10 MiB of data (Kinesis API
/// reference), which base64 and the JSON around it grow to under 16 MiB.
const MAX_RESPONSE_BYTES: usize = 32 << 20;
/// How much of an unexpected (non-JSON) response body an error message quotes.
const QUOTED_BODY_CHARS: usize = 200;

/// An endpoint with a pooled HTTP/1.1 client. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    /// HTTP/2 with prior knowledge (h2c), for streaming calls: one connection carries every
    /// subscription, as the AWS SDKs do for SubscribeToShard.
    http2: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    /// `host:port` as sent in `Host` (and signed).
    authority: String,
    /// The endpoint as given, for error messages.
    endpoint: String,
    signer: Option<std::sync::Arc<Signer>>,
}

impl Client {
    /// A client for `endpoint`, else the environment's endpoint, else [`DEFAULT_ENDPOINT`].
    ///
    /// # Errors
    /// [`Error::Endpoint`]: the endpoint is not an `http://` URL.
    pub fn new(endpoint: Option<&str>) -> Result<Client, Error> {
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(endpoint_from_env)
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let bad = |detail: String| Error::Endpoint {
            endpoint: endpoint.clone(),
            detail,
        };
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| bad(format!("not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported by this client yet; use http://".into(),
                ))
            }
            _ => return Err(bad("must start with http://".into())),
        }
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| bad("no host".into()))?;
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let http2 = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Ok(Client {
            http,
            http2,
            uri,
            authority,
            endpoint,
            signer: Signer::from_env().map(std::sync::Arc::new),
        })
    }

    /// This client signing with `signer` instead of the environment's credentials, e.g.
    /// dummy credentials for a local endpoint that wants a signature but checks none.
    pub fn with_signer(mut self, signer: Signer) -> Client {
        self.signer = Some(std::sync::Arc::new(signer));
        self
    }

    /// Whether requests are signed.
    pub fn is_signed(&self) -> bool {
        self.signer.is_some()
    }

    /// The endpoint as given (or found in the environment).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint's `scheme://authority` URI, for callers that build their own requests.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Calls the Kinesis operation `op`; see [`Client::call_target`].
    ///
    /// # Errors
    /// [`Error`]: the server's error, a transport failure, or an unreadable answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        request: &Req,
    ) -> Result<Resp, Error> {
        self.call_target(KINESIS_TARGET, op, request).await
    }

    /// Calls `<prefix>.<op>` with `request` as the JSON body and decodes the answer.
    /// Operations without output answer an empty body, read as `{}`.
    ///
    /// # Errors
    /// [`Error`]: the server's error, a transport failure, or an unreadable answer.
    pub async fn call_target<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        prefix: &str,
        op: &str,
        request: &Req,
    ) -> Result<Resp, Error> {
        let bytes = self.call_raw(prefix, op, request).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| Error::BadResponse {
            op: op.to_string(),
            status: StatusCode::OK,
            detail: e.to_string(),
        })
    }

    /// Calls `<prefix>.<op>` and returns the body of a 200 answer undecoded, for callers
    /// that decode it borrowing from the bytes (e.g. GetRecords' data left in base64).
    ///
    /// # Errors
    /// [`Error`]: the server's error or a transport failure.
    pub async fn call_raw<Req: Serialize>(
        &self,
        prefix: &str,
        op: &str,
        request: &Req,
    ) -> Result<Bytes, Error> {
        let req = self.request(prefix, op, request)?;
        self.send_raw(op, req).await
    }

    /// Calls `<prefix>.<op>` with `body`, a JSON document the caller encoded itself (e.g. a
    /// load generator's pre-encoded batches), and returns the body of a 200 answer
    /// undecoded.
    ///
    /// # Errors
    /// [`Error`]: the server's error or a transport failure.
    pub async fn call_encoded(
        &self,
        prefix: &str,
        op: &str,
        body: Vec<u8>,
    ) -> Result<Bytes, Error> {
        let req = self.request_with_body(prefix, op, body)?;
        self.send_raw(op, req).await
    }

    async fn send_raw(&self, op: &str, req: Request<Full<Bytes>>) -> Result<Bytes, Error> {
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, self.send(req))
            .await
            .map_err(|_| Error::Timeout {
                endpoint: self.endpoint.clone(),
            })??;
        if status == StatusCode::OK {
            return Ok(bytes);
        }
        Err(service_error(op, status, &bytes))
    }

    /// A signed `POST /` of `<prefix>.<op>` with `request` as the JSON body.
    fn request<Req: Serialize>(
        &self,
        prefix: &str,
        op: &str,
        request: &Req,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let body = serde_json::to_vec(request)
            .expect("invariant: request types serialize to JSON (string keys, finite numbers)");
        self.request_with_body(prefix, op, body)
    }

    /// A signed `POST /` of `<prefix>.<op>` with `body`, already awsJson1.1.
    fn request_with_body(
        &self,
        prefix: &str,
        op: &str,
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let target = format!("{prefix}.{op}");
        let mut req = Request::post(self.uri.clone())
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, JSON_TYPE)
            .header("x-amz-target", &target)
            .header(
                USER_AGENT,
                concat!("shardline-client/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(signer) = &self.signer {
            let signed = [
                (CONTENT_TYPE.as_str(), JSON_TYPE),
                ("x-amz-target", &target),
            ];
            let path = self.uri.path();
            for (name, value) in signer.sign(&self.authority, path, &signed, &body) {
                req = req.header(name, value);
            }
        }
        req.body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Request {
                op: op.to_string(),
                detail: e.to_string(),
            })
    }

    /// Calls a streaming operation (SubscribeToShard) over HTTP/2 (h2c): returns the body of
    /// a 200 answer as it arrives; any other answer is read whole and becomes the service's
    /// error.
    ///
    /// # Errors
    /// [`Error`]: the server's error, a transport failure, or no response headers within
    /// the call timeout.
    pub async fn call_streaming<Req: Serialize>(
        &self,
        prefix: &str,
        op: &str,
        request: &Req,
    ) -> Result<hyper::body::Incoming, Error> {
        let req = self.request(prefix, op, request)?;
        let timeout = |_| Error::Timeout {
            endpoint: self.endpoint.clone(),
        };
        let resp = tokio::time::timeout(CALL_TIMEOUT, self.http2.request(req))
            .await
            .map_err(timeout)?
            .map_err(|source| Error::Unreachable {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(resp.into_body());
        }
        let body = tokio::time::timeout(
            CALL_TIMEOUT,
            Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect(),
        )
        .await
        .map_err(timeout)?
        .map_err(|source| Error::Body {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        Err(service_error(op, status, &body.to_bytes()))
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), Error> {
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|source| Error::Unreachable {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|source| Error::Body {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        Ok((status, body.to_bytes()))
    }
}

/// `AWS_ENDPOINT_URL_KINESIS`, else `AWS_ENDPOINT_URL`, as the AWS SDKs read them (unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`).
fn endpoint_from_env() -> Option<String> {
    let ignore = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if ignore {
        return None;
    }
    ["AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    message: Option<String>,
    #[serde(rename = "Message")]
    message_capital: Option<String>,
}

fn service_error(op: &str, status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            kind: Some(kind),
            message,
            message_capital,
        }) => {
            let kind = kind.rsplit('#').next().unwrap_or_default();
            let kind = kind.split(':').next().unwrap_or_default().to_string();
            Error::Service {
                kind,
                message: message.or(message_capital).unwrap_or_default(),
                status,
            }
        }
        _ => Error::BadResponse {
            op: op.to_string(),
            status,
            detail: String::from_utf8_lossy(body)
                .chars()
                .take(QUOTED_BODY_CHARS)
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_drops_namespace_and_suffix() {
        let e = service_error(
            "DescribeStream",
            StatusCode::BAD_REQUEST,
            br#"{"__type":"com.amazon.coral.service#ResourceNotFoundException:http://x","message":"Stream s not found."}"#,
        );
        assert_eq!(
            e.to_string(),
            "ResourceNotFoundException: Stream s not found."
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn service_error_reads_capital_message_and_bare_type() {
        let e = service_error(
            "PutRecords",
            StatusCode::BAD_REQUEST,
            br#"{"__type":"SerializationException","Message":"Start of list found where not expected"}"#,
        );
        assert_eq!(
            e.to_string(),
            "SerializationException: Start of list found where not expected"
        );
        let e = service_error(
            "PutRecords",
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"__type":"InternalFailure"}"#,
        );
        assert_eq!(e.to_string(), "InternalFailure");
        assert!(e.is_retryable());
    }

    #[test]
    fn non_json_error_quotes_the_body() {
        let e = service_error(
            "ListStreams",
            StatusCode::NOT_FOUND,
            b"<UnknownOperationException/>",
        );
        assert_eq!(
            e.to_string(),
            "unexpected response to ListStreams (HTTP 404 Not Found): <UnknownOperationException/>"
        );
    }

    #[test]
    fn endpoint_must_be_plain_http() {
        assert!(Client::new(Some("https://kinesis.us-east-1.amazonaws.com")).is_err());
        assert!(Client::new(Some("127.0.0.1:4567")).is_err());
        let c = Client::new(Some("http://127.0.0.1:9")).unwrap();
        assert_eq!(c.authority, "127.0.0.1:9");
    }
}
