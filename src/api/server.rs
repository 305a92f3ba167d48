//! The HTTP front: HTTP/1.1 and HTTP/2 on one port, cleartext (h2c prior knowledge) or TLS
//! (`--tls-cert`, ALPN), the AWS request envelope, and the checks AWS makes before an
//! operation runs, in its order (SigV4 with `--auth` among them). Also `GET /health` and
//! `GET /metrics`. Each Kinesis request is counted in the request metrics and logged as one
//! `info` line (operation, status, error, duration) on stderr.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::actions::{self, Operation};
use super::auth;
use super::error::ApiError;
use super::input::Members;
use super::leases;
use super::metrics::{self, OperationLabel};
use super::tls::{self, Negotiated};
use super::value::{self, Protocol, Value};
use super::Api;

/// Largest request body accepted: a 10 MiB PutRecords base64-encodes to about 13.4 MiB.
pub const MAX_BODY_BYTES: usize = 16 << 20;
const TARGET_PREFIX: &str = "Kinesis_20131202.";
/// The service name in a Kinesis request's SigV4 credential scope.
pub const SIGNING_SERVICE: &str = "kinesis";
/// How long shutdown waits for in-flight requests (and streaming responses) to finish before
/// dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A response body: one buffer (every answer but SubscribeToShard's), or a stream of
/// event-stream messages.
pub type Body = Either<Full<Bytes>, super::subscribe::EventBody>;

/// Serves connections from `listener` until `shutdown` resolves, then lets in-flight
/// requests finish. With `tls`, every connection is TLS (see [`super::tls`] for ALPN).
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let (api, builder, watcher) = (api.clone(), builder.clone(), graceful.watcher());
                match &tls {
                    None => tokio::spawn(serve_connection(
                        TokioIo::new(stream),
                        Negotiated::Nothing,
                        api,
                        builder,
                        watcher,
                    )),
                    Some(acceptor) => {
                        tokio::spawn(serve_tls(acceptor.clone(), stream, api, builder, watcher))
                    }
                };
            }
            () = &mut shutdown => break,
        }
    }
    // Stop accepting: connections still in the backlog are refused, not left hanging.
    drop(listener);
    // Subscriptions would hold their connections for their whole lifetime: end them.
    api.subscriptions.shutdown();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown: connections still busy after {}s, closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// Completes the handshake (bounded by [`tls::HANDSHAKE_TIMEOUT`]), then serves the
/// protocol ALPN chose. A pending handshake holds `watcher`, so shutdown waits for it too.
async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    api: Arc<Api>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
) {
    let stream = match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(
                "TLS handshake not done after {}s, closing",
                tls::HANDSHAKE_TIMEOUT.as_secs()
            );
            return;
        }
    };
    let protocol = tls::negotiated(stream.get_ref().1);
    serve_connection(TokioIo::new(stream), protocol, api, builder, watcher).await;
}

/// Serves one connection: the protocol ALPN named, or (cleartext, or TLS without ALPN)
/// HTTP/2 when the client opens with the HTTP/2 preface and HTTP/1.1 otherwise.
async fn serve_connection<I>(
    io: I,
    protocol: Negotiated,
    api: Arc<Api>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(handle(api, req).await) }
    });
    // `http1_only`/`http2_only` are ignored by `serve_connection_with_upgrades`, so the
    // pinned protocols use `serve_connection` (HTTP/1.1 upgrades are unused by Kinesis).
    let ended = match protocol {
        Negotiated::Nothing => {
            watcher
                .watch(builder.serve_connection_with_upgrades(io, svc))
                .await
        }
        Negotiated::Http2 => {
            let builder = builder.http2_only();
            watcher.watch(builder.serve_connection(io, svc)).await
        }
        Negotiated::Http11 => {
            let builder = builder.http1_only();
            watcher.watch(builder.serve_connection(io, svc)).await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("connection ended: {e}");
    }
}

fn response(status: u16, content_type: &str, request_id: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(super::buffers::into_bytes(body))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = request_id.parse() {
        h.insert("x-amzn-RequestId", v);
    }
    r
}

