//! DescribeUserScramCredentials (50), from this broker's metadata image: each user's SCRAM
//! mechanisms and iterations (never a key). AlterUserScramCredentials (51) is the
//! controller's and is forwarded (see `topics`).

use crate::broker::context::Broker;
use crate::security::scram::Mechanism;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

pub fn describe(
    broker: &Broker,
    r: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.image();
    let mut known: BTreeMap<&str, Vec<CredentialInfo>> = BTreeMap::new();
    for ((user, mechanism), c) in &image.scram {
        known.entry(user.as_str()).or_default().push(
            CredentialInfo::default()
                .with_mechanism(*mechanism)
                .with_iterations(c.iterations),
        );
    }
    let result = |user: &str| {
        let r = DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()));
        match known.get(user) {
            Some(infos) => r.with_credential_infos(infos.clone()),
            None => r
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "no SCRAM credential for user {user}"
                )))),
        }
    };
    let results = match &r.users {
        // Null or empty: every user with a credential.
        None => known.keys().map(|u| result(u)).collect(),
        Some(users) if users.is_empty() => known.keys().map(|u| result(u)).collect(),
        Some(users) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for u in users {
                *counts.entry(u.name.as_str()).or_default() += 1;
            }
            counts
                .into_iter()
                .map(|(user, n)| {
                    if n > 1 {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(StrBytes::from_string(user.to_string()))
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "user {user} asked for more than once"
                            ))))
                    } else {
                        result(user)
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// The credential of `user` for `mechanism`, for SCRAM authentication on this broker.
pub fn credential(
    broker: &Broker,
    user: &str,
    mechanism: Mechanism,
) -> Option<crate::security::scram::Credential> {
    let image = broker.image();
    image
        .scram
        .get(&(user.to_string(), mechanism.id()))
        .map(|c| crate::security::scram::Credential {
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        })
}
