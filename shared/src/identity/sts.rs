//! Logins with the caller's own AWS identity, as Vault's and EKS's IAM logins do: the client signs an
//! `sts:GetCallerIdentity` request whose signed headers include `x-berth-registry: <registry name>` (so the proof is
//! good for this registry only) and sends only the signature headers. The token service *rebuilds* the request itself
//! (method, path, body and every header fixed, the endpoint its own configured one, never a host, path or header the
//! caller chose), sends it without following redirects, and maps the ARN STS answers with (an assumed role to its
//! role) to role assignments.

use std::time::{Duration, SystemTime};

use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign},
    sign::v4,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::tokens::now_seconds;

/// The header whose value, this registry's name, every login proof must have signed.
pub const REGISTRY_HEADER: &str = "x-berth-registry";
/// The one request a proof may sign: STS's query protocol as a form POST.
const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The headers the rebuilt request carries, so the only ones a proof may sign; `host` and the registry header must be.
const SIGNABLE_HEADERS: [&str; 5] = ["content-type", "host", "x-amz-date", "x-amz-security-token", REGISTRY_HEADER];
/// How old a proof may be (STS's own limit for signed requests), and how far its clock may be ahead of ours.
const MAX_AGE_SECONDS: u64 = 15 * 60;
const MAX_SKEW_SECONDS: u64 = 5 * 60;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Session tokens of assumed roles run to a few kilobytes; nothing legitimate is longer.
const MAX_HEADER_BYTES: usize = 8 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StsError {
    #[error("the AWS login proof is malformed: {0}")]
    Malformed(String),
    #[error("the AWS login proof is too old or from the future; check the clock and log in again")]
    Stale,
    #[error("STS refused the AWS login proof (HTTP {0}): the credentials are invalid or signed for another registry")]
    Refused(u16),
    #[error("STS cannot be reached: {0}")]
    Unavailable(String),
    #[error("STS answered with an identity this registry cannot use: {0}")]
    UnknownIdentity(String),
}

/// What a client sends as its AWS login: the signature headers of the GetCallerIdentity request it signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerIdentityProof {
    /// `Authorization`: `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    pub authorization: String,
    /// `X-Amz-Date`: `20261201T120000Z`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`, for temporary credentials (assumed roles, SSO, instance roles).
    pub security_token: Option<String>,
}

impl CallerIdentityProof {
    /// Checks the proof's shape and freshness against STS in `region`: one SigV4 signature for `sts` in that region,
    /// over headers the rebuilt request carries, the registry header among them.
    pub fn check(&self, region: &str, now: u64) -> Result<(), StsError> {
        let malformed = |what: String| StsError::Malformed(what);
        for value in [Some(&self.authorization), Some(&self.amz_date), self.security_token.as_ref()].into_iter().flatten() {
            if value.len() > MAX_HEADER_BYTES || !value.bytes().all(|byte| byte.is_ascii_graphic() || byte == b' ') {
                return Err(malformed("a header value is too long or not printable ASCII".to_owned()));
            }
        }
        let fields = self.authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| malformed("not a SigV4 signature".to_owned()))?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for field in fields.split(',').map(str::trim) {
            let slot = match field.split_once('=') {
                Some(("Credential", value)) => (&mut credential, value),
                Some(("SignedHeaders", value)) => (&mut signed_headers, value),
                Some(("Signature", value)) => (&mut signature, value),
                _ => return Err(malformed(format!("unexpected field {field:?} in the signature"))),
            };
            if slot.0.replace(slot.1).is_some() {
                return Err(malformed("a field of the signature is repeated".to_owned()));
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
            return Err(malformed("the signature needs Credential, SignedHeaders and Signature".to_owned()));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [_access_key, _day, signed_region, "sts", "aws4_request"] = scope.as_slice() else {
            return Err(malformed("the credential scope is not for STS".to_owned()));
        };
        if *signed_region != region {
            return Err(malformed(format!("signed for STS in {signed_region}; this registry checks logins with STS in {region}")));
        }
        if signature.len() != 64 || !signature.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(malformed("the signature is not 64 hexadecimal digits".to_owned()));
        }
        let signed: Vec<&str> = signed_headers.split(';').collect();
        if let Some(header) = signed.iter().find(|header| !SIGNABLE_HEADERS.contains(header)) {
            return Err(malformed(format!("header {header} is signed, but a login proof signs only {}", SIGNABLE_HEADERS.join(", "))));
        }
        for needed in ["host", "x-amz-date", REGISTRY_HEADER] {
            if !signed.contains(&needed) {
                return Err(malformed(format!("{needed} is not among the signed headers")));
            }
        }
        if self.security_token.is_some() != signed.contains(&"x-amz-security-token") {
            return Err(malformed("x-amz-security-token must be signed exactly when it is sent".to_owned()));
        }
        let signed_at = amz_date_seconds(&self.amz_date).ok_or_else(|| malformed("X-Amz-Date is not like 20261201T120000Z".to_owned()))?;
        if signed_at + MAX_AGE_SECONDS < now || signed_at > now + MAX_SKEW_SECONDS {
            return Err(StsError::Stale);
        }
        Ok(())
    }
}

