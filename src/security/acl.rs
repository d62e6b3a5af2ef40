//! Authorization as Kafka's `StandardAuthorizer` decides it (KIP-801): ACLs on resources
//! (topics, groups, the cluster, transactional ids) matched literally, by the `*` wildcard or
//! by prefix; allow and deny; operations, some implying others (READ, WRITE, DELETE and ALTER
//! imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS); principals (`User:*` for anyone)
//! and hosts (`*` for any). A deny that matches wins; `super.users` are allowed everything; a
//! resource no ACL matches at all is allowed only with `allow.everyone.if.no.acl.found`.
//!
//! Kafka's numeric ids for every enum, as the wire and the metadata records carry them. Pure.

/// `ResourceType`.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// `PatternType`.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// `AclOperation`.
pub mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// `AclPermissionType`.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal name that matches every resource of its type.
pub const WILDCARD: &str = "*";
pub const ANY_PRINCIPAL: &str = "User:*";

/// One ACL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// Why an ACL cannot be created (Kafka answers INVALID_REQUEST, or UNSUPPORTED_VERSION-like
/// errors, for these).
pub fn validate(acl: &Acl) -> Result<(), String> {
    if !(resource::TOPIC..=resource::USER).contains(&acl.resource_type) {
        return Err(format!(
            "resource type {} cannot have ACLs",
            acl.resource_type
        ));
    }
    if acl.pattern_type != pattern::LITERAL && acl.pattern_type != pattern::PREFIXED {
        return Err("an ACL's pattern type is LITERAL or PREFIXED".into());
    }
    if acl.resource_name.is_empty() {
        return Err("an empty resource name".into());
    }
    if acl.resource_type == resource::CLUSTER && acl.resource_name != CLUSTER_NAME {
        return Err(format!("the cluster resource is named {CLUSTER_NAME}"));
    }
    if !(operation::ALL..=operation::IDEMPOTENT_WRITE).contains(&acl.operation) {
        return Err(format!(
            "operation {} is not one an ACL grants",
            acl.operation
        ));
    }
    if acl.permission != permission::ALLOW && acl.permission != permission::DENY {
        return Err("an ACL allows or denies".into());
    }
    if !acl.principal.contains(':') {
        return Err(format!(
            "principal '{}' is not TYPE:NAME (User:alice)",
            acl.principal
        ));
    }
    if acl.host.is_empty() {
        return Err("an empty host (use * for any)".into());
    }
    Ok(())
}

/// A filter (DescribeAcls, DeleteAcls): each field `None` or the enum's ANY matches anything;
/// pattern MATCH matches every ACL that would apply to the named resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    pub fn matches(&self, acl: &Acl) -> bool {
        let any = |want: i8, have: i8, any: i8| want == any || want == have;
        if !any(self.resource_type, acl.resource_type, resource::ANY)
            || !any(self.operation, acl.operation, operation::ANY)
            || !any(self.permission, acl.permission, permission::ANY)
        {
            return false;
        }
        if self.principal.as_ref().is_some_and(|p| *p != acl.principal)
            || self.host.as_ref().is_some_and(|h| *h != acl.host)
        {
            return false;
        }
        match (self.pattern_type, &self.resource_name) {
            (pattern::MATCH, Some(name)) => pattern_applies(acl, name),
            (pattern::MATCH, None) | (pattern::ANY, None) => true,
            (pattern::ANY, Some(name)) => acl.resource_name == *name,
            (p, name) => {
                p == acl.pattern_type && name.as_ref().is_none_or(|n| *n == acl.resource_name)
            }
        }
    }
}

/// Whether `acl`'s resource pattern covers resource `name` (of its type).
fn pattern_applies(acl: &Acl, name: &str) -> bool {
    match acl.pattern_type {
        pattern::LITERAL => acl.resource_name == name || acl.resource_name == WILDCARD,
        pattern::PREFIXED => name.starts_with(&acl.resource_name),
        _ => false,
    }
}

