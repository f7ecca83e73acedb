//! Key-value and S3 round trips per request, pinned for the common
//! operations.
//!
//! Each row runs one request on a fresh registry and compares what it cost
//! ([`Counts`]) with the row's `pinned` counts, exactly: a change in round
//! trips, better or worse, fails here and is acknowledged by editing the
//! row (and the table in README). `target` is the budget the project aims
//! for; it is printed beside the counts, not asserted, so the gap stays
//! visible until it is closed. `cargo test -p generic-registry --lib
//! round_trips -- --nocapture` prints the table.

use genreg_token::{Role, Scope};

use crate::http::Method;
use crate::testing::{deploy, job, personal, Counts, Credential, Reply, TestRegistry};

/// The project every row works in.
const PROJECT: &str = "acme/tools";

/// What the registry holds before the measured request.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// `public` or `private`.
    visibility: &'static str,
    /// Files `f0.bin`, `f1.bin`, ... published into `tool/1.0`, in order;
    /// 0: the project has no package yet.
    files: usize,
}

const ONE_FILE: Setup = Setup {
    visibility: "private",
    files: 1,
};
const SEVERAL_FILES: Setup = Setup {
    visibility: "private",
    files: 5,
};
/// The package's first block of file ids is used up.
const FULL_BLOCK: Setup = Setup {
    visibility: "private",
    files: crate::meta::packages::FIRST_BLOCK as usize,
};
const NO_PACKAGE: Setup = Setup {
    visibility: "private",
    files: 0,
};
const PUBLIC_ONE_FILE: Setup = Setup {
    visibility: "public",
    files: 1,
};

/// A registry after its [`Setup`], and what the request needs to name.
struct Fixture {
    r: TestRegistry,
    project: u64,
    /// The package `tool/1.0` and its first file, when there are files.
    package: u64,
    file: u64,
    /// Personal tokens (scope `api`) on the project.
    developer: Credential,
    maintainer: Credential,
}

impl Fixture {
    fn new(setup: Setup) -> Fixture {
        let r = TestRegistry::default();
        let project = r.create_project("acme", "tools", setup.visibility);
        let admin = r.admin();
        let (mut package, mut file) = (0, 0);
        for n in 0..setup.files {
            let url = format!(
                "{}?select=package_file",
                r.generic(project, &format!("tool/1.0/f{n}.bin"))
            );
            let record = r.put_bytes(&url, &admin, b"bytes").json();
            if n == 0 {
                package = record["package_id"].as_u64().expect("a package id");
                file = record["id"].as_u64().expect("a file id");
            }
        }
        let on_project =
            |role| Credential::private(r.token(personal(&[Scope::Api], PROJECT, role)));
        Fixture {
            developer: on_project(Role::Developer),
            maintainer: on_project(Role::Maintainer),
            r,
            project,
            package,
            file,
        }
    }

    fn generic(&self, rest: &str) -> String {
        self.r.generic(self.project, rest)
    }

    /// [`Fixture::generic`] with the project named by its URL-encoded
    /// path, as README's examples name it.
    fn generic_by_path(&self, rest: &str) -> String {
        format!(
            "/api/v4/projects/{}/packages/generic/{rest}",
            PROJECT.replace('/', "%2F")
        )
    }

    fn packages(&self) -> String {
        format!("/api/v4/projects/{}/packages", self.project)
    }

    fn package(&self) -> String {
        format!("{}/{}", self.packages(), self.package)
    }

    fn download_first_file(&self, who: &Credential) -> Reply {
        self.r.get(&self.generic("tool/1.0/f0.bin"), who)
    }
}

/// The budget for an operation (issue 10): where given, at most `reads`
/// key-value reads and at most `writes` writes, CAS attempts included.
/// New versions are budgeted in writes only: on Spin's SQLite store each
/// write is a transaction of its own, and 4 is half of what they took.
#[derive(Debug, Clone, Copy)]
struct Target {
    reads: Option<u32>,
    writes: Option<u32>,
}

impl Target {
    fn is_met(&self, counts: &Counts) -> bool {
        let writes = counts.writes() + counts.cas_attempts();
        self.reads.is_none_or(|r| counts.reads() <= r) && self.writes.is_none_or(|w| writes <= w)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reads = self.reads.map(|r| format!("{r} reads"));
        let writes = self.writes.map(|w| format!("{w} writes (CAS included)"));
        let parts: Vec<String> = reads.into_iter().chain(writes).collect();
        write!(f, "≤ {}", parts.join(" + "))
    }
}

