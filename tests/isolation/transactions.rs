//! Transactions: every operation through a `TenantTx`; commit, rollback and drop.

use futures_util::StreamExt;
use tenancy::Filter;
use uuid::Uuid;

use crate::common::models::*;
use crate::world::*;

per_mix!(transactions_are_scoped_and_commit_keeps_rollback_and_drop_discard);
async fn transactions_are_scoped_and_commit_keeps_rollback_and_drop_discard(mix: Mix) {
    let w = world("iso_tx", mix).await;
    let (a, b) = (&w.a, &w.b);
    let before_a = stored(&w.db, a).await;
    let before_b = stored(&w.db, b).await;
    let repo = Spin::repo();
    let a_only = w.a_only_spins();
    let a_keys: Vec<Uuid> = a_only.iter().map(|s| s.id).collect();

    // Every operation through B's transaction, with A's keys and Filter::all(); rolled back.
    let mut tx = b.begin().await.unwrap();
    assert_eq!(tx.ctx().id(), b.id());
    for s in &a_only {
        assert_eq!(repo.get(&mut tx, s.id).await.unwrap(), None);
        assert!(!repo.exists(&mut tx, s.id).await.unwrap());
        let mut changed = s.clone();
        changed.duration = -1;
        assert_eq!(repo.update(&mut tx, &changed).await.unwrap(), None);
        assert_eq!(
            repo.update_columns(&mut tx, s.id, [Spin::DURATION.set(-1)])
                .await
                .unwrap(),
            None
        );
        assert!(!repo.delete(&mut tx, s.id).await.unwrap());
    }
    assert!(repo.get_many(&mut tx, &a_keys).await.unwrap().is_empty());
    assert_eq!(
        spins_by_id(repo.get_many(&mut tx, &w.sa.spin_ids()).await.unwrap()),
        spins_by_id(w.sb.spins[..2].to_vec())
    );
    let only_a = Spin::ID.is_in(a_keys.iter().copied());
    assert_eq!(repo.count_where(&mut tx, only_a.clone()).await.unwrap(), 0);
    assert!(!repo.exists_where(&mut tx, only_a.clone()).await.unwrap());
    assert_eq!(
        repo.update_where(&mut tx, only_a.clone(), [Spin::DURATION.set(-1)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(repo.delete_where(&mut tx, only_a.clone()).await.unwrap(), 0);
    assert!(
        repo.query()
            .filter(only_a.clone())
            .fetch_all(&mut tx)
            .await
            .unwrap()
            .is_empty()
    );
    let streamed: Vec<Spin> = repo
        .query()
        .order_by(Spin::ID.asc())
        .fetch(&mut tx)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(streamed, spins_by_id(w.sb.spins.clone()));
    let raw = repo
        .raw("SELECT * FROM {spins} WHERE id = ANY($1)")
        .bind(a_keys.clone())
        .fetch_all(&mut tx)
        .await
        .unwrap();
    assert!(raw.is_empty());
    let (n,): (i64,) = repo
        .raw_as("SELECT count(*) FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id")
        .with::<Spinner>()
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, 12);
    assert_eq!(
        repo.update_where(&mut tx, Filter::all(), [Spin::DURATION.set(-2)])
            .await
            .unwrap(),
        12
    );
    assert_eq!(repo.delete_where(&mut tx, Filter::all()).await.unwrap(), 12);
    assert_eq!(
        Spinner::repo()
            .delete_where(&mut tx, Filter::all())
            .await
            .unwrap(),
        3
    );
    assert_eq!(repo.count(&mut tx).await.unwrap(), 0);
    // Outside the transaction nothing has happened yet.
    assert_eq!(repo.count(b).await.unwrap(), 12);
    assert_eq!(stored(&w.db, b).await, before_b);
    assert_eq!(stored(&w.db, a).await, before_a);
    tx.rollback().await.unwrap();
    assert_eq!(
        stored(&w.db, b).await,
        before_b,
        "rollback kept B's deletes"
    );
    assert_eq!(stored(&w.db, a).await, before_a);

    // Dropped without commit: discarded.
    {
        let mut tx = b.begin().await.unwrap();
        assert_eq!(repo.delete_where(&mut tx, Filter::all()).await.unwrap(), 12);
        repo.insert(
            &mut tx,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: w.shared.spinner,
                duration: 1,
                note: Some("dropped".into()),
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        stored(&w.db, b).await,
        before_b,
        "a dropped transaction kept its work"
    );

    // Committed: kept, in B only; A and B transactions open at once see only their own rows.
    let mut tx_b = b.begin().await.unwrap();
    let mut tx_a = a.begin().await.unwrap();
    let new_b = Spinner::repo()
        .insert(
            &mut tx_b,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "committed".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    let spins_b = repo
        .insert_many(
            &mut tx_b,
            &[
                NewSpin {
                    id: a_keys[0],
                    spinner_id: new_b.id,
                    duration: 11,
                    note: None,
                },
                NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: new_b.id,
                    duration: 12,
                    note: None,
                },
            ],
        )
        .await
        .unwrap();
    let new_a = Spinner::repo()
        .insert(
            &mut tx_a,
            &NewSpinner {
                id: new_b.id,
                name: "rolled back".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        Spinner::repo()
            .get(&mut tx_b, new_b.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&new_b)
    );
    assert_eq!(
        Spinner::repo()
            .get(&mut tx_a, new_b.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&new_a)
    );
    assert_eq!(
        repo.get(&mut tx_b, a_keys[0]).await.unwrap().as_ref(),
        Some(&spins_b[0])
    );
    assert_eq!(
        repo.get(&mut tx_a, a_keys[0]).await.unwrap().as_ref(),
        Some(&a_only[0])
    );
    assert_eq!(repo.count(&mut tx_b).await.unwrap(), 14);
    assert_eq!(repo.count(&mut tx_a).await.unwrap(), 12);
    let seen_by_b = repo
        .raw("SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id WHERE p.name = $1")
        .with::<Spinner>()
        .bind("committed")
        .fetch_all(&mut tx_b)
        .await
        .unwrap();
    assert_eq!(spins_by_id(seen_by_b), spins_by_id(spins_b.clone()));
    // Not visible to anyone before the commit.
    assert_eq!(Spinner::repo().get(b, new_b.id).await.unwrap(), None);
    tx_b.commit().await.unwrap();
    tx_a.rollback().await.unwrap();
    assert_eq!(
        Spinner::repo().get(b, new_b.id).await.unwrap(),
        Some(new_b.clone())
    );
    assert_eq!(Spinner::repo().get(a, new_b.id).await.unwrap(), None);
    assert_eq!(
        stored(&w.db, a).await,
        before_a,
        "A's rolled-back insert or B's commit hit A"
    );
    let after_b = stored(&w.db, b).await;
    assert_eq!(after_b.spinners.len(), before_b.spinners.len() + 1);
    assert_eq!(after_b.spins.len(), before_b.spins.len() + 2);
    let groups = per_tenant(&w.db, "spins").await;
    assert_eq!(count_of(&groups, b), 14);
    assert_eq!(count_of(&groups, a), 12);
    assert_eq!(count_of(&groups, &w.c), 12);
    let _ = (&w.tenancy, &w.sc);
}