/// `20261201T120000Z` as unix seconds.
fn amz_date_seconds(text: &str) -> Option<u64> {
    if text.len() != 16
        || !text.ends_with('Z')
        || text.as_bytes()[8] != b'T'
        || !text[..8].bytes().chain(text[9..15].bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let rfc3339 = format!("{}-{}-{}T{}:{}:{}Z", &text[..4], &text[4..6], &text[6..8], &text[9..11], &text[11..13], &text[13..15]);
    let time = humantime::parse_rfc3339(&rfc3339).ok()?;
    time.duration_since(SystemTime::UNIX_EPOCH).ok().map(|since| since.as_secs())
}

/// The principal an STS caller ARN stands for: an assumed-role session is its role (without the role's path,
/// which STS does not report); users, the root and federated users are themselves.
pub fn principal_arn(caller: &str) -> Result<String, StsError> {
    let unknown = || StsError::UnknownIdentity(caller.to_owned());
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let [arn, partition, service, "", account, resource] = parts.as_slice() else {
        return Err(unknown());
    };
    if *arn != "arn" || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    match (*service, resource.split('/').collect::<Vec<_>>().as_slice()) {
        ("sts", ["assumed-role", role, _session]) => Ok(format!("arn:{partition}:iam::{account}:role/{role}")),
        ("sts", ["federated-user", _]) | ("iam", ["user", ..]) | ("iam", ["root"]) => Ok(caller.to_owned()),
        _ => Err(unknown()),
    }
}

/// The ARN in a GetCallerIdentity answer: the JSON form asked for, or the XML STS sends by default.
fn caller_arn(body: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        return json["GetCallerIdentityResponse"]["GetCallerIdentityResult"]["Arn"].as_str().map(str::to_owned);
    }
    let result = body.split_once("<GetCallerIdentityResult>")?.1.split_once("</GetCallerIdentityResult>")?.0;
    let arn = result.split_once("<Arn>")?.1.split_once("</Arn>")?.0;
    Some(arn.trim().to_owned())
}

/// The region whose STS answers at `endpoint`: `sts.<region>.amazonaws.com[.cn]`, us-east-1 for the global
/// endpoint and for any other host (emulators do not check).
pub fn endpoint_region(endpoint: &Url) -> String {
    let host = endpoint.host_str().unwrap_or_default();
    let inner =
        host.strip_prefix("sts.").and_then(|rest| rest.strip_suffix(".amazonaws.com").or_else(|| rest.strip_suffix(".amazonaws.com.cn")));
    match inner {
        Some(region) if !region.is_empty() && !region.contains('.') => region.to_owned(),
        _ => "us-east-1".to_owned(),
    }
}

/// Checks login proofs against one STS endpoint.
pub struct StsLogin {
    endpoint: Url,
    region: String,
    http: reqwest::Client,
}

impl StsLogin {
    /// `endpoint`: `https://sts.<region>.amazonaws.com` on AWS (an emulator's URL in tests).
    pub fn new(endpoint: Url) -> Self {
        let region = endpoint_region(&endpoint);
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client starts");
        Self { endpoint, region, http }
    }