const DOWNLOAD: Option<Target> = Some(Target {
    reads: Some(3),
    writes: None,
});
const PUBLISH_INTO_PACKAGE: Option<Target> = Some(Target {
    reads: Some(3),
    writes: Some(2),
});
const NEW_VERSION: Option<Target> = Some(Target {
    reads: None,
    writes: Some(4),
});
const LIST_PAGE: Option<Target> = Some(Target {
    reads: Some(3),
    writes: None,
});

/// One operation: its setup, the request, the status it must answer (a
/// failed request's counts mean nothing) and what it costs today.
struct Row {
    operation: &'static str,
    setup: Setup,
    request: fn(&Fixture) -> Reply,
    status: u16,
    pinned: Counts,
    target: Option<Target>,
}

const ROWS: &[Row] = &[
    Row {
        operation: "download by name, package with 1 file",
        setup: ONE_FILE,
        request: |f| f.download_first_file(&f.developer),
        status: 200,
        pinned: Counts {
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "download by name, package with 5 files",
        setup: SEVERAL_FILES,
        request: |f| f.download_first_file(&f.developer),
        status: 200,
        pinned: Counts {
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "download by name, again within the minute",
        setup: ONE_FILE,
        request: |f| {
            // The first download stamps last_downloaded_at; the next one
            // within a minute leaves it alone.
            f.download_first_file(&f.developer);
            f.download_first_file(&f.developer)
        },
        status: 200,
        pinned: Counts {
            get_many: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "HEAD of a file by name",
        setup: ONE_FILE,
        request: |f| {
            let url = f.generic("tool/1.0/f0.bin");
            f.r.send(Method::Head, &url, &f.developer.headers(), b"")
        },
        status: 200,
        pinned: Counts {
            get_many: 1,
            ..Counts::NONE
        },
        target: None,
    },
    Row {
        operation: "publish a new file into an existing package",
        setup: ONE_FILE,
        request: |f| {
            f.r.put_bytes(&f.generic("tool/1.0/new.bin"), &f.developer, b"new")
        },
        status: 201,
        pinned: Counts {
            get_many: 2,
            read_for_swap: 1,
            swap: 1,
            s3_put: 1,
            ..Counts::NONE
        },
        target: PUBLISH_INTO_PACKAGE,
    },
    Row {
        operation: "the same, when the package's block of file ids is used up",
        setup: FULL_BLOCK,
        request: |f| {
            f.r.put_bytes(&f.generic("tool/1.0/new.bin"), &f.developer, b"new")
        },
        status: 201,
        pinned: Counts {
            get_many: 2,
            read_for_swap: 1,
            increment: 1,
            swap: 1,
            s3_put: 1,
            ..Counts::NONE
        },
        target: PUBLISH_INTO_PACKAGE,
    },
    Row {
        operation: "publish a new version (new package)",
        setup: ONE_FILE,
        request: |f| {
            f.r.put_bytes(&f.generic("tool/2.0/f0.bin"), &f.developer, b"new")
        },
        status: 201,
        pinned: Counts {
            get: 1,
            get_many: 2,
            read_for_swap: 2,
            set: 1,
            increment: 1,
            swap: 1,
            s3_put: 1,
            ..Counts::NONE
        },
        target: NEW_VERSION,
    },
    Row {
        operation: "publish the first file of a project",
        setup: NO_PACKAGE,
        request: |f| {
            f.r.put_bytes(&f.generic("tool/1.0/f0.bin"), &f.developer, b"new")
        },
        status: 201,
        pinned: Counts {
            get: 1,
            get_many: 2,
            read_for_swap: 2,
            set: 2,
            increment: 4,
            s3_put: 1,
            ..Counts::NONE
        },
        target: None,
    },
    Row {
        operation: "list packages (first page)",
        setup: ONE_FILE,
        request: |f| f.r.get(&f.packages(), &f.developer),
        status: 200,
        pinned: Counts {
            get: 1,
            get_many: 2,
            ..Counts::NONE
        },
        target: LIST_PAGE,
    },
    Row {
        operation: "list a package's files (first page)",
        setup: SEVERAL_FILES,
        request: |f| {
            f.r.get(&format!("{}/package_files", f.package()), &f.developer)
        },
        status: 200,
        pinned: Counts {
            get: 2,
            get_many: 1,
            ..Counts::NONE
        },
        target: LIST_PAGE,
    },
    Row {
        operation: "show a package",
        setup: ONE_FILE,
        request: |f| f.r.get(&f.package(), &f.developer),
        status: 200,
        pinned: Counts {
            get: 2,
            get_many: 2,
            ..Counts::NONE
        },
        target: None,
    },
    Row {
        operation: "delete a file",
        setup: SEVERAL_FILES,
        request: |f| {
            let url = format!("{}/package_files/{}", f.package(), f.file);
            f.r.call(Method::Delete, &url, &f.maintainer, None)
        },
        status: 204,
        pinned: Counts {
            get: 3,
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_delete: 1,
            ..Counts::NONE
        },
        target: None,
    },
    Row {
        operation: "GET /projects/:id",
        setup: ONE_FILE,
        request: |f| {
            f.r.get(&format!("/api/v4/projects/{}", f.project), &f.developer)
        },
        status: 200,
        pinned: Counts {
            get: 2,
            ..Counts::NONE
        },
        target: None,
    },
    Row {
        operation: "download by name, deploy token",
        setup: ONE_FILE,
        request: |f| {
            let token = f.r.token(deploy(&[Scope::ReadPackageRegistry], PROJECT));
            f.download_first_file(&Credential::deploy(token))
        },
        status: 200,
        pinned: Counts {
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "download by name, job token",
        setup: ONE_FILE,
        request: |f| {
            let token = f.r.token(job(PROJECT));
            f.download_first_file(&Credential::job(token))
        },
        status: 200,
        pinned: Counts {
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "download by name, anonymous (public project)",
        setup: PUBLIC_ONE_FILE,
        request: |f| f.download_first_file(&Credential::anonymous()),
        status: 200,
        pinned: Counts {
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "download by name, project named by its path",
        setup: ONE_FILE,
        request: |f| f.r.get(&f.generic_by_path("tool/1.0/f0.bin"), &f.developer),
        status: 200,
        pinned: Counts {
            get_many: 2,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "download by name, anonymous, project named by its path",
        setup: PUBLIC_ONE_FILE,
        request: |f| {
            let url = f.generic_by_path("tool/1.0/f0.bin");
            f.r.get(&url, &Credential::anonymous())
        },
        status: 200,
        pinned: Counts {
            get: 1,
            get_many: 1,
            read_for_swap: 1,
            swap: 1,
            s3_get: 1,
            ..Counts::NONE
        },
        target: DOWNLOAD,
    },
    Row {
        operation: "publish a new file into an existing package, project named by its path",
        setup: ONE_FILE,
        request: |f| {
            let url = f.generic_by_path("tool/1.0/new.bin");
            f.r.put_bytes(&url, &f.developer, b"new")
        },
        status: 201,
        pinned: Counts {
            get_many: 3,
            read_for_swap: 1,
            swap: 1,
            s3_put: 1,
            ..Counts::NONE
        },
        target: PUBLISH_INTO_PACKAGE,
    },
    Row {
        operation: "publish a new version, project named by its path",
        setup: ONE_FILE,
        request: |f| {
            let url = f.generic_by_path("tool/2.0/f0.bin");
            f.r.put_bytes(&url, &f.developer, b"new")
        },
        status: 201,
        pinned: Counts {
            get: 1,
            get_many: 3,
            read_for_swap: 2,
            set: 1,
            increment: 1,
            swap: 1,
            s3_put: 1,
            ..Counts::NONE
        },
        target: NEW_VERSION,
    },
];

/// The counts of one row's request, after checking it did what it says.
fn observe(row: &Row) -> Counts {
    let fixture = Fixture::new(row.setup);
    let reply = (row.request)(&fixture);
    assert_eq!(
        reply.status,
        row.status,
        "{}: {:?}",
        row.operation,
        reply.json()
    );
    reply.counts
}

/// The table as README shows it, with the detail of each row.
fn table(observed: &[(&Row, Counts)]) -> String {
    let mut lines = vec![
        "| operation | KV reads | KV writes | CAS attempts | S3 requests | target | in detail |"
            .to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    for (row, counts) in observed {
        let target = match row.target {
            Some(t) if t.is_met(counts) => format!("{t} (met)"),
            Some(t) => format!("{t} (not met)"),
            None => "—".to_string(),
        };
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.operation,
            counts.reads(),
            counts.writes(),
            counts.cas_attempts(),
            counts.s3_requests(),
            target,
            counts,
        ));
    }
    lines.join("\n")
}

#[test]
fn round_trips_per_request_are_pinned() {
    let observed: Vec<(&Row, Counts)> = ROWS.iter().map(|row| (row, observe(row))).collect();
    println!("{}", table(&observed));
    let changed: Vec<String> = observed
        .iter()
        .filter(|(row, counts)| row.pinned != *counts)
        .map(|(row, counts)| {
            format!(
                "{}:\n  pinned   {}\n  observed {}\n  now      {counts:?}",
                row.operation, row.pinned, counts
            )
        })
        .collect();
    assert!(
        changed.is_empty(),
        "round trips changed; update the rows (and README) if that is intended:\n{}",
        changed.join("\n")
    );
}
