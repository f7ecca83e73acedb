//! The permission matrix: every endpoint the router knows × every kind of
//! caller, on a private and on a public project, and the status GitLab's
//! rules give. One table per visibility; a row per endpoint, a column per
//! caller. Every cell runs on the same prepared stores (restored before each
//! request), so a cell's answer depends on nothing but its row and column.
//!
//! The project is `acme/tools`; personal tokens hold their role on `acme/*`
//! (the project and its group); "none" holds its role on another group.
//! Project and group access tokens are issued at maintainer level (40),
//! deploy and job tokens through the API by the administrator.
//!
//! GraphQL answers 200 even when it refuses; the table writes a refused
//! mutation as 403.

use genreg_token::{Role, Scope};
use serde_json::{json, Value};

use crate::http::Method;
use crate::testing::{expired, personal, Credential, TestRegistry};

/// Who calls: the columns of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// A token that is not one (`glpat-` followed by garbage).
    Malformed,
    /// A maintainer's personal token, expired.
    Expired,
    /// Scope `api`, maintainer on another group only.
    NoRole,
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
    /// Scope `read_api`, maintainer.
    ReadApi,
    /// Scope `read_package_registry`, maintainer.
    ReadRegistry,
    /// Scope `write_package_registry`, maintainer.
    WriteRegistry,
    /// A project access token, `api`, maintainer level.
    ProjectAccess,
    /// A group access token on `acme`, `api`, maintainer level.
    GroupAccess,
    /// A project deploy token, `read_package_registry`.
    DeployRead,
    /// A project deploy token, `write_package_registry`.
    DeployWrite,
    /// A CI job token of the project.
    Job,
    Admin,
}

use Caller::*;

const CALLERS: [Caller; 18] = [
    Anonymous,
    Malformed,
    Expired,
    NoRole,
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
    ReadApi,
    ReadRegistry,
    WriteRegistry,
    ProjectAccess,
    GroupAccess,
    DeployRead,
    DeployWrite,
    Job,
    Admin,
];

/// What is asked: the rows of the tables, one per route and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    GraphQlUpdateSettings,
    CreateProject,
    ListProjects,
    GetProject,
    UpdateProject,
    DeleteProject,
    GetGroup,
    GroupProjects,
    CreateProjectAccessToken,
    ListProjectAccessTokens,
    GetProjectAccessToken,
    RevokeProjectAccessToken,
    CreateGroupAccessToken,
    ListGroupAccessTokens,
    GetGroupAccessToken,
    RevokeGroupAccessToken,
    CreateProjectDeployToken,
    ListProjectDeployTokens,
    GetProjectDeployToken,
    RevokeProjectDeployToken,
    CreateGroupDeployToken,
    ListGroupDeployTokens,
    GetGroupDeployToken,
    RevokeGroupDeployToken,
    CreateJobToken,
    CreateUser,
    GetUser,
    CurrentUser,
    CreatePersonalToken,
    ListPersonalTokens,
    GetPersonalToken,
    RevokePersonalToken,
    Publish,
    Download,
    DownloadHead,
    ListPackages,
    ListGroupPackages,
    GetGroupSettings,
    PutGroupSettings,
    GetCleanupPolicy,
    PutCleanupPolicy,
    ListProtectionRules,
    CreateProtectionRule,
    UpdateProtectionRule,
    DeleteProtectionRule,
    GetPackage,
    DeletePackage,
    ListPackageFiles,
    DeletePackageFile,
    DownloadPackageFile,
    DownloadPackageFileHead,
}

use Endpoint::*;

type Row = (Endpoint, [u16; 18]);

