//! The policy table: every credential kind, scope and role against a
//! private and a public project, and GitLab's answers for missing rights.

use super::*;
use genreg_token::Grant;
use Right::*;

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

fn claims(kind: Kind, scopes: &[Scope], grant: Option<(&str, Role)>) -> Claims {
    Claims {
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
    }
}

fn token(kind: Kind, scopes: &[Scope], grant: Option<(&str, Role)>) -> Actor {
    Actor::Token(claims(kind, scopes, grant))
}

fn admin(kind: Kind) -> Actor {
    let mut claims = claims(kind, &[], None);
    claims.admin = true;
    Actor::Token(claims)
}

const ON: &str = "acme/tools";

#[test]
fn the_project_permission_table() {
    use Kind::*;
    use Role::*;
    // (caller, right on the private project, right on the public one)
    #[rustfmt::skip]
    let rows: Vec<(Actor, Option<Right>, Option<Right>)> = vec![
        (Actor::Anonymous,                                    None,             Some(Download)),
        (admin(Personal),                                     Some(Administer), Some(Administer)),
        (admin(Deploy),                                       Some(Administer), Some(Administer)),
        (token(Personal, &[Scope::Api], Some((ON, Guest))),      Some(Download), Some(Download)),
        (token(Personal, &[Scope::Api], Some((ON, Reporter))),   Some(Download), Some(Download)),
        (token(Personal, &[Scope::Api], Some((ON, Developer))),  Some(Publish),  Some(Publish)),
        (token(Personal, &[Scope::Api], Some((ON, Maintainer))), Some(Maintain), Some(Maintain)),
        (token(Personal, &[Scope::Api], Some(("acme/*", Owner))), Some(Own),     Some(Own)),
        (token(Personal, &[Scope::Api], Some(("*", Owner))),     Some(Own),      Some(Own)),
        (token(Personal, &[Scope::ReadApi], Some((ON, Owner))),  Some(Download), Some(Download)),
        (token(Personal, &[Scope::ReadPackageRegistry], Some((ON, Owner))), Some(Download), Some(Download)),
        (token(Personal, &[Scope::WritePackageRegistry], Some((ON, Owner))), Some(Download), Some(Download)),
        (token(Personal, &[], Some((ON, Owner))),                Some(See),      Some(Download)),
        (token(Personal, &[Scope::Api], Some(("other/x", Owner))), None,         Some(Download)),
        (token(Personal, &[Scope::Api], Some(("8", Owner))),     None,           Some(Download)),
        (token(Deploy, &[Scope::WritePackageRegistry], Some((ON, Developer))), Some(Publish), Some(Publish)),
        (token(Deploy, &[Scope::ReadPackageRegistry], Some((ON, Owner))), Some(Download), Some(Download)),
        (token(Deploy, &[], Some((ON, Developer))),              Some(See),      Some(Download)),
        (token(Deploy, &[Scope::WritePackageRegistry], Some(("other/*", Developer))), None, Some(Download)),
        (token(Job, &[], Some(("7", Developer))),                Some(Publish),  Some(Publish)),
        (token(Job, &[], Some(("7", Owner))),                    Some(Publish),  Some(Publish)),
        (token(Job, &[], Some(("8", Developer))),                None,           Some(Download)),
    ];
    let private = project(Visibility::Private);
    let public = project(Visibility::Public);
    for (actor, on_private, on_public) in rows {
        assert_eq!(
            on_project(&actor, &private),
            on_private,
            "private: {actor:?}"
        );
        assert_eq!(on_project(&actor, &public), on_public, "public: {actor:?}");
    }
}

#[test]
fn missing_rights_answer_gitlabs_statuses() {
    let anonymous = Actor::Anonymous;
    let someone = token(Kind::Personal, &[Scope::Api], None);
    let status = |actor: &Actor, held, needed| {
        decide(actor, held, needed, Unseen::NotFound("Project Not Found"))
            .map(|_| 200)
            .unwrap_or_else(|e| e.status())
    };
    // Enough.
    assert_eq!(status(&anonymous, Some(Download), Download), 200);
    assert_eq!(status(&someone, Some(Own), Maintain), 200);
    // Not seen: 404 for tokens, 401 for anonymous callers unless they only
    // asked to see it.
    assert_eq!(status(&someone, None, Download), 404);
    assert_eq!(status(&anonymous, None, Download), 401);
    assert_eq!(status(&anonymous, None, See), 404);
    // Seen but too little: 403, anonymous callers included.
    assert_eq!(status(&someone, Some(See), Download), 403);
    assert_eq!(status(&someone, Some(Publish), Maintain), 403);
    assert_eq!(status(&anonymous, Some(Download), Maintain), 403);
    assert_eq!(
        decide(&someone, None, See, Unseen::NotFound("Group Not Found"))
            .unwrap_err()
            .body()["message"],
        "404 Group Not Found"
    );
    assert_eq!(
        decide(&someone, None, Own, Unseen::Forbidden)
            .unwrap_err()
            .status(),
        403
    );
    assert!(may_try(&anonymous, Publish).is_err());
    assert!(may_try(&anonymous, Download).is_ok());
    assert!(may_try(&someone, Administer).is_ok());
}