/// The operations an ACL for `granted` also allows.
fn implies(granted: i8, wanted: i8) -> bool {
    granted == wanted
        || granted == operation::ALL
        || (wanted == operation::DESCRIBE
            && matches!(
                granted,
                operation::READ | operation::WRITE | operation::DELETE | operation::ALTER
            ))
        || (wanted == operation::DESCRIBE_CONFIGS && granted == operation::ALTER_CONFIGS)
}

/// The authorizer's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// Whether `principal` from `host` may do `op` on resource `name` of `resource_type`, given
/// `acls`.
pub fn authorize<'a>(
    config: &AuthorizerConfig,
    acls: impl IntoIterator<Item = &'a Acl>,
    principal: &str,
    host: &str,
    resource_type: i8,
    name: &str,
    op: i8,
) -> bool {
    if config.super_users.iter().any(|s| s == principal) {
        return true;
    }
    let mut any_for_resource = false;
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != resource_type || !pattern_applies(acl, name) {
            continue;
        }
        any_for_resource = true;
        let who = acl.principal == principal || acl.principal == ANY_PRINCIPAL;
        let from = acl.host == host || acl.host == WILDCARD;
        if !who || !from {
            continue;
        }
        if acl.permission == permission::DENY
            && (acl.operation == op || acl.operation == operation::ALL)
        {
            return false;
        }
        if acl.permission == permission::ALLOW && implies(acl.operation, op) {
            allowed = true;
        }
    }
    allowed || (!any_for_resource && config.allow_if_no_acl)
}

/// Kafka's names for operations (`kafka-acls.sh --operation`), case-insensitively.
pub fn operation_by_name(name: &str) -> Option<i8> {
    Some(
        match name.to_ascii_lowercase().replace(['_', '-'], "").as_str() {
            "all" => operation::ALL,
            "read" => operation::READ,
            "write" => operation::WRITE,
            "create" => operation::CREATE,
            "delete" => operation::DELETE,
            "alter" => operation::ALTER,
            "describe" => operation::DESCRIBE,
            "clusteraction" => operation::CLUSTER_ACTION,
            "describeconfigs" => operation::DESCRIBE_CONFIGS,
            "alterconfigs" => operation::ALTER_CONFIGS,
            "idempotentwrite" => operation::IDEMPOTENT_WRITE,
            _ => return None,
        },
    )
}

pub fn operation_name(op: i8) -> &'static str {
    match op {
        operation::ALL => "ALL",
        operation::READ => "READ",
        operation::WRITE => "WRITE",
        operation::CREATE => "CREATE",
        operation::DELETE => "DELETE",
        operation::ALTER => "ALTER",
        operation::DESCRIBE => "DESCRIBE",
        operation::CLUSTER_ACTION => "CLUSTER_ACTION",
        operation::DESCRIBE_CONFIGS => "DESCRIBE_CONFIGS",
        operation::ALTER_CONFIGS => "ALTER_CONFIGS",
        operation::IDEMPOTENT_WRITE => "IDEMPOTENT_WRITE",
        _ => "UNKNOWN",
    }
}

pub fn resource_name(t: i8) -> &'static str {
    match t {
        resource::TOPIC => "TOPIC",
        resource::GROUP => "GROUP",
        resource::CLUSTER => "CLUSTER",
        resource::TRANSACTIONAL_ID => "TRANSACTIONAL_ID",
        resource::DELEGATION_TOKEN => "DELEGATION_TOKEN",
        resource::USER => "USER",
        _ => "UNKNOWN",
    }
}

