//! What an identity may do: roles and scope-map actions as permission rules, docker's scope strings, and the
//! intersection of what a client asks for with what its rules allow (the access a token carries).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::oci::RepositoryName;

/// An action on a repository, as tokens name it: docker's `pull`, `push`, `delete`, and ACR's metadata actions
/// (listing tags and manifests; untagging) for scope maps that grant only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Pull,
    Push,
    Delete,
    MetadataRead,
    MetadataWrite,
}

impl Action {
    pub const ALL: [Action; 5] = [Action::Pull, Action::Push, Action::Delete, Action::MetadataRead, Action::MetadataWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::MetadataRead => "metadata_read",
            Action::MetadataWrite => "metadata_write",
        }
    }

    fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.as_str() == text)
    }

    /// The lesser action that stands in when this one is asked for but not allowed: a metadata-only token asking for
    /// `pull` (as every client does to list tags) gets `metadata_read`, and one asking for `delete` to untag gets
    /// `metadata_write`.
    fn fallback(self) -> Option<Action> {
        match self {
            Action::Pull => Some(Action::MetadataRead),
            Action::Delete => Some(Action::MetadataWrite),
            _ => None,
        }
    }
}

/// ACR's built-in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Pull and list.
    Acrpull,
    /// Pull and push.
    Acrpush,
    /// Delete images, tags and repositories.
    Acrdelete,
    /// Everything, including identities and settings.
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Acrpull, Role::Acrpush, Role::Acrdelete, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Acrpull => "acrpull",
            Role::Acrpush => "acrpush",
            Role::Acrdelete => "acrdelete",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown role {text}: expected one of acrpull, acrpush, acrdelete, owner"))
    }

    fn actions(self) -> &'static [Action] {
        match self {
            Role::Acrpull => &[Action::Pull, Action::MetadataRead],
            Role::Acrpush => &[Action::Pull, Action::Push, Action::MetadataRead, Action::MetadataWrite],
            Role::Acrdelete => &[Action::Delete, Action::MetadataWrite],
            Role::Owner => &Action::ALL,
        }
    }

    /// The rule this role grants over `repositories`: registry-wide rights (the catalog, management) only when the
    /// role covers every repository.
    pub fn rule(self, repositories: RepositoryPattern) -> Rule {
        let everywhere = repositories.is_everything();
        Rule {
            actions: self.actions().iter().copied().collect(),
            catalog: everywhere && self != Role::Acrdelete,
            manage: everywhere && self == Role::Owner,
            repositories,
        }
    }
}

/// The scope-map actions of ACR's repository-scoped tokens (`content/read`, ...), as the actions they allow.
pub fn scope_map_action(text: &str) -> Result<Action, String> {
    match text {
        "content/read" => Ok(Action::Pull),
        "content/write" => Ok(Action::Push),
        "content/delete" => Ok(Action::Delete),
        "metadata/read" => Ok(Action::MetadataRead),
        "metadata/write" => Ok(Action::MetadataWrite),
        other => Err(format!(
            "unknown scope-map action {other}: expected content/read, content/write, content/delete, metadata/read or metadata/write"
        )),
    }
}

/// Which repositories a rule covers: `*` (all), an exact name, or a prefix ending in `/*` (`team/*`: every repository
/// under `team/`), or a name with `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepositoryPattern(String);

impl RepositoryPattern {
    pub fn everything() -> Self {
        Self("*".to_owned())
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text.len() <= 255
            && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(c));
        if valid { Ok(Self(text.to_owned())) } else { Err(format!("invalid repository pattern {text:?}: lowercase name characters and * only")) }
    }

    pub fn is_everything(&self) -> bool {
        self.0 == "*"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Glob match where `*` matches any run of characters, `/` included.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl TryFrom<String> for RepositoryPattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<RepositoryPattern> for String {
    fn from(pattern: RepositoryPattern) -> String {
        pattern.0
    }
}

impl std::fmt::Display for RepositoryPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One thing an identity may do: actions on matching repositories, and registry-wide rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub repositories: RepositoryPattern,
    pub actions: BTreeSet<Action>,
    /// May list the catalog (`registry:catalog:*`).
    pub catalog: bool,
    /// May manage identities and settings (`registry:manage:*`).
    pub manage: bool,
}

/// Everything an identity may do: the union of its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions(pub Vec<Rule>);