#[test]
fn group_rights_come_from_grants_on_the_group_or_its_parents() {
    use Role::*;
    let api = |selector| token(Kind::Personal, &[Scope::Api], Some((selector, Owner)));
    assert_eq!(on_group_by_grants(&api("acme/*"), "acme"), Some(Own));
    assert_eq!(
        on_group_by_grants(&api("acme/*"), "ACME/platform"),
        Some(Own)
    );
    assert_eq!(on_group_by_grants(&api("*"), "acme"), Some(Own));
    // Grants below the group let the caller see it, no more.
    assert_eq!(
        on_group_by_grants(&api("acme/platform/*"), "acme"),
        Some(See)
    );
    assert_eq!(on_group_by_grants(&api("acme/tools"), "acme"), Some(See));
    // Neither a sibling with a common prefix nor a project id.
    assert_eq!(on_group_by_grants(&api("acm/*"), "acme"), None);
    assert_eq!(on_group_by_grants(&api("acmeish/*"), "acme"), None);
    assert_eq!(on_group_by_grants(&api("7"), "acme"), None);
    // Only personal `api` tokens act with their role on a group.
    let maintainer = token(Kind::Personal, &[Scope::Api], Some(("acme/*", Maintainer)));
    assert_eq!(on_group_by_grants(&maintainer, "acme"), Some(Maintain));
    let read_only = token(Kind::Personal, &[Scope::ReadApi], Some(("acme/*", Owner)));
    assert_eq!(on_group_by_grants(&read_only, "acme"), Some(See));
    let deploy = token(
        Kind::Deploy,
        &[Scope::WritePackageRegistry],
        Some(("acme/*", Owner)),
    );
    assert_eq!(on_group_by_grants(&deploy, "acme"), Some(See));
    assert_eq!(
        on_group_by_grants(&admin(Kind::Personal), "x/y"),
        Some(Administer)
    );
    assert_eq!(on_group_by_grants(&Actor::Anonymous, "acme"), None);
}

#[test]
fn readers_also_see_a_group_through_a_project_in_it() {
    let stranger = token(
        Kind::Personal,
        &[Scope::Api],
        Some(("other/*", Role::Owner)),
    );
    let sees = || Ok(true);
    assert_eq!(on_group(&stranger, "acme", See, sees).unwrap(), Some(See));
    assert_eq!(
        on_group(&stranger, "acme", Download, sees).unwrap(),
        Some(See)
    );
    assert_eq!(
        on_group(&stranger, "acme", See, || Ok(false)).unwrap(),
        None
    );
    // Grants decide without reading the project index, and managing a
    // group needs one.
    let unread = || -> ApiResult<bool> { panic!("the index was read") };
    let owner = token(Kind::Personal, &[Scope::Api], Some(("acme/*", Role::Owner)));
    assert_eq!(on_group(&owner, "acme", See, unread).unwrap(), Some(Own));
    assert_eq!(on_group(&stranger, "acme", Own, unread).unwrap(), None);
}

#[test]
fn instance_rights_are_for_administrators() {
    assert_eq!(on_instance(&Actor::Anonymous), None);
    assert_eq!(on_instance(&admin(Kind::Personal)), Some(Administer));
    assert_eq!(
        on_instance(&token(Kind::Personal, &[Scope::ReadApi], None)),
        Some(Download)
    );
    assert_eq!(on_instance(&token(Kind::Deploy, &[], None)), Some(See));
    assert_eq!(on_instance(&token(Kind::Job, &[], None)), Some(See));
}

#[test]
fn issued_tokens_never_carry_more_than_their_issuer() {
    assert!(may_grant(Maintain, Role::Maintainer));
    assert!(may_grant(Maintain, Role::Guest));
    assert!(!may_grant(Maintain, Role::Owner));
    assert!(may_grant(Own, Role::Owner));
    assert!(may_grant(Administer, Role::Owner));
}

#[test]
fn protection_looks_at_the_role_the_caller_acts_with() {
    use MinimumAccess as M;
    let private = project(Visibility::Private);
    let maintainer = token(Kind::Personal, &[Scope::Api], Some((ON, Role::Maintainer)));
    assert!(passes_protection(&maintainer, &private, M::Maintainer));
    assert!(!passes_protection(&maintainer, &private, M::Owner));
    let owner = token(Kind::Personal, &[Scope::ReadApi], Some((ON, Role::Owner)));
    assert!(passes_protection(&owner, &private, M::Owner));
    assert!(!passes_protection(&owner, &private, M::Admin));
    let job = token(Kind::Job, &[], Some(("7", Role::Developer)));
    assert!(!passes_protection(&job, &private, M::Maintainer));
    let senior_job = token(Kind::Job, &[], Some(("7", Role::Maintainer)));
    assert!(passes_protection(&senior_job, &private, M::Maintainer));
    let deploy = token(
        Kind::Deploy,
        &[Scope::WritePackageRegistry],
        Some((ON, Role::Owner)),
    );
    assert!(!passes_protection(&deploy, &private, M::Maintainer));
    assert!(!passes_protection(
        &Actor::Anonymous,
        &private,
        M::Maintainer
    ));
    assert!(passes_protection(
        &admin(Kind::Personal),
        &private,
        M::Admin
    ));
}

#[test]
fn only_api_personal_tokens_see_themselves_as_users() {
    assert_eq!(current_user(&Actor::Anonymous).unwrap_err().status(), 401);
    assert_eq!(
        current_user(&token(Kind::Deploy, &[Scope::ReadPackageRegistry], None))
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        current_user(&token(Kind::Personal, &[Scope::ReadPackageRegistry], None))
            .unwrap_err()
            .status(),
        403
    );
    assert!(current_user(&token(Kind::Personal, &[Scope::ReadApi], None)).is_ok());
    assert!(current_user(&admin(Kind::Personal)).is_ok());
}
