//! Authorisation: the [`Authorizer`] hook a broker asks before every publish and subscribe, and
//! [`RuleAcl`], rules matching on who a client is (client id, verified user name, attested
//! claims) and which topics it may publish to or subscribe to.

use serde::Deserialize;

use super::identity::ClientIdentity;
use crate::topic;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Publish to a topic name (will messages included).
    Publish,
    /// Subscribe with a topic filter (for a shared subscription, the filter after the group).
    Subscribe,
}

/// Decides publish and subscribe requests. Called with the broker's state locked: answer from
/// memory, never block.
pub trait Authorizer: Send + Sync {
    /// Whether `client` may do `action` on `topic` (a topic name for [`Action::Publish`], a
    /// topic filter for [`Action::Subscribe`]).
    fn authorize(&self, client: &ClientIdentity, action: Action, topic: &str) -> bool;
}

/// Allows everything (the broker's default without ACL rules).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &ClientIdentity, _: Action, _: &str) -> bool {
        true
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// The request is granted.
    Allow,
    /// The request is refused.
    #[default]
    Deny,
}

/// The ACL section of a configuration: rules tried in order, the first that matches decides;
/// `default` decides when none does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// What happens when no rule matches (deny unless set).
    #[serde(default)]
    pub default: Permission,
    /// The rules, in order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<AclRule>,
}

/// One rule: who (every field given must match), what (`actions`, `topic`) and the decision.
///
/// `topic` is a topic filter pattern in which `%c` stands for the client identifier, `%u` for
/// the verified user name, `%a` for the attested application and `%m` for the attested module
/// name; a rule whose placeholder has no value for a client (or a value with `/`, `+` or `#`)
/// does not match it. A publish matches when the pattern matches the topic name; a subscribe
/// when every topic the client's filter can match is matched by the pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Allow or deny.
    pub permission: Permission,
    /// The actions the rule covers (default: both).
    #[serde(default = "both_actions")]
    pub actions: Vec<Action>,
    /// The topic filter pattern.
    pub topic: String,
    /// Exact client identifier.
    pub client_id: Option<String>,
    /// Exact verified user name.
    pub username: Option<String>,
    /// Whether the client must (true) or must not (false) be attested.
    pub attested: Option<bool>,
    /// Attested platform (`sgx`, `tdx`, `snp`, `sim`).
    pub platform: Option<String>,
    /// Attested measurement (hex, case-insensitive).
    pub measurement: Option<String>,
    /// Attested application name.
    pub app: Option<String>,
    /// Attested module name.
    pub module: Option<String>,
    /// Attested module measurement (SHA-256 of its Wasm, hex, case-insensitive), from the
    /// module claims the client authenticated with.
    pub module_measurement: Option<String>,
    /// Whether simulated evidence is acceptable for this rule (default false: an attested rule
    /// never matches a simulated client unless it says so).
    #[serde(default)]
    pub allow_simulated: bool,
}

fn both_actions() -> Vec<Action> {
    vec![Action::Publish, Action::Subscribe]
}

/// A rule set that failed its checks.
#[derive(Debug, thiserror::Error)]
#[error("ACL rule {index}: {reason}")]
pub struct AclError {
    index: usize,
    reason: String,
}

/// The rule-based [`Authorizer`].
#[derive(Debug, Clone)]
pub struct RuleAcl {
    config: AclConfig,
}

impl RuleAcl {
    /// Checks every rule's pattern (a valid topic filter once its placeholders are filled).
    pub fn new(config: AclConfig) -> Result<Self, AclError> {
        for (index, rule) in config.rules.iter().enumerate() {
            let sample = fill(&rule.topic, |_| Some("x")).unwrap_or_default();
            topic::validate_topic_filter(&sample).map_err(|e| AclError {
                index,
                reason: format!("topic {:?}: {e}", rule.topic),
            })?;
            if topic::TopicFilter::parse(&sample).is_ok_and(|f| f.is_shared()) {
                return Err(AclError {
                    index,
                    reason: "topic patterns are plain filters, not $share/…".into(),
                });
            }
        }
        Ok(Self { config })
    }
}

