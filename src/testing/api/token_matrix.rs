//! The token permission matrix, table-driven, on one registry: every issuer
//! tries to issue every kind of token (`ISSUE`); every token that was issued
//! publishes, downloads and administers (`USE`), is revoked by its issuer
//! and then answers 401; expired and forged tokens answer 401 everywhere
//! (`REFUSED`).
//!
//! Issuers: personal tokens (scope `api`) with a role on the project
//! (`acme/tools`) for the project's tokens and on its group (`acme/*`) for
//! the group's, the administrator, a deploy token and a job token.

use genreg_token::{Kind, Role, Scope};
use serde_json::{json, Value};

use crate::http::Method;
use crate::testing::{
    administrator, deploy, expired, job, personal, Credential, TestRegistry, TokenSpec,
};

/// Who asks for a token.
#[derive(Debug, Clone, Copy)]
enum Issuer {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
    Admin,
    DeployToken,
    JobToken,
}

/// The token asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// `POST /projects/:id/access_tokens` with this `access_level`.
    ProjectAccess(u8),
    /// `POST /groups/:id/access_tokens`, `access_level` 40.
    GroupAccess,
    /// `POST /projects/:id/deploy_tokens`, `read_package_registry`.
    ProjectDeployRead,
    /// `POST /projects/:id/deploy_tokens`, `write_package_registry`.
    ProjectDeployWrite,
    /// `POST /groups/:id/deploy_tokens`, `write_package_registry`.
    GroupDeploy,
    /// `POST /projects/:id/job_tokens`.
    Job,
}

use Asked::*;
use Issuer::*;

const KINDS: [Asked; 10] = [
    ProjectAccess(10),
    ProjectAccess(20),
    ProjectAccess(30),
    ProjectAccess(40),
    ProjectAccess(50),
    GroupAccess,
    ProjectDeployRead,
    ProjectDeployWrite,
    GroupDeploy,
    Job,
];

/// Issuing: the status of `POST` for each issuer (rows) and kind (columns,
/// in the order of `KINDS`). Maintainers issue project tokens up to their
/// own level (above it: 400), owners group tokens too, administrators
/// everything; deploy and job tokens, and roles below maintainer, nothing.
#[rustfmt::skip]
const ISSUE: [(Issuer, [u16; 10]); 8] = [
    //              PAT10 PAT20 PAT30 PAT40 PAT50  GAT  PDTr PDTw  GDT  job
    (Guest,        [403,  403,  403,  403,  403,  403,  403, 403,  403, 403]),
    (Reporter,     [403,  403,  403,  403,  403,  403,  403, 403,  403, 403]),
    (Developer,    [403,  403,  403,  403,  403,  403,  403, 403,  403, 403]),
    (Maintainer,   [201,  201,  201,  201,  400,  403,  201, 201,  403, 201]),
    (Owner,        [201,  201,  201,  201,  201,  201,  201, 201,  201, 201]),
    (Admin,        [201,  201,  201,  201,  201,  201,  201, 201,  201, 201]),
    (DeployToken,  [403,  403,  403,  403,  403,  403,  403, 403,  403, 403]),
    (JobToken,     [403,  403,  403,  403,  403,  403,  403, 403,  403, 403]),
];

/// Using: what every issued token of a kind answers, whoever issued it:
/// publish (`PUT` generic file), download, administer (create a project
/// access token; `PUT /projects/:id` visibility), then its issuer's revoke
/// (`DELETE`, `None` for job tokens, which are not recorded), after which
/// all three answer 401.
#[rustfmt::skip]
const USE: [(Asked, [u16; 4], Option<u16>); 10] = [
    //                     publish download new-PAT visibility   revoke
    (ProjectAccess(10),   [403,    200,     403,    403],       Some(204)),
    (ProjectAccess(20),   [403,    200,     403,    403],       Some(204)),
    (ProjectAccess(30),   [201,    200,     403,    403],       Some(204)),
    (ProjectAccess(40),   [201,    200,     201,    200],       Some(204)),
    (ProjectAccess(50),   [201,    200,     201,    200],       Some(204)),
    (GroupAccess,         [201,    200,     201,    200],       Some(204)),
    (ProjectDeployRead,   [403,    200,     403,    403],       Some(204)),
    (ProjectDeployWrite,  [201,    200,     403,    403],       Some(204)),
    (GroupDeploy,         [201,    200,     403,    403],       Some(204)),
    (Job,                 [201,    200,     403,    403],       None),
];

