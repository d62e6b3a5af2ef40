//! `ketch configs`, as Kafka's `kafka-configs.sh`: `--describe [--all]` and `--alter
//! --add-config k=v,k2=[a,b] --delete-config k,…` of `--entity-type topics|brokers`
//! `--entity-name N` or `--entity-default` (brokers: the cluster-wide dynamic default).
//! Describe asks a broker (DescribeConfigs with synonyms; a broker answers for itself, so each
//! broker is asked its own); alter goes through a broker or `--bootstrap-controller` to the
//! active controller (IncrementalAlterConfigs), whose records every broker applies without a
//! restart.

use crate::client::{error_name, Client};
use crate::runtime;
use kafka_protocol::messages::{
    describe_configs_request, incremental_alter_configs_request, ApiKey, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Topics,
    Brokers,
    /// SCRAM credentials (DescribeUserScramCredentials / AlterUserScramCredentials).
    Users,
}

pub struct ConfigsCommand {
    pub bootstrap_server: Option<String>,
    pub bootstrap_controller: Option<String>,
    pub entity_type: EntityType,
    /// `None` with `entity_default` false: every entity (describe only).
    pub entity_name: Option<String>,
    pub entity_default: bool,
    pub describe: bool,
    pub all: bool,
    pub add: Vec<(String, String)>,
    pub delete: Vec<String>,
}

/// `k=v,k2=[a,b]`: commas inside brackets belong to the value (a list), as Kafka's tool reads.
pub fn parse_add_config(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    let mut items = Vec::new();
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            format!("--add-config takes k=v,k2=v2 (a list as [a,b]), not '{item}'")
        })?;
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

/// IncrementalAlterConfigs of one resource: `add` set, `delete` removed.
pub fn alter_body(
    resource_type: i8,
    name: &str,
    add: &[(String, String)],
    delete: &[String],
) -> RequestKind {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let set = add.iter().map(|(k, v)| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_string(v.clone())))
    });
    let removed = delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(1)
            .with_value(None)
    });
    RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(
        vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(set.chain(removed).collect())],
    ))
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

fn entity_label(kind: EntityType, name: &str) -> String {
    match (kind, name.is_empty()) {
        (EntityType::Topics, _) => format!("topic {name}"),
        (EntityType::Brokers, true) => "brokers in the cluster".to_string(),
        (EntityType::Brokers, false) => format!("broker {name}"),
        (EntityType::Users, _) => format!("user {name}"),
    }
}

async fn describe_one(
    client: &mut Client,
    addr: Option<&str>,
    kind: EntityType,
    name: &str,
    all: bool,
) -> Result<(), String> {
    let body = RequestKind::DescribeConfigs(
        DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(if kind == EntityType::Topics {
                        TOPIC
                    } else {
                        BROKER
                    })
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configuration_keys(None),
            ]),
    );
    let answer = match addr {
        Some(a) => client.send(a, ApiKey::DescribeConfigs, 4, &body).await?,
        None => client.send_any(ApiKey::DescribeConfigs, 4, &body).await?,
    };
    let ResponseKind::DescribeConfigs(r) = answer else {
        return Err("not a DescribeConfigs response".into());
    };
    let res = r
        .results
        .first()
        .ok_or("an empty DescribeConfigs response")?;
    if res.error_code != 0 {
        return Err(format!(
            "{}: {}",
            error_name(res.error_code),
            res.error_message.as_deref().unwrap_or("")
        ));
    }
    // Without --all, what was set dynamically on this entity (Kafka's "Dynamic configs"):
    // a topic's own overrides, a broker's own settings, or the cluster default's.
    let own_source = match (kind, name.is_empty()) {
        (EntityType::Topics, _) => 1,
        (EntityType::Brokers, false) => 2,
        (EntityType::Brokers, true) => 3,
        // Users never reach DescribeConfigs (see `users`).
        (EntityType::Users, _) => return Err("users are described by users()".into()),
    };
    let dynamic = |s: i8| s == own_source;
    let heading = match (all, kind, name.is_empty()) {
        (_, EntityType::Brokers, true) => {
            "Default configs for brokers in the cluster are:".to_string()
        }
        (true, _, _) => format!("All configs for {} are:", entity_label(kind, name)),
        (false, _, _) => format!("Dynamic configs for {} are:", entity_label(kind, name)),
    };
    println!("{heading}");
    for c in &res.configs {
        if !all && !dynamic(c.config_source) {
            continue;
        }
        let synonyms: Vec<String> = c
            .synonyms
            .iter()
            .map(|s| {
                format!(
                    "{}:{}={}",
                    source_name(s.source),
                    s.name,
                    s.value.as_deref().unwrap_or("null")
                )
            })
            .collect();
        println!(
            "  {}={} sensitive={} synonyms={{{}}}",
            c.name,
            c.value.as_deref().unwrap_or("null"),
            c.is_sensitive,
            synonyms.join(", ")
        );
    }
    Ok(())
}

