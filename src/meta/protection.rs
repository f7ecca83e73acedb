//! Package protection rules of a project (GitLab 18.2): who may push or
//! delete packages whose names match a pattern.

use serde::{Deserialize, Serialize};

use super::kv::{KeyValue, Step};
use super::{encode, keys, next_id, read, update_record, MetaError};

/// The access a rule demands, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinimumAccess {
    Maintainer,
    Owner,
    Admin,
}

impl MinimumAccess {
    pub fn parse(s: &str) -> Option<MinimumAccess> {
        match s {
            "maintainer" => Some(MinimumAccess::Maintainer),
            "owner" => Some(MinimumAccess::Owner),
            "admin" => Some(MinimumAccess::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MinimumAccess::Maintainer => "maintainer",
            MinimumAccess::Owner => "owner",
            MinimumAccess::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRule {
    pub id: u64,
    pub project_id: u64,
    pub package_name_pattern: String,
    pub package_type: String,
    pub minimum_access_level_for_push: Option<MinimumAccess>,
    pub minimum_access_level_for_delete: Option<MinimumAccess>,
}

/// Rules per project: few, so they live in one value.
pub const MAX_RULES: usize = 100;

impl ProtectionRule {
    /// `*` matches any run of characters; the rest compares case-insensitively.
    pub fn matches(&self, package_name: &str) -> bool {
        wildcard_match(
            &self.package_name_pattern.to_lowercase(),
            &package_name.to_lowercase(),
        )
    }
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

pub fn rules<K: KeyValue>(kv: &K, project_id: u64) -> Result<Vec<ProtectionRule>, MetaError> {
    Ok(read(kv, &keys::protection_rules(project_id))?.unwrap_or_default())
}

/// The strictest push and delete demands of the rules matching a package.
pub fn demands(
    rules: &[ProtectionRule],
    package_name: &str,
) -> (Option<MinimumAccess>, Option<MinimumAccess>) {
    let matching = rules
        .iter()
        .filter(|r| r.package_type == "generic" && r.matches(package_name));
    let (mut push, mut delete) = (None, None);
    for rule in matching {
        push = push.max(rule.minimum_access_level_for_push);
        delete = delete.max(rule.minimum_access_level_for_delete);
    }
    (push, delete)
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("Package name pattern has already been taken")]
    Taken,
    #[error("too many protection rules")]
    TooMany,
    #[error("not found")]
    NotFound,
}

impl From<super::kv::KvError> for RuleError {
    fn from(e: super::kv::KvError) -> Self {
        RuleError::Meta(e.into())
    }
}

/// Adds a rule (its id is filled in) or, with `id` set, replaces that rule.
pub fn save<K: KeyValue>(kv: &K, mut rule: ProtectionRule) -> Result<ProtectionRule, RuleError> {
    if rule.id == 0 {
        rule.id = next_id(kv, "protection-rule")?;
    }
    let key = keys::protection_rules(rule.project_id);
    update_record(kv, &key, |rules: Option<Vec<ProtectionRule>>| {
        let mut rules = rules.unwrap_or_default();
        let clash = rules.iter().any(|r| {
            r.id != rule.id
                && r.package_type == rule.package_type
                && r.package_name_pattern
                    .eq_ignore_ascii_case(&rule.package_name_pattern)
        });
        if clash {
            return Err(RuleError::Taken);
        }
        let full = rules.len() >= MAX_RULES;
        match rules.iter_mut().find(|r| r.id == rule.id) {
            Some(existing) => *existing = rule.clone(),
            None if full => return Err(RuleError::TooMany),
            None => rules.push(rule.clone()),
        }
        Ok(Step::Write(encode(&rules), rule.clone()))
    })
}

pub fn remove<K: KeyValue>(kv: &K, project_id: u64, rule_id: u64) -> Result<(), RuleError> {
    let key = keys::protection_rules(project_id);
    update_record(kv, &key, |rules: Option<Vec<ProtectionRule>>| {
        let mut rules = rules.ok_or(RuleError::NotFound)?;
        let before = rules.len();
        rules.retain(|r| r.id != rule_id);
        if rules.len() == before {
            return Err(RuleError::NotFound);
        }
        Ok(Step::Write(encode(&rules), ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;

    fn rule(
        pattern: &str,
        push: Option<MinimumAccess>,
        delete: Option<MinimumAccess>,
    ) -> ProtectionRule {
        ProtectionRule {
            id: 0,
            project_id: 1,
            package_name_pattern: pattern.into(),
            package_type: "generic".into(),
            minimum_access_level_for_push: push,
            minimum_access_level_for_delete: delete,
        }
    }

    #[test]
    fn patterns_use_star_and_ignore_case() {
        assert!(rule("@acme/*", None, None).matches("@ACME/tool"));
        assert!(rule("tool", None, None).matches("Tool"));
        assert!(!rule("tool", None, None).matches("tools"));
        assert!(rule("*-release", None, None).matches("app-release"));
        assert!(rule("a*b*c", None, None).matches("axxbyyc"));
        assert!(!rule("a*b*c", None, None).matches("acb"));
        assert!(rule("*", None, None).matches("anything"));
    }

    #[test]
    fn the_strictest_matching_rule_wins() {
        use MinimumAccess::*;
        let rules = [
            rule("tool*", Some(Maintainer), None),
            rule("tool-*", Some(Owner), Some(Admin)),
            rule("other", Some(Admin), Some(Admin)),
        ];
        assert_eq!(demands(&rules, "tool-cli"), (Some(Owner), Some(Admin)));
        assert_eq!(demands(&rules, "toolbox"), (Some(Maintainer), None));
        assert_eq!(demands(&rules, "unrelated"), (None, None));
    }

    #[test]
    fn rules_are_saved_updated_and_removed() {
        let kv = MemoryStore::default();
        let saved = save(&kv, rule("tool*", Some(MinimumAccess::Maintainer), None)).unwrap();
        assert!(saved.id > 0);
        assert!(matches!(
            save(&kv, rule("TOOL*", None, None)),
            Err(RuleError::Taken)
        ));
        let mut changed = saved.clone();
        changed.minimum_access_level_for_delete = Some(MinimumAccess::Owner);
        save(&kv, changed.clone()).unwrap();
        assert_eq!(rules(&kv, 1).unwrap(), vec![changed]);
        remove(&kv, 1, saved.id).unwrap();
        assert!(rules(&kv, 1).unwrap().is_empty());
        assert!(matches!(remove(&kv, 1, saved.id), Err(RuleError::NotFound)));
    }
}
