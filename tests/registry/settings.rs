//! Duplicate settings under concurrent uploads: the rule holds when two
//! uploads of one name race through the real host. The settings' other
//! rules are checked natively (`src/testing/api/settings.rs`).

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn racing_uploads_of_one_name_without_duplicates_give_one_201_and_one_400() {
    let r = std::sync::Arc::new(start().await);
    let id = r.create_project("acme", "tools", "private").await;
    let settings = r.url("/api/v4/groups/acme/packages/settings");
    let response = r
        .client
        .put(&settings)
        .header("PRIVATE-TOKEN", r.admin())
        .json(&json!({"generic_duplicates_allowed": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for round in 0..4 {
        let uploads = (0..2u8).map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let url = r.generic(&id.to_string(), &format!("race/{round}/same.bin"));
                r.put(&url, Some(&r.admin()), data(64 * 1024, i))
                    .await
                    .status()
            })
        });
        let mut statuses: Vec<StatusCode> = futures::future::join_all(uploads)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::BAD_REQUEST],
            "round {round}"
        );
    }
}
