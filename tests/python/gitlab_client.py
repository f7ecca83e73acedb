"""python-gitlab, unchanged, against a running registry.

Run by tests/registry/python_gitlab.rs with GENREG_URL (the registry's base
URL) and GENREG_ADMIN_TOKEN (an administrator's personal token) in the
environment. Exits non-zero, with the failed step on stderr, when anything a
GitLab client relies on does not work as it does against GitLab.
"""

import datetime
import hashlib
import os
import sys
import tempfile
import traceback
import warnings

import gitlab
from gitlab import exceptions as glexc

# python-gitlab warns when the server's answers look wrong to it (a `Link`
# base URL that differs from the client's, a listing cut short): fail.
warnings.simplefilter("error")

URL = os.environ["GENREG_URL"]
ADMIN_TOKEN = os.environ["GENREG_ADMIN_TOKEN"]

STEP = "start"


def step(name):
    global STEP
    STEP = name
    print(f"- {name}", flush=True)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def status_of(call):
    """The HTTP status python-gitlab saw when `call` failed, None if it worked."""
    try:
        call()
    except glexc.GitlabError as e:
        return e.response_code
    return None


def in_days(days):
    return (datetime.date.today() + datetime.timedelta(days=days)).isoformat()


def main():
    admin = gitlab.Gitlab(URL, private_token=ADMIN_TOKEN)

    step("gl.auth(): GET /user answers the caller (the CLI's admin token: a stand-in)")
    admin.auth()
    check(admin.user.username == "admin", admin.user.attributes)
    check(admin.user.is_admin is True, admin.user.attributes)

    step("create a project (namespace_path is ours; GitLab takes namespace_id)")
    created = admin.projects.create(
        {"path": "tools", "namespace_path": "acme", "visibility": "private"}
    )
    check(created.path_with_namespace == "acme/tools", created.attributes)

    step("projects.get by id and by full path")
    by_id = admin.projects.get(created.id)
    by_path = admin.projects.get("acme/tools")
    check(by_id.id == created.id == by_path.id, (by_id.id, by_path.id))
    check(by_path.path_with_namespace == "acme/tools", by_path.attributes)
    project = by_path
    check(
        created.id in [p.id for p in admin.projects.list(get_all=True)],
        "projects.list",
    )

    step("project access tokens: create, list, get")
    access = project.access_tokens.create(
        {
            "name": "ci",
            "scopes": ["api"],
            "access_level": 30,
            "expires_at": in_days(30),
        }
    )
    check(access.token.startswith("glpat-"), access.attributes)
    check(access.access_level == 30 and access.active, access.attributes)
    check(access.expires_at == in_days(30), access.expires_at)
    spare = project.access_tokens.create({"name": "spare", "scopes": ["read_api"]})
    listed = {t.id: t for t in project.access_tokens.list(get_all=True)}
    check({access.id, spare.id} <= set(listed), list(listed))
    check(not hasattr(listed[access.id], "token"), "listings never show tokens")
    # One per page: python-gitlab follows the Link headers.
    paged = project.access_tokens.list(per_page=1, get_all=True)
    check(len(paged) == len(listed), (len(paged), len(listed)))
    check(project.access_tokens.get(access.id).name == "ci", "get by id")

    step("generic packages: upload and download with a project access token")
    with_access = gitlab.Gitlab(URL, private_token=access.token)
    with_access.auth()
    check(with_access.user.username == f"project_{project.id}_bot_{access.id}", with_access.user.attributes)
    check(with_access.user.bot is True, with_access.user.attributes)
    as_developer = with_access.projects.get(project.id)
    payload = b"hello from python-gitlab\n"
    answer = as_developer.generic_packages.upload(
        package_name="tool",
        package_version="1.0.0",
        file_name="tool.txt",
        data=payload,
    )
    check(answer.message == "201 Created", answer.attributes)
    record = as_developer.generic_packages.upload(
        package_name="tool",
        package_version="1.0.0",
        file_name="notes.txt",
        data=b"notes",
        select="package_file",
    )
    check(
        record.file_sha256 == hashlib.sha256(b"notes").hexdigest(), record.attributes
    )
    check(record.file_name == "notes.txt" and record.size == 5, record.attributes)
    downloaded = as_developer.generic_packages.download(
        package_name="tool", package_version="1.0.0", file_name="tool.txt"
    )
    check(downloaded == payload, downloaded)
    chunks = []
    as_developer.generic_packages.download(
        package_name="tool",
        package_version="1.0.0",
        file_name="tool.txt",
        streamed=True,
        action=chunks.append,
    )
    check(b"".join(chunks) == payload, chunks)
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as local:
        local.write(b"archive")
        local.flush()
        as_developer.generic_packages.upload(
            package_name="tool",
            package_version="1.0.0",
            file_name="tool.tar.gz",
            path=local.name,
        )
    check(
        as_developer.generic_packages.download("tool", "1.0.0", "tool.tar.gz")
        == b"archive",
        "upload from a path",
    )

    step("project access tokens: delete revokes")
    project.access_tokens.delete(spare.id)
    with_spare = gitlab.Gitlab(URL, private_token=spare.token)
    check(
        status_of(lambda: with_spare.projects.get(project.id)) == 401,
        "a revoked token answers 401",
    )
    check(project.access_tokens.get(spare.id).revoked, "stays listed as revoked")

    step("project deploy tokens: create, list, upload and download, delete")
    deploy = project.deploytokens.create(
        {
            "name": "mirror",
            "scopes": ["read_package_registry", "write_package_registry"],
        }
    )
    check(deploy.username.startswith("gitlab+deploy-token-"), deploy.attributes)
    check(deploy.token.startswith("gldt-"), deploy.attributes)
    check(
        deploy.id in [t.id for t in project.deploytokens.list(get_all=True)],
        "listed",
    )
    # python-gitlab sends deploy tokens as HTTP Basic (user name and token).
    with_deploy = gitlab.Gitlab(
        URL, http_username=deploy.username, http_password=deploy.token
    )
    as_deploy = with_deploy.projects.get(project.id, lazy=True)
    as_deploy.generic_packages.upload(
        package_name="tool", package_version="2.0.0", file_name="tool.txt", data=b"v2"
    )
    check(
        as_deploy.generic_packages.download("tool", "2.0.0", "tool.txt") == b"v2",
        "deploy token download",
    )
    project.deploytokens.delete(deploy.id)
    check(
        deploy.id not in [t.id for t in project.deploytokens.list(get_all=True)],
        "a deleted deploy token leaves the listing",
    )
    check(
        status_of(lambda: as_deploy.generic_packages.download("tool", "2.0.0", "tool.txt"))
        == 401,
        "a deleted deploy token answers 401",
    )

    step("group deploy tokens and group access tokens: create, list")
    group = admin.groups.get("acme")
    check(group.full_path == "acme", group.attributes)
    group_deploy = group.deploytokens.create(
        {"name": "reader", "scopes": ["read_package_registry"]}
    )
    check(
        group_deploy.id in [t.id for t in group.deploytokens.list(get_all=True)],
        "group deploy token listed",
    )
    reader = gitlab.Gitlab(
        URL, http_username=group_deploy.username, http_password=group_deploy.token
    ).projects.get("acme/tools", lazy=True)
    check(
        reader.generic_packages.download("tool", "1.0.0", "tool.txt") == payload,
        "group deploy token download",
    )
    check(
        status_of(
            lambda: reader.generic_packages.upload(
                package_name="tool", package_version="3.0.0", file_name="x", data=b"x"
            )
        )
        == 403,
        "a read-only deploy token may not publish",
    )
    group_access = group.access_tokens.create(
        {"name": "group-ci", "scopes": ["api"], "access_level": 30}
    )
    check(group_access.token.startswith("glpat-"), group_access.attributes)
    check(
        group_access.id in [t.id for t in group.access_tokens.list(get_all=True)],
        "group access token listed",
    )
    gitlab.Gitlab(URL, private_token=group_access.token).projects.get(
        "acme/tools"
    ).generic_packages.upload(
        package_name="tool", package_version="3.0.0", file_name="tool.txt", data=b"v3"
    )

    step("job tokens (POST /projects/:id/job_tokens): upload and download")
    job = admin.http_post(f"/projects/{project.id}/job_tokens", post_data={"expires_in": 600})
    check(job["token"].startswith("glcbt-"), job)
    as_job = gitlab.Gitlab(URL, job_token=job["token"]).projects.get(project.id, lazy=True)
    as_job.generic_packages.upload(
        package_name="built", package_version="0.1.0", file_name="out.bin", data=b"\x00\x01"
    )
    check(
        as_job.generic_packages.download("built", "0.1.0", "out.bin") == b"\x00\x01",
        "job token download",
    )

    step("packages API: list, get, package files list and delete, delete")
    packages = project.packages.list(get_all=True)
    by_version = {(p.name, p.version): p for p in packages}
    check(
        set(by_version) == {("tool", "1.0.0"), ("tool", "2.0.0"), ("tool", "3.0.0"), ("built", "0.1.0")},
        list(by_version),
    )
    check(all(p.package_type == "generic" for p in packages), "generic packages")
    check(len(project.packages.list(per_page=1, get_all=True)) == 4, "paged listing")
    check(
        [p.version for p in project.packages.list(package_name="tool", order_by="version", sort="desc", get_all=True)]
        == ["3.0.0", "2.0.0", "1.0.0"],
        "filtered and ordered",
    )
    package = project.packages.get(by_version[("tool", "1.0.0")].id)
    check(package.name == "tool" and package.version == "1.0.0", package.attributes)
    check(len(package.versions) == 2, package.versions)
    files = package.package_files.list(get_all=True)
    check(
        sorted(f.file_name for f in files) == ["notes.txt", "tool.tar.gz", "tool.txt"],
        files,
    )
    notes = next(f for f in files if f.file_name == "notes.txt")
    check(notes.file_sha256 == hashlib.sha256(b"notes").hexdigest(), notes.attributes)
    package.package_files.delete(notes.id)
    check(
        sorted(f.file_name for f in package.package_files.list(get_all=True))
        == ["tool.tar.gz", "tool.txt"],
        "the file is gone",
    )
    project.packages.delete(by_version[("tool", "2.0.0")].id)
    check(
        status_of(lambda: project.packages.get(by_version[("tool", "2.0.0")].id)) == 404,
        "a deleted package answers 404",
    )
    by_version[("built", "0.1.0")].delete()
    check(len(project.packages.list(get_all=True)) == 2, "two packages left")

    step("users and their personal access tokens (projects grants are ours)")
    user = admin.users.create({"username": "alice", "name": "Alice"})
    check(admin.users.get(user.id).username == "alice", user.attributes)
    personal = user.personal_access_tokens.create(
        {
            "name": "laptop",
            "scopes": ["api"],
            "expires_at": in_days(7),
            "projects": [{"project": "acme/*", "access_level": 30}],
        }
    )
    check(personal.token.startswith("glpat-"), personal.attributes)
    check(personal.user_id == user.id, personal.attributes)
    alice_gl = gitlab.Gitlab(URL, private_token=personal.token)
    alice_gl.auth()
    check(alice_gl.user.username == "alice", alice_gl.user.attributes)
    check(alice_gl.user.id == user.id, alice_gl.user.attributes)
    as_alice = alice_gl.projects.get("acme/tools")
    as_alice.generic_packages.upload(
        package_name="tool", package_version="1.0.0", file_name="alice.txt", data=b"a"
    )
    check(
        [t.id for t in admin.personal_access_tokens.list(user_id=user.id, get_all=True)]
        == [personal.id],
        "listed for the user",
    )
    check(admin.personal_access_tokens.get(personal.id).name == "laptop", "get")
    admin.personal_access_tokens.delete(personal.id)
    check(
        status_of(lambda: as_alice.generic_packages.download("tool", "1.0.0", "alice.txt"))
        == 401,
        "a revoked personal token answers 401",
    )

    step("projects.delete: 202, gone, its path free again")
    doomed = admin.projects.create({"path": "doomed", "namespace_path": "acme"})
    doomed.generic_packages.upload(
        package_name="x", package_version="1", file_name="x.bin", data=b"x"
    )
    admin.projects.delete(doomed.id)
    check(status_of(lambda: admin.projects.get(doomed.id)) == 404, "deleted by id")
    check(status_of(lambda: admin.projects.get("acme/doomed")) == 404, "deleted by path")
    reborn = admin.projects.create({"path": "doomed", "namespace_path": "acme"})
    check(reborn.id != doomed.id, "a new project at the freed path")
    check(reborn.packages.list(get_all=True) == [], "without the old packages")
    admin.projects.delete(reborn.id)

    step("group packages: GET /groups/:id/packages")
    grouped = group.packages.list(get_all=True)
    check(
        sorted((p.name, p.version) for p in grouped) == [("tool", "1.0.0"), ("tool", "3.0.0")],
        [p.attributes for p in grouped],
    )
    check(all(p.project_id == project.id for p in grouped), "project_id")
    check(all(p.project_path == "acme/tools" for p in grouped), "project_path")

    print("python-gitlab", gitlab.__version__, "works against the registry")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        print(f"python-gitlab check failed at step: {STEP}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
