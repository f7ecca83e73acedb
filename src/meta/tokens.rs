//! Records of the tokens issued through the API (project and group access
//! tokens, deploy tokens, users' personal access tokens), so they can be
//! listed and revoked.
//!
//! Tokens stay stateless: a request is authenticated from the token alone
//! plus the one revocation read. The record only serves the token
//! administration endpoints. Each holder (a project or a group) has, per
//! kind, an index of token ids sharded like a project's package index.
//!
//! Revoking writes `revoked-token/<id>` first (what authentication reads),
//! then marks the record, so a failure in between still leaves the token
//! refused.

use genreg_token::Grant;
use serde::{Deserialize, Serialize};

use super::kv::{update, KeyValue, Step};
use super::model::Millis;
use super::{change_list, encode, keys, next_id, read, update_record, MetaError, INDEX_SHARD_SIZE};

/// Who a token is issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    Project(u64),
    Group(u64),
    /// A user (`meta::users`), for personal access tokens.
    User(u64),
}

impl Holder {
    /// The holder's part of index keys: `project/7`, `group/3`, `user/2`.
    fn key_part(self) -> String {
        match self {
            Holder::Project(id) => format!("project/{id}"),
            Holder::Group(id) => format!("group/{id}"),
            Holder::User(id) => format!("user/{id}"),
        }
    }
}

/// The kinds of token that have records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuedKind {
    /// A project or group access token (a personal token of a bot user).
    Access,
    Deploy,
    /// A user's personal access token, handed out by an administrator.
    Personal,
}

impl IssuedKind {
    fn key_part(self) -> &'static str {
        match self {
            IssuedKind::Access => "access",
            IssuedKind::Deploy => "deploy",
            IssuedKind::Personal => "personal",
        }
    }
}

/// What the registry remembers of an issued token. Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub kind: IssuedKind,
    pub holder: Holder,
    pub name: String,
    /// The token's subject: the bot user of an access token, the user name
    /// of a deploy token.
    pub username: String,
    /// GitLab's scope names.
    pub scopes: Vec<String>,
    /// GitLab's access level (access tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<u8>,
    pub created_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    #[serde(default)]
    pub revoked: bool,
    /// The shard of the holder's index that lists it.
    pub index_shard: u64,
    /// The projects a personal access token reaches (the others' grants
    /// follow from their holder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
}

impl TokenRecord {
    /// The `jti` of the token's claims, under which it is revoked.
    pub fn claims_id(&self) -> String {
        claims_id(self.id)
    }

    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn is_active(&self, now: Millis) -> bool {
        !self.revoked && !self.is_expired(now)
    }
}

/// The `jti` of a token with this record id: the id itself.
pub fn claims_id(id: u64) -> String {
    id.to_string()
}

/// What recording a token needs; the id comes from [`new_token_id`] (the
/// token is minted with it before it is recorded).
pub struct NewToken {
    pub id: u64,
    pub kind: IssuedKind,
    pub holder: Holder,
    pub name: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub access_level: Option<u8>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// Personal access tokens only; empty for the others.
    pub grants: Vec<Grant>,
}

pub fn new_token_id<K: KeyValue>(kv: &K) -> Result<u64, MetaError> {
    next_id(kv, "token")
}

/// Writes the record and lists it in its holder's index.
pub fn record_token<K: KeyValue>(kv: &K, new: NewToken) -> Result<TokenRecord, MetaError> {
    let holder = new.holder.key_part();
    let kind = new.kind.key_part();
    let ordinal = kv.increment(&keys::token_ordinal(kind, &holder), 1)?;
    let record = TokenRecord {
        id: new.id,
        kind: new.kind,
        holder: new.holder,
        name: new.name,
        username: new.username,
        scopes: new.scopes,
        access_level: new.access_level,
        created_at: new.created_at,
        expires_at: new.expires_at,
        revoked: false,
        index_shard: (ordinal.max(1) as u64 - 1) / INDEX_SHARD_SIZE,
        grants: new.grants,
    };
    let key = keys::token(record.id);
    update(kv, &key, |current| match current {
        // Ids are fresh, so this is only ever our own earlier attempt.
        Some(_) => Step::Keep(()),
        None => Step::<_, MetaError>::Write(encode(&record), ()),
    })?;
    let index_key = keys::token_index(kind, &holder, record.index_shard);
    change_list(kv, &index_key, |ids: &mut Vec<u64>| {
        if ids.contains(&record.id) {
            false
        } else {
            ids.push(record.id);
            true
        }
    })?;
    Ok(record)
}

pub fn token<K: KeyValue>(kv: &K, id: u64) -> Result<Option<TokenRecord>, MetaError> {
    read(kv, &keys::token(id))
}