pub fn pattern_name(p: i8) -> &'static str {
    match p {
        pattern::LITERAL => "LITERAL",
        pattern::PREFIXED => "PREFIXED",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(t: i8, name: &str, p: i8, who: &str, host: &str, op: i8, perm: i8) -> Acl {
        Acl {
            resource_type: t,
            resource_name: name.into(),
            pattern_type: p,
            principal: who.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn kafkas_rules() {
        use operation::*;
        use permission::*;
        let config = AuthorizerConfig {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        let acls = vec![
            acl(
                resource::TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                "*",
                READ,
                ALLOW,
            ),
            acl(
                resource::TOPIC,
                "logs-",
                pattern::PREFIXED,
                "User:*",
                "*",
                WRITE,
                ALLOW,
            ),
            acl(
                resource::TOPIC,
                "logs-secret",
                pattern::LITERAL,
                "User:bob",
                "*",
                ALL,
                DENY,
            ),
            acl(
                resource::TOPIC,
                "*",
                pattern::LITERAL,
                "User:carol",
                "10.0.0.1",
                DESCRIBE,
                ALLOW,
            ),
            acl(
                resource::GROUP,
                "g",
                pattern::LITERAL,
                "User:alice",
                "*",
                READ,
                ALLOW,
            ),
        ];
        let can = |who: &str, host: &str, t: i8, name: &str, op: i8| {
            authorize(&config, &acls, who, host, t, name, op)
        };
        assert!(can(
            "User:alice",
            "1.2.3.4",
            resource::TOPIC,
            "orders",
            READ
        ));
        // READ implies DESCRIBE, not WRITE.
        assert!(can(
            "User:alice",
            "1.2.3.4",
            resource::TOPIC,
            "orders",
            DESCRIBE
        ));
        assert!(!can(
            "User:alice",
            "1.2.3.4",
            resource::TOPIC,
            "orders",
            WRITE
        ));
        // No ACL for the resource: denied without allow.everyone.if.no.acl.found.
        assert!(!can(
            "User:alice",
            "1.2.3.4",
            resource::GROUP,
            "other",
            READ
        ));
        // A prefixed ACL for anyone; a deny beats it.
        assert!(can("User:bob", "h", resource::TOPIC, "logs-app", WRITE));
        assert!(!can("User:bob", "h", resource::TOPIC, "logs-secret", WRITE));
        assert!(can(
            "User:alice",
            "h",
            resource::TOPIC,
            "logs-secret",
            WRITE
        ));
        // The wildcard topic, from one host only.
        assert!(can(
            "User:carol",
            "10.0.0.1",
            resource::TOPIC,
            "anything",
            DESCRIBE
        ));
        assert!(!can(
            "User:carol",
            "10.0.0.2",
            resource::TOPIC,
            "anything",
            DESCRIBE
        ));
        // Super users.
        assert!(can(
            "User:admin",
            "h",
            resource::CLUSTER,
            CLUSTER_NAME,
            ALTER
        ));
        let open = AuthorizerConfig {
            super_users: vec![],
            allow_if_no_acl: true,
        };
        assert!(authorize(
            &open,
            &acls,
            "User:x",
            "h",
            resource::GROUP,
            "free",
            READ
        ));
        assert!(!authorize(
            &open,
            &acls,
            "User:x",
            "h",
            resource::TOPIC,
            "orders",
            READ
        ));
    }

    #[test]
    fn filters_and_validation() {
        use operation::*;
        use permission::*;
        let a = acl(
            resource::TOPIC,
            "logs-",
            pattern::PREFIXED,
            "User:a",
            "*",
            WRITE,
            ALLOW,
        );
        let all = AclFilter {
            resource_type: resource::ANY,
            pattern_type: pattern::ANY,
            operation: operation::ANY,
            permission: permission::ANY,
            ..Default::default()
        };
        assert!(all.matches(&a));
        let by_match = AclFilter {
            resource_name: Some("logs-x".into()),
            pattern_type: pattern::MATCH,
            ..all.clone()
        };
        assert!(by_match.matches(&a));
        let literal = AclFilter {
            resource_name: Some("logs-x".into()),
            pattern_type: pattern::LITERAL,
            ..all.clone()
        };
        assert!(!literal.matches(&a));
        assert!(validate(&a).is_ok());
        let mut bad = a.clone();
        bad.principal = "alice".into();
        assert!(validate(&bad).is_err());
        bad = a.clone();
        bad.resource_type = resource::CLUSTER;
        assert!(validate(&bad).is_err());
        assert_eq!(operation_by_name("IdempotentWrite"), Some(IDEMPOTENT_WRITE));
    }
}
