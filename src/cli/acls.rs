//! `ketch acls`, as Kafka's `kafka-acls.sh`: `--add`, `--remove` and `--list` of ACLs on
//! `--topic`, `--group`, `--transactional-id` and `--cluster`, for `--allow-principal` /
//! `--deny-principal` from `--allow-host` / `--deny-host` (default `*`), with `--operation`
//! (repeatable; default All) and `--resource-pattern-type literal|prefixed` (`--list` and
//! `--remove` also take `any` and `match`). CreateAcls, DeleteAcls and DescribeAcls through a
//! broker; the output is Kafka's.

use crate::client::{error_name, Client};
use crate::runtime;
use crate::security::acl::{
    self, operation, operation_name, pattern, pattern_name, permission, resource, resource_name,
};
use clap::Args;
use kafka_protocol::messages::{
    create_acls_request::AclCreation, delete_acls_request::DeleteAclsFilter, ApiKey,
    CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

#[derive(Args, Debug)]
pub struct AclsArgs {
    #[arg(long)]
    pub bootstrap_server: String,
    #[arg(long, conflicts_with_all = ["remove", "list"])]
    pub add: bool,
    #[arg(long, conflicts_with = "list")]
    pub remove: bool,
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub topic: Vec<String>,
    #[arg(long)]
    pub group: Vec<String>,
    #[arg(long)]
    pub transactional_id: Vec<String>,
    #[arg(long)]
    pub cluster: bool,
    #[arg(long)]
    pub allow_principal: Vec<String>,
    #[arg(long)]
    pub deny_principal: Vec<String>,
    #[arg(long)]
    pub allow_host: Vec<String>,
    #[arg(long)]
    pub deny_host: Vec<String>,
    #[arg(long)]
    pub operation: Vec<String>,
    /// literal (default), prefixed; with --list or --remove also any, match.
    #[arg(long, default_value = "literal")]
    pub resource_pattern_type: String,
    /// --list: only the ACLs of this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Kafka's tool asks before removing; this one does not (accepted for scripts).
    #[arg(long)]
    pub force: bool,
}

fn pattern_of(text: &str) -> Result<i8, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "literal" => pattern::LITERAL,
        "prefixed" => pattern::PREFIXED,
        "any" => pattern::ANY,
        "match" => pattern::MATCH,
        other => {
            return Err(format!(
                "--resource-pattern-type {other}: literal, prefixed, any or match"
            ))
        }
    })
}

/// The resources named: (type, name).
fn resources(a: &AclsArgs) -> Vec<(i8, String)> {
    let mut out: Vec<(i8, String)> = Vec::new();
    out.extend(a.topic.iter().map(|t| (resource::TOPIC, t.clone())));
    out.extend(a.group.iter().map(|g| (resource::GROUP, g.clone())));
    out.extend(
        a.transactional_id
            .iter()
            .map(|t| (resource::TRANSACTIONAL_ID, t.clone())),
    );
    if a.cluster {
        out.push((resource::CLUSTER, acl::CLUSTER_NAME.to_string()));
    }
    out
}

/// Every (principal, host, permission) the flags name.
fn grants(a: &AclsArgs) -> Vec<(String, String, i8)> {
    let hosts = |h: &[String]| {
        if h.is_empty() {
            vec!["*".to_string()]
        } else {
            h.to_vec()
        }
    };
    let mut out = Vec::new();
    for p in &a.allow_principal {
        for h in hosts(&a.allow_host) {
            out.push((p.clone(), h, permission::ALLOW));
        }
    }
    for p in &a.deny_principal {
        for h in hosts(&a.deny_host) {
            out.push((p.clone(), h, permission::DENY));
        }
    }
    out
}

fn operations(a: &AclsArgs) -> Result<Vec<i8>, String> {
    if a.operation.is_empty() {
        return Ok(vec![operation::ALL]);
    }
    a.operation
        .iter()
        .map(|o| {
            acl::operation_by_name(o).ok_or(format!(
                "--operation {o}: All, Read, Write, Create, Delete, Alter, Describe, \
                 ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite"
            ))
        })
        .collect()
}

