//! Raw SQL: `{table}` placeholders, joins, aggregates, streams.

use futures_util::StreamExt;
use tenancy::Error;
use uuid::Uuid;

use crate::common::models::*;
use crate::world::*;

per_mix!(raw_sql_stays_in_the_tenant);
async fn raw_sql_stays_in_the_tenant(mix: Mix) {
    let w = world("iso_raw", mix).await;
    let before_a = stored(&w.db, &w.a).await;
    for (ctx, seed) in [(&w.a, &w.sa), (&w.b, &w.sb), (&w.c, &w.sc)] {
        let rows = Spin::repo()
            .raw("SELECT * FROM {spins} ORDER BY id")
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(rows, spins_by_id(seed.spins.clone()), "{}", ctx.slug());

        // Every key of every tenant, bound: only this tenant's rows come back.
        let mut ids = w.sa.spin_ids();
        ids.extend(w.sb.spin_ids());
        ids.extend(w.sc.spin_ids());
        let rows = Spin::repo()
            .raw(
                "SELECT s.* FROM {spins} s WHERE s.id = ANY($1) AND s.duration >= $2 ORDER BY s.id",
            )
            .bind(ids)
            .bind(0_i32)
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(rows, spins_by_id(seed.spins.clone()));

        // A join on keys that A and B share: each tenant's spins meet only its own spinners.
        let alpha = &seed.spinners[0];
        let rows = Spin::repo()
            .raw(
                "SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id \
                 WHERE p.name = $1 ORDER BY s.id",
            )
            .with::<Spinner>()
            .bind("alpha")
            .fetch_all(ctx)
            .await
            .unwrap();
        let want = spins_by_id(
            seed.spins
                .iter()
                .filter(|s| s.spinner_id == alpha.id)
                .cloned()
                .collect(),
        );
        assert_eq!(rows, want, "join for {}", ctx.slug());
        // The same join counted: duplicates would show a join across tenants.
        let (n,): (i64,) = Spin::repo()
            .raw_as("SELECT count(*) FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id")
            .with::<Spinner>()
            .fetch_one(ctx)
            .await
            .unwrap();
        assert_eq!(n, seed.spins.len() as i64);

        // The other way round: spinners with a long spin.
        let rows = Spinner::repo()
            .raw(
                "SELECT p.* FROM {spinners} p WHERE EXISTS \
                 (SELECT 1 FROM {spins} s WHERE s.spinner_id = p.id AND s.duration > $1) \
                 ORDER BY p.id",
            )
            .with::<Spin>()
            .bind(95_i32)
            .fetch_all(ctx)
            .await
            .unwrap();
        let long: Vec<Uuid> = seed
            .spins
            .iter()
            .filter(|s| s.duration > 95)
            .map(|s| s.spinner_id)
            .collect();
        let want = spinners_by_id(
            seed.spinners
                .iter()
                .filter(|p| long.contains(&p.id))
                .cloned()
                .collect(),
        );
        assert_eq!(rows, want);

        // Aggregates.
        let (n,): (i64,) = Spin::repo()
            .raw_as("SELECT count(*) FROM {spins}")
            .fetch_one(ctx)
            .await
            .unwrap();
        assert_eq!(n, seed.spins.len() as i64);
        let (n, total): (i64, i64) = Spin::repo()
            .raw_as("SELECT count(*), COALESCE(sum(duration), 0)::bigint FROM {spins} WHERE duration >= $1")
            .bind(30_i32)
            .fetch_one(ctx)
            .await
            .unwrap();
        let long: Vec<i32> = seed
            .spins
            .iter()
            .map(|s| s.duration)
            .filter(|&d| d >= 30)
            .collect();
        assert_eq!(n, long.len() as i64);
        assert_eq!(total, long.iter().map(|&d| i64::from(d)).sum::<i64>());
        let per_name: Vec<(String, i64)> = Spin::repo()
            .raw_as(
                "SELECT p.name, count(s.id) FROM {spinners} p LEFT JOIN {spins} s \
                 ON s.spinner_id = p.id GROUP BY p.name ORDER BY p.name",
            )
            .with::<Spinner>()
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(
            per_name,
            vec![("alpha".into(), 4), ("beta".into(), 4), ("gamma".into(), 4)]
        );

        // Streamed.
        let streamed: Vec<Spin> = Spin::repo()
            .raw("SELECT * FROM {spins} WHERE duration < $1")
            .bind(50_i32)
            .fetch(ctx)
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(
            spins_by_id(streamed),
            spins_by_id(
                seed.spins
                    .iter()
                    .filter(|s| s.duration < 50)
                    .cloned()
                    .collect()
            )
        );
    }
    // B asking for A's keys by raw SQL: nothing of A.
    let a_only: Vec<Uuid> = w.a_only_spins().iter().map(|s| s.id).collect();
    let rows = Spin::repo()
        .raw("SELECT * FROM {spins} WHERE id = ANY($1)")
        .bind(a_only.clone())
        .fetch_all(&w.b)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert!(matches!(
        Spin::repo()
            .raw("SELECT * FROM {spins} WHERE id = $1")
            .bind(a_only[0])
            .fetch_one(&w.b)
            .await,
        Err(Error::RowNotFound)
    ));
    assert_eq!(
        Spin::repo()
            .raw("SELECT * FROM {spins} WHERE id = $1")
            .bind(a_only[0])
            .fetch_optional(&w.b)
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored(&w.db, &w.a).await, before_a);
}
