//! The topic configs ketch knows, with the broker setting each defaults to and Kafka's
//! default, and the values it accepts. A value ketch would store but not honour (broker-side
//! recompression, LogAppendTime) is refused with INVALID_CONFIG rather than silently ignored.

// Config types, as DescribeConfigs v3+ reports them.
pub const BOOLEAN: i8 = 1;
pub const STRING: i8 = 2;
pub const INT: i8 = 3;
pub const LONG: i8 = 5;
pub const DOUBLE: i8 = 6;
pub const LIST: i8 = 7;

/// (topic key, broker key it defaults to, Kafka's default, type).
pub const TOPIC_CONFIGS: &[(&str, &str, &str, i8)] = &[
    ("cleanup.policy", "log.cleanup.policy", "delete", LIST),
    ("compression.type", "compression.type", "producer", STRING),
    (
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        LONG,
    ),
    (
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        "60000",
        LONG,
    ),
    (
        "flush.messages",
        "log.flush.interval.messages",
        "9223372036854775807",
        LONG,
    ),
    (
        "flush.ms",
        "log.flush.interval.ms",
        "9223372036854775807",
        LONG,
    ),
    (
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        INT,
    ),
    (
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "9223372036854775807",
        LONG,
    ),
    ("max.message.bytes", "message.max.bytes", "1048588", INT),
    (
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        STRING,
    ),
    (
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        DOUBLE,
    ),
    (
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        LONG,
    ),
    ("min.insync.replicas", "min.insync.replicas", "1", INT),
    ("retention.bytes", "log.retention.bytes", "-1", LONG),
    ("retention.ms", "log.retention.ms", "604800000", LONG),
    ("segment.bytes", "log.segment.bytes", "1073741824", INT),
    (
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        INT,
    ),
    ("segment.ms", "log.roll.ms", "604800000", LONG),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        BOOLEAN,
    ),
];

/// The broker settings that can change without a restart (`ketch configs --entity-type
/// brokers`), cluster-wide (`--entity-default`, resource name "") or per broker id, as
/// (broker key, the topic key it is the default of). Stored as ConfigRecords of resource type
/// BROKER; a broker layers them, default then its own, over `server.properties` and under
/// each topic's overrides.
pub const DYNAMIC_BROKER_CONFIGS: &[(&str, &str)] = &[
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("message.max.bytes", "max.message.bytes"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("log.cleanup.policy", "cleanup.policy"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
];

/// Checks one dynamic broker config: a key of [`DYNAMIC_BROKER_CONFIGS`] with a value its
/// topic key would accept.
pub fn validate_broker_config(key: &str, value: &str) -> Result<(), String> {
    let Some((_, topic_key)) = DYNAMIC_BROKER_CONFIGS.iter().find(|(k, _)| *k == key) else {
        let known: Vec<&str> = DYNAMIC_BROKER_CONFIGS.iter().map(|(k, _)| *k).collect();
        return Err(format!(
            "Cannot update {key} without a restart: the broker configs that can are {}",
            known.join(", ")
        ));
    };
    validate_topic_config(topic_key, value).map_err(|e| e.replace(topic_key, key))
}

/// Checks one topic config; the error says what is allowed.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    let Some((_, _, _, kind)) = TOPIC_CONFIGS.iter().find(|(k, ..)| *k == key) else {
        return Err(format!("Unknown topic config name: {key}"));
    };
    let v = value.trim();
    let invalid = |allowed: &str| {
        Err(format!(
            "Invalid value {value} for configuration {key}: {allowed}"
        ))
    };
    match (key, *kind) {
        ("cleanup.policy", _) if crate::model::config::CleanupPolicy::parse(v).is_none() => {
            invalid("delete, compact or compact,delete")
        }
        ("min.cleanable.dirty.ratio", _) => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => invalid("a number from 0 to 1"),
        },
        ("max.compaction.lag.ms", _) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => invalid("a positive integer"),
        },
        ("compression.type", _) if v != "producer" => {
            invalid("only 'producer' (batches are stored as produced)")
        }
        ("message.timestamp.type", _) if v != "CreateTime" => invalid("only 'CreateTime'"),
        ("retention.ms" | "retention.bytes", _) => match v.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(()),
            _ => invalid("-1 or a non-negative integer"),
        },
        ("segment.bytes", _) => match v.parse::<i32>() {
            Ok(n) if n >= 14 => Ok(()),
            _ => invalid("an integer of at least 14"),
        },
        ("max.message.bytes" | "min.insync.replicas" | "index.interval.bytes", _) => {
            match v.parse::<i32>() {
                Ok(n) if n >= 1 => Ok(()),
                _ => invalid("a positive integer"),
            }
        }
        (_, LONG) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(()),
            _ => invalid("a non-negative integer"),
        },
        (_, INT) => match v.parse::<i32>() {
            Ok(n) if n >= 0 => Ok(()),
            _ => invalid("a non-negative integer"),
        },
        (_, BOOLEAN) if v != "true" && v != "false" => invalid("true or false"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_and_honest_values_only() {
        assert!(validate_topic_config("retention.ms", "1000").is_ok());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("retention.ms", "soon").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "[delete, compact]").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "0.01").is_ok());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("max.compaction.lag.ms", "0").is_err());
        assert!(validate_topic_config("segment.bytes", "1048576").is_ok());
        assert!(validate_topic_config("no.such.key", "1").is_err());
        assert!(validate_topic_config("unclean.leader.election.enable", "maybe").is_err());
        assert!(validate_broker_config("log.retention.ms", "60000").is_ok());
        let err = validate_broker_config("log.retention.ms", "soon").unwrap_err();
        assert!(
            err.contains("log.retention.ms") && !err.contains(" retention.ms"),
            "{err}"
        );
        assert!(validate_broker_config("num.partitions", "3")
            .unwrap_err()
            .contains("without a restart"));
    }
}