/// A private project. Anonymous callers get 401, or 404 where GitLab hides
/// the project or group (showing it, its group, the group's packages and
/// settings); broken and expired tokens 401 everywhere but the health
/// check; tokens without a role 404. Guests, reporters, read-only scopes
/// and read deploy tokens download but do not publish (403); developers,
/// write deploy tokens and job tokens publish. Maintainers, and access
/// tokens at maintainer level, administer the project (its tokens,
/// protection rules, cleanup policy, packages); owners the group too (its
/// tokens, duplicate settings). Tokens bound to the project alone (project
/// access, deploy, job) do not see the group: 404. Deleting projects,
/// users and personal access tokens is for administrators.
#[rustfmt::skip]
const PRIVATE: [Row; 52] = [
    //                          anon bad  exp  none gst  rep  dev  mnt  own  rapi rpkg wpkg PAT  GAT  dtr  dtw  job  adm
    (Health,                   [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GraphQlUpdateSettings,    [403, 401, 401, 403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (CreateProject,            [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201]),
    (ListProjects,             [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GetProject,               [404, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (UpdateProject,            [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (DeleteProject,            [401, 401, 401, 404, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 202]),
    (GetGroup,                 [404, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GroupProjects,            [404, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (CreateProjectAccessToken, [401, 401, 401, 404, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (ListProjectAccessTokens,  [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (GetProjectAccessToken,    [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (RevokeProjectAccessToken, [401, 401, 401, 404, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (CreateGroupAccessToken,   [401, 401, 401, 404, 403, 403, 403, 403, 201, 403, 403, 403, 404, 403, 404, 404, 404, 201]),
    (ListGroupAccessTokens,    [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (GetGroupAccessToken,      [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (RevokeGroupAccessToken,   [401, 401, 401, 404, 403, 403, 403, 403, 204, 403, 403, 403, 404, 403, 404, 404, 404, 204]),
    (CreateProjectDeployToken, [401, 401, 401, 404, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (ListProjectDeployTokens,  [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (GetProjectDeployToken,    [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (RevokeProjectDeployToken, [401, 401, 401, 404, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (CreateGroupDeployToken,   [401, 401, 401, 404, 403, 403, 403, 403, 201, 403, 403, 403, 404, 403, 404, 404, 404, 201]),
    (ListGroupDeployTokens,    [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (GetGroupDeployToken,      [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (RevokeGroupDeployToken,   [401, 401, 401, 404, 403, 403, 403, 403, 204, 403, 403, 403, 404, 403, 404, 404, 404, 204]),
    (CreateJobToken,           [401, 401, 401, 404, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (CreateUser,               [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201]),
    (GetUser,                  [401, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403, 403, 403, 200]),
    (CurrentUser,              [401, 401, 401, 200, 200, 200, 200, 200, 200, 200, 403, 403, 200, 200, 401, 401, 401, 200]),
    (CreatePersonalToken,      [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201]),
    (ListPersonalTokens,       [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (GetPersonalToken,         [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (RevokePersonalToken,      [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 204]),
    (Publish,                  [401, 401, 401, 404, 403, 403, 201, 201, 201, 403, 403, 403, 201, 201, 403, 201, 201, 201]),
    (Download,                 [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DownloadHead,             [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (ListPackages,             [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (ListGroupPackages,        [404, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GetGroupSettings,         [404, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (PutGroupSettings,         [401, 401, 401, 403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (GetCleanupPolicy,         [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (PutCleanupPolicy,         [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (ListProtectionRules,      [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (CreateProtectionRule,     [401, 401, 401, 404, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (UpdateProtectionRule,     [401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (DeleteProtectionRule,     [401, 401, 401, 404, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (GetPackage,               [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DeletePackage,            [401, 401, 401, 404, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (ListPackageFiles,         [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DeletePackageFile,        [401, 401, 401, 404, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (DownloadPackageFile,      [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DownloadPackageFileHead,  [401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
];

/// A public project: anyone sees it and downloads from it, so callers
/// without a role get 403 instead of 404 for what they may not do, and
/// anonymous callers 403 for the project's own settings and packages (401
/// for its tokens and for publishing). The rest is as on a private project.
#[rustfmt::skip]
const PUBLIC: [Row; 52] = [
    //                          anon bad  exp  none gst  rep  dev  mnt  own  rapi rpkg wpkg PAT  GAT  dtr  dtw  job  adm
    (Health,                   [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GraphQlUpdateSettings,    [403, 401, 401, 403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (CreateProject,            [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201]),
    (ListProjects,             [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GetProject,               [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (UpdateProject,            [403, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (DeleteProject,            [403, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 202]),
    (GetGroup,                 [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GroupProjects,            [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (CreateProjectAccessToken, [401, 401, 401, 403, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (ListProjectAccessTokens,  [401, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (GetProjectAccessToken,    [401, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (RevokeProjectAccessToken, [401, 401, 401, 403, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (CreateGroupAccessToken,   [401, 401, 401, 404, 403, 403, 403, 403, 201, 403, 403, 403, 404, 403, 404, 404, 404, 201]),
    (ListGroupAccessTokens,    [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (GetGroupAccessToken,      [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (RevokeGroupAccessToken,   [401, 401, 401, 404, 403, 403, 403, 403, 204, 403, 403, 403, 404, 403, 404, 404, 404, 204]),
    (CreateProjectDeployToken, [401, 401, 401, 403, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (ListProjectDeployTokens,  [401, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (GetProjectDeployToken,    [401, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (RevokeProjectDeployToken, [401, 401, 401, 403, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (CreateGroupDeployToken,   [401, 401, 401, 404, 403, 403, 403, 403, 201, 403, 403, 403, 404, 403, 404, 404, 404, 201]),
    (ListGroupDeployTokens,    [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (GetGroupDeployToken,      [401, 401, 401, 404, 403, 403, 403, 403, 200, 403, 403, 403, 404, 403, 404, 404, 404, 200]),
    (RevokeGroupDeployToken,   [401, 401, 401, 404, 403, 403, 403, 403, 204, 403, 403, 403, 404, 403, 404, 404, 404, 204]),
    (CreateJobToken,           [401, 401, 401, 403, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (CreateUser,               [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201]),
    (GetUser,                  [401, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403, 403, 403, 200]),
    (CurrentUser,              [401, 401, 401, 200, 200, 200, 200, 200, 200, 200, 403, 403, 200, 200, 401, 401, 401, 200]),
    (CreatePersonalToken,      [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201]),
    (ListPersonalTokens,       [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (GetPersonalToken,         [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (RevokePersonalToken,      [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 204]),
    (Publish,                  [401, 401, 401, 403, 403, 403, 201, 201, 201, 403, 403, 403, 201, 201, 403, 201, 201, 201]),
    (Download,                 [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DownloadHead,             [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (ListPackages,             [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (ListGroupPackages,        [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (GetGroupSettings,         [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (PutGroupSettings,         [401, 401, 401, 403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (GetCleanupPolicy,         [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (PutCleanupPolicy,         [403, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (ListProtectionRules,      [403, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (CreateProtectionRule,     [403, 401, 401, 403, 403, 403, 403, 201, 201, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    (UpdateProtectionRule,     [403, 401, 401, 403, 403, 403, 403, 200, 200, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    (DeleteProtectionRule,     [403, 401, 401, 403, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (GetPackage,               [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DeletePackage,            [403, 401, 401, 403, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (ListPackageFiles,         [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DeletePackageFile,        [403, 401, 401, 403, 403, 403, 403, 204, 204, 403, 403, 403, 204, 204, 403, 403, 403, 204]),
    (DownloadPackageFile,      [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (DownloadPackageFileHead,  [200, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
];

/// The prepared registry: one project with one published file, one
/// protection rule, one token of every issued kind and one user.
struct Fixture {
    registry: TestRegistry,
    visibility: &'static str,
    project: u64,
    package: u64,
    file: u64,
    rule: u64,
    project_access_token: u64,
    group_access_token: u64,
    project_deploy_token: u64,
    group_deploy_token: u64,
    user: u64,
    personal_token: u64,
    callers: Vec<(Caller, Credential)>,
}

/// An issued token: its id and its text.
fn issue(registry: &TestRegistry, path: &str, body: Value) -> (u64, String) {
    let reply = registry.call(Method::Post, path, &registry.admin(), Some(body));
    assert_eq!(reply.status, 201, "{path}: {:?}", reply.json());
    let json = reply.json();
    (
        json["id"].as_u64().unwrap_or(0),
        json["token"].as_str().unwrap_or_default().to_string(),
    )
}

fn created_id(registry: &TestRegistry, path: &str, body: Value) -> u64 {
    issue(registry, path, body).0
}

impl Fixture {
    fn new(visibility: &'static str) -> Fixture {
        let registry = TestRegistry::default();
        let admin = registry.admin();
        let project = registry.create_project("acme", "tools", visibility);
        let p = format!("/api/v4/projects/{project}");
        let published = registry.put_bytes(
            &format!("{p}/packages/generic/matrix/1.0/file.bin"),
            &admin,
            b"matrix",
        );
        assert_eq!(published.status, 201);
        let packages = registry.call(Method::Get, &format!("{p}/packages"), &admin, None);
        let package = packages.json()[0]["id"].as_u64().expect("a package");
        let files = registry.call(
            Method::Get,
            &format!("{p}/packages/{package}/package_files"),
            &admin,
            None,
        );
        let file = files.json()[0]["id"].as_u64().expect("a file");
        let rule = created_id(
            &registry,
            &format!("{p}/packages/protection/rules"),
            json!({"package_name_pattern": "protected-*", "package_type": "generic",
                   "minimum_access_level_for_push": "maintainer"}),
        );
        let maintainer_level = json!({"name": "m", "scopes": ["api"], "access_level": 40});
        let (project_access_token, pat) = issue(
            &registry,
            &format!("{p}/access_tokens"),
            maintainer_level.clone(),
        );
        let (group_access_token, gat) = issue(
            &registry,
            "/api/v4/groups/acme/access_tokens",
            maintainer_level,
        );
        let (_, deploy_read) = issue(
            &registry,
            &format!("{p}/deploy_tokens"),
            json!({"name": "r", "scopes": ["read_package_registry"]}),
        );
        let (project_deploy_token, deploy_write) = issue(
            &registry,
            &format!("{p}/deploy_tokens"),
            json!({"name": "w", "scopes": ["write_package_registry"]}),
        );
        let group_deploy_token = created_id(
            &registry,
            "/api/v4/groups/acme/deploy_tokens",
            json!({"name": "g", "scopes": ["write_package_registry"]}),
        );
        let (_, job) = issue(
            &registry,
            &format!("{p}/job_tokens"),
            json!({"expires_in": 600}),
        );
        let user = created_id(&registry, "/api/v4/users", json!({"username": "alice"}));
        let personal_token = created_id(
            &registry,
            &format!("/api/v4/users/{user}/personal_access_tokens"),
            json!({"name": "a", "scopes": ["api"]}),
        );

        let role = |scope: Scope, on: &str, role: Role| {
            Credential::private(registry.token(personal(&[scope], on, role)))
        };
        let callers = vec![
            (Anonymous, Credential::anonymous()),
            (Malformed, Credential::private("glpat-not.a-token".into())),
            (
                Expired,
                Credential::private(registry.token(expired(personal(
                    &[Scope::Api],
                    "acme/*",
                    Role::Maintainer,
                )))),
            ),
            (NoRole, role(Scope::Api, "other/*", Role::Maintainer)),
            (Guest, role(Scope::Api, "acme/*", Role::Guest)),
            (Reporter, role(Scope::Api, "acme/*", Role::Reporter)),
            (Developer, role(Scope::Api, "acme/*", Role::Developer)),
            (Maintainer, role(Scope::Api, "acme/*", Role::Maintainer)),
            (Owner, role(Scope::Api, "acme/*", Role::Owner)),
            (ReadApi, role(Scope::ReadApi, "acme/*", Role::Maintainer)),
            (
                ReadRegistry,
                role(Scope::ReadPackageRegistry, "acme/*", Role::Maintainer),
            ),
            (
                WriteRegistry,
                role(Scope::WritePackageRegistry, "acme/*", Role::Maintainer),
            ),
            (ProjectAccess, Credential::for_token(pat)),
            (GroupAccess, Credential::for_token(gat)),
            (DeployRead, Credential::for_token(deploy_read)),
            (DeployWrite, Credential::for_token(deploy_write)),
            (Job, Credential::for_token(job)),
            (Admin, admin),
        ];
        Fixture {
            registry,
            visibility,
            project,
            package,
            file,
            rule,
            project_access_token,
            group_access_token,
            project_deploy_token,
            group_deploy_token,
            user,
            personal_token,
            callers,
        }
    }

    /// The request for `endpoint`: method, path and JSON body.
    fn request(&self, endpoint: Endpoint) -> (Method, String, Option<Value>) {
        let p = format!("/api/v4/projects/{}", self.project);
        let g = "/api/v4/groups/acme";
        let pkg = format!("{p}/packages/{}", self.package);
        let file = format!("{pkg}/package_files/{}", self.file);
        let generic = format!("{p}/packages/generic/matrix/1.0");
        let rules = format!("{p}/packages/protection/rules");
        let new_token = json!({"name": "n", "scopes": ["api"], "access_level": 10});
        let new_deploy = json!({"name": "n", "scopes": ["read_package_registry"]});
        let (method, path, body) = match endpoint {
            Health => (Method::Get, "/-/health".into(), None),
            GraphQlUpdateSettings => (
                Method::Post,
                "/api/graphql".into(),
                Some(json!({
                    "query": "mutation($input: UpdateNamespacePackageSettingsInput!) { \
                              updateNamespacePackageSettings(input: $input) { errors } }",
                    "variables": {"input": {"namespacePath": "acme",
                                            "genericDuplicatesAllowed": false}},
                })),
            ),
            CreateProject => (
                Method::Post,
                "/api/v4/projects".into(),
                Some(json!({"path": "new", "namespace_path": "acme"})),
            ),
            ListProjects => (Method::Get, "/api/v4/projects".into(), None),
            GetProject => (Method::Get, p.clone(), None),
            UpdateProject => (
                Method::Put,
                p.clone(),
                Some(json!({"visibility": self.visibility})),
            ),
            DeleteProject => (Method::Delete, p.clone(), None),
            GetGroup => (Method::Get, g.into(), None),
            GroupProjects => (Method::Get, format!("{g}/projects"), None),
            CreateProjectAccessToken => {
                (Method::Post, format!("{p}/access_tokens"), Some(new_token))
            }
            ListProjectAccessTokens => (Method::Get, format!("{p}/access_tokens"), None),
            GetProjectAccessToken => (
                Method::Get,
                format!("{p}/access_tokens/{}", self.project_access_token),
                None,
            ),
            RevokeProjectAccessToken => (
                Method::Delete,
                format!("{p}/access_tokens/{}", self.project_access_token),
                None,
            ),
            CreateGroupAccessToken => (Method::Post, format!("{g}/access_tokens"), Some(new_token)),
            ListGroupAccessTokens => (Method::Get, format!("{g}/access_tokens"), None),
            GetGroupAccessToken => (
                Method::Get,
                format!("{g}/access_tokens/{}", self.group_access_token),
                None,
            ),
            RevokeGroupAccessToken => (
                Method::Delete,
                format!("{g}/access_tokens/{}", self.group_access_token),
                None,
            ),
            CreateProjectDeployToken => {
                (Method::Post, format!("{p}/deploy_tokens"), Some(new_deploy))
            }
            ListProjectDeployTokens => (Method::Get, format!("{p}/deploy_tokens"), None),
            GetProjectDeployToken => (
                Method::Get,
                format!("{p}/deploy_tokens/{}", self.project_deploy_token),
                None,
            ),
            RevokeProjectDeployToken => (
                Method::Delete,
                format!("{p}/deploy_tokens/{}", self.project_deploy_token),
                None,
            ),
            CreateGroupDeployToken => {
                (Method::Post, format!("{g}/deploy_tokens"), Some(new_deploy))
            }
            ListGroupDeployTokens => (Method::Get, format!("{g}/deploy_tokens"), None),
            GetGroupDeployToken => (
                Method::Get,
                format!("{g}/deploy_tokens/{}", self.group_deploy_token),
                None,
            ),
            RevokeGroupDeployToken => (
                Method::Delete,
                format!("{g}/deploy_tokens/{}", self.group_deploy_token),
                None,
            ),
            CreateJobToken => (
                Method::Post,
                format!("{p}/job_tokens"),
                Some(json!({"expires_in": 60})),
            ),
            CreateUser => (
                Method::Post,
                "/api/v4/users".into(),
                Some(json!({"username": "bob"})),
            ),
            GetUser => (Method::Get, format!("/api/v4/users/{}", self.user), None),
            CurrentUser => (Method::Get, "/api/v4/user".into(), None),
            CreatePersonalToken => (
                Method::Post,
                format!("/api/v4/users/{}/personal_access_tokens", self.user),
                Some(json!({"name": "n", "scopes": ["read_api"]})),
            ),
            ListPersonalTokens => (
                Method::Get,
                format!("/api/v4/personal_access_tokens?user_id={}", self.user),
                None,
            ),
            GetPersonalToken => (
                Method::Get,
                format!("/api/v4/personal_access_tokens/{}", self.personal_token),
                None,
            ),
            RevokePersonalToken => (
                Method::Delete,
                format!("/api/v4/personal_access_tokens/{}", self.personal_token),
                None,
            ),
            Publish => (Method::Put, format!("{generic}/new.bin"), None),
            Download => (Method::Get, format!("{generic}/file.bin"), None),
            DownloadHead => (Method::Head, format!("{generic}/file.bin"), None),
            ListPackages => (Method::Get, format!("{p}/packages"), None),
            ListGroupPackages => (Method::Get, format!("{g}/packages"), None),
            GetGroupSettings => (Method::Get, format!("{g}/packages/settings"), None),
            PutGroupSettings => (
                Method::Put,
                format!("{g}/packages/settings"),
                Some(json!({"generic_duplicates_allowed": false})),
            ),
            GetCleanupPolicy => (Method::Get, format!("{p}/packages/cleanup_policy"), None),
            PutCleanupPolicy => (
                Method::Put,
                format!("{p}/packages/cleanup_policy"),
                Some(json!({"keep_n_duplicated_package_files": "1"})),
            ),
            ListProtectionRules => (Method::Get, rules.clone(), None),
            CreateProtectionRule => (
                Method::Post,
                rules.clone(),
                Some(
                    json!({"package_name_pattern": "release-*", "package_type": "generic",
                            "minimum_access_level_for_push": "maintainer"}),
                ),
            ),
            UpdateProtectionRule => (
                Method::Patch,
                format!("{rules}/{}", self.rule),
                Some(json!({"minimum_access_level_for_push": "owner"})),
            ),
            DeleteProtectionRule => (Method::Delete, format!("{rules}/{}", self.rule), None),
            GetPackage => (Method::Get, pkg.clone(), None),
            DeletePackage => (Method::Delete, pkg.clone(), None),
            ListPackageFiles => (Method::Get, format!("{pkg}/package_files"), None),
            DeletePackageFile => (Method::Delete, file.clone(), None),
            DownloadPackageFile => (Method::Get, format!("{file}/download"), None),
            DownloadPackageFileHead => (Method::Head, format!("{file}/download"), None),
        };
        (method, path, body)
    }

    /// The status `who` gets for `endpoint`; a refused GraphQL mutation
    /// counts as 403.
    fn status(&self, endpoint: Endpoint, who: &Credential) -> u16 {
        let (method, path, body) = self.request(endpoint);
        let reply = match (endpoint, body) {
            (Publish, _) => self.registry.put_bytes(&path, who, b"new"),
            (_, body) => self.registry.call(method, &path, who, body),
        };
        let refused_mutation = endpoint == GraphQlUpdateSettings
            && reply.status == 200
            && reply.json()["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty());
        if refused_mutation {
            403
        } else {
            reply.status
        }
    }
}

/// Runs every cell of `table` on a fixture of `visibility`; returns the
/// cells that differ and the table as observed.
fn check(visibility: &'static str, table: &[Row]) -> (Vec<String>, String) {
    let fixture = Fixture::new(visibility);
    let prepared = fixture.registry.snapshot();
    let mut differences = Vec::new();
    let mut observed = String::new();
    for (endpoint, expected) in table {
        let mut row = Vec::new();
        for ((caller, credential), expected) in fixture.callers.iter().zip(expected) {
            fixture.registry.restore(&prepared);
            let got = fixture.status(*endpoint, credential);
            if got != *expected {
                differences.push(format!(
                    "{visibility} {endpoint:?} as {caller:?}: expected {expected}, got {got}"
                ));
            }
            row.push(got.to_string());
        }
        observed.push_str(&format!(
            "    ({:<26}[{}]),\n",
            format!("{endpoint:?},"),
            row.join(", ")
        ));
    }
    (differences, observed)
}

fn assert_matrix(visibility: &'static str, table: &[Row]) {
    assert_eq!(
        table.iter().map(|(e, _)| *e).collect::<Vec<_>>().len(),
        52,
        "every endpoint has a row"
    );
    let (differences, observed) = check(visibility, table);
    assert!(
        differences.is_empty(),
        "{} cells of the {visibility} matrix differ:\n{}\nobserved:\n{observed}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn every_endpoint_every_caller_on_a_private_project() {
    assert_matrix("private", &PRIVATE);
}

#[test]
fn every_endpoint_every_caller_on_a_public_project() {
    assert_matrix("public", &PUBLIC);
}

#[test]
fn the_callers_are_the_columns_in_order() {
    let fixture = Fixture::new("private");
    let callers: Vec<Caller> = fixture.callers.iter().map(|(c, _)| *c).collect();
    assert_eq!(callers, CALLERS);
}
