//! The classic consumer-group protocol's coordinator (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, offsets), sans-IO: requests and time in; replies (possibly to requests parked
//! earlier, named by the shell's tokens) and records to persist out. The broker stays
//! assignor-agnostic: the group leader's client computes assignments, eager or cooperative.
//!
//! States follow Kafka's GroupCoordinator: Empty → PreparingRebalance (members rejoin, up to
//! the rebalance timeout; a new group first waits `group.initial.rebalance.delay.ms`) →
//! CompletingRebalance (the leader's SyncGroup brings the assignment) → Stable. KIP-394: a
//! v4+ JoinGroup without a member id gets one with MEMBER_ID_REQUIRED and must come back.
//! KIP-345: static members (`group.instance.id`) keep their assignment across restarts
//! without a rebalance while the group is stable.

use super::records::{GroupKey, GroupValue, MemberValue, OffsetValue};
use kafka_protocol::error::ResponseError;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Identifies a request the shell is holding open until the core answers it.
pub type Token = u64;

pub const NONE: i16 = 0;
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = ResponseError::GroupSubscribedToTopic.code();

/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    pub initial_rebalance_delay_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+ (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JoinResponse {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// A record to append to the group's `__consumer_offsets` partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub group_id: String,
    pub key: Vec<u8>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Effects {
    pub replies: Vec<(Token, Reply)>,
    pub writes: Vec<Write>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocols: Vec<Protocol>,
    pub assignment: Vec<u8>,
    last_heartbeat_ms: u64,
    join_token: Option<Token>,
    sync_token: Option<Token>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub group_id: String,
    pub state: State,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// KIP-394: member ids handed out, not yet joined, with their expiry.
    pending: BTreeMap<String, u64>,
    /// group.instance.id → member id.
    static_members: BTreeMap<String, String>,
    rebalance_deadline_ms: u64,
    /// A new group waits this long for more members before its first rebalance completes.
    initial_delay_until_ms: Option<u64>,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    fn new(group_id: &str) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: State::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: None,
            offsets: BTreeMap::new(),
        }
    }

    fn response_for(&self, member_id: &str) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        JoinResponse {
            error: NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            member_id: member_id.to_string(),
            members: if leader == member_id {
                self.members
                    .values()
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            leader,
        }
    }

    /// Whether a protocol exists that every member, and `candidate`, supports.
    fn supports(&self, candidate: &[Protocol]) -> bool {
        candidate.iter().any(|p| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|q| q.name == p.name))
        })
    }

    /// Kafka's vote: among protocols every member supports, each member votes for its most
    /// preferred; most votes wins, ties to the earlier member's preference.
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&str> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == *name))
            })
            .collect();
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some(choice) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(&p.name.as_str()))
            {
                if let Some(v) = votes.iter_mut().find(|v| v.0 == choice.name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|v| v.1).max()?;
        votes.iter().find(|v| v.1 == best).map(|v| v.0.to_string())
    }

    fn metadata_write(&self, now_ms: u64) -> Write {
        let value = GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: now_ms as i64,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms as i32,
                    session_timeout_ms: m.session_timeout_ms as i32,
                    subscription: self
                        .protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        Write {
            group_id: self.group_id.clone(),
            key: GroupKey::Metadata {
                group: self.group_id.clone(),
            }
            .encode(),
            value: Some(value.encode()),
        }
    }
}

fn join_error(error: i16, member_id: &str) -> Reply {
    Reply::Join(JoinResponse {
        error,
        generation_id: -1,
        member_id: member_id.to_string(),
        ..JoinResponse::default()
    })
}

fn sync_error(error: i16) -> Reply {
    Reply::Sync(SyncResponse {
        error,
        ..SyncResponse::default()
    })
}

/// The record that deletes a committed offset.
fn offset_tombstone(group_id: &str, topic: &str, partition: i32) -> Write {
    Write {
        group_id: group_id.to_string(),
        key: GroupKey::Offset {
            group: group_id.to_string(),
            topic: topic.to_string(),
            partition,
        }
        .encode(),
        value: None,
    }
}

