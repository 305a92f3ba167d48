//! SigV4 canonicalisation and verification against AWS's published test suite
//! (`get-vanilla`, `get-vanilla-query-order-key-case`, `post-vanilla`) and requests signed by
//! botocore 1.44.8 (`SigV4Auth` / `SigV4QueryAuth` with the clock fixed at 20240506T070809Z).

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;

use super::*;

const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const BOTO_KEY: &str = "AKIDSHARDLINE";
const BOTO_SECRET: &str = "shardline/secret+key";

fn suite_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
}

fn boto_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()
}

fn creds() -> Credentials {
    Credentials::parse(
        &format!("# test keys\n\n{SUITE_KEY} {SUITE_SECRET}\n  {BOTO_KEY}\t{BOTO_SECRET}  \n"),
        Path::new("keys"),
    )
    .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn suite_auth(signed: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={SUITE_KEY}/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={signature}"
    )
}

fn request<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    h: &'a HeaderMap,
    body: &'a [u8],
) -> SignedRequest<'a> {
    SignedRequest {
        method,
        path,
        query,
        headers: h,
        authority: None,
        body,
    }
}

fn suite_verify(method: &str, query: &str, signature: &str) -> Result<(), ApiError> {
    let h = headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        ("authorization", &suite_auth("host;x-amz-date", signature)),
    ]);
    verify(
        &creds(),
        &request(method, "/", query, &h, b""),
        "service",
        suite_now(),
    )
}

/// The PutRecord boto3 would send, signed by botocore.
fn boto_put_record() -> (HeaderMap, &'static [u8]) {
    let h = headers(&[
        ("x-amz-target", "Kinesis_20131202.PutRecord"),
        ("content-type", "application/x-amz-json-1.1"),
        ("user-agent", "Boto3/1.0"),
        ("x-amz-date", "20240506T070809Z"),
        ("host", "127.0.0.1:4567"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDSHARDLINE/20240506/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=a3df32a0e835da47034f7db0da18dd47fb624318cd723a56958e3f9d16fb5619",
        ),
    ]);
    (
        h,
        br#"{"StreamName":"orders","Data":"aGVsbG8=","PartitionKey":"pk-1"}"#,
    )
}

fn boto_verify(h: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    verify(
        &creds(),
        &request("POST", "/", "", h, body),
        "kinesis",
        boto_now(),
    )
}

fn message(e: &ApiError) -> String {
    e.message().map(|(_, m)| m).unwrap_or_default()
}

#[test]
fn get_vanilla_canonical_request_and_string_to_sign() {
    let h = headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
    ]);
    let req = request("GET", "/", "", &h, b"");
    let empty = hex::encode(Sha256::digest(b""));
    let canonical = canonical_request(&req, &[], Source::Header, &["host", "x-amz-date"], &empty);
    assert_eq!(
        canonical,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &canonical
        ),
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
}

#[test]
fn aws_suite_vectors_verify() {
    suite_verify(
        "GET",
        "",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    )
    .unwrap();
    suite_verify(
        "GET",
        "Param2=value2&Param1=value1",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    )
    .unwrap();
    suite_verify(
        "POST",
        "",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    )
    .unwrap();
}

#[test]
fn botocore_put_record_verifies() {
    let (h, body) = boto_put_record();
    boto_verify(&h, body).unwrap();
}

#[test]
fn botocore_path_query_and_header_folding_verify() {
    // Path `/a%20b/./c` (double-encoded, dot segment removed), a repeated query key sorted
    // by value, and a header value with runs of spaces.
    let h = headers(&[
        ("x-amz-target", "Kinesis_20131202.DescribeStream"),
        ("content-type", "application/x-amz-json-1.1"),
        ("content-type2", "  a   b  "),
        ("x-amz-date", "20240506T070809Z"),
        ("host", "localhost:4567"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDSHARDLINE/20240506/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;content-type2;host;x-amz-date;x-amz-target, Signature=e4f22643faa6c58eebb4389685e1b7a3c7fdaebc3582c45acdc8b96529b4f1d8",
        ),
    ]);
    let req = request("POST", "/a%20b/./c", "b=2&a=x%2Fy&a=1", &h, b"{}");
    verify(&creds(), &req, "kinesis", boto_now()).unwrap();
    let canonical = canonical_request(
        &req,
        &decode_query(req.query),
        Source::Header,
        &[
            "content-type",
            "content-type2",
            "host",
            "x-amz-date",
            "x-amz-target",
        ],
        &hex::encode(Sha256::digest(b"{}")),
    );
    assert!(
        canonical.starts_with("POST\n/a%2520b/c\na=1&a=x%2Fy&b=2\n"),
        "{canonical}"
    );
    assert!(canonical.contains("\ncontent-type2:a b\n"), "{canonical}");
}

