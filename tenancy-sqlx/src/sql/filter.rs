//! Filters as SQL: a [`Filter`]'s conditions, keyset cursors and orderings, rendered with
//! their values bound (never written into the text).

use crate::column::{Filter, Node, Order};
use crate::sql::{ModelSql, SqlBuf};
use crate::value::Value;
use crate::{Error, Result};

impl SqlBuf {
    /// Appends the condition of `filter` on `sql`'s model, binding its values.
    pub(crate) fn filter<M>(&mut self, sql: &ModelSql, filter: &Filter<M>) -> Result<&mut Self> {
        render(filter.condition(), sql, self)?;
        Ok(self)
    }

    /// ` AND (filter)`, unless the filter matches everything.
    pub(crate) fn and_filter<M>(
        &mut self,
        sql: &ModelSql,
        filter: &Filter<M>,
    ) -> Result<&mut Self> {
        if !filter.is_all() {
            self.push(" AND ");
            self.filter(sql, filter)?;
        }
        Ok(self)
    }

    /// ` ORDER BY c1 DESC, c2 ASC ...`, nothing for no ordering.
    pub(crate) fn order_by<M>(&mut self, sql: &ModelSql, order: &[Order<M>]) -> Result<&mut Self> {
        for (n, o) in order.iter().enumerate() {
            self.push(if n == 0 { " ORDER BY " } else { ", " });
            self.push(sql.col(o.col)?);
            self.push(if o.desc { " DESC" } else { " ASC" });
        }
        Ok(self)
    }
}

fn render(node: &Node, sql: &ModelSql, buf: &mut SqlBuf) -> Result<()> {
    match node {
        Node::True => {
            buf.push("TRUE");
        }
        Node::Cmp { col, op, value } => {
            buf.push(sql.col(*col)?).push(" ").push(op).push(" ");
            buf.bind_value(&*value.0)?;
        }
        Node::Any {
            col,
            negated,
            value,
        } => {
            if *negated {
                buf.push("NOT (");
            }
            buf.push(sql.col(*col)?).push(" = ANY(");
            buf.bind_value(&*value.0)?;
            buf.push(")");
            if *negated {
                buf.push(")");
            }
        }
        Node::Null { col, negated } => {
            buf.push(sql.col(*col)?)
                .push(if *negated { " IS NOT NULL" } else { " IS NULL" });
        }
        Node::And(nodes) | Node::Or(nodes) => {
            let joiner = if matches!(node, Node::And(_)) {
                " AND "
            } else {
                " OR "
            };
            buf.push("(");
            for (i, n) in nodes.iter().enumerate() {
                if i > 0 {
                    buf.push(joiner);
                }
                render(n, sql, buf)?;
            }
            buf.push(")");
        }
        Node::Not(inner) => {
            buf.push("NOT (");
            render(inner, sql, buf)?;
            buf.push(")");
        }
    }
    Ok(())
}

/// ` AND (c1 > v1 OR (c1 = v1 AND c2 > v2) ...)`, with `<` for descending columns.
pub(crate) fn push_keyset<M>(
    buf: &mut SqlBuf,
    sql: &ModelSql,
    order: &[Order<M>],
    values: &[Option<Value>],
) -> Result<()> {
    let value = |col: usize| {
        values
            .get(col)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::InvalidModel {
                model: sql.model,
                reason: format!("no cursor value for column {col}"),
            })
    };
    buf.push(" AND (");
    for (i, o) in order.iter().enumerate() {
        if i > 0 {
            buf.push(" OR ");
        }
        buf.push("(");
        for prev in &order[..i] {
            buf.push(sql.col(prev.col)?).push(" = ");
            buf.bind_value(&*value(prev.col)?.0)?;
            buf.push(" AND ");
        }
        buf.push(sql.col(o.col)?)
            .push(if o.desc { " < " } else { " > " });
        buf.bind_value(&*value(o.col)?.0)?;
        buf.push(")");
    }
    buf.push(")");
    Ok(())
}