pub fn run(cmd: ConfigsCommand) -> Result<(), String> {
    if cmd.entity_type == EntityType::Users {
        return users(cmd);
    }
    let name = match (&cmd.entity_name, cmd.entity_default) {
        (Some(_), true) => {
            return Err("--entity-name and --entity-default exclude each other".into())
        }
        (Some(n), false) => Some(n.clone()),
        (None, true) if cmd.entity_type == EntityType::Topics => {
            return Err(
                "--entity-default is for brokers (topic defaults are broker configs)".into(),
            )
        }
        (None, true) => Some(String::new()),
        (None, false) => None,
    };
    if cmd.describe {
        let bootstrap = cmd
            .bootstrap_server
            .clone()
            .ok_or("--describe needs --bootstrap-server (a broker answers DescribeConfigs)")?;
        return runtime::block_on(async move {
            let mut client = Client::new(&bootstrap, "ketch-configs");
            let metadata = client.metadata(None).await?;
            let targets: Vec<(Option<String>, String)> = match (cmd.entity_type, name) {
                (EntityType::Users, _) => Vec::new(),
                (EntityType::Topics, Some(n)) => vec![(None, n)],
                (EntityType::Topics, None) => {
                    let mut names: Vec<String> = metadata
                        .topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                        .collect();
                    names.sort();
                    names.into_iter().map(|n| (None, n)).collect()
                }
                (EntityType::Brokers, Some(n)) if n.is_empty() => vec![(None, n)],
                (EntityType::Brokers, Some(n)) => {
                    let id: i32 = n
                        .parse()
                        .map_err(|_| format!("--entity-name '{n}' is not a broker id"))?;
                    let addr = crate::client::broker_addr(&metadata, id)
                        .ok_or_else(|| format!("broker {id} is not in the cluster's metadata"))?;
                    vec![(Some(addr), n)]
                }
                (EntityType::Brokers, None) => metadata
                    .brokers
                    .iter()
                    .map(|b| {
                        (
                            Some(format!("{}:{}", b.host, b.port)),
                            b.node_id.0.to_string(),
                        )
                    })
                    .collect(),
            };
            for (addr, n) in targets {
                describe_one(&mut client, addr.as_deref(), cmd.entity_type, &n, cmd.all).await?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    }
    let name = name.ok_or("--alter needs --entity-name N (or --entity-default for brokers)")?;
    if cmd.add.is_empty() && cmd.delete.is_empty() {
        return Err("--alter needs --add-config k=v,… and/or --delete-config k,…".into());
    }
    let body = alter_body(
        if cmd.entity_type == EntityType::Topics {
            TOPIC
        } else {
            BROKER
        },
        &name,
        &cmd.add,
        &cmd.delete,
    );
    let bootstrap = cmd
        .bootstrap_controller
        .clone()
        .or(cmd.bootstrap_server.clone())
        .ok_or("--bootstrap-server or --bootstrap-controller is needed")?;
    let ResponseKind::IncrementalAlterConfigs(r) =
        super::to_active_controller(&bootstrap, ApiKey::IncrementalAlterConfigs, 1, &body)?
    else {
        return Err("not an IncrementalAlterConfigs response".into());
    };
    let res = r
        .responses
        .first()
        .ok_or("an empty IncrementalAlterConfigs response")?;
    if res.error_code != 0 {
        return Err(format!(
            "Invalid config(s): {} ({})",
            res.error_message.as_deref().unwrap_or(""),
            error_name(res.error_code)
        ));
    }
    match (cmd.entity_type, name.is_empty()) {
        (EntityType::Brokers, true) => {
            println!("Completed updating default config for brokers in the cluster.")
        }
        _ => println!(
            "Completed updating config for {}.",
            entity_label(cmd.entity_type, &name)
        ),
    }
    Ok(())
}

/// `--entity-type users`: SCRAM credentials, as `kafka-configs.sh` manages them.
fn users(cmd: ConfigsCommand) -> Result<(), String> {
    use crate::security::scram::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
    use kafka_protocol::messages::{
        alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion},
        describe_user_scram_credentials_request::UserName,
        AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
    };
    let bootstrap = cmd
        .bootstrap_server
        .clone()
        .ok_or("users need --bootstrap-server (a broker)")?;
    if cmd.describe {
        let body = RequestKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(
                cmd.entity_name
                    .as_ref()
                    .map(|n| vec![UserName::default().with_name(StrBytes::from_string(n.clone()))]),
            ),
        );
        let answer = runtime::block_on(async move {
            let mut client = Client::new(&bootstrap, "ketch-configs");
            client
                .send_any(ApiKey::DescribeUserScramCredentials, 0, &body)
                .await
        })
        .map_err(|e| e.to_string())??;
        let ResponseKind::DescribeUserScramCredentials(r) = answer else {
            return Err("not a DescribeUserScramCredentials response".into());
        };
        if r.error_code != 0 {
            return Err(error_name(r.error_code).to_string());
        }
        for u in r.results {
            if u.error_code != 0 {
                return Err(format!(
                    "{}: {}",
                    u.user.as_str(),
                    u.error_message
                        .as_deref()
                        .unwrap_or(error_name(u.error_code))
                ));
            }
            let list: Vec<String> = u
                .credential_infos
                .iter()
                .map(|c| {
                    format!(
                        "{}=iterations={}",
                        Mechanism::from_id(c.mechanism).map_or("UNKNOWN", Mechanism::name),
                        c.iterations
                    )
                })
                .collect();
            println!(
                "SCRAM credential configs for user-principal '{}' are {}",
                u.user.as_str(),
                list.join(", ")
            );
        }
        return Ok(());
    }
    let name = cmd
        .entity_name
        .clone()
        .ok_or("--alter needs --entity-name USER")?;
    let mut upsertions = Vec::new();
    for (key, value) in &cmd.add {
        let mechanism = Mechanism::from_name(key)
            .ok_or(format!("{key}: users take SCRAM-SHA-256 or SCRAM-SHA-512"))?;
        let (mut iterations, mut password) = (MIN_ITERATIONS, None);
        for field in value
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
        {
            match field.split_once('=') {
                Some(("iterations", v)) => {
                    iterations = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
                        .ok_or(format!(
                            "iterations {v}: {MIN_ITERATIONS}..={MAX_ITERATIONS}"
                        ))?
                }
                Some(("password", v)) => password = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "{key}: '{field}' is not iterations=… or password=…"
                    ))
                }
            }
        }
        let password = password.ok_or(format!("{key} needs password=…"))?;
        let mut salt = runtime::random_bytes_16()
            .map_err(|e| format!("no randomness for a salt: {e}"))?
            .to_vec();
        salt.extend_from_slice(&runtime::random_bytes_16().map_err(|e| e.to_string())?);
        let salted = mechanism.salted_password(
            password.as_bytes(),
            &salt,
            u32::try_from(iterations).unwrap_or(4096),
        );
        upsertions.push(
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_mechanism(mechanism.id())
                .with_iterations(iterations)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        );
    }
    let mut deletions = Vec::new();
    for key in &cmd.delete {
        let mechanism = Mechanism::from_name(key.trim())
            .ok_or(format!("{key}: users take SCRAM-SHA-256 or SCRAM-SHA-512"))?;
        deletions.push(
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_mechanism(mechanism.id()),
        );
    }
    if upsertions.is_empty() && deletions.is_empty() {
        return Err("--alter needs --add-config or --delete-config".into());
    }
    let body = RequestKind::AlterUserScramCredentials(
        AlterUserScramCredentialsRequest::default()
            .with_upsertions(upsertions)
            .with_deletions(deletions),
    );
    let ResponseKind::AlterUserScramCredentials(r) =
        super::to_active_controller(&bootstrap, ApiKey::AlterUserScramCredentials, 0, &body)?
    else {
        return Err("not an AlterUserScramCredentials response".into());
    };
    for res in &r.results {
        if res.error_code != 0 {
            return Err(format!(
                "{}: {} ({})",
                res.user.as_str(),
                res.error_message.as_deref().unwrap_or(""),
                error_name(res.error_code)
            ));
        }
    }
    println!("Completed updating config for user {name}.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_reads_lists_in_brackets() {
        assert_eq!(
            parse_add_config("retention.ms=1000, cleanup.policy=[delete],x=[a,b]").unwrap(),
            vec![
                ("retention.ms".to_string(), "1000".to_string()),
                ("cleanup.policy".to_string(), "delete".to_string()),
                ("x".to_string(), "a,b".to_string()),
            ]
        );
        assert!(parse_add_config("retention.ms").is_err());
    }
}