/// One committed offset to store.
#[derive(Clone, Debug)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// What OffsetFetch answers for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

pub struct Coordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    rng: ChaCha8Rng,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id: they
    /// become the group's committed offsets when the transaction's commit marker is written
    /// to the group's partition, and are dropped on abort (KIP-98).
    pending_txn_offsets: BTreeMap<i64, Vec<(String, String, i32, OffsetValue)>>,
}

impl Coordinator {
    pub fn new(config: GroupConfig, rng: ChaCha8Rng) -> Coordinator {
        Coordinator {
            config,
            groups: BTreeMap::new(),
            rng,
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        format!("{prefix}-{}", uuid::Uuid::from_bytes(bytes))
    }

    fn prepare_rebalance(&mut self, group_id: &str, now_ms: u64, fx: &mut Effects) {
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state == State::PreparingRebalance {
            return;
        }
        if g.state == State::CompletingRebalance {
            for m in g.members.values_mut() {
                if let Some(t) = m.sync_token.take() {
                    fx.replies.push((t, sync_error(REBALANCE_IN_PROGRESS)));
                }
            }
        }
        let timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        g.rebalance_deadline_ms = now_ms + timeout;
        g.initial_delay_until_ms = (g.state == State::Empty && delay > 0).then(|| {
            let until = now_ms + delay;
            g.rebalance_deadline_ms = g.rebalance_deadline_ms.max(until);
            until
        });
        g.state = State::PreparingRebalance;
    }

    /// Completes the join phase once every member has rejoined (after any initial delay), or
    /// at the rebalance deadline without the stragglers.
    fn maybe_complete_join(&mut self, group_id: &str, now_ms: u64, fx: &mut Effects) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state != State::PreparingRebalance {
            return;
        }
        let all_joined = g.members.values().all(|m| m.join_token.is_some());
        let delaying = g.initial_delay_until_ms.is_some_and(|t| now_ms < t);
        if (delaying || !all_joined) && now_ms < g.rebalance_deadline_ms {
            return;
        }
        g.initial_delay_until_ms = None;
        let stragglers: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_token.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in stragglers {
            if let Some(m) = g.members.remove(&id) {
                if let Some(instance) = &m.group_instance_id {
                    g.static_members.remove(instance);
                }
            }
        }
        g.generation += 1;
        if g.members.is_empty() {
            g.state = State::Empty;
            g.protocol = None;
            g.leader = None;
            fx.writes.push(g.metadata_write(now_ms));
            return;
        }
        g.protocol = g.select_protocol();
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.state = State::CompletingRebalance;
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let response = g.response_for(&id);
            if let Some(m) = g.members.get_mut(&id) {
                m.last_heartbeat_ms = now_ms;
                m.assignment.clear();
                if let Some(t) = m.join_token.take() {
                    fx.replies.push((t, Reply::Join(response)));
                }
            }
        }
    }

    pub fn join(&mut self, now_ms: u64, token: Token, r: JoinRequest) -> Effects {
        let mut fx = Effects::default();
        let session = u64::try_from(r.session_timeout_ms).unwrap_or(0);
        if r.group_id.is_empty() {
            fx.replies
                .push((token, join_error(INVALID_GROUP_ID, &r.member_id)));
            return fx;
        }
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            fx.replies
                .push((token, join_error(INVALID_SESSION_TIMEOUT, &r.member_id)));
            return fx;
        }
        let g = self
            .groups
            .entry(r.group_id.clone())
            .or_insert_with(|| Group::new(&r.group_id));
        let inconsistent = r.protocols.is_empty()
            || (!g.members.is_empty()
                && (g.protocol_type.as_deref() != Some(r.protocol_type.as_str())
                    || !g.supports(&r.protocols)));
        // A known member may change its own protocols; check against the others only.
        let inconsistent =
            inconsistent && !(g.members.len() == 1 && g.members.contains_key(&r.member_id));
        if inconsistent {
            fx.replies
                .push((token, join_error(INCONSISTENT_GROUP_PROTOCOL, &r.member_id)));
            return fx;
        }
        let rebalance_ms = u64::try_from(r.rebalance_timeout_ms).unwrap_or(session);
        let make_member = |member_id: &str| Member {
            member_id: member_id.to_string(),
            group_instance_id: r.group_instance_id.clone(),
            client_id: r.client_id.clone(),
            client_host: r.client_host.clone(),
            session_timeout_ms: session,
            rebalance_timeout_ms: rebalance_ms,
            protocols: r.protocols.clone(),
            assignment: Vec::new(),
            last_heartbeat_ms: now_ms,
            join_token: Some(token),
            sync_token: None,
        };
        let group_id = r.group_id.clone();
        if r.member_id.is_empty() {
            let prefix = if r.client_id.is_empty() {
                "member".to_string()
            } else {
                r.client_id.clone()
            };
            if let Some(instance) = r.group_instance_id.clone() {
                let new_id = self.new_member_id(&instance);
                let Some(g) = self.groups.get_mut(&group_id) else {
                    return fx;
                };
                if let Some(old_id) = g.static_members.get(&instance).cloned() {
                    // KIP-345: a static member restarting replaces its old incarnation.
                    let Some(mut m) = g.members.remove(&old_id) else {
                        return fx;
                    };
                    if let Some(t) = m.join_token.take() {
                        fx.replies
                            .push((t, join_error(FENCED_INSTANCE_ID, &old_id)));
                    }
                    if let Some(t) = m.sync_token.take() {
                        fx.replies.push((t, sync_error(FENCED_INSTANCE_ID)));
                    }
                    let same = m.protocols == r.protocols;
                    m.member_id = new_id.clone();
                    m.protocols = r.protocols.clone();
                    m.session_timeout_ms = session;
                    m.rebalance_timeout_ms = rebalance_ms;
                    m.last_heartbeat_ms = now_ms;
                    m.client_id = r.client_id.clone();
                    m.client_host = r.client_host.clone();
                    if g.leader.as_deref() == Some(old_id.as_str()) {
                        g.leader = Some(new_id.clone());
                    }
                    g.static_members.insert(instance, new_id.clone());
                    let stable = g.state == State::Stable && same;
                    if stable {
                        g.members.insert(new_id.clone(), m);
                        let response = g.response_for(&new_id);
                        fx.replies.push((token, Reply::Join(response)));
                        return fx;
                    }
                    m.join_token = Some(token);
                    g.members.insert(new_id, m);
                } else {
                    g.static_members.insert(instance, new_id.clone());
                    g.members.insert(new_id.clone(), make_member(&new_id));
                    if g.protocol_type.is_none() || g.members.len() == 1 {
                        g.protocol_type = Some(r.protocol_type.clone());
                    }
                }
            } else if r.require_known_member_id {
                let new_id = self.new_member_id(&prefix);
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.pending.insert(new_id.clone(), now_ms + session);
                }
                fx.replies
                    .push((token, join_error(MEMBER_ID_REQUIRED, &new_id)));
                return fx;
            } else {
                let new_id = self.new_member_id(&prefix);
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.members.insert(new_id.clone(), make_member(&new_id));
                    if g.members.len() == 1 {
                        g.protocol_type = Some(r.protocol_type.clone());
                    }
                }
            }
            self.prepare_rebalance(&group_id, now_ms, &mut fx);
            self.maybe_complete_join(&group_id, now_ms, &mut fx);
            return fx;
        }
        let Some(g) = self.groups.get_mut(&group_id) else {
            return fx;
        };
        if !g.members.contains_key(&r.member_id) {
            if g.pending.remove(&r.member_id).is_none() {
                fx.replies
                    .push((token, join_error(UNKNOWN_MEMBER_ID, &r.member_id)));
                return fx;
            }
            g.members
                .insert(r.member_id.clone(), make_member(&r.member_id));
            if g.members.len() == 1 {
                g.protocol_type = Some(r.protocol_type.clone());
            }
            self.prepare_rebalance(&group_id, now_ms, &mut fx);
            self.maybe_complete_join(&group_id, now_ms, &mut fx);
            return fx;
        }
        if let Some(instance) = &r.group_instance_id {
            if g.static_members.get(instance) != Some(&r.member_id) {
                fx.replies
                    .push((token, join_error(FENCED_INSTANCE_ID, &r.member_id)));
                return fx;
            }
        }
        let is_leader = g.leader.as_deref() == Some(r.member_id.as_str());
        let state = g.state;
        let Some(m) = g.members.get_mut(&r.member_id) else {
            return fx;
        };
        let same = m.protocols == r.protocols;
        m.protocols = r.protocols.clone();
        m.session_timeout_ms = session;
        m.rebalance_timeout_ms = rebalance_ms;
        m.last_heartbeat_ms = now_ms;
        let answer_now = match state {
            State::CompletingRebalance => same,
            State::Stable => same && !is_leader,
            _ => false,
        };
        if answer_now {
            let response = g.response_for(&r.member_id);
            fx.replies.push((token, Reply::Join(response)));
            return fx;
        }
        if let Some(old) = m.join_token.replace(token) {
            fx.replies
                .push((old, join_error(REBALANCE_IN_PROGRESS, &r.member_id)));
        }
        if state != State::PreparingRebalance {
            // A rejoin while stable or completing starts a new rebalance; parked syncs end.
            self.prepare_rebalance(&group_id, now_ms, &mut fx);
        }
        self.maybe_complete_join(&group_id, now_ms, &mut fx);
        fx
    }

    pub fn sync(&mut self, now_ms: u64, token: Token, r: SyncRequest) -> Effects {
        let mut fx = Effects::default();
        let Some(g) = self.groups.get_mut(&r.group_id) else {
            fx.replies.push((token, sync_error(UNKNOWN_MEMBER_ID)));
            return fx;
        };
        let Some(m) = g.members.get(&r.member_id) else {
            fx.replies.push((token, sync_error(UNKNOWN_MEMBER_ID)));
            return fx;
        };
        if r.group_instance_id.is_some() && m.group_instance_id != r.group_instance_id {
            fx.replies.push((token, sync_error(FENCED_INSTANCE_ID)));
            return fx;
        }
        if r.generation_id != g.generation {
            fx.replies.push((token, sync_error(ILLEGAL_GENERATION)));
            return fx;
        }
        if r.protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || r.protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != g.protocol.as_ref())
        {
            fx.replies
                .push((token, sync_error(INCONSISTENT_GROUP_PROTOCOL)));
            return fx;
        }
        let ok = |assignment: Vec<u8>, g: &Group| {
            Reply::Sync(SyncResponse {
                error: NONE,
                protocol_type: g.protocol_type.clone(),
                protocol_name: g.protocol.clone(),
                assignment,
            })
        };
        match g.state {
            State::Empty => fx.replies.push((token, sync_error(UNKNOWN_MEMBER_ID))),
            State::PreparingRebalance => {
                fx.replies.push((token, sync_error(REBALANCE_IN_PROGRESS)))
            }
            State::Stable => {
                let assignment = m.assignment.clone();
                let reply = ok(assignment, g);
                if let Some(m) = g.members.get_mut(&r.member_id) {
                    m.last_heartbeat_ms = now_ms;
                }
                fx.replies.push((token, reply));
            }
            State::CompletingRebalance => {
                let is_leader = g.leader.as_deref() == Some(r.member_id.as_str());
                if let Some(m) = g.members.get_mut(&r.member_id) {
                    m.last_heartbeat_ms = now_ms;
                    if let Some(old) = m.sync_token.replace(token) {
                        fx.replies.push((old, sync_error(REBALANCE_IN_PROGRESS)));
                    }
                }
                if is_leader {
                    let given: BTreeMap<String, Vec<u8>> = r.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.state = State::Stable;
                    fx.writes.push(g.metadata_write(now_ms));
                    let parked: Vec<(Token, Vec<u8>)> = g
                        .members
                        .values_mut()
                        .filter_map(|m| m.sync_token.take().map(|t| (t, m.assignment.clone())))
                        .collect();
                    for (t, assignment) in parked {
                        fx.replies.push((t, ok(assignment, g)));
                    }
                }
            }
        }
        fx
    }

    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        let Some(g) = self.groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        let state = g.state;
        let generation = g.generation;
        let Some(m) = g.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if group_instance_id.is_some() && m.group_instance_id.as_deref() != group_instance_id {
            return FENCED_INSTANCE_ID;
        }
        m.last_heartbeat_ms = now_ms;
        match state {
            State::Empty => UNKNOWN_MEMBER_ID,
            State::PreparingRebalance => REBALANCE_IN_PROGRESS,
            _ if generation_id != generation => ILLEGAL_GENERATION,
            _ => NONE,
        }
    }

    /// LeaveGroup: `members` as (member id, group instance id). Returns the top-level error,
    /// one error per member, and the effects.
    pub fn leave(
        &mut self,
        now_ms: u64,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>, Effects) {
        let mut fx = Effects::default();
        let Some(g) = self.groups.get_mut(group_id) else {
            return (
                UNKNOWN_MEMBER_ID,
                vec![UNKNOWN_MEMBER_ID; members.len()],
                fx,
            );
        };
        let mut errors = Vec::with_capacity(members.len());
        let mut removed = false;
        for (member_id, instance) in members {
            let id = if member_id.is_empty() {
                instance
                    .as_ref()
                    .and_then(|i| g.static_members.get(i))
                    .cloned()
                    .unwrap_or_default()
            } else {
                member_id.clone()
            };
            let Some(m) = g.members.get(&id) else {
                errors.push(UNKNOWN_MEMBER_ID);
                continue;
            };
            if instance.is_some() && m.group_instance_id != *instance {
                errors.push(FENCED_INSTANCE_ID);
                continue;
            }
            if let Some(m) = g.members.remove(&id) {
                if let Some(i) = &m.group_instance_id {
                    g.static_members.remove(i);
                }
                if let Some(t) = m.join_token {
                    fx.replies.push((t, join_error(UNKNOWN_MEMBER_ID, &id)));
                }
                if let Some(t) = m.sync_token {
                    fx.replies.push((t, sync_error(UNKNOWN_MEMBER_ID)));
                }
            }
            removed = true;
            errors.push(NONE);
        }
        if removed {
            self.member_gone(group_id, now_ms, &mut fx);
        }
        let top = if members.len() == 1 { errors[0] } else { NONE };
        (top, errors, fx)
    }

    fn member_gone(&mut self, group_id: &str, now_ms: u64, fx: &mut Effects) {
        let state = self.groups.get(group_id).map(|g| g.state);
        match state {
            Some(State::Stable) | Some(State::CompletingRebalance) => {
                self.prepare_rebalance(group_id, now_ms, fx);
                self.maybe_complete_join(group_id, now_ms, fx);
            }
            Some(State::PreparingRebalance) => self.maybe_complete_join(group_id, now_ms, fx),
            _ => {}
        }
    }

    /// Expires silent members and pending member ids, and completes rebalances whose deadline
    /// passed.
    pub fn tick(&mut self, now_ms: u64) -> Effects {
        let mut fx = Effects::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let mut gone = false;
            if let Some(g) = self.groups.get_mut(&id) {
                g.pending.retain(|_, until| *until > now_ms);
                let expired: Vec<String> = g
                    .members
                    .values()
                    .filter(|m| {
                        m.join_token.is_none()
                            && m.sync_token.is_none()
                            && now_ms > m.last_heartbeat_ms + m.session_timeout_ms
                    })
                    .map(|m| m.member_id.clone())
                    .collect();
                for m in expired {
                    if let Some(m) = g.members.remove(&m) {
                        if let Some(i) = &m.group_instance_id {
                            g.static_members.remove(i);
                        }
                        gone = true;
                    }
                }
            }
            if gone {
                self.member_gone(&id, now_ms, &mut fx);
            }
            self.maybe_complete_join(&id, now_ms, &mut fx);
        }
        fx
    }

    /// Whether an OffsetCommit from this member may be stored (Kafka's rules), as an error code.
    pub fn check_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        let Some(g) = self.groups.get(group_id) else {
            // A standalone consumer (no group membership) may commit to a new group.
            return if generation_id < 0 {
                NONE
            } else {
                ILLEGAL_GENERATION
            };
        };
        if generation_id < 0 && g.state == State::Empty {
            return NONE;
        }
        if g.state == State::CompletingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        let Some(m) = g.members.get(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if group_instance_id.is_some() && m.group_instance_id.as_deref() != group_instance_id {
            return FENCED_INSTANCE_ID;
        }
        if generation_id != g.generation {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    /// Whether a TxnOffsetCommit from this member may be stored, as Kafka's group coordinator
    /// checks it (KIP-447): a named member must be in the group and a given generation must
    /// be the group's; a rebalance in progress is no reason to refuse. (Answering
    /// REBALANCE_IN_PROGRESS, as OffsetCommit does, left librdkafka retrying inside
    /// `send_offsets_to_transaction` while the rebalance waited for that same application to
    /// poll.)
    pub fn check_txn_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        let g = self.groups.get(group_id);
        if !member_id.is_empty() {
            let Some(m) = g.and_then(|g| g.members.get(member_id)) else {
                return UNKNOWN_MEMBER_ID;
            };
            if group_instance_id.is_some() && m.group_instance_id.as_deref() != group_instance_id {
                return FENCED_INSTANCE_ID;
            }
        }
        if generation_id >= 0 && g.is_none_or(|g| g.generation != generation_id) {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    /// The records that store `offsets` (the shell appends them, then calls
    /// [`Coordinator::apply_commit`]).
    pub fn commit_writes(
        &self,
        group_id: &str,
        offsets: &[CommitOffset],
        now_ms: u64,
    ) -> Vec<Write> {
        offsets
            .iter()
            .map(|o| Write {
                group_id: group_id.to_string(),
                key: GroupKey::Offset {
                    group: group_id.to_string(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                }
                .encode(),
                value: Some(
                    OffsetValue {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_timestamp_ms: now_ms as i64,
                    }
                    .encode(),
                ),
            })
            .collect()
    }

    pub fn apply_commit(&mut self, group_id: &str, offsets: &[CommitOffset], now_ms: u64) {
        let g = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        for o in offsets {
            g.offsets.insert(
                (o.topic.clone(), o.partition),
                OffsetValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp_ms: now_ms as i64,
                },
            );
        }
    }

    /// Offsets a transaction committed (stored in the log as a transactional batch): pending
    /// until its marker.
    pub fn apply_txn_commit(
        &mut self,
        producer_id: i64,
        group_id: &str,
        offsets: &[CommitOffset],
        now_ms: u64,
    ) {
        let pending = self.pending_txn_offsets.entry(producer_id).or_default();
        for o in offsets {
            pending.push((
                group_id.to_string(),
                o.topic.clone(),
                o.partition,
                OffsetValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp_ms: now_ms as i64,
                },
            ));
        }
    }

    /// A transaction marker for `producer_id` was written to the partition holding the groups
    /// `belongs` accepts: its pending offsets of those groups are committed or dropped.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, belongs: impl Fn(&str) -> bool) {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        let (mine, others): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(g, _, _, _)| belongs(g));
        if !others.is_empty() {
            self.pending_txn_offsets.insert(producer_id, others);
        }
        if !commit {
            return;
        }
        for (group_id, topic, partition, value) in mine {
            self.groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id))
                .offsets
                .insert((topic, partition), value);
        }
    }

    /// Whether an open transaction holds an offset of `group_id` for this partition (a
    /// `require_stable` OffsetFetch answers UNSTABLE_OFFSET_COMMIT for it, KIP-447).
    pub fn has_pending_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets
            .values()
            .flatten()
            .any(|(g, t, p, _)| g == group_id && t == topic && *p == partition)
    }

    /// Committed offsets: of `partitions`, or all of the group's when `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<FetchedOffset> {
        let g = self.groups.get(group_id);
        let found = |topic: &str, partition: i32| {
            let v = g.and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
            FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: v.map_or(-1, |v| v.offset),
                leader_epoch: v.map_or(-1, |v| v.leader_epoch),
                metadata: v.map_or(String::new(), |v| v.metadata.clone()),
            }
        };
        match partitions {
            Some(list) => list.iter().map(|(t, p)| found(t, *p)).collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .keys()
                        .map(|(t, p)| found(t, *p))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        }
    }

    /// DeleteGroups: only groups without members. Returns the error and the tombstones.
    pub fn delete_group(&mut self, group_id: &str) -> (i16, Vec<Write>) {
        let Some(g) = self.groups.get(group_id) else {
            return (GROUP_ID_NOT_FOUND, Vec::new());
        };
        if !g.members.is_empty() {
            return (NON_EMPTY_GROUP, Vec::new());
        }
        let mut writes: Vec<Write> = g
            .offsets
            .keys()
            .map(|(t, p)| offset_tombstone(group_id, t, *p))
            .collect();
        writes.push(Write {
            group_id: group_id.to_string(),
            key: GroupKey::Metadata {
                group: group_id.to_string(),
            }
            .encode(),
            value: None,
        });
        self.groups.remove(group_id);
        (NONE, writes)
    }

    /// OffsetDelete: a group with live members may be consuming the topics, so only an empty
    /// group's offsets are deleted (Kafka checks the subscriptions; ketch does not parse them).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (i16, Vec<i16>, Vec<Write>) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return (GROUP_ID_NOT_FOUND, Vec::new(), Vec::new());
        };
        if !g.members.is_empty() {
            return (
                NONE,
                vec![GROUP_SUBSCRIBED_TO_TOPIC; partitions.len()],
                Vec::new(),
            );
        }
        let mut writes = Vec::new();
        for (t, p) in partitions {
            if g.offsets.remove(&(t.clone(), *p)).is_some() {
                writes.push(offset_tombstone(group_id, t, *p));
            }
        }
        (NONE, vec![NONE; partitions.len()], writes)
    }

    /// Replays one offset commit record of a transactional batch of `producer_id` (loading a
    /// partition): pending until that producer's marker is replayed.
    pub fn load_txn(&mut self, producer_id: i64, key: &GroupKey, value: Option<&[u8]>) {
        if let (
            GroupKey::Offset {
                group,
                topic,
                partition,
            },
            Some(v),
        ) = (key, value)
        {
            if let Ok(v) = OffsetValue::decode(v) {
                self.pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .push((group.clone(), topic.clone(), *partition, v));
            }
        }
    }

    /// Replays one record of `__consumer_offsets` (loading a partition). A group comes back
    /// Empty with its generation and offsets: its members' sessions did not survive, and they
    /// rejoin.
    pub fn load(&mut self, key: &GroupKey, value: Option<&[u8]>) {
        let group_id = key.group().to_string();
        match (key, value) {
            (
                GroupKey::Offset {
                    topic, partition, ..
                },
                Some(v),
            ) => {
                if let Ok(v) = OffsetValue::decode(v) {
                    self.groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id))
                        .offsets
                        .insert((topic.clone(), *partition), v);
                }
            }
            (
                GroupKey::Offset {
                    topic, partition, ..
                },
                None,
            ) => {
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.offsets.remove(&(topic.clone(), *partition));
                }
            }
            (GroupKey::Metadata { .. }, Some(v)) => {
                if let Ok(v) = GroupValue::decode(v) {
                    let g = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id));
                    g.generation = v.generation;
                    g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                }
            }
            (GroupKey::Metadata { .. }, None) => {
                self.groups.remove(&group_id);
            }
        }
    }

    /// Forgets every group for which `belongs` is true (leadership of their partition moved).
    /// Parked requests get NOT_COORDINATOR from the shell when their tokens are dropped.
    pub fn unload(&mut self, belongs: impl Fn(&str) -> bool) -> Vec<Token> {
        let mut tokens = Vec::new();
        for pending in self.pending_txn_offsets.values_mut() {
            pending.retain(|(g, _, _, _)| !belongs(g));
        }
        self.pending_txn_offsets.retain(|_, p| !p.is_empty());
        self.groups.retain(|id, g| {
            if belongs(id) {
                for m in g.members.values() {
                    tokens.extend(m.join_token);
                    tokens.extend(m.sync_token);
                }
                false
            } else {
                true
            }
        });
        tokens
    }
}