/// The ids of a holder's tokens of one kind, oldest first. Reads one key
/// per [`INDEX_SHARD_SIZE`] tokens.
pub fn token_ids<K: KeyValue>(
    kv: &K,
    kind: IssuedKind,
    holder: Holder,
) -> Result<Vec<u64>, MetaError> {
    let holder = holder.key_part();
    let mut all = Vec::new();
    for shard in 0.. {
        match read::<K, Vec<u64>>(kv, &keys::token_index(kind.key_part(), &holder, shard))? {
            Some(ids) => all.extend(ids),
            None => break,
        }
    }
    Ok(all)
}

/// Revokes a token: from the next request on it answers 401. With
/// `unlist`, it also leaves its holder's listing (deploy tokens, which
/// GitLab deletes). Revoking twice is harmless.
pub fn revoke_token<K: KeyValue>(
    kv: &K,
    record: &TokenRecord,
    unlist: bool,
) -> Result<TokenRecord, MetaError> {
    update(
        kv,
        &keys::revoked_token(&record.claims_id()),
        |current| match current {
            Some(_) => Step::Keep(()),
            None => Step::<_, MetaError>::Write(b"1".to_vec(), ()),
        },
    )?;
    let key = keys::token(record.id);
    let revoked = update_record(kv, &key, |stored: Option<TokenRecord>| {
        let Some(mut stored) = stored else {
            return Ok::<_, MetaError>(Step::Keep(record.clone()));
        };
        if stored.revoked {
            return Ok(Step::Keep(stored));
        }
        stored.revoked = true;
        Ok(Step::Write(encode(&stored), stored))
    })?;
    if unlist {
        let index_key = keys::token_index(
            record.kind.key_part(),
            &record.holder.key_part(),
            record.index_shard,
        );
        change_list(kv, &index_key, |ids: &mut Vec<u64>| {
            let before = ids.len();
            ids.retain(|id| *id != record.id);
            ids.len() != before
        })?;
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::super::is_token_revoked;
    use super::*;
    use crate::testing::MemoryStore;

    fn new(kv: &MemoryStore, kind: IssuedKind, holder: Holder) -> TokenRecord {
        let id = new_token_id(kv).unwrap();
        record_token(
            kv,
            NewToken {
                id,
                kind,
                holder,
                name: format!("t{id}"),
                username: "bot".into(),
                scopes: vec!["api".into()],
                access_level: Some(40),
                created_at: 1_000,
                expires_at: Some(5_000),
                grants: Vec::new(),
            },
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_listed_per_holder_and_kind() {
        let kv = MemoryStore::default();
        let a = new(&kv, IssuedKind::Access, Holder::Project(7));
        let b = new(&kv, IssuedKind::Access, Holder::Project(7));
        new(&kv, IssuedKind::Deploy, Holder::Project(7));
        new(&kv, IssuedKind::Access, Holder::Group(7));
        assert_eq!(
            token_ids(&kv, IssuedKind::Access, Holder::Project(7)).unwrap(),
            vec![a.id, b.id]
        );
        assert_eq!(token(&kv, a.id).unwrap(), Some(a));
        assert_eq!(
            token_ids(&kv, IssuedKind::Deploy, Holder::Group(1)).unwrap(),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn revoking_marks_the_record_and_the_revocation_key() {
        let kv = MemoryStore::default();
        let a = new(&kv, IssuedKind::Access, Holder::Project(7));
        assert!(!is_token_revoked(&kv, &a.claims_id()).unwrap());
        let revoked = revoke_token(&kv, &a, false).unwrap();
        assert!(revoked.revoked);
        assert!(is_token_revoked(&kv, &a.claims_id()).unwrap());
        assert!(token(&kv, a.id).unwrap().unwrap().revoked);
        // Still listed, as revoked.
        assert_eq!(
            token_ids(&kv, IssuedKind::Access, Holder::Project(7)).unwrap(),
            vec![a.id]
        );
        assert!(revoke_token(&kv, &a, false).unwrap().revoked);
    }

    #[test]
    fn unlisted_tokens_leave_the_index() {
        let kv = MemoryStore::default();
        let a = new(&kv, IssuedKind::Deploy, Holder::Group(3));
        let b = new(&kv, IssuedKind::Deploy, Holder::Group(3));
        revoke_token(&kv, &a, true).unwrap();
        assert_eq!(
            token_ids(&kv, IssuedKind::Deploy, Holder::Group(3)).unwrap(),
            vec![b.id]
        );
        assert!(is_token_revoked(&kv, &a.claims_id()).unwrap());
    }

    #[test]
    fn activity_follows_revocation_and_expiry() {
        let kv = MemoryStore::default();
        let a = new(&kv, IssuedKind::Access, Holder::Project(1));
        assert!(a.is_active(4_999));
        assert!(!a.is_active(5_000));
        assert!(a.is_expired(5_000));
        let revoked = revoke_token(&kv, &a, false).unwrap();
        assert!(!revoked.is_active(0));
    }
}
