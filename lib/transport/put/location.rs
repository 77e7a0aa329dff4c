//! The bucket's region on an S3-compatible endpoint that is not AWS's, when no
//! region is given: one signed `GetBucketLocation` per run (remote/s3.rs). A
//! server that names its region (garage, MinIO, AWS behind a custom endpoint)
//! does so in the answer's `LocationConstraint`, or, refusing a request signed
//! for `us-east-1`, in `<Region>` or `x-amz-bucket-region`.

use reqwest::Method;

use super::{Target, UNSIGNED};

impl Target {
    /// Asks the bucket's region once (no retries). `Ok(None)`: the answer names
    /// none; `Err`: why it could not be asked, for the debug log (the run's own
    /// requests then report any real failure).
    pub(crate) async fn bucket_region(&self) -> std::result::Result<Option<String>, String> {
        let bucket = Target {
            url: self.bucket_url.clone(),
            location: self.bucket_location(),
            max_retries: 0,
            ..self.clone()
        };
        let empty = (reqwest::Body::from(""), 0, UNSIGNED);
        match bucket.call(Method::GET, "location", None, empty).await {
            Ok(body) => Ok(location_constraint(&body)),
            Err(f) => {
                let text = f.error.to_string();
                named_region(&text).map(Some).ok_or(text)
            }
        }
    }
}

/// The region a `GetBucketLocation` answer names: its `LocationConstraint`,
/// empty (or absent) for `us-east-1`, `EU` for `eu-west-1` (the old name).
fn location_constraint(body: &str) -> Option<String> {
    let start = body.find("<LocationConstraint")?;
    let rest = &body[start..];
    let open_end = rest.find('>')?;
    if rest[..open_end].ends_with('/') {
        return Some("us-east-1".to_string());
    }
    let text = &rest[open_end + 1..];
    let value = text[..text.find("</LocationConstraint>")?].trim();
    Some(
        match value {
            "" => "us-east-1",
            "EU" => "eu-west-1",
            other => other,
        }
        .to_string(),
    )
    .filter(|r| plausible(r))
}

/// The `<Region>` a refusal names (put.rs adds the `x-amz-bucket-region`
/// header's value in the same form).
fn named_region(text: &str) -> Option<String> {
    let region = super::failure::xml_text(text, "Region")?;
    let region = region.trim();
    plausible(region).then(|| region.to_string())
}

/// A region name fit to sign with: short, visible ASCII, no separators a
/// header or a host name could not carry.
fn plausible(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_answers() {
        let ns = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
        let answer = |inner: &str| {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint {ns}>{inner}</LocationConstraint>"
            )
        };
        assert_eq!(
            location_constraint(&answer("eu-west-1")).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            location_constraint(&answer("garage")).as_deref(),
            Some("garage")
        );
        assert_eq!(
            location_constraint(&answer("")).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            location_constraint(&answer("EU")).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            location_constraint(&format!("<LocationConstraint {ns}/>")).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            location_constraint("<Error><Code>NoSuchBucket</Code></Error>"),
            None
        );
        assert_eq!(location_constraint(&answer("a b\r\nx: y")), None);
        assert_eq!(location_constraint("<LocationConstraint>eu"), None);
    }

    #[test]
    fn refusals_naming_a_region() {
        assert_eq!(
            named_region(
                "status code: 400 AuthorizationHeaderMalformed: x <Region>garage</Region>"
            )
            .as_deref(),
            Some("garage")
        );
        assert_eq!(named_region("status code: 403 AccessDenied: no"), None);
        assert_eq!(named_region("<Region></Region>"), None);
    }
}