#[test]
fn botocore_presigned_query_verifies() {
    let h = headers(&[
        ("x-amz-target", "Kinesis_20131202.ListStreams"),
        ("content-type", "application/x-amz-json-1.1"),
        ("host", "localhost:4567"),
    ]);
    let query = "b=2&a=x%2Fy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDSHARDLINE%2F20240506%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20240506T070809Z&X-Amz-Expires=300&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-target&X-Amz-Signature=0e1d33f200755f11d73b1e763cff64a364c51372e45f820eecf3aeba90ab6bb2";
    verify(
        &creds(),
        &request("POST", "/", query, &h, b""),
        "kinesis",
        boto_now(),
    )
    .unwrap();
}

#[test]
fn host_falls_back_to_the_uri_authority_on_http2() {
    let (mut h, body) = boto_put_record();
    h.remove("host");
    let mut req = request("POST", "/", "", &h, body);
    req.authority = Some("127.0.0.1:4567");
    verify(&creds(), &req, "kinesis", boto_now()).unwrap();
}

/// The header must match the body: a replayed signature cannot carry another body by
/// claiming the original body's hash.
#[test]
fn content_sha256_header_must_match_the_body() {
    let (mut h, body) = boto_put_record();
    let hash = hex::encode(Sha256::digest(body));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_str(&hash).unwrap(),
    );
    boto_verify(&h, body).unwrap();
    let e = boto_verify(&h, b"other body").unwrap_err();
    assert_eq!(message(&e), SIGNATURE_MISMATCH);
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    assert_eq!(
        boto_verify(&h, body).unwrap_err().type_name(),
        "InvalidSignatureException"
    );
}

#[test]
fn tampered_body_or_wrong_secret_is_an_invalid_signature() {
    let (h, _) = boto_put_record();
    let e = boto_verify(
        &h,
        br#"{"StreamName":"orders","Data":"aGVsbG8=","PartitionKey":"pk-2"}"#,
    )
    .unwrap_err();
    assert_eq!(e.type_name(), "InvalidSignatureException");
    assert_eq!(message(&e), SIGNATURE_MISMATCH);

    let (h, body) = boto_put_record();
    let other = Credentials::parse(&format!("{BOTO_KEY} not-the-secret"), Path::new("k")).unwrap();
    let e = verify(
        &other,
        &request("POST", "/", "", &h, body),
        "kinesis",
        boto_now(),
    )
    .unwrap_err();
    assert_eq!(e.type_name(), "InvalidSignatureException");
}

#[test]
fn unknown_access_key_is_unrecognized_client() {
    let (h, body) = boto_put_record();
    let only_suite =
        Credentials::parse(&format!("{SUITE_KEY} {SUITE_SECRET}"), Path::new("k")).unwrap();
    let e = verify(
        &only_suite,
        &request("POST", "/", "", &h, body),
        "kinesis",
        boto_now(),
    )
    .unwrap_err();
    assert_eq!(e.type_name(), "UnrecognizedClientException");
    assert_eq!(
        message(&e),
        "The security token included in the request is invalid."
    );
}

#[test]
fn no_signature_is_a_missing_authentication_token() {
    let h = headers(&[("host", "h"), ("x-amz-date", "20240506T070809Z")]);
    let e = boto_verify(&h, b"{}").unwrap_err();
    assert_eq!(e, ApiError::MissingAuthenticationToken);
    assert_eq!(message(&e), "Missing Authentication Token");
}

#[test]
fn incomplete_header_lists_every_missing_part() {
    let h = headers(&[
        ("host", "h"),
        ("authorization", "AWS4-HMAC-SHA256 Signature=abc"),
    ]);
    let e = boto_verify(&h, b"{}").unwrap_err();
    assert_eq!(e.type_name(), "IncompleteSignatureException");
    assert_eq!(
        message(&e),
        "Authorization header requires 'Credential' parameter. Authorization header requires \
         'SignedHeaders' parameter. Authorization header requires existence of either a \
         'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Signature=abc"
    );
}

#[test]
fn incomplete_query_lists_every_missing_parameter() {
    let h = headers(&[("host", "h")]);
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20240506T070809Z";
    let e = verify(
        &creds(),
        &request("POST", "/", q, &h, b""),
        "kinesis",
        boto_now(),
    )
    .unwrap_err();
    assert_eq!(
        message(&e),
        "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string \
         parameters must include 'X-Amz-Signature'. AWS query-string parameters must include \
         'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
    );
}

#[test]
fn header_and_query_signatures_together_are_refused() {
    let (h, body) = boto_put_record();
    let e = verify(
        &creds(),
        &request("POST", "/", "X-Amz-Algorithm=AWS4-HMAC-SHA256", &h, body),
        "kinesis",
        boto_now(),
    )
    .unwrap_err();
    assert_eq!(e.type_name(), "InvalidSignatureException");
}