pub fn run(a: AclsArgs) -> Result<(), String> {
    if [a.add, a.remove, a.list].iter().filter(|x| **x).count() != 1 {
        return Err("acls needs one of --add, --remove, --list".into());
    }
    let pattern_type = pattern_of(&a.resource_pattern_type)?;
    let bootstrap = a.bootstrap_server.clone();
    let call = |key: ApiKey, version: i16, body: RequestKind| {
        let bootstrap = bootstrap.clone();
        runtime::block_on(async move {
            let mut client = Client::new(&bootstrap, "ketch-acls");
            client.send_any(key, version, &body).await
        })
        .map_err(|e| e.to_string())?
    };
    if a.add {
        if !matches!(pattern_type, pattern::LITERAL | pattern::PREFIXED) {
            return Err("--add takes --resource-pattern-type literal or prefixed".into());
        }
        let resources = resources(&a);
        let grants = grants(&a);
        if resources.is_empty() || grants.is_empty() {
            return Err(
                "--add needs a resource (--topic, --group, --transactional-id, \
                        --cluster) and --allow-principal or --deny-principal"
                    .into(),
            );
        }
        let mut creations = Vec::new();
        for (t, name) in &resources {
            for (principal, host, perm) in &grants {
                for op in operations(&a)? {
                    creations.push(
                        AclCreation::default()
                            .with_resource_type(*t)
                            .with_resource_name(StrBytes::from_string(name.clone()))
                            .with_resource_pattern_type(pattern_type)
                            .with_principal(StrBytes::from_string(principal.clone()))
                            .with_host(StrBytes::from_string(host.clone()))
                            .with_operation(op)
                            .with_permission_type(*perm),
                    );
                }
            }
        }
        let ResponseKind::CreateAcls(r) = call(
            ApiKey::CreateAcls,
            3,
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(creations)),
        )?
        else {
            return Err("not a CreateAcls response".into());
        };
        for res in &r.results {
            if res.error_code != 0 {
                return Err(format!(
                    "{} ({})",
                    res.error_message.as_deref().unwrap_or(""),
                    error_name(res.error_code)
                ));
            }
        }
        for (t, name) in &resources {
            println!(
                "Adding ACLs for resource `ResourcePattern(resourceType={}, name={name}, patternType={})`:",
                resource_name(*t),
                pattern_name(pattern_type)
            );
        }
        return Ok(());
    }
    // --list and --remove: a filter per resource named (or one for everything).
    let filters: Vec<(i8, Option<String>)> = {
        let r = resources(&a);
        if r.is_empty() {
            vec![(resource::ANY, None)]
        } else {
            r.into_iter().map(|(t, n)| (t, Some(n))).collect()
        }
    };
    if a.remove {
        let grants = grants(&a);
        let principals: Vec<(Option<String>, Option<String>, i8)> = if grants.is_empty() {
            vec![(None, None, permission::ANY)]
        } else {
            grants
                .into_iter()
                .map(|(p, h, perm)| (Some(p), (h != "*").then_some(h), perm))
                .collect()
        };
        let ops = if a.operation.is_empty() {
            vec![operation::ANY]
        } else {
            operations(&a)?
        };
        let mut list = Vec::new();
        for (t, name) in &filters {
            for (p, h, perm) in &principals {
                for op in &ops {
                    list.push(
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(*t)
                            .with_resource_name_filter(name.clone().map(StrBytes::from_string))
                            .with_pattern_type_filter(pattern_type)
                            .with_principal_filter(p.clone().map(StrBytes::from_string))
                            .with_host_filter(h.clone().map(StrBytes::from_string))
                            .with_operation(*op)
                            .with_permission_type(*perm),
                    );
                }
            }
        }
        let ResponseKind::DeleteAcls(r) = call(
            ApiKey::DeleteAcls,
            3,
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(list)),
        )?
        else {
            return Err("not a DeleteAcls response".into());
        };
        for f in &r.filter_results {
            if f.error_code != 0 {
                return Err(format!(
                    "{} ({})",
                    f.error_message.as_deref().unwrap_or(""),
                    error_name(f.error_code)
                ));
            }
            for m in &f.matching_acls {
                println!(
                    "Removed (principal={}, host={}, operation={}, permissionType={}) from ResourcePattern(resourceType={}, name={}, patternType={})",
                    m.principal.as_str(),
                    m.host.as_str(),
                    operation_name(m.operation),
                    if m.permission_type == permission::DENY { "DENY" } else { "ALLOW" },
                    resource_name(m.resource_type),
                    m.resource_name.as_str(),
                    pattern_name(m.pattern_type),
                );
            }
        }
        return Ok(());
    }
    for (t, name) in &filters {
        let ResponseKind::DescribeAcls(r) = call(
            ApiKey::DescribeAcls,
            3,
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(*t)
                    .with_resource_name_filter(name.clone().map(StrBytes::from_string))
                    .with_pattern_type_filter(if name.is_some() {
                        pattern_type
                    } else {
                        pattern::ANY
                    })
                    .with_principal_filter(a.principal.clone().map(StrBytes::from_string))
                    .with_host_filter(None)
                    .with_operation(operation::ANY)
                    .with_permission_type(permission::ANY),
            ),
        )?
        else {
            return Err("not a DescribeAcls response".into());
        };
        if r.error_code != 0 {
            return Err(format!(
                "{} ({})",
                r.error_message.as_deref().unwrap_or(""),
                error_name(r.error_code)
            ));
        }
        for res in &r.resources {
            println!(
                "Current ACLs for resource `ResourcePattern(resourceType={}, name={}, patternType={})`:",
                resource_name(res.resource_type),
                res.resource_name.as_str(),
                pattern_name(res.pattern_type)
            );
            for d in &res.acls {
                println!(
                    " \t(principal={}, host={}, operation={}, permissionType={})",
                    d.principal.as_str(),
                    d.host.as_str(),
                    operation_name(d.operation),
                    if d.permission_type == permission::DENY {
                        "DENY"
                    } else {
                        "ALLOW"
                    }
                );
            }
            println!();
        }
    }
    Ok(())
}
