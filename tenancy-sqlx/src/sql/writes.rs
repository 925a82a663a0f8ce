//! The repository's statements that depend on the call (which columns an update sets, which
//! filter, how many rows an insert writes), built on the model's SQL.

use sqlx::SqlStr;
use sqlx::postgres::PgArguments;
use uuid::Uuid;

use crate::Result;
use crate::bind::{self, TenantArgs};
use crate::column::{Assignment, Filter};
use crate::model::NewModel;
use crate::sql::{ModelSql, SqlBuf, TENANT, fence, push_values_row};

/// What a statement over the tenant's rows that match a filter does with them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filtered {
    Delete,
    Count,
    Exists,
}

impl ModelSql {
    /// `UPDATE t SET a = $1, b = $2 WHERE tenant = ` and the tenant's mark (see
    /// [`SqlBuf::tenant`]).
    fn update_head<M>(
        &self,
        schema: Option<&str>,
        assignments: &[Assignment<M>],
    ) -> Result<SqlBuf> {
        let mut buf = SqlBuf::new(String::new());
        buf.push("UPDATE ")
            .push(&self.table_ref(schema))
            .push(" SET ");
        for (n, a) in assignments.iter().enumerate() {
            if n > 0 {
                buf.push(", ");
            }
            buf.push(self.col(a.col)?).push(" = ");
            buf.bind_value(&*a.value.0)?;
        }
        buf.push(" WHERE ").push(&self.tenant).push(" = ").tenant();
        buf.push(" AND ")
            .push(&fence::guard(&TENANT.to_string(), schema));
        Ok(buf)
    }

    /// Sets `assignments` on the tenant's row with key `id`, returning it.
    pub(crate) fn update_by_key<M>(
        &self,
        schema: Option<&str>,
        assignments: &[Assignment<M>],
        id: Uuid,
    ) -> Result<SqlBuf> {
        let mut buf = self.update_head(schema, assignments)?;
        buf.push(" AND ").push(&self.cols[self.key]).push(" = ");
        buf.bind(id)?;
        buf.push(" RETURNING ").push(&self.select_list);
        Ok(buf)
    }

    /// Sets `assignments` on the tenant's rows that match `filter`.
    pub(crate) fn update_where<M>(
        &self,
        schema: Option<&str>,
        assignments: &[Assignment<M>],
        filter: &Filter<M>,
    ) -> Result<SqlBuf> {
        let mut buf = self.update_head(schema, assignments)?;
        buf.and_filter(self, filter)?;
        Ok(buf)
    }

    /// Deletes, counts or tests for the tenant's rows that match `filter`.
    pub(crate) fn filtered<M>(
        &self,
        what: Filtered,
        schema: Option<&str>,
        filter: &Filter<M>,
    ) -> Result<SqlBuf> {
        let head = match what {
            Filtered::Delete => "DELETE FROM",
            Filtered::Count => "SELECT count(*) FROM",
            Filtered::Exists => "SELECT EXISTS (SELECT 1 FROM",
        };
        let mut buf = SqlBuf::new(format!(
            "{head} {} WHERE {} = ",
            self.table_ref(schema),
            self.tenant
        ));
        buf.tenant();
        if let Filtered::Delete = what {
            buf.push(" AND ")
                .push(&fence::guard(&TENANT.to_string(), schema));
        }
        buf.and_filter(self, filter)?;
        if let Filtered::Exists = what {
            buf.push(")");
        }
        Ok(buf)
    }

    /// Inserts `rows` for `tenant` in one statement, returning them as stored.
    pub(crate) fn insert_many<N: NewModel>(
        &self,
        schema: Option<&str>,
        tenant: Uuid,
        rows: &[N],
    ) -> Result<(SqlStr, TenantArgs)> {
        let width = self.insert_cols.len();
        // Every row reads the tenant from the one placeholder after all the rows' values.
        let tenant_at = rows.len() * width + 1;
        let mut sql = self.insert_head.text(schema);
        sql.reserve(rows.len() * (4 + width * 6) + self.select_list.len() + 12);
        let mut args = PgArguments::default();
        for (n, row) in rows.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            // The first row's tenant comes through the write fence, before any row is written.
            let at = format!("${tenant_at}");
            let tenant = if n == 0 {
                fence::value(&at, schema)
            } else {
                at
            };
            push_values_row(&mut sql, 1 + n * width, width, &tenant);
            crate::model::bind_insert(row, width, &mut args)?;
        }
        sql.push_str(" RETURNING ");
        sql.push_str(&self.select_list);
        Ok((super::text(sql), bind::finish(args, tenant, tenant_at)?))
    }
}
