//! # tenancy
//!
//! Multi-tenant PostgreSQL for [sqlx] where a cross-tenant data leak is a compile error.
//!
//! Each customer (tenant) must see only its own rows. Instead of remembering
//! `WHERE tenant_id = $1` in every query, you mark a model `#[tenant_scoped]` and get a
//! repository whose every entry point takes a [`TenantCtx`]: an unforgeable token that only the
//! tenant registry hands out, and only for an active tenant. There is no unscoped path, so a
//! query that forgets the tenant does not compile. Cross-tenant work needs a [`Superuser`],
//! acquired only through an audited call.
//!
//! ```no_run
//! use tenancy::prelude::*;
//! use time::OffsetDateTime;
//! use uuid::Uuid;
//!
//! #[tenant_scoped(table = "spins")]
//! #[derive(Debug, Clone)]
//! pub struct Spin {
//!     #[tenancy(id)]
//!     pub id: Uuid,
//!     pub spinner_id: Uuid,
//!     pub duration: i32,
//!     #[tenancy(read_only)] // filled by the database
//!     pub created_at: OffsetDateTime,
//! }
//!
//! # async fn demo(spinner_id: Uuid) -> tenancy::Result<()> {
//! let tenancy = Tenancy::connect("postgres://postgres@127.0.0.1/app").await?;
//! tenancy.verify::<Spin>().await?; // the table's keys lead with tenant_id
//!
//! let ctx = tenancy.resolve_host("acme.example.com").await?; // only an active tenant
//! let spin = Spin::repo()
//!     .insert(&ctx, &NewSpin { id: Uuid::new_v4(), spinner_id, duration: 130 })
//!     .await?;
//! let long = Spin::repo()
//!     .query()
//!     .filter(Spin::DURATION.gt(120))
//!     .order_by(Spin::CREATED_AT.desc())
//!     .limit(50)
//!     .fetch_all(&ctx)
//!     .await?;
//!
//! let mut tx = ctx.begin().await?; // one transaction, one tenant
//! Spin::repo().update_columns(&mut tx, spin.id, [Spin::DURATION.set(131)]).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! Forgetting the tenant does not compile:
//!
//! ```compile_fail,E0061
//! # use tenancy::prelude::*;
//! # #[tenant_scoped(table = "spins")]
//! # pub struct Spin { #[tenancy(id)] pub id: uuid::Uuid, pub duration: i32 }
//! # async fn demo(id: uuid::Uuid) {
//! let spin = Spin::repo().get(id).await; // no TenantCtx: error
//! # }
//! ```
//!
//! Nor does passing something that merely names a tenant:
//!
//! ```compile_fail,E0277
//! # use tenancy::prelude::*;
//! # #[tenant_scoped(table = "spins")]
//! # pub struct Spin { #[tenancy(id)] pub id: uuid::Uuid, pub duration: i32 }
//! # async fn demo(tenant: TenantId, id: uuid::Uuid) {
//! let spin = Spin::repo().get(&tenant, id).await; // `&TenantId` is not a tenant scope
//! # }
//! ```
//!
//! # `#[tenant_scoped]`
//!
//! On a struct with named fields. Options: `table = "spins"` (default: the snake-cased name plus
//! `s`), `tenant_column = "org_id"` (default `tenant_id`), `new_derive(Debug, Clone, ...)`
//! (derives for the generated `New<Model>`), `crate = "..."` (path to this crate if renamed).
//! Field options, in `#[tenancy(...)]`:
//!
//! | option | meaning |
//! |---|---|
//! | `id` | the uuid key (a field named `id` is the key when none is marked) |
//! | `rename = "col"` | the column's name, if not the field's |
//! | `default` | the database fills it on insert (left out of `New<Model>`); updates write it |
//! | `read_only` | never written (left out of `New<Model>` and of updates): `created_at`, generated columns |
//! | `skip` | not a column; `Default::default()` when read |
//!
//! It generates `New<Model>` (what [`Repo::insert`] takes), one typed [`Column`] handle per field
//! as an associated constant (`Spin::DURATION`; key and read-only columns cannot be `set`), and
//! `Model::repo()`. The tenant column is not a field: tenancy binds it from the context.
//!
//! # Placement
//!
//! Placement is per tenant ([`Placement`], recorded in the registry), and the same models serve
//! every placement: shared tables with a tenant column (every key leads with it: see
//! [`Tenancy::verify`]), or a schema per tenant (`NewTenant::placement(Placement::OwnSchema)`),
//! with tenant migrations ([`Migrations`], [`Tenancy::migrate_tenants`]) run in every schema,
//! or a database per tenant (`Placement::OwnDatabase`), whose connections live under a budget
//! per server ([`TenancyBuilder::database_budget`]).
//!
//! # Features
//!
//! None is on by default.
//!
//! | feature | |
//! |---|---|
//! | `axum` | the request edge for axum 0.8: `tenancy::axum` (a layer that resolves the tenant, extractors) |
//! | `tls-rustls` | TLS to PostgreSQL through sqlx's rustls backend; ask for it in the URL (`sslmode=verify-full`) |
//! | `tls-native-tls` | TLS through the platform's library (OpenSSL on Linux), likewise |
//! | `migrate` | `Migrations::from_migrator`: migrations embedded with sqlx's `migrate!()` |
//! | `serde` | `Serialize` and `Deserialize` on the records applications log or return |
//! | `testing` | `#[tenancy::test]` and `tenancy::testing`, for `[dev-dependencies]` |
//!
//! # Crates
//!
//! This facade re-exports `tenancy-core` (ids, validation), `tenancy-sqlx` (the runtime) and
//! `tenancy-macros` (the attribute).

