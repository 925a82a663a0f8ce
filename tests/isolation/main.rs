//! Tenant isolation, operation by operation: tenants with overlapping data (same names, even the
//! same keys), and for every repository operation, query, stream and raw statement, one tenant
//! never reads, counts, updates or deletes another's rows, through a `TenantCtx` and through a
//! `TenantTx`. Every check compares exact row sets, and the rows of the tenants not acting are
//! compared in full, as stored, before and after.
//!
//! Every test runs once per placement mix ([`world::Mix`]): all tenants on the shared tables, all
//! in schemas of their own, both mixed, all in databases of their own, and one of each; each mix
//! in a test database of its own. The ground truth reads
//! each tenant's rows where its placement puts them and checks, on every read, that no row is
//! anywhere else (an own-schema tenant's rows never in the shared tables, nor the other way).

#[path = "../common/mod.rs"]
mod common;

/// Runs `async fn $test(mix: Mix)` as one `#[tokio::test]` per placement mix, so that a failure
/// names its mix: `per_mix!(reads_never_cross_tenants)` makes
/// `reads_never_cross_tenants::{all_shared, all_own_schema, mixed_a_own, mixed_b_own,
/// all_own_database, mixed_database}`.
macro_rules! per_mix {
    ($test:ident) => {
        mod $test {
            use crate::world::Mix;

            #[tokio::test]
            async fn all_shared() {
                super::$test(Mix::AllShared).await
            }

            #[tokio::test]
            async fn all_own_schema() {
                super::$test(Mix::AllOwnSchema).await
            }

            #[tokio::test]
            async fn mixed_a_own() {
                super::$test(Mix::MixedAOwn).await
            }

            #[tokio::test]
            async fn mixed_b_own() {
                super::$test(Mix::MixedBOwn).await
            }

            #[tokio::test]
            async fn all_own_database() {
                super::$test(Mix::AllOwnDatabase).await
            }

            #[tokio::test]
            async fn mixed_database() {
                super::$test(Mix::MixedDatabase).await
            }
        }
    };
}

mod world;

mod guard;
mod pages;
mod raw;
mod reads;
mod transactions;
mod writes;
