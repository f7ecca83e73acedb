//! Who may do what on a project: GitLab's permission table for packages.

use genreg_token::{Claims, Kind, Role, Scope};

use crate::meta::model::{Project, Visibility};

/// The caller, after authentication.
#[derive(Debug, Clone)]
pub enum Actor {
    Anonymous,
    Token(Claims),
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        matches!(self, Actor::Token(c) if c.admin)
    }
}

/// What the caller may do on one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// The project exists for the caller (otherwise: 404).
    pub visible: bool,
    pub download: bool,
    pub publish: bool,
}

const NONE: Access = Access {
    visible: false,
    download: false,
    publish: false,
};
const READ: Access = Access {
    visible: true,
    download: true,
    publish: false,
};
const WRITE: Access = Access {
    visible: true,
    download: true,
    publish: true,
};
/// Sees the project but may not read its packages (a token whose scopes do
/// not cover reading): 403 rather than 404.
const SEE: Access = Access {
    visible: true,
    download: false,
    publish: false,
};

pub fn access(actor: &Actor, project: &Project) -> Access {
    let public = project.visibility == Visibility::Public;
    let anyone = if public { READ } else { NONE };
    let claims = match actor {
        Actor::Anonymous => return anyone,
        Actor::Token(claims) if claims.admin => return WRITE,
        Actor::Token(claims) => claims,
    };
    let role = claims.role_on(project.id, &project.full_path());
    match (claims.kind, role) {
        (_, None) => anyone,
        (Kind::Job, Some(_)) => WRITE,
        (Kind::Deploy, Some(_)) => {
            if claims.has_scope(Scope::WritePackageRegistry) {
                WRITE
            } else if claims.has_scope(Scope::ReadPackageRegistry) || public {
                READ
            } else {
                SEE
            }
        }
        (Kind::Personal, Some(role)) => {
            let writes = claims.has_scope(Scope::Api) && role >= Role::Developer;
            let reads = writes
                || [
                    Scope::Api,
                    Scope::ReadApi,
                    Scope::ReadPackageRegistry,
                    Scope::WritePackageRegistry,
                ]
                .iter()
                .any(|s| claims.has_scope(*s));
            match (writes, reads || public) {
                (true, _) => WRITE,
                (false, true) => READ,
                (false, false) => SEE,
            }
        }
    }
}

/// The role a caller administers a project with (its tokens, its
/// visibility): personal tokens with scope `api` act with their role;
/// administrators count as owners. Deploy and job tokens, and read-only
/// scopes, administer nothing.
pub fn admin_role(actor: &Actor, project: &Project) -> Option<Role> {
    administering(actor).and_then(|claims| match claims.admin {
        true => Some(Role::Owner),
        false => claims.role_on(project.id, &project.full_path()),
    })
}

/// The role a caller administers a group with (`admin_role` for groups).
pub fn admin_role_on_group(actor: &Actor, group_path: &str) -> Option<Role> {
    administering(actor).and_then(|claims| match claims.admin {
        true => Some(Role::Owner),
        false => group_role(claims, group_path),
    })
}

fn administering(actor: &Actor) -> Option<&Claims> {
    match actor {
        Actor::Token(claims) if claims.admin => Some(claims),
        Actor::Token(claims) if claims.kind == Kind::Personal && claims.has_scope(Scope::Api) => {
            Some(claims)
        }
        _ => None,
    }
}

