//! What a crash between two key-value writes may leave behind, put into the
//! store by hand: no key stays unusable (the unit tests in `meta` cut every
//! operation after each of its writes; these check the same through the
//! real component and its SQLite store).

use genreg::data_dir::KEYVALUE_FILE;
use genreg::keyvalue::SqliteStore;
use reqwest::StatusCode;

use crate::common::*;

/// The epoch length of creation claims (`meta::kv::CLAIM_EPOCH_MS`).
const CLAIM_EPOCH_MS: u64 = 30_000;

/// Stops the registry, lets `change` write into its key-value store, and
/// starts it again on the same data directory.
async fn with_store(r: TestRegistry, change: impl FnOnce(&SqliteStore)) -> TestRegistry {
    let TestRegistry { registry, data, .. } = r;
    registry.shutdown().await;
    let store = SqliteStore::open(&data.path().join(KEYVALUE_FILE)).unwrap();
    change(&store);
    drop(store);
    start_in(data, &[]).await
}

#[tokio::test]
async fn a_creation_claim_whose_claimer_never_wrote_blocks_nothing() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    // What the previous protocol left when a publish died between claiming
    // the package's key and writing it.
    let r = with_store(r, |store| {
        store
            .increment(&format!("v1/pkg/{id}/claimed/1.0#created"), 1)
            .unwrap();
    })
    .await;
    let response = r
        .put(
            &r.generic(&id.to_string(), "claimed/1.0/a.bin"),
            Some(&r.admin()),
            b"a".to_vec(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let listed = json(
        r.get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(listed[0]["name"], "claimed");
}

#[tokio::test]
async fn a_key_being_created_elsewhere_answers_503_with_retry_after() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    // Another request holds the creation claim of this package's key for
    // this epoch and the next, and has not written it.
    let epoch = now_secs() * 1000 / CLAIM_EPOCH_MS;
    let r = with_store(r, |store| {
        for epoch in [epoch, epoch + 1] {
            store
                .increment(&format!("v1/pkg/{id}/held/1.0#claim/{epoch}"), 1)
                .unwrap();
        }
    })
    .await;
    let response = r
        .put(
            &r.generic(&id.to_string(), "held/1.0/a.bin"),
            Some(&r.admin()),
            b"a".to_vec(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        json(response).await["message"],
        "503 Service Unavailable - try again in a moment"
    );
    // Nothing was recorded, and the object went again.
    assert!(r.objects().is_empty(), "{:?}", r.objects());
    let listed = json(
        r.get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 0);
}