struct Matrix {
    r: TestRegistry,
    project: u64,
    failures: Vec<String>,
}

impl Matrix {
    fn call(
        &self,
        method: Method,
        path: &str,
        who: &Credential,
        body: Option<Value>,
    ) -> (u16, Value) {
        let reply = self.r.call(method, path, who, body);
        (reply.status, reply.json())
    }

    fn expect(&mut self, what: String, expected: u16, got: u16) {
        if expected != got {
            self.failures
                .push(format!("{what}: expected {expected}, got {got}"));
        }
    }

    fn file(&self) -> String {
        self.r.generic(self.project, "matrix/1.0/file.bin")
    }

    /// The issuer's credential for a kind: a project grant for the
    /// project's tokens, a group grant for the group's.
    fn issuer(&self, issuer: Issuer, asked: Asked) -> Credential {
        let on = match asked {
            GroupAccess | GroupDeploy => "acme/*",
            _ => "acme/tools",
        };
        let role = match issuer {
            Guest => Role::Guest,
            Reporter => Role::Reporter,
            Developer => Role::Developer,
            Maintainer => Role::Maintainer,
            Owner => Role::Owner,
            Admin => return self.r.admin(),
            DeployToken => {
                return Credential::deploy(
                    self.r
                        .token(deploy(&[Scope::WritePackageRegistry], "acme/*")),
                )
            }
            JobToken => return Credential::job(self.r.token(job("acme/tools"))),
        };
        Credential::private(self.r.token(personal(&[Scope::Api], on, role)))
    }

    /// The endpoint and body that issue a kind.
    fn issuing(&self, asked: Asked) -> (String, Value) {
        let p = self.project;
        match asked {
            ProjectAccess(level) => (
                format!("/api/v4/projects/{p}/access_tokens"),
                json!({"name": "m", "scopes": ["api"], "access_level": level}),
            ),
            GroupAccess => (
                "/api/v4/groups/acme/access_tokens".into(),
                json!({"name": "m", "scopes": ["api"], "access_level": 40}),
            ),
            ProjectDeployRead => (
                format!("/api/v4/projects/{p}/deploy_tokens"),
                json!({"name": "m", "scopes": ["read_package_registry"]}),
            ),
            ProjectDeployWrite => (
                format!("/api/v4/projects/{p}/deploy_tokens"),
                json!({"name": "m", "scopes": ["write_package_registry"]}),
            ),
            GroupDeploy => (
                "/api/v4/groups/acme/deploy_tokens".into(),
                json!({"name": "m", "scopes": ["write_package_registry"]}),
            ),
            Job => (
                format!("/api/v4/projects/{p}/job_tokens"),
                json!({"expires_in": 600}),
            ),
        }
    }

    /// Publish, download, create a project access token, set the
    /// visibility: the four statuses.
    fn actions(&self, who: &Credential) -> [u16; 4] {
        let publish = self.r.put_bytes(&self.file(), who, b"matrix").status;
        let download = self.call(Method::Get, &self.file(), who, None).0;
        let p = self.project;
        let new_token = self
            .call(
                Method::Post,
                &format!("/api/v4/projects/{p}/access_tokens"),
                who,
                Some(json!({"name": "sub", "scopes": ["api"], "access_level": 10})),
            )
            .0;
        let visibility = self
            .call(
                Method::Put,
                &format!("/api/v4/projects/{p}"),
                who,
                Some(json!({"visibility": "private"})),
            )
            .0;
        [publish, download, new_token, visibility]
    }
}

