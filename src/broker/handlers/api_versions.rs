//! ApiVersions (18): the versions of every API the client listener implements, from the one
//! table in [`super::supported`]. Its response header is always v0 (KIP-511).

use kafka_protocol::messages::{api_versions_response::ApiVersion, ApiKey, ApiVersionsResponse};

pub fn response(error_code: i16) -> ApiVersionsResponse {
    let keys = (0..=i16::MAX)
        .take(100)
        .filter_map(|k| ApiKey::try_from(k).ok())
        .filter_map(|k| super::supported(k).map(|range| (k, range)));
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            keys.map(|(k, (min, max))| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_what_the_issue_requires() {
        let r = response(0);
        let range = |k: ApiKey| {
            r.api_keys
                .iter()
                .find(|v| v.api_key == k as i16)
                .map(|v| (v.min_version, v.max_version))
        };
        assert_eq!(range(ApiKey::ApiVersions), Some((0, 4)));
        assert_eq!(range(ApiKey::Produce), Some((3, 11)));
        assert_eq!(range(ApiKey::Fetch), Some((4, 12)));
        assert_eq!(range(ApiKey::Metadata), Some((1, 12)));
        // Quorum-internal APIs are the controller listener's, never advertised to clients.
        assert_eq!(range(ApiKey::Vote), None);
    }
}