impl Authorizer for RuleAcl {
    fn authorize(&self, client: &ClientIdentity, action: Action, topic: &str) -> bool {
        for rule in &self.config.rules {
            if !rule.actions.contains(&action) || !rule.matches_client(client) {
                continue;
            }
            let Some(pattern) = fill(&rule.topic, |var| placeholder(client, var)) else {
                continue;
            };
            let applies = match action {
                Action::Publish => topic::matches(&pattern, topic),
                Action::Subscribe => filter_covers(&pattern, topic),
            };
            if applies {
                return rule.permission == Permission::Allow;
            }
        }
        self.config.default == Permission::Allow
    }
}

impl AclRule {
    fn matches_client(&self, client: &ClientIdentity) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| have == Some(want))
        };
        if !same(&self.client_id, Some(&client.client_id)) {
            return false;
        }
        let verified_user = client
            .username
            .as_deref()
            .filter(|_| client.username_verified);
        if !same(&self.username, verified_user) {
            return false;
        }
        let claims = client.attested();
        let needs_claims = self.platform.is_some()
            || self.measurement.is_some()
            || self.app.is_some()
            || self.module.is_some()
            || self.module_measurement.is_some()
            || self.attested == Some(true);
        if self.attested == Some(false) && claims.is_some() {
            return false;
        }
        if !needs_claims {
            return true;
        }
        let Some(claims) = claims else {
            return false;
        };
        if claims.simulated && !self.allow_simulated {
            return false;
        }
        same(&self.platform, Some(&claims.platform))
            && self
                .measurement
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&claims.measurement))
            && same(&self.app, claims.app.as_deref())
            && same(&self.module, claims.module.as_deref())
            && self.module_measurement.as_deref().is_none_or(|m| {
                claims
                    .module_measurement
                    .as_deref()
                    .is_some_and(|have| m.eq_ignore_ascii_case(have))
            })
    }
}

fn placeholder(client: &ClientIdentity, var: char) -> Option<&str> {
    let value = match var {
        'c' => Some(client.client_id.as_str()),
        'u' => client
            .username
            .as_deref()
            .filter(|_| client.username_verified),
        'a' => client.attested().and_then(|c| c.app.as_deref()),
        'm' => client.attested().and_then(|c| c.module.as_deref()),
        _ => None,
    }?;
    // A value must stay one level: `/`, `+` or `#` in a client id would widen the rule, and
    // a leading `$` would reach the broker's own topics (`$SYS/…`).
    (!value.is_empty() && !value.contains(['/', '+', '#']) && !value.starts_with('$'))
        .then_some(value)
}

/// `pattern` with `%c`, `%u`, `%a`, `%m` replaced; `None` when a placeholder has no value.
fn fill<'a>(pattern: &str, value: impl Fn(char) -> Option<&'a str>) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(var) => out.push_str(value(var)?),
            None => out.push('%'),
        }
    }
    Some(out)
}

/// Whether every topic `filter` can match is matched by `pattern` (both valid filters).
pub fn filter_covers(pattern: &str, filter: &str) -> bool {
    // A `$` topic is matched by a leading wildcard in neither, so a leading wildcard in the
    // pattern covers a leading wildcard in the filter; but a pattern starting with `+` or `#`
    // does not cover a filter naming a `$` topic.
    if filter.starts_with('$') && pattern.starts_with(['+', '#']) {
        return false;
    }
    let mut pattern_levels = pattern.split('/');
    let mut filter_levels = filter.split('/');
    loop {
        match (pattern_levels.next(), filter_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(expected), Some(level)) if expected == level && level != "+" && level != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers() {
        assert!(filter_covers("a/#", "a/b/+"));
        assert!(filter_covers("a/#", "a/#"));
        assert!(filter_covers("a/+", "a/b"));
        assert!(filter_covers("a/+", "a/+"));
        assert!(!filter_covers("a/+", "a/#"));
        assert!(!filter_covers("a/b", "a/+"));
        assert!(!filter_covers("#", "$SYS/x"));
        assert!(filter_covers("$SYS/#", "$SYS/x"));
        assert!(filter_covers("#", "+/x"));
    }
}