impl Permissions {
    /// Everything (the admin user, an unscoped owner).
    pub fn everything() -> Self {
        Self(vec![Role::Owner.rule(RepositoryPattern::everything())])
    }

    /// Pull from every repository (anonymous pull).
    pub fn pull_everywhere() -> Self {
        Self(vec![Rule { repositories: RepositoryPattern::everything(), actions: [Action::Pull].into(), catalog: false, manage: false }])
    }

    fn allows(&self, repository: &str, action: Action) -> bool {
        self.0.iter().any(|rule| rule.actions.contains(&action) && rule.repositories.matches(repository))
    }

    /// The access to grant for `requested`: per scope, the actions asked for that the rules allow (docker's token
    /// spec: less than asked is not an error). Scopes that grant nothing are left out.
    pub fn grant(&self, requested: &[Scope]) -> Vec<Access> {
        let mut granted: Vec<Access> = Vec::new();
        for scope in requested {
            let actions: BTreeSet<String> = match scope {
                Scope::Repository { name, actions } => {
                    let asked: BTreeSet<Action> = actions.iter().copied().collect();
                    asked
                        .iter()
                        .filter_map(|&action| {
                            if self.allows(name.as_str(), action) {
                                Some(action)
                            } else {
                                action.fallback().filter(|&lesser| !asked.contains(&lesser) && self.allows(name.as_str(), lesser))
                            }
                        })
                        .map(|action| action.as_str().to_owned())
                        .collect()
                }
                Scope::Catalog => self.0.iter().any(|rule| rule.catalog).then(|| "*".to_owned()).into_iter().collect(),
                Scope::Manage => self.0.iter().any(|rule| rule.manage).then(|| "*".to_owned()).into_iter().collect(),
            };
            if actions.is_empty() {
                continue;
            }
            let (kind, name) = scope.resource();
            match granted.iter_mut().find(|access| access.kind == kind && access.name == name) {
                Some(existing) => {
                    let merged: BTreeSet<String> = existing.actions.drain(..).chain(actions).collect();
                    existing.actions = merged.into_iter().collect();
                }
                None => granted.push(Access { kind: kind.to_owned(), name, actions: actions.into_iter().collect() }),
            }
        }
        granted
    }
}

/// A scope a client asks for: `repository:NAME:ACTIONS`, `registry:catalog:*` or Berth's `registry:manage:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repository { name: RepositoryName, actions: Vec<Action> },
    Catalog,
    Manage,
}

impl Scope {
    /// Reads one scope; `None` for scopes this registry has nothing for (unknown types or names), which grant
    /// nothing rather than failing the request, as the token spec wants.
    pub fn parse(text: &str) -> Option<Scope> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let actions: Vec<&str> = actions.split(',').filter(|action| !action.is_empty()).collect();
        match kind {
            // `repository(plugin)` and other classes are docker's; the class does not change the access.
            _ if kind == "repository" || kind.starts_with("repository(") => {
                let name = RepositoryName::parse(name).ok()?;
                let mut wanted: Vec<Action> = Vec::new();
                for action in actions {
                    match action {
                        "*" => wanted.extend(Action::ALL),
                        other => wanted.extend(Action::parse(other)),
                    }
                }
                wanted.sort();
                wanted.dedup();
                Some(Scope::Repository { name, actions: wanted })
            }
            "registry" if name == "catalog" => Some(Scope::Catalog),
            "registry" if name == "manage" => Some(Scope::Manage),
            _ => None,
        }
    }

    /// Every scope of a request: `scope` parameters may repeat (docker's GET) and each may hold several scopes
    /// joined by spaces (the OAuth2 POST).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        values.into_iter().flat_map(str::split_whitespace).filter_map(Scope::parse).collect()
    }

    fn resource(&self) -> (&'static str, String) {
        match self {
            Scope::Repository { name, .. } => ("repository", name.to_string()),
            Scope::Catalog => ("registry", "catalog".to_owned()),
            Scope::Manage => ("registry", "manage".to_owned()),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Repository { name, actions } => {
                let actions: Vec<&str> = actions.iter().map(|action| action.as_str()).collect();
                write!(f, "repository:{name}:{}", actions.join(","))
            }
            Scope::Catalog => f.write_str("registry:catalog:*"),
            Scope::Manage => f.write_str("registry:manage:*"),
        }
    }
}