#[test]
fn dates_more_than_15_minutes_off_are_refused() {
    let (h, body) = boto_put_record();
    let later = boto_now() + TimeDelta::minutes(16);
    let e = verify(
        &creds(),
        &request("POST", "/", "", &h, body),
        "kinesis",
        later,
    )
    .unwrap_err();
    assert_eq!(e.type_name(), "InvalidSignatureException");
    assert_eq!(
        message(&e),
        "Signature expired: 20240506T070809Z is now earlier than 20240506T070909Z \
         (20240506T072409Z - 15 min.)"
    );
    let earlier = boto_now() - TimeDelta::minutes(16);
    let e = verify(
        &creds(),
        &request("POST", "/", "", &h, body),
        "kinesis",
        earlier,
    )
    .unwrap_err();
    assert_eq!(
        message(&e),
        "Signature not yet current: 20240506T070809Z is still later than 20240506T070709Z \
         (20240506T065209Z + 15 min.)"
    );
    let within = boto_now() + TimeDelta::minutes(14);
    verify(
        &creds(),
        &request("POST", "/", "", &h, body),
        "kinesis",
        within,
    )
    .unwrap();
}

#[test]
fn malformed_date_is_incomplete() {
    let (mut h, body) = boto_put_record();
    h.insert("x-amz-date", HeaderValue::from_static("2024-05-06"));
    let e = boto_verify(&h, body).unwrap_err();
    assert_eq!(e.type_name(), "IncompleteSignatureException");
    assert_eq!(
        message(&e),
        "Date must be in ISO-8601 'basic format'. Got '2024-05-06'. See http://en.wikipedia.org/wiki/ISO_8601"
    );
}

#[test]
fn host_must_be_signed() {
    let (mut h, body) = boto_put_record();
    h.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIDSHARDLINE/20240506/us-east-1/kinesis/aws4_request, SignedHeaders=x-amz-date, Signature=00",
        ),
    );
    let e = boto_verify(&h, body).unwrap_err();
    assert_eq!(
        message(&e),
        "'Host' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn credential_scope_errors_use_aws_wording() {
    let (mut h, body) = boto_put_record();
    let with_credential = |h: &mut HeaderMap, alg: &str, cred: &str| {
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!(
                "{alg} Credential={cred}, SignedHeaders=host;x-amz-date, Signature=00"
            ))
            .unwrap(),
        );
    };
    with_credential(
        &mut h,
        "AWS4-HMAC-SHA1",
        "AKIDSHARDLINE/20240506/us-east-1/kinesis/aws4_request",
    );
    let e = boto_verify(&h, body).unwrap_err();
    assert_eq!(e.type_name(), "IncompleteSignatureException");
    assert_eq!(
        message(&e),
        "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' (only AWS4-HMAC-SHA256 for now). "
    );

    with_credential(&mut h, ALGORITHM, "a/b/c/d");
    let e = boto_verify(&h, body).unwrap_err();
    assert_eq!(e.type_name(), "IncompleteSignatureException");
    assert_eq!(
        message(&e),
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a/b/c/d'"
    );

    with_credential(&mut h, ALGORITHM, "AKIDSHARDLINE/b/C/dynamodb/e");
    let e = boto_verify(&h, body).unwrap_err();
    assert_eq!(e.type_name(), "InvalidSignatureException");
    assert_eq!(
        message(&e),
        "Credential should be scoped to a valid region, not 'C'. Credential should be scoped to \
         correct service: 'kinesis'. Credential should be scoped with a valid terminator: \
         'aws4_request', not 'e'. Date in Credential scope does not match YYYYMMDD from ISO-8601 \
         version of date from HTTP: 'b' != '20240506', from '20240506T070809Z'."
    );
}

#[test]
fn keys_file_rejects_malformed_lines_with_their_number() {
    let e = Credentials::parse("# c\nAK SECRET\nAK2\n", Path::new("keys.txt")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "keys file keys.txt line 3: expected ACCESS_KEY_ID SECRET_ACCESS_KEY"
    );
    let e = Credentials::parse("AK S1\nAK S2\n", Path::new("k")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "keys file k line 2: access key id listed twice"
    );
    let e = Credentials::parse("# only comments\n", Path::new("k")).unwrap_err();
    assert_eq!(e.to_string(), "keys file k lists no keys");
}

#[test]
fn credentials_debug_hides_secrets() {
    let text = format!("{:?}", creds());
    assert!(
        !text.contains(SUITE_SECRET) && !text.contains(BOTO_SECRET),
        "{text}"
    );
}
