//! Tokens of every kind for the test registry, minted with the token crate
//! from the test secret, and the header each one travels in.

use genreg_token::{Claims, Grant, Kind, Role, Scope};

use super::registry::{TestRegistry, NOW};

/// The `token_secret` of every test registry.
pub const TEST_SECRET: &str = "test-token-secret";

/// A credential as a client sends it: a token in a header, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `None`: an anonymous request.
    pub header: Option<&'static str>,
    pub token: String,
}

impl Credential {
    pub fn anonymous() -> Credential {
        Credential {
            header: None,
            token: String::new(),
        }
    }

    /// `PRIVATE-TOKEN: <token>`.
    pub fn private(token: String) -> Credential {
        Credential {
            header: Some("PRIVATE-TOKEN"),
            token,
        }
    }

    /// `Deploy-Token: <token>`.
    pub fn deploy(token: String) -> Credential {
        Credential {
            header: Some("Deploy-Token"),
            token,
        }
    }

    /// `JOB-TOKEN: <token>`.
    pub fn job(token: String) -> Credential {
        Credential {
            header: Some("JOB-TOKEN"),
            token,
        }
    }

    /// A token issued by the API travels in the header of its kind.
    pub fn for_token(token: String) -> Credential {
        match Kind::ALL
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
        {
            Some(Kind::Deploy) => Credential::deploy(token),
            Some(Kind::Job) => Credential::job(token),
            _ => Credential::private(token),
        }
    }

    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        match self.header {
            Some(name) => vec![(name, self.token.as_str())],
            None => Vec::new(),
        }
    }
}

/// What a token should say; the id, subject and issue time are filled in.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub kind: Kind,
    pub scopes: Vec<Scope>,
    /// Project selectors (`acme/tools`, `acme/*`, an id) and the role on them.
    pub grants: Vec<(String, Role)>,
    pub admin: bool,
    pub expires_at: Option<u64>,
}

/// A personal access token with `scopes` and `role` on `project`.
pub fn personal(scopes: &[Scope], project: &str, role: Role) -> TokenSpec {
    TokenSpec {
        kind: Kind::Personal,
        scopes: scopes.to_vec(),
        grants: vec![(project.to_string(), role)],
        admin: false,
        expires_at: None,
    }
}

/// A deploy token with `scopes` on `project`.
pub fn deploy(scopes: &[Scope], project: &str) -> TokenSpec {
    TokenSpec {
        kind: Kind::Deploy,
        scopes: scopes.to_vec(),
        grants: vec![(project.to_string(), Role::Developer)],
        admin: false,
        expires_at: None,
    }
}

/// A CI job token bound to `project`.
pub fn job(project: &str) -> TokenSpec {
    TokenSpec {
        kind: Kind::Job,
        scopes: vec![],
        grants: vec![(project.to_string(), Role::Developer)],
        admin: false,
        expires_at: None,
    }
}

/// An administrator's personal token, as `genreg up` prints one.
pub fn administrator() -> TokenSpec {
    TokenSpec {
        kind: Kind::Personal,
        scopes: vec![Scope::Api],
        grants: vec![],
        admin: true,
        expires_at: None,
    }
}

/// Already expired when the registry's clock reads it.
pub fn expired(mut spec: TokenSpec) -> TokenSpec {
    spec.expires_at = Some(NOW - 1);
    spec
}

impl TestRegistry {
    /// Mints `spec` with the registry's secret.
    pub fn token(&self, spec: TokenSpec) -> String {
        self.token_with_secret(spec, TEST_SECRET)
    }

    /// Mints `spec` with another secret (a forged token, or a rotated one).
    pub fn token_with_secret(&self, spec: TokenSpec, secret: &str) -> String {
        let claims = Claims {
            id: format!("test-{}", hex::encode(self.next_random())),
            kind: spec.kind,
            subject: "tester".into(),
            scopes: spec.scopes,
            grants: spec
                .grants
                .into_iter()
                .map(|(project, role)| Grant { project, role })
                .collect(),
            admin: spec.admin,
            issued_at: NOW,
            expires_at: spec.expires_at,
        };
        genreg_token::Secrets::parse(secret)
            .expect("a test secret is not empty")
            .sign(&claims)
    }

    /// The administrator's credential.
    pub fn admin(&self) -> Credential {
        Credential::private(self.token(administrator()))
    }
}