/// One entry of a token's `access` claim (docker's JWT format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// What a verified access token lets its bearer do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted(pub Vec<Access>);

impl Granted {
    pub fn allows_repository(&self, name: &RepositoryName, action: Action) -> bool {
        self.0.iter().any(|access| access.kind == "repository" && access.name == name.as_str() && access.actions.iter().any(|a| a == action.as_str()))
    }

    pub fn allows_registry(&self, name: &str) -> bool {
        self.0.iter().any(|access| access.kind == "registry" && access.name == name && access.actions.iter().any(|a| a == "*"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).unwrap()
    }

    #[test]
    fn patterns_match_globs() {
        let cases = [
            ("*", "a/b/c", true),
            ("team/*", "team/app", true),
            ("team/*", "team/a/b", true),
            ("team/*", "teamx/app", false),
            ("team/*", "team", false),
            ("app", "app", true),
            ("app", "app2", false),
            ("*-prod", "web-prod", true),
            ("*-prod", "web-prod2", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(RepositoryPattern::parse(pattern).unwrap().matches(name), expected, "{pattern} ~ {name}");
        }
        for bad in ["", "Team/*", "a b", "a:b"] {
            assert!(RepositoryPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_parse_like_docker_sends_them() {
        assert_eq!(
            Scope::parse("repository:team/app:pull,push"),
            Some(Scope::Repository { name: repo("team/app"), actions: vec![Action::Pull, Action::Push] })
        );
        assert_eq!(Scope::parse("repository(plugin):app:pull"), Some(Scope::Repository { name: repo("app"), actions: vec![Action::Pull] }));
        assert_eq!(Scope::parse("repository:app:*"), Some(Scope::Repository { name: repo("app"), actions: Action::ALL.to_vec() }));
        assert_eq!(Scope::parse("registry:catalog:*"), Some(Scope::Catalog));
        for ignored in ["repository:Bad:pull", "bogus", "image:app:pull", "registry:other:*"] {
            assert_eq!(Scope::parse(ignored), None, "{ignored}");
        }
        let all = Scope::parse_all(["repository:a:pull repository:b:push", "registry:catalog:*"]);
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn grants_are_the_intersection_of_asked_and_allowed() {
        let pull_team = Permissions(vec![Role::Acrpull.rule(RepositoryPattern::parse("team/*").unwrap())]);
        let asked = Scope::parse_all(["repository:team/app:pull,push", "repository:other:pull", "registry:catalog:*"]);
        let granted = pull_team.grant(&asked);
        assert_eq!(granted, vec![Access { kind: "repository".into(), name: "team/app".into(), actions: vec!["pull".into()] }]);

        let everything = Permissions::everything().grant(&asked);
        assert_eq!(everything.len(), 3);
        assert_eq!(everything[0].actions, vec!["pull", "push"]);
        assert_eq!(everything[2], Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] });
        assert!(Permissions::everything().grant(&[Scope::Manage]).len() == 1);
        assert!(Permissions(vec![Role::Acrpush.rule(RepositoryPattern::everything())]).grant(&[Scope::Manage]).is_empty());
        // A scoped owner manages nothing registry-wide.
        assert!(Permissions(vec![Role::Owner.rule(RepositoryPattern::parse("a").unwrap())]).grant(&[Scope::Manage, Scope::Catalog]).is_empty());
    }

    #[test]
    fn metadata_only_tokens_get_the_metadata_action_for_pull() {
        let rule = Rule {
            repositories: RepositoryPattern::everything(),
            actions: [Action::MetadataRead].into(),
            catalog: false,
            manage: false,
        };
        let granted = Permissions(vec![rule]).grant(&Scope::parse_all(["repository:app:pull"]));
        assert_eq!(granted[0].actions, vec!["metadata_read"]);
        let granted = Granted(granted);
        assert!(granted.allows_repository(&repo("app"), Action::MetadataRead));
        assert!(!granted.allows_repository(&repo("app"), Action::Pull));
    }

    #[test]
    fn role_names_are_case_insensitive() {
        assert_eq!(Role::parse("AcrPush"), Ok(Role::Acrpush));
        assert!(Role::parse("reader").is_err());
        assert_eq!(scope_map_action("content/write"), Ok(Action::Push));
        assert!(scope_map_action("content/everything").is_err());
    }
}