const ACTIONS: [&str; 4] = [
    "publish",
    "download",
    "create a project access token",
    "PUT visibility",
];

#[test]
fn every_issuer_every_token_kind_every_action() {
    let r = TestRegistry::default();
    let project = r.create_project("acme", "tools", "private");
    let mut m = Matrix {
        r,
        project,
        failures: Vec::new(),
    };
    let admin = m.r.admin();
    let published = m.r.put_bytes(&m.file(), &admin, b"x");
    assert_eq!(published.status, 201, "the file to download");

    for (issuer, row) in ISSUE {
        for (asked, expected) in KINDS.into_iter().zip(row) {
            let who = m.issuer(issuer, asked);
            let (path, body) = m.issuing(asked);
            let (status, created) = m.call(Method::Post, &path, &who, Some(body));
            m.expect(format!("{issuer:?} issues {asked:?}"), expected, status);
            if status != 201 {
                continue;
            }
            let (uses, revoke) = USE
                .iter()
                .find(|(kind, ..)| *kind == asked)
                .map(|(_, uses, revoke)| (*uses, *revoke))
                .unwrap();
            let issued = Credential::for_token(created["token"].as_str().unwrap().to_string());
            let expected_header = match asked {
                ProjectDeployRead | ProjectDeployWrite | GroupDeploy => "Deploy-Token",
                Job => "JOB-TOKEN",
                _ => "PRIVATE-TOKEN",
            };
            assert_eq!(issued.header, Some(expected_header), "{asked:?}");
            let got = m.actions(&issued);
            for ((action, expected), got) in ACTIONS.iter().zip(uses).zip(got) {
                m.expect(
                    format!("{asked:?} from {issuer:?}: {action}"),
                    expected,
                    got,
                );
            }
            let Some(expected) = revoke else { continue };
            let revoke_path = format!("{path}/{}", created["id"]);
            let (status, _) = m.call(Method::Delete, &revoke_path, &who, None);
            m.expect(format!("{issuer:?} revokes {asked:?}"), expected, status);
            let got = m.actions(&issued);
            for (action, got) in ACTIONS.iter().zip(got) {
                m.expect(
                    format!("revoked {asked:?} from {issuer:?}: {action}"),
                    401,
                    got,
                );
            }
        }
    }

    // Expired and forged tokens of every kind: 401 for everything.
    let maintainer = || personal(&[Scope::Api], "acme/*", Role::Maintainer);
    let writer = || deploy(&[Scope::WritePackageRegistry], "acme/*");
    let forged = |spec: TokenSpec| m.r.token_with_secret(spec, "not-the-secret");
    #[rustfmt::skip]
    let refused = [
        ("expired maintainer",     Kind::Personal, m.r.token(expired(maintainer()))),
        ("expired administrator",  Kind::Personal, m.r.token(expired(administrator()))),
        ("expired deploy token",   Kind::Deploy,   m.r.token(expired(writer()))),
        ("expired job token",      Kind::Job,      m.r.token(expired(job("acme/tools")))),
        ("forged maintainer",      Kind::Personal, forged(maintainer())),
        ("forged administrator",   Kind::Personal, forged(administrator())),
        ("forged deploy token",    Kind::Deploy,   forged(writer())),
        ("forged job token",       Kind::Job,      forged(job("acme/tools"))),
    ];
    for (what, kind, token) in refused {
        assert!(token.starts_with(kind.prefix()), "{what}");
        let got = m.actions(&Credential::for_token(token));
        for (action, got) in ACTIONS.iter().zip(got) {
            m.expect(format!("{what}: {action}"), 401, got);
        }
    }

    // Nothing above changed the project's visibility or its file.
    let path = format!("/api/v4/projects/{}", m.project);
    let (_, shown) = m.call(Method::Get, &path, &admin, None);
    assert_eq!(shown["visibility"], "private");
    assert!(
        m.failures.is_empty(),
        "{} cells of the matrix differ:\n{}",
        m.failures.len(),
        m.failures.join("\n")
    );
}
