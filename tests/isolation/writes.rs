//! Writes: insert, insert_many, update, update_columns, update_where, delete, cascades.

use tenancy::{Error, Filter};
use uuid::Uuid;

use crate::common::models::*;
use crate::world::*;

per_mix!(writes_never_cross_tenants);
async fn writes_never_cross_tenants(mix: Mix) {
    let w = world("iso_writes", mix).await;
    let (a, b, c) = (&w.a, &w.b, &w.c);
    let before_a = stored(&w.db, a).await;
    let before_c = stored(&w.db, c).await;
    let repo = Spin::repo();
    let a_only = w.a_only_spins();
    let a_spinner = w.a_only_spinners()[0].clone();

    // insert: B may use A's keys (keys lead with the tenant); the rows are B's.
    let spinners0 = per_tenant(&w.db, "spinners").await;
    let mine = Spinner::repo()
        .insert(
            b,
            &NewSpinner {
                id: a_spinner.id,
                name: a_spinner.name.clone(),
                color: Some("b's own".into()),
            },
        )
        .await;
    // B already has a spinner with that name ("beta"): a unique violation inside B only.
    assert!(
        matches!(&mine, Err(Error::Database(e)) if e.as_database_error().is_some_and(|d| d.is_unique_violation())),
        "{mine:?}"
    );
    let mine = Spinner::repo()
        .insert(
            b,
            &NewSpinner {
                id: a_spinner.id,
                name: "delta".into(),
                color: Some("b's own".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(mine.id, a_spinner.id);
    let spinners1 = per_tenant(&w.db, "spinners").await;
    assert_eq!(count_of(&spinners1, a), count_of(&spinners0, a));
    assert_eq!(count_of(&spinners1, b), count_of(&spinners0, b) + 1);
    assert_eq!(count_of(&spinners1, c), count_of(&spinners0, c));
    assert_eq!(
        Spinner::repo().get(a, a_spinner.id).await.unwrap(),
        Some(a_spinner.clone())
    );
    assert_eq!(
        Spinner::repo().get(b, a_spinner.id).await.unwrap(),
        Some(mine.clone())
    );

    // insert: a spin of B pointing at a spinner only A has is refused by the foreign key.
    let a_spinner2 = w.a_only_spinners()[1].clone();
    let spins0 = per_tenant(&w.db, "spins").await;
    let e = repo
        .insert(
            b,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: a_spinner2.id,
                duration: 1,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert!(is_fk_violation(&e), "{e:?}");
    let e = repo
        .insert_many(
            b,
            &[
                NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: w.shared.spinner,
                    duration: 1,
                    note: None,
                },
                NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: a_spinner2.id,
                    duration: 1,
                    note: None,
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(is_fk_violation(&e), "{e:?}");
    assert_eq!(
        per_tenant(&w.db, "spins").await,
        spins0,
        "a failed insert wrote rows"
    );

    // insert / insert_many: the rows land in the acting tenant only, returned in input order.
    let one = repo
        .insert(
            b,
            &NewSpin {
                id: a_only[0].id,
                spinner_id: mine.id,
                duration: 7,
                note: Some("b reuses a's key".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(one.id, a_only[0].id);
    let news: Vec<NewSpin> = (0..5)
        .map(|i| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: mine.id,
            duration: 100 + i,
            note: None,
        })
        .collect();
    let many = repo.insert_many(b, &news).await.unwrap();
    assert_eq!(
        many.iter().map(|s| (s.id, s.duration)).collect::<Vec<_>>(),
        news.iter().map(|s| (s.id, s.duration)).collect::<Vec<_>>()
    );
    let spins1 = per_tenant(&w.db, "spins").await;
    assert_eq!(count_of(&spins1, a), count_of(&spins0, a));
    assert_eq!(count_of(&spins1, b), count_of(&spins0, b) + 6);
    assert_eq!(count_of(&spins1, c), count_of(&spins0, c));
    assert_eq!(
        repo.get(a, a_only[0].id).await.unwrap().as_ref(),
        Some(&a_only[0])
    );
    assert_eq!(stored(&w.db, a).await, before_a, "inserts by B changed A");

    // update (whole row): A's key through B is None and changes nothing.
    let target = a_only[3].clone();
    let mut changed = target.clone();
    changed.duration = 999;
    changed.note = Some("written by b".into());
    assert_eq!(repo.update(b, &changed).await.unwrap(), None);
    assert_eq!(repo.update(c, &changed).await.unwrap(), None);
    // A key both tenants use: B's row changes, A's does not.
    let mut b_shared = w.sb.spins[0].clone();
    b_shared.duration = 555;
    let updated = repo.update(b, &b_shared).await.unwrap().unwrap();
    assert_eq!(updated, b_shared);
    assert_eq!(
        repo.get(a, b_shared.id).await.unwrap().as_ref(),
        Some(&w.sa.spins[0])
    );

    // update_columns
    assert_eq!(
        repo.update_columns(b, target.id, [Spin::DURATION.set(998)])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.update_columns(
            b,
            target.id,
            [Spin::NOTE.set(Some("b".to_owned())), Spin::DURATION.set(1)]
        )
        .await
        .unwrap(),
        None
    );
    assert_eq!(
        repo.update_columns(b, target.id, Vec::new()).await.unwrap(),
        None,
        "no assignments is get, scoped too"
    );
    let b_row = repo
        .update_columns(b, w.sb.spins[1].id, [Spin::DURATION.set(444)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b_row.duration, 444);
    assert_eq!(
        repo.get(a, w.sb.spins[1].id).await.unwrap().as_ref(),
        Some(&w.sa.spins[1])
    );
    assert_eq!(
        Spinner::repo()
            .update_columns(b, w.a_only_spinners()[1].id, [Spinner::NAME.set("stolen")])
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored(&w.db, a).await, before_a, "updates by B changed A");

    // update_where
    let a_keys: Vec<Uuid> = a_only
        .iter()
        .map(|s| s.id)
        .filter(|id| *id != one.id)
        .collect();
    assert_eq!(
        repo.update_where(
            b,
            Spin::ID.is_in(a_keys.iter().copied()),
            [Spin::DURATION.set(0)]
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        repo.update_where(b, Spin::DURATION.ge(0), Vec::new())
            .await
            .unwrap(),
        0,
        "no assignments updates nothing"
    );
    let b_count = repo.count(b).await.unwrap();
    let touched = repo
        .update_where(
            b,
            Filter::all(),
            [Spin::NOTE.set(Some("touched by b".to_owned()))],
        )
        .await
        .unwrap();
    assert_eq!(touched as i64, b_count);
    let notes: Vec<Option<String>> = repo
        .query()
        .fetch_all(b)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.note)
        .collect();
    assert!(notes.iter().all(|n| n.as_deref() == Some("touched by b")));
    let want = repo
        .query()
        .fetch_all(b)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.duration < 50 || s.duration > 500)
        .count();
    let n = repo
        .update_where(
            b,
            Spin::DURATION.lt(50) | Spin::DURATION.gt(500),
            [Spin::DURATION.set(50)],
        )
        .await
        .unwrap();
    assert_eq!(n as usize, want);
    assert_eq!(repo.count_where(b, Spin::DURATION.lt(50)).await.unwrap(), 0);
    assert_eq!(
        Spinner::repo()
            .update_where(
                b,
                Filter::all(),
                [Spinner::COLOR.set(Some("grey".to_owned()))]
            )
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        stored(&w.db, a).await,
        before_a,
        "update_where by B changed A"
    );

    // delete
    assert!(!repo.delete(b, target.id).await.unwrap());
    assert!(!repo.delete(c, target.id).await.unwrap());
    assert!(
        !Spinner::repo()
            .delete(b, w.a_only_spinners()[1].id)
            .await
            .unwrap()
    );
    assert!(
        repo.delete(b, w.shared.spins[0]).await.unwrap(),
        "B's own row with a shared key"
    );
    assert!(!repo.delete(b, w.shared.spins[0]).await.unwrap());
    assert_eq!(
        repo.get(a, w.shared.spins[0]).await.unwrap().as_ref(),
        Some(&w.sa.spins[0])
    );
    assert_eq!(
        repo.delete_where(b, Spin::ID.is_in(a_keys.iter().copied()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(stored(&w.db, a).await, before_a, "deletes by B changed A");

    // delete_where(all) empties B's tables and nobody else's.
    let b_count = repo.count(b).await.unwrap();
    assert_eq!(
        repo.delete_where(b, Filter::all()).await.unwrap() as i64,
        b_count
    );
    assert_eq!(
        Spinner::repo()
            .delete_where(b, Filter::all())
            .await
            .unwrap(),
        4
    );
    assert_eq!(repo.count(b).await.unwrap(), 0);
    assert_eq!(Spinner::repo().count(b).await.unwrap(), 0);
    assert!(!repo.exists_where(b, Filter::all()).await.unwrap());
    assert_eq!(repo.count(a).await.unwrap(), 12);
    assert_eq!(stored(&w.db, a).await, before_a);
    assert_eq!(stored(&w.db, c).await, before_c);
    let spins2 = per_tenant(&w.db, "spins").await;
    assert_eq!(spins2, {
        let mut v = vec![(a.id().as_uuid(), 12), (c.id().as_uuid(), 12)];
        v.sort();
        v
    });

    // Cascades stay in the tenant: A deleting the spinner whose key B also used.
    Spinner::repo()
        .insert(
            b,
            &NewSpinner {
                id: w.shared.spinner,
                name: "alpha".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    repo.insert(
        b,
        &NewSpin {
            id: Uuid::new_v4(),
            spinner_id: w.shared.spinner,
            duration: 3,
            note: None,
        },
    )
    .await
    .unwrap();
    assert!(
        Spinner::repo()
            .delete(c, w.shared.spinner)
            .await
            .is_ok_and(|d| !d)
    );
    assert!(Spinner::repo().delete(a, w.shared.spinner).await.unwrap());
    assert_eq!(
        repo.count(a).await.unwrap(),
        8,
        "A's spins of that spinner cascaded"
    );
    assert_eq!(
        repo.count(b).await.unwrap(),
        1,
        "B's spin of its own spinner stays"
    );
    let _ = &w.tenancy;
}

per_mix!(insert_many_past_one_statement_is_all_or_nothing_in_the_tenant);
async fn insert_many_past_one_statement_is_all_or_nothing_in_the_tenant(mix: Mix) {
    let w = world("iso_bulk", mix).await;
    let repo = Spin::repo();
    let before_a = stored(&w.db, &w.a).await;
    // 4 bound columns per spin plus the tenant: 16,383 rows per statement.
    let rows = 16_500;
    let news: Vec<NewSpin> = (0..rows)
        .map(|i| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: w.sb.spinners[i % 3].id,
            duration: i as i32,
            note: None,
        })
        .collect();
    let out = repo.insert_many(&w.b, &news).await.unwrap();
    assert_eq!(out.len(), rows);
    assert!(
        out.iter()
            .zip(&news)
            .all(|(o, n)| o.id == n.id && o.duration == n.duration)
    );
    let groups = per_tenant(&w.db, "spins").await;
    assert_eq!(count_of(&groups, &w.b), 12 + rows as i64);
    assert_eq!(count_of(&groups, &w.a), 12);
    assert_eq!(count_of(&groups, &w.c), 12);

    // The last row, in the second statement, points at A's spinner: nothing is inserted.
    let mut bad: Vec<NewSpin> = news
        .iter()
        .map(|n| NewSpin {
            id: Uuid::new_v4(),
            ..n.clone()
        })
        .collect();
    bad.last_mut().unwrap().spinner_id = w.a_only_spinners()[0].id;
    let e = repo.insert_many(&w.b, &bad).await.unwrap_err();
    assert!(is_fk_violation(&e), "{e:?}");
    assert_eq!(per_tenant(&w.db, "spins").await, groups);

    // The same through a transaction of the caller's: rolled back with it.
    let mut tx = w.c.begin().await.unwrap();
    let fresh: Vec<NewSpin> = news
        .iter()
        .map(|n| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: w.sc.spinners[0].id,
            ..n.clone()
        })
        .collect();
    assert_eq!(repo.insert_many(&mut tx, &fresh).await.unwrap().len(), rows);
    assert_eq!(repo.count(&mut tx).await.unwrap(), 12 + rows as i64);
    tx.rollback().await.unwrap();
    assert_eq!(per_tenant(&w.db, "spins").await, groups);
    assert_eq!(stored(&w.db, &w.a).await, before_a);
}
