//! TLS is sqlx's, chosen by a feature of `tenancy` and asked for in the URL: with a TLS feature,
//! `sslmode=require` encrypts every connection tenancy opens (read back from `pg_stat_ssl`);
//! without one, it fails at `connect` with a sentence that names TLS.
//!
//! The default build runs the second test; `cargo test --features tls-rustls --test tls` (or
//! `tls-native-tls`) runs the first, against a server with `ssl = on`.

use tenancy::Tenancy;
use tenancy::testing::TestTenancy;

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

#[cfg(not(any(feature = "tls-rustls", feature = "tls-native-tls")))]
#[tenancy::test]
async fn requiring_tls_without_a_tls_feature_fails_at_connect(t: TestTenancy) {
    use tenancy::Error;

    match Tenancy::connect(&with_params(t.url(), "sslmode=require")).await {
        Err(e @ Error::Connect { .. }) => assert!(e.to_string().contains("TLS"), "{e}"),
        Err(e) => panic!("expected Error::Connect naming TLS, got {e:?}"),
        Ok(_) => panic!("connected with sslmode=require and no TLS backend"),
    }
}

#[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
#[tenancy::test]
async fn sslmode_require_encrypts_every_connection_tenancy_opens(t: TestTenancy) {
    use tenancy::NewTenant;

    // Short enough that the server keeps it whole (names are cut at 63 bytes).
    let app = format!("tls_{}", uuid::Uuid::new_v4().simple());
    let url = with_params(t.url(), &format!("sslmode=require&application_name={app}"));
    let tenancy = Tenancy::connect(&url).await.expect("connect over TLS");
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(ctx.slug(), "acme");

    // The pool's connections and the registry listener's, seen from the server.
    let mut conn = t.connect().await;
    let (n, all_encrypted): (i64, Option<bool>) = sqlx::query_as(
        "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(&app)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        n >= 2,
        "expected the pool's and the listener's connections, saw {n}"
    );
    assert_eq!(all_encrypted, Some(true));
}