/// The role a token's grants give on a whole group: `*`, and `ns/*` where
/// `ns` is the group or one of its parents. Grants on single projects or
/// subgroups give no role on the group.
pub fn group_role(claims: &Claims, group_path: &str) -> Option<Role> {
    claims
        .grants
        .iter()
        .filter(|g| {
            g.project == "*"
                || g.project.strip_suffix("/*").is_some_and(|ns| {
                    ns.eq_ignore_ascii_case(group_path)
                        || (group_path.len() > ns.len()
                            && group_path.as_bytes()[ns.len()] == b'/'
                            && group_path[..ns.len()].eq_ignore_ascii_case(ns))
                })
        })
        .map(|g| g.role)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use genreg_token::Grant;

    fn project(visibility: Visibility) -> Project {
        Project {
            id: 7,
            name: "tools".into(),
            path: "tools".into(),
            namespace: "acme".into(),
            visibility,
            created_at: 0,
            deleted_at: None,
        }
    }

    fn token(kind: Kind, scopes: &[Scope], grant: Option<(&str, Role)>) -> Actor {
        Actor::Token(Claims {
            id: "x".into(),
            kind,
            subject: "s".into(),
            scopes: scopes.to_vec(),
            grants: grant
                .map(|(p, role)| Grant {
                    project: p.into(),
                    role,
                })
                .into_iter()
                .collect(),
            admin: false,
            issued_at: 0,
            expires_at: None,
        })
    }

    #[test]
    fn the_permission_table_of_api_md() {
        let private = project(Visibility::Private);
        let public = project(Visibility::Public);
        let on = |role| Some(("acme/tools", role));
        let rows = [
            (
                token(Kind::Personal, &[Scope::Api], on(Role::Developer)),
                WRITE,
            ),
            (
                token(Kind::Personal, &[Scope::Api], on(Role::Maintainer)),
                WRITE,
            ),
            (
                token(Kind::Personal, &[Scope::ReadApi], on(Role::Owner)),
                READ,
            ),
            (
                token(Kind::Personal, &[Scope::Api], on(Role::Reporter)),
                READ,
            ),
            (token(Kind::Personal, &[Scope::Api], on(Role::Guest)), READ),
            (token(Kind::Personal, &[], on(Role::Owner)), SEE),
            (
                token(
                    Kind::Deploy,
                    &[Scope::WritePackageRegistry],
                    on(Role::Developer),
                ),
                WRITE,
            ),
            (
                token(
                    Kind::Deploy,
                    &[Scope::ReadPackageRegistry],
                    on(Role::Developer),
                ),
                READ,
            ),
            (token(Kind::Job, &[], Some(("7", Role::Developer))), WRITE),
            (
                token(
                    Kind::Personal,
                    &[Scope::Api],
                    Some(("other/x", Role::Owner)),
                ),
                NONE,
            ),
            (token(Kind::Job, &[], Some(("8", Role::Developer))), NONE),
            (Actor::Anonymous, NONE),
        ];
        for (actor, expected) in rows {
            assert_eq!(access(&actor, &private), expected, "{actor:?}");
        }
        assert_eq!(access(&Actor::Anonymous, &public), READ);
        assert_eq!(
            access(
                &token(Kind::Job, &[], Some(("8", Role::Developer))),
                &public
            ),
            READ
        );
    }

    #[test]
    fn administrators_may_do_everything() {
        let Actor::Token(mut claims) = token(Kind::Personal, &[Scope::Api], None) else {
            unreachable!()
        };
        claims.admin = true;
        assert_eq!(
            access(&Actor::Token(claims), &project(Visibility::Private)),
            WRITE
        );
    }

    #[test]
    fn only_api_personal_tokens_and_administrators_administer() {
        let private = project(Visibility::Private);
        let on = |role| Some(("acme/*", role));
        let maintainer = token(Kind::Personal, &[Scope::Api], on(Role::Maintainer));
        assert_eq!(admin_role(&maintainer, &private), Some(Role::Maintainer));
        assert_eq!(
            admin_role(
                &token(Kind::Personal, &[Scope::ReadApi], on(Role::Owner)),
                &private
            ),
            None
        );
        let deploy = token(
            Kind::Deploy,
            &[Scope::WritePackageRegistry],
            on(Role::Owner),
        );
        assert_eq!(admin_role(&deploy, &private), None);
        assert_eq!(
            admin_role(&token(Kind::Job, &[], Some(("7", Role::Owner))), &private),
            None
        );
        assert_eq!(admin_role(&Actor::Anonymous, &private), None);
        let Actor::Token(mut claims) = token(Kind::Personal, &[Scope::Api], None) else {
            unreachable!()
        };
        claims.admin = true;
        assert_eq!(
            admin_role(&Actor::Token(claims.clone()), &private),
            Some(Role::Owner)
        );
        assert_eq!(
            admin_role_on_group(&Actor::Token(claims), "x/y"),
            Some(Role::Owner)
        );
    }

    #[test]
    fn group_roles_come_from_grants_on_the_group_or_its_parents() {
        let grant = |selector| {
            let Actor::Token(claims) =
                token(Kind::Personal, &[Scope::Api], Some((selector, Role::Owner)))
            else {
                unreachable!()
            };
            claims
        };
        assert_eq!(group_role(&grant("acme/*"), "acme"), Some(Role::Owner));
        assert_eq!(
            group_role(&grant("acme/*"), "ACME/platform"),
            Some(Role::Owner)
        );
        assert_eq!(group_role(&grant("*"), "acme"), Some(Role::Owner));
        assert_eq!(group_role(&grant("acme/platform/*"), "acme"), None);
        assert_eq!(group_role(&grant("acm/*"), "acme"), None);
        assert_eq!(group_role(&grant("acme/tools"), "acme"), None);
        assert_eq!(group_role(&grant("7"), "acme"), None);
    }
}