/// An error in the protocol's own shape.
pub fn error_response(protocol: Protocol, request_id: &str, e: &ApiError) -> Response<Body> {
    if let ApiError::Internal(detail) = e {
        tracing::error!("request {request_id}: internal failure: {detail}");
    }
    let mut pairs = vec![("__type", Value::str(e.type_name()))];
    if let Some((key, msg)) = e.message() {
        pairs.push((key, Value::String(msg)));
    }
    let mut r = response(
        e.status(),
        protocol.content_type(),
        request_id,
        value::encode(protocol, &Value::map(pairs)),
    );
    if let Ok(v) = e.type_name().parse() {
        r.headers_mut().insert("x-amzn-ErrorType", v);
    }
    r
}

fn xml_error(status: u16, request_id: &str, body: &str) -> Response<Body> {
    response(
        status,
        "application/xml",
        request_id,
        body.as_bytes().to_vec(),
    )
}

/// What one Kinesis request came to, for its log line and the request metrics.
struct Outcome {
    operation: Option<Operation>,
    /// Set instead of `operation` for a Lease API request.
    lease_operation: Option<leases::Operation>,
    /// The `__type` of a failed request.
    error: Option<&'static str>,
    response: Response<Body>,
}

impl Outcome {
    fn ok(operation: Operation, response: Response<Body>) -> Outcome {
        Outcome {
            operation: Some(operation),
            lease_operation: None,
            error: None,
            response,
        }
    }

    fn failed(
        operation: Option<Operation>,
        error: &'static str,
        response: Response<Body>,
    ) -> Outcome {
        Outcome {
            operation,
            lease_operation: None,
            error: Some(error),
            response,
        }
    }

    fn api_error(
        operation: Option<Operation>,
        protocol: Protocol,
        request_id: &str,
        e: &ApiError,
    ) -> Outcome {
        Outcome::failed(
            operation,
            e.type_name(),
            error_response(protocol, request_id, e),
        )
    }
}

async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    if req.method() == Method::GET {
        match req.uri().path() {
            "/health" => return response(200, "text/plain", &request_id, b"ok\n".to_vec()),
            "/metrics" => {
                let page = api.metrics.render().into_bytes();
                return response(200, metrics::CONTENT_TYPE, &request_id, page);
            }
            _ => {}
        }
    }
    let out = kinesis(&api, req, &request_id).await;
    let status = out.response.status().as_u16();
    let elapsed = started.elapsed();
    // The request metrics are labelled with Kinesis operations only.
    if out.lease_operation.is_none() {
        api.metrics
            .record_request(out.operation, status, out.error, elapsed);
    }
    tracing::info!(
        request_id = %request_id,
        operation = %RequestLabel(out.operation, out.lease_operation),
        status,
        error = out.error.unwrap_or("-"),
        duration_ms = elapsed.as_secs_f64() * 1e3,
        "request"
    );
    out.response
}

/// The operation a log line names: a Kinesis one, a Lease API one, or `unknown`.
struct RequestLabel(Option<Operation>, Option<leases::Operation>);

impl std::fmt::Display for RequestLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(op) => f.write_str(op.name()),
            None => OperationLabel(self.0).fmt(f),
        }
    }
}

/// A Lease API request (`ShardlineLeases_20261126.<Operation>`): [`leases::serve`] runs the
/// rest of the envelope and the operation.
async fn lease_request(
    api: &Api,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    name: &str,
    protocol: Protocol,
    request_id: &str,
) -> Outcome {
    let (op, answer) = leases::serve(api, parts, body, name, protocol).await;
    let out = match answer {
        Ok(v) => Outcome {
            operation: None,
            lease_operation: None,
            error: None,
            response: response(
                200,
                protocol.content_type(),
                request_id,
                value::encode(protocol, &v),
            ),
        },
        Err(e) => Outcome::api_error(None, protocol, request_id, &e),
    };
    Outcome {
        lease_operation: op,
        ..out
    }
}