pub use tenancy_core::{
    Hostname, Placement, Slug, TenantId, TenantRef, TenantStatus, ValidationError, ident,
};
/// Runs an async test on a database of its own, from a template with the registry installed and
/// the given migrations applied, with the tenants it asks for handed in as contexts. Feature
/// `testing`; see [`testing`] for the details.
///
/// ```no_run
/// use tenancy::testing::TestTenancy;
///
/// // tests/migrations/tenant/1_spinners.sql holds the tenant tables.
/// #[tenancy::test(migrations = "tests/migrations", tenants(acme = "shared", globex = "schema"))]
/// async fn tenants_see_only_their_own(t: TestTenancy) {
///     let (acme, globex) = (t.tenant("acme"), t.tenant("globex"));
///     assert_ne!(acme.id(), globex.id());
/// }
/// ```
///
/// Arguments, all optional:
///
/// | argument | meaning |
/// |---|---|
/// | `migrations = "dir"` | `dir/shared/*.sql` and `dir/tenant/*.sql` (sqlx's file names), from the package's root; checked when the test compiles |
/// | `tenants(slug = "shared", slug = "schema")` | tenants to create, shared-table or own-schema, reached by [`TestTenancy::tenant`](testing::TestTenancy::tenant) |
/// | `flavor = "multi_thread"`, `worker_threads = N` | the runtime, as `#[tokio::test]` |
/// | `crate = "path"` | the path to this crate if renamed |
///
/// The function is `async`, takes a [`TestTenancy`](testing::TestTenancy) or nothing, and
/// returns `()` or a `Result` (an `Err` fails the test). After a passing test its database is
/// dropped; after a failing one it is kept and its name printed.
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use tenancy_macros::tenancy_test as test;
pub use tenancy_macros::tenant_scoped;
pub use tenancy_sqlx::*;

/// The names most code needs: `use tenancy::prelude::*;`.
///
/// It holds every tenancy name the README's snippets use, so that they compile with this one
/// import: models and tokens, the handle and its builder's options, tenants, migrations and
/// reports. Integrations keep their own module (`tenancy::axum`, `tenancy::rls`).
///
/// ```no_run
/// use tenancy::prelude::*;
/// # // Every name the README's snippets take from the prelude, named so that one gone fails here.
/// # #[allow(unused_imports)]
/// # use tenancy::prelude::{
/// #     Agg, AuditQuery, Error, Filter, MigrateOptions, Migrations, NewTenant, Placement, Repo,
/// #     StatementMode, Superuser, Tenancy, TenantCtx, TenantId, TenantRef, TenantTx, tenant_scoped,
/// # };
///
/// # async fn demo(url: &str, pgbouncer_url: &str, direct_url: &str) -> tenancy::Result<()> {
/// let tenancy = Tenancy::builder()
///     .tenant_migrations(Migrations::from_dir("migrations/tenant")?)
///     .connect(url)
///     .await?;
/// tenancy
///     .create_tenant(NewTenant::new("acme", "Acme").placement(Placement::OwnSchema))
///     .await?;
/// let su: Superuser = tenancy.superuser("deploy", "release 42").await?;
/// tenancy.migrate_shared(&su, &Migrations::from_dir("migrations/shared")?).await?;
/// let report = tenancy
///     .migrate_tenants(&su, MigrateOptions::default().parallelism(8))
///     .await?;
/// for (target, why) in report.failed() {
///     eprintln!("{target}: {why}");
/// }
/// let trail = tenancy.audit_log(&su, AuditQuery::default()).await?;
///
/// let pooled = Tenancy::builder()
///     .statement_mode(StatementMode::Unnamed)
///     .notify_url(direct_url)
///     .connect(pgbouncer_url)
///     .await?;
/// let ctx: TenantCtx = pooled.resolve_slug("acme").await?;
/// let job: TenantRef = ctx.to_ref();
/// let _: TenantId = job.tenant_id();
/// # let _ = trail;
/// # Ok::<(), Error>(()) }
/// ```
pub mod prelude {
    pub use crate::{
        Agg, AuditQuery, Error, Filter, MigrateOptions, Migrations, MoveOptions, NewTenant,
        Placement, Repo, StatementMode, Superuser, Tenancy, TenantCtx, TenantId, TenantRef,
        TenantTx, tenant_scoped,
    };
}

/// The README's Rust snippets, compiled as doc tests with the setup its hidden comments give
/// (see `build.rs`), so that a snippet that no longer compiles fails the build.
#[cfg(doctest)]
#[doc = include_str!(concat!(env!("OUT_DIR"), "/readme.md"))]
pub struct ReadmeSnippets;

/// What `#[tenant_scoped]` expansions use. Not a stable API; nothing here runs SQL.
#[doc(hidden)]
pub mod __private {
    pub use tenancy_sqlx::__private::*;
    pub use tenancy_sqlx::sqlx;
    pub use tenancy_sqlx::uuid;
}
