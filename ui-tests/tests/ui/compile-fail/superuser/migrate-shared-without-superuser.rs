// Shared migrations run any SQL past row-level security: `migrate_shared` needs a `Superuser`.
use tenancy::{Migrations, Tenancy};

async fn rewrite_everyone(tenancy: &Tenancy, migrations: &Migrations) {
    let _ = tenancy.migrate_shared(migrations).await;
}

fn main() {}