/// The envelope checks in AWS's order (wire reference §1.6), then the operation.
async fn kinesis(api: &Arc<Api>, req: Request<Incoming>, request_id: &str) -> Outcome {
    if req.method() != Method::POST {
        return Outcome::failed(
            None,
            "AccessDeniedException",
            xml_error(
                403,
                request_id,
                "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n",
            ),
        );
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let protocol = match media.as_str() {
        "application/x-amz-json-1.1" => Protocol::Json,
        "application/x-amz-cbor-1.1" => Protocol::Cbor,
        "application/json" => {
            return Outcome::failed(
                None,
                "UnknownOperationException",
                response(
                    404,
                    "application/json",
                    request_id,
                    br#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#.to_vec(),
                ),
            )
        }
        _ => {
            return Outcome::failed(
                None,
                "UnknownOperationException",
                xml_error(404, request_id, "<UnknownOperationException/>\n"),
            )
        }
    };
    let (parts, body) = req.into_parts();
    if let Some(name) = target.strip_prefix(leases::TARGET_PREFIX) {
        return lease_request(api, &parts, body, name, protocol, request_id).await;
    }
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name);
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::Serialization(Some(format!(
                "Request body exceeds {MAX_BODY_BYTES} bytes"
            )));
            return Outcome::api_error(op, protocol, request_id, &e);
        }
    };
    if body.is_empty() {
        let e = if op.is_some() {
            ApiError::Serialization(None)
        } else {
            ApiError::UnknownOperation
        };
        return Outcome::api_error(op, protocol, request_id, &e);
    }
    // The producer's hot call skips the value tree when its body has the common shape.
    let fast = match (op, protocol) {
        (Some(Operation::PutRecords), Protocol::Json) => {
            actions::put_records_fast::Request::parse(&body)
        }
        _ => None,
    };
    let decoded = match (protocol, &fast) {
        (_, Some(_)) => Ok(std::collections::BTreeMap::new()),
        (Protocol::Json, None) => value::decode_json(&body),
        (Protocol::Cbor, None) => value::decode_cbor(&body),
    };
    let Ok(mut members) = decoded else {
        return Outcome::api_error(op, protocol, request_id, &ApiError::Serialization(None));
    };
    let Some(op) = op else {
        return Outcome::api_error(None, protocol, request_id, &ApiError::UnknownOperation);
    };
    if let Some(credentials) = &api.config.credentials {
        let signed = auth::SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            authority: parts.uri.authority().map(|a| a.as_str()),
            body: &body,
        };
        if let Err(e) = auth::verify(credentials, &signed, SIGNING_SERVICE, chrono::Utc::now()) {
            return Outcome::api_error(Some(op), protocol, request_id, &e);
        }
    }
    if let Some(req) = fast {
        if let Some(out) = actions::put_records_fast::put_records(api, req).await {
            return Outcome::ok(op, response(200, protocol.content_type(), request_id, out));
        }
        match value::decode_json(&body) {
            Ok(m) => members = m,
            Err(_) => {
                return Outcome::api_error(
                    Some(op),
                    protocol,
                    request_id,
                    &ApiError::Serialization(None),
                )
            }
        }
    }
    if op == Operation::SubscribeToShard {
        return match super::subscribe::handle(api, protocol, Members::new(&members)).await {
            Ok(events) => {
                let mut r = response(
                    200,
                    super::eventstream::CONTENT_TYPE,
                    request_id,
                    Vec::new(),
                );
                *r.body_mut() = Either::Right(events);
                Outcome::ok(op, r)
            }
            Err(e) => Outcome::api_error(Some(op), protocol, request_id, &e),
        };
    }
    match actions::dispatch(api, op, Members::new(&members)).await {
        Ok(Value::Null) => Outcome::ok(
            op,
            response(200, protocol.content_type(), request_id, Vec::new()),
        ),
        Ok(v) => Outcome::ok(
            op,
            response(
                200,
                protocol.content_type(),
                request_id,
                value::encode(protocol, &v),
            ),
        ),
        Err(e) => Outcome::api_error(Some(op), protocol, request_id, &e),
    }
}