    /// Where clients sign their proofs for (what `GET /oauth2/exchange` tells them).
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The principal ARN a proof for `registry` shows: STS answers the rebuilt request only if the proof's
    /// signature covers exactly it, this registry's name included.
    pub async fn verify(&self, proof: &CallerIdentityProof, registry: &str) -> Result<String, StsError> {
        proof.check(&self.region, now_seconds())?;
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-date", &proof.amz_date)
            .header(REGISTRY_HEADER, registry)
            .header("authorization", &proof.authorization)
            .header("accept", "application/json");
        if let Some(token) = &proof.security_token {
            request = request.header("x-amz-security-token", token);
        }
        let response = request.body(BODY).send().await.map_err(|error| StsError::Unavailable(error.to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(StsError::Unavailable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(StsError::Refused(status.as_u16()));
        }
        let body = response.text().await.map_err(|error| StsError::Unavailable(error.to_string()))?;
        principal_arn(&caller_arn(&body).ok_or_else(|| StsError::UnknownIdentity("no Arn in the answer".to_owned()))?)
    }
}

/// A client's proof for `registry`: a GetCallerIdentity POST to `endpoint` (the registry's STS) signed with
/// `credentials` for `region` at `time`, its signed headers including [`REGISTRY_HEADER`].
pub fn sign_caller_identity(
    endpoint: &Url,
    region: &str,
    credentials: aws_credential_types::Credentials,
    registry: &str,
    time: SystemTime,
) -> Result<CallerIdentityProof, String> {
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::Headers;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|error| error.to_string())?
        .into();
    let host = match (endpoint.host_str(), endpoint.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err(format!("{endpoint} has no host")),
    };
    let headers = [("content-type", CONTENT_TYPE), ("host", host.as_str()), (REGISTRY_HEADER, registry)];
    let signable = SignableRequest::new("POST", endpoint.as_str(), headers.into_iter(), SignableBody::Bytes(BODY.as_bytes()))
        .map_err(|error| error.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|error| error.to_string())?.into_parts();
    let header = |name: &str| instructions.headers().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.to_owned());
    Ok(CallerIdentityProof {
        authorization: header("authorization").ok_or("the signer gave no Authorization header")?,
        amz_date: header("x-amz-date").ok_or("the signer gave no X-Amz-Date header")?,
        security_token: header("x-amz-security-token"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(token: Option<&str>) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn endpoint() -> Url {
        Url::parse("https://sts.eu-west-1.amazonaws.com/").unwrap()
    }

    #[test]
    fn signed_proofs_pass_the_checks() {
        let proof = sign_caller_identity(&endpoint(), "eu-west-1", credentials(Some("session")), "reg", SystemTime::now()).unwrap();
        proof.check("eu-west-1", now_seconds()).unwrap();
        assert!(proof.authorization.contains(REGISTRY_HEADER), "{}", proof.authorization);
        assert_eq!(proof.security_token.as_deref(), Some("session"));
        let without_token = sign_caller_identity(&endpoint(), "eu-west-1", credentials(None), "reg", SystemTime::now()).unwrap();
        without_token.check("eu-west-1", now_seconds()).unwrap();
    }

    #[test]
    fn proofs_for_anything_but_the_rebuilt_request_are_refused() {
        let good = sign_caller_identity(&endpoint(), "eu-west-1", credentials(Some("session")), "reg", SystemTime::now()).unwrap();
        let now = now_seconds();
        let edited = |edit: &dyn Fn(&mut CallerIdentityProof)| {
            let mut proof = good.clone();
            edit(&mut proof);
            proof.check("eu-west-1", now).unwrap_err().to_string()
        };
        let cases: [(&dyn Fn(&mut CallerIdentityProof), &str); 9] = [
            (&|p| p.authorization = p.authorization.replace(";x-berth-registry", ""), "x-berth-registry is not among"),
            (
                &|p| p.authorization = p.authorization.replace("SignedHeaders=", "SignedHeaders=x-forwarded-for;"),
                "header x-forwarded-for is signed",
            ),
            (&|p| p.authorization = p.authorization.replace("/sts/", "/s3/"), "not for STS"),
            (&|p| p.authorization = p.authorization.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), "not a SigV4"),
            (&|p| p.authorization.push_str(", Signature=00"), "repeated"),
            (&|p| p.authorization.push_str("\r\nx-amz-target: x"), "printable"),
            (&|p| p.security_token = None, "exactly when"),
            (&|p| p.amz_date = "yesterday".into(), "X-Amz-Date"),
            (&|p| p.authorization = p.authorization.replace("eu-west-1", "us-west-2"), "signed for STS in us-west-2"),
        ];
        for (edit, why) in cases {
            let error = edited(edit);
            assert!(error.contains(why), "expected {why:?} in {error}");
        }
        assert_eq!(good.check("eu-west-1", now + 20 * 60), Err(StsError::Stale));
        assert_eq!(good.check("eu-west-1", now - 10 * 60), Err(StsError::Stale));
    }

    #[test]
    fn endpoints_name_their_region() {
        assert_eq!(endpoint_region(&endpoint()), "eu-west-1");
        assert_eq!(endpoint_region(&Url::parse("https://sts.amazonaws.com").unwrap()), "us-east-1");
        assert_eq!(endpoint_region(&Url::parse("https://sts.cn-north-1.amazonaws.com.cn").unwrap()), "cn-north-1");
        assert_eq!(endpoint_region(&Url::parse("http://127.0.0.1:5000").unwrap()), "us-east-1");
    }

    #[test]
    fn assumed_roles_map_to_their_role() {
        assert_eq!(principal_arn("arn:aws:sts::123456789012:assumed-role/ci/session-1").unwrap(), "arn:aws:iam::123456789012:role/ci");
        assert_eq!(principal_arn("arn:aws:iam::123456789012:user/alice").unwrap(), "arn:aws:iam::123456789012:user/alice");
        assert_eq!(principal_arn("arn:aws-cn:iam::123456789012:root").unwrap(), "arn:aws-cn:iam::123456789012:root");
        for bad in [
            "arn:aws:s3:::bucket",
            "arn:aws:sts::12:assumed-role/x/y",
            "nonsense",
            "arn:aws:iam::123456789012:group/g",
            "arn:aws:sts::123456789012:user/moto",
        ] {
            assert!(principal_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_read_as_json_or_xml() {
        let json = r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:iam::123456789012:user/a"}}}"#;
        assert_eq!(caller_arn(json).as_deref(), Some("arn:aws:iam::123456789012:user/a"));
        let xml = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/b</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(caller_arn(xml).as_deref(), Some("arn:aws:iam::123456789012:user/b"));
        assert_eq!(caller_arn("<Arn>arn:aws:iam::123456789012:user/c</Arn>"), None, "an Arn outside the result is not the caller");
    }
}
