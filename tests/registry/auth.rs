//! The permission table of README.md ("Credentials and permissions"), row
//! by row, and every place a GitLab client may put its credentials.

use base64::Engine;
use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;

use crate::common::*;

/// What publishing and downloading answer for one credential.
async fn publish_and_download(
    r: &TestRegistry,
    project: &str,
    header: Option<(&str, String)>,
) -> (StatusCode, StatusCode) {
    let url = r.generic(project, "perm/1.0/file.bin");
    let put = {
        let mut request = r.client.put(&url).body(b"data".to_vec());
        if let Some((name, value)) = &header {
            request = request.header(*name, value);
        }
        request.send().await.unwrap().status()
    };
    let get = {
        let mut request = r.client.get(&url);
        if let Some((name, value)) = &header {
            request = request.header(*name, value);
        }
        request.send().await.unwrap().status()
    };
    (put, get)
}

#[tokio::test]
async fn every_row_of_the_permission_table() {
    let r = start().await;
    let private = r
        .create_project("acme", "private", "private")
        .await
        .to_string();
    let public = r
        .create_project("acme", "public", "public")
        .await
        .to_string();
    // Something to download in both projects.
    for p in [&private, &public] {
        let response = r
            .put(
                &r.generic(p, "perm/1.0/file.bin"),
                Some(&r.admin()),
                b"data".to_vec(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let pat = |spec| Some(("PRIVATE-TOKEN", r.token(spec)));
    let deploy_header = |spec| Some(("Deploy-Token", r.token(spec)));
    let job_header = |spec| Some(("JOB-TOKEN", r.token(spec)));
    use StatusCode as S;
    /// Name, credential header, project, expected (publish, download).
    type Row<'a> = (&'a str, Option<(&'a str, String)>, &'a String, (S, S));
    let rows: Vec<Row> = vec![
        (
            "api developer",
            pat(personal(&[Scope::Api], "acme/private", Role::Developer)),
            &private,
            (S::CREATED, S::OK),
        ),
        (
            "api maintainer",
            pat(personal(&[Scope::Api], "acme/*", Role::Maintainer)),
            &private,
            (S::CREATED, S::OK),
        ),
        (
            "read_api owner",
            pat(personal(&[Scope::ReadApi], "acme/private", Role::Owner)),
            &private,
            (S::FORBIDDEN, S::OK),
        ),
        (
            "api reporter",
            pat(personal(&[Scope::Api], "acme/private", Role::Reporter)),
            &private,
            (S::FORBIDDEN, S::OK),
        ),
        (
            "api guest",
            pat(personal(&[Scope::Api], "acme/private", Role::Guest)),
            &private,
            (S::FORBIDDEN, S::OK),
        ),
        (
            "deploy write",
            deploy_header(deploy(&[Scope::WritePackageRegistry], "acme/private")),
            &private,
            (S::CREATED, S::OK),
        ),
        (
            "deploy read",
            deploy_header(deploy(&[Scope::ReadPackageRegistry], "acme/private")),
            &private,
            (S::FORBIDDEN, S::OK),
        ),
        (
            "job in its project",
            job_header(job("acme/private")),
            &private,
            (S::CREATED, S::OK),
        ),
        (
            "job elsewhere",
            job_header(job("acme/public")),
            &private,
            (S::NOT_FOUND, S::NOT_FOUND),
        ),
        ("none, public", None, &public, (S::UNAUTHORIZED, S::OK)),
        (
            "none, private",
            None,
            &private,
            (S::UNAUTHORIZED, S::UNAUTHORIZED),
        ),
        (
            "no access, private",
            pat(personal(&[Scope::Api], "other/x", Role::Owner)),
            &private,
            (S::NOT_FOUND, S::NOT_FOUND),
        ),
        (
            "no access, public",
            pat(personal(&[Scope::Api], "other/x", Role::Owner)),
            &public,
            (S::FORBIDDEN, S::OK),
        ),
    ];
    for (name, header, project, expected) in rows {
        assert_eq!(
            publish_and_download(&r, project, header).await,
            expected,
            "{name}"
        );
    }
}

#[tokio::test]
async fn invalid_forged_and_expired_tokens_answer_401() {
    let r = start().await;
    let public = r
        .create_project("acme", "public", "public")
        .await
        .to_string();
    let mut expired = personal(&[Scope::Api], "*", Role::Owner);
    expired.expires_at = Some(now_secs() - 1);
    let forged = r.token_with_secret(personal(&[Scope::Api], "*", Role::Owner), "not-the-secret");
    let mut truncated = r.token(personal(&[Scope::Api], "*", Role::Owner));
    truncated.pop();
    let unauthorized = (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED);
    for token in [
        r.token(expired),
        forged,
        truncated,
        "glpat-nonsense".into(),
        "x".repeat(10_000),
    ] {
        let result = publish_and_download(&r, &public, Some(("PRIVATE-TOKEN", token))).await;
        assert_eq!(result, unauthorized);
    }
    // A token of one kind in the header of another.
    let deploy_as_pat = r.token(deploy(&[Scope::WritePackageRegistry], "acme/public"));
    let result = publish_and_download(&r, &public, Some(("PRIVATE-TOKEN", deploy_as_pat))).await;
    assert_eq!(result, unauthorized);
    // The 401 body is GitLab's.
    let response = r
        .get(&r.generic(&public, "perm/1.0/file.bin"), Some("bad"))
        .await;
    assert_eq!(
        json(response).await,
        serde_json::json!({"message": "401 Unauthorized"})
    );
}

#[tokio::test]
async fn credentials_are_read_from_every_gitlab_place() {
    let r = start().await;
    let private = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let pat = r.token(personal(&[Scope::Api], "acme/tools", Role::Developer));
    let job = r.token(job("acme/tools"));
    let deploy = r.token(deploy(&[Scope::WritePackageRegistry], "acme/tools"));
    let basic = |user: &str, token: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        )
    };
    let created = (StatusCode::CREATED, StatusCode::OK);
    let headers = [
        ("PRIVATE-TOKEN", pat.clone()),
        ("JOB-TOKEN", job.clone()),
        ("Deploy-Token", deploy.clone()),
        ("Authorization", format!("Bearer {pat}")),
        ("Authorization", format!("Bearer {deploy}")),
        ("Authorization", basic("gitlab-ci-token", &job)),
        ("Authorization", basic("anyone", &pat)),
        ("Authorization", basic("gitlab+deploy-token-1", &deploy)),
    ];
    for (name, value) in headers {
        assert_eq!(
            publish_and_download(&r, &private, Some((name, value.clone()))).await,
            created,
            "{name}: {value}"
        );
    }
    for query in [format!("private_token={pat}"), format!("job_token={job}")] {
        let url = format!("{}?{query}", r.generic(&private, "q/1.0/a.bin"));
        assert_eq!(
            r.put(&url, None, b"x".to_vec()).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(r.get(&url, None).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn malformed_authorization_headers_answer_401() {
    let r = start().await;
    let public = r
        .create_project("acme", "public", "public")
        .await
        .to_string();
    let url = r.generic(&public, "x/1.0/a.bin");
    // (`Bearer` with nothing and Basic with an empty password are no
    // credential at all: bad_input.rs checks they are anonymous.)
    for header in ["Basic !!!", "Basic dXNlcg==", "Negotiate abc"] {
        let response = r
            .client
            .get(&url)
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
}
