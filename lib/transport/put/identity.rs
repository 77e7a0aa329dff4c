//! STS `GetCallerIdentity` for `doctor`: which principal the S3 credentials
//! are, asked with the very credentials the S3 requests are signed with (the
//! store's own provider, renewed as for every request).
//!
//! The answer names the ARN, account and user id, none of them a secret. STS
//! answers GetCallerIdentity whatever the principal's policy, so a refusal
//! means the credentials themselves are not valid (for AWS).

use reqwest::Method;
use serde::Deserialize;

use super::Target;
use object_store::aws::AwsAuthorizer;
use object_store::client::HttpRequestBody;

/// The query of the request (STS' query protocol).
const QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// Where to ask, decided from the settings before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StsEndpoint {
    /// Ask this URL (`AWS_ENDPOINT_URL_STS`, or AWS' regional endpoint).
    Ask(String),
    /// Not asked: the S3 endpoint is not AWS and no STS endpoint is set, so
    /// asking AWS about another server's credentials would say nothing.
    Skip(String),
}

/// The STS endpoint for `region`: `configured` (`AWS_ENDPOINT_URL_STS`) when
/// set; else, for AWS S3 (no endpoint, or an `amazonaws.com` one), AWS'
/// regional STS endpoint (`https://sts.REGION.amazonaws.com`, as the SDKs use
/// by default); else none.
pub(crate) fn sts_endpoint(
    configured: Option<&str>,
    s3_endpoint: Option<&str>,
    region: &str,
) -> StsEndpoint {
    if let Some(url) = configured {
        return StsEndpoint::Ask(url.trim_end_matches('/').to_string());
    }
    let host = s3_endpoint.map(|e| {
        url::Url::parse(e)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    });
    match host {
        None => StsEndpoint::Ask(aws_sts(region)),
        Some(h) if h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn") => {
            StsEndpoint::Ask(aws_sts(region))
        }
        Some(h) => StsEndpoint::Skip(format!(
            "ENDPOINT is {h}, not AWS, and AWS_ENDPOINT_URL_STS is unset: AWS STS is not asked \
             about another server's keys (set AWS_ENDPOINT_URL_STS if the server has an STS)"
        )),
    }
}

fn aws_sts(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{domain}")
}

/// Who the credentials are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Identity {
    pub(crate) arn: String,
    pub(crate) account: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    get_caller_identity_result: Identity,
}

/// Why there is no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentityFailure {
    /// STS answered with an error (the credentials refused): status and the
    /// error's code and message, as STS gave them (no secret in them).
    Refused(String),
    /// No answer, or one that is not STS'.
    Unreachable(String),
}

impl Target {
    /// `GetCallerIdentity` at `sts`, signed for this bucket's region with the
    /// store's credentials. Tried once.
    pub(crate) async fn caller_identity(
        &self,
        sts: &str,
    ) -> std::result::Result<Identity, IdentityFailure> {
        let bad = |why: String| IdentityFailure::Unreachable(why);
        let url = reqwest::Url::parse(&format!("{sts}/?{QUERY}"))
            .map_err(|e| bad(format!("AWS_ENDPOINT_URL_STS={sts:?} is not a URL: {e}")))?;
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| bad(format!("no credentials to sign with: {e}")))?;
        super::usable(&credential).map_err(|f| bad(f.error.to_string()))?;
        let mut signed = http::Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| bad(format!("cannot build the request: {e}")))?;
        AwsAuthorizer::new(&credential, "sts", &self.region)
            .with_sign_payload(true)
            .try_authorize(&mut signed, None)
            .map_err(|e| bad(format!("cannot sign the request: {e}")))?;
        let mut request = self.client.get(url);
        for (name, value) in signed.headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| bad(crate::base::error::chain_joined(&e, ": ")))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let field = |tag: &str| {
                let open = format!("<{tag}>");
                let start = body.find(&open)? + open.len();
                let end = body[start..].find(&format!("</{tag}>"))?;
                Some(body[start..start + end].to_string())
            };
            return Err(match (field("Code"), field("Message")) {
                (Some(code), message) => IdentityFailure::Refused(format!(
                    "STS answered {status}: {code}{}",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                )),
                (None, _) => bad(format!("{sts} answered {status}, not as STS does")),
            });
        }
        parse(&body).map_err(|e| bad(format!("{sts} answered 200 but not as STS does: {e}")))
    }
}

fn parse(xml: &str) -> std::result::Result<Identity, String> {
    quick_xml::de::from_str::<Response>(xml)
        .map(|r| r.get_caller_identity_result)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sts_endpoint_follows_the_settings() {
        let ask = |u: &str| StsEndpoint::Ask(u.to_string());
        assert_eq!(
            sts_endpoint(Some("http://127.0.0.1:5000/"), Some("http://x:1"), "r"),
            ask("http://127.0.0.1:5000")
        );
        assert_eq!(
            sts_endpoint(None, None, "eu-west-1"),
            ask("https://sts.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            sts_endpoint(
                None,
                Some("https://s3.cn-north-1.amazonaws.com.cn"),
                "cn-north-1"
            ),
            ask("https://sts.cn-north-1.amazonaws.com.cn")
        );
        let StsEndpoint::Skip(why) = sts_endpoint(None, Some("http://127.0.0.1:9000"), "r") else {
            panic!("a custom endpoint is not sent to AWS");
        };
        assert!(why.contains("AWS_ENDPOINT_URL_STS"), "{why}");
    }

    #[test]
    fn the_answer_names_the_principal() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/backup</Arn>
    <UserId>AIDAEXAMPLE</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
        assert_eq!(
            parse(xml),
            Ok(Identity {
                arn: "arn:aws:iam::123456789012:user/backup".into(),
                account: "123456789012".into(),
            })
        );
        assert!(parse("<Error/>").is_err());
    }
}
