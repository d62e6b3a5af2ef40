//! DescribeConfigs (32): every config of a topic (its override, else the broker's dynamic or
//! `server.properties` setting, else Kafka's default, each with its source), of a broker (its
//! dynamic configs over `server.properties` and defaults) and of the cluster-wide broker
//! default (resource name "": only the dynamic defaults set, as Kafka answers).

use crate::broker::context::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
    },
    DescribeConfigsRequest, DescribeConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();

// Config sources (DescribeConfigs v1+).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

use crate::controller::topic_configs::{DYNAMIC_BROKER_CONFIGS, STRING, TOPIC_CONFIGS};
use crate::controller::MetadataImage;

/// A dynamic broker config's value for broker `node_id`: its own, else the cluster default.
fn dynamic_value(image: &MetadataImage, node_id: i32, key: &str) -> Option<(String, i8)> {
    let layer = |name: String| {
        image
            .configs
            .get(&("broker".to_string(), name))?
            .get(key)
            .cloned()
    };
    layer(node_id.to_string())
        .map(|v| (v, DYNAMIC_BROKER_CONFIG))
        .or_else(|| layer(String::new()).map(|v| (v, DYNAMIC_DEFAULT_BROKER_CONFIG)))
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    config_type: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(config_type)
}

pub fn handle(
    broker: &Broker,
    r: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    // config_type exists from v3: the encoder refuses a value before.
    let entry = |name: &str, value: &str, source: i8, config_type: i8, read_only: bool| {
        entry(
            name,
            value,
            source,
            if version >= 3 { config_type } else { 0 },
            read_only,
        )
    };
    let image = broker.image();
    let broker_value = |key: &str| {
        broker
            .config
            .described
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, default)| (v.clone(), *default))
    };
    let results = r
        .resources
        .iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let wanted = |key: &str| {
                // Null asks for every key; so does an empty list (kafka-python sends one).
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == key))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                TOPIC => {
                    if image.topic_by_name(&name).is_none() {
                        return result
                            .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Topic '{name}' does not exist."
                            ))));
                    }
                    let overrides = image.configs.get(&("topic".to_string(), name.clone()));
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|(k, ..)| wanted(k))
                        .map(|(key, broker_key, default, ty)| {
                            let set = overrides.and_then(|o| o.get(*key));
                            let from_broker = broker_value(broker_key);
                            let dynamic = dynamic_value(&image, broker.config.node_id, broker_key);
                            let (value, source) = match (set, &from_broker) {
                                (Some(v), _) => (v.clone(), DYNAMIC_TOPIC_CONFIG),
                                (None, _) if dynamic.is_some() => {
                                    dynamic.clone().unwrap_or_default()
                                }
                                (None, Some((v, false))) => (v.clone(), STATIC_BROKER_CONFIG),
                                (None, Some((v, true))) => (v.clone(), DEFAULT_CONFIG),
                                (None, None) => (default.to_string(), DEFAULT_CONFIG),
                            };
                            let mut e = entry(key, &value, source, *ty, false);
                            if r.include_synonyms {
                                let mut synonyms = Vec::new();
                                if let Some(v) = set {
                                    synonyms.push((
                                        key.to_string(),
                                        v.clone(),
                                        DYNAMIC_TOPIC_CONFIG,
                                    ));
                                }
                                if let Some((v, s)) = &dynamic {
                                    synonyms.push((broker_key.to_string(), v.clone(), *s));
                                }
                                if let Some((v, false)) = &from_broker {
                                    synonyms.push((
                                        broker_key.to_string(),
                                        v.clone(),
                                        STATIC_BROKER_CONFIG,
                                    ));
                                }
                                synonyms.push((
                                    broker_key.to_string(),
                                    default.to_string(),
                                    DEFAULT_CONFIG,
                                ));
                                e = e.with_synonyms(
                                    synonyms
                                        .into_iter()
                                        .map(|(n, v, s)| {
                                            DescribeConfigsSynonym::default()
                                                .with_name(StrBytes::from_string(n))
                                                .with_value(Some(StrBytes::from_string(v)))
                                                .with_source(s)
                                        })
                                        .collect(),
                                );
                            }
                            e
                        })
                        .collect();
                    result.with_configs(configs)
                }
                BROKER if name.is_empty() => {
                    // The cluster-wide default: only what was set dynamically.
                    let defaults = image.configs.get(&("broker".to_string(), String::new()));
                    let configs = defaults
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| entry(k, v, DYNAMIC_DEFAULT_BROKER_CONFIG, STRING, false))
                        .collect();
                    result.with_configs(configs)
                }
                BROKER => {
                    if name != broker.config.node_id.to_string() {
                        return result
                            .with_error_code(INVALID_REQUEST)
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "this is broker {}, not '{name}'",
                                broker.config.node_id
                            ))));
                    }
                    let is_dynamic = |k: &str| DYNAMIC_BROKER_CONFIGS.iter().any(|(d, _)| *d == k);
                    let mut configs: Vec<DescribeConfigsResourceResult> = broker
                        .config
                        .described
                        .iter()
                        .filter(|(k, ..)| wanted(k))
                        .map(|(k, v, default)| {
                            match dynamic_value(&image, broker.config.node_id, k) {
                                Some((v, source)) => entry(k, &v, source, STRING, false),
                                None => entry(
                                    k,
                                    v,
                                    if *default {
                                        DEFAULT_CONFIG
                                    } else {
                                        STATIC_BROKER_CONFIG
                                    },
                                    STRING,
                                    !is_dynamic(k),
                                ),
                            }
                        })
                        .collect();
                    // Dynamic keys server.properties does not list (log.roll.ms), when set.
                    for (k, _) in DYNAMIC_BROKER_CONFIGS {
                        if wanted(k) && !broker.config.described.iter().any(|(d, ..)| d == k) {
                            if let Some((v, source)) =
                                dynamic_value(&image, broker.config.node_id, k)
                            {
                                configs.push(entry(k, &v, source, STRING, false));
                            }
                        }
                    }
                    result.with_configs(configs)
                }
                other => result
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
