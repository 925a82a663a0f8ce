//! Reads the rewritten SQL with PostgreSQL's own grammar (`pg_query`, the server's parser built
//! as a library) and walks the whole tree. Only the node kinds handled below are allowed; any
//! other kind is refused, so syntax the walk does not know cannot carry a name past it.
//!
//! The walk collects what the catalog must confirm (the functions, operators and cast types
//! named, the tables outside the placeholders) and whether an expression could fail on a row:
//! whether the tenant's rows must be fenced before the user's expressions see them.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AExprKind, ColumnRef, DeleteStmt, FuncCall, InsertStmt, Node, RangeVar, SelectStmt,
    SetOperation, SqlValueFunctionOp, SubLinkType, TypeName, UpdateStmt, WithClause,
};

use super::allow::{FUNCTIONS, OPERATORS, TYPES};
use super::{RawSqlRefusal, RefusalKind};

/// A relation the SQL names that is neither a placeholder nor a CTE: allowed only if it is a
/// declared global table (the catalog decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Named {
    pub(super) schema: Option<String>,
    pub(super) name: String,
}

/// An operator applied to a placeholder's column and a parameter or literal: the server picks
/// the operator of the column's own type, so the catalog can tell whether that one is
/// leakproof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TypedOp {
    pub(super) op: String,
    /// The column is the left operand.
    pub(super) left: bool,
    /// Index into the placeholders (the order the rewrite gave them).
    pub(super) relation: usize,
    pub(super) column: String,
    /// The other operand is the parameter `$n`: its type, bound by the caller, decides the
    /// operator as much as the column's does (an `int4` column against a `numeric` parameter is
    /// `numeric_gt`, not leakproof), so the catalog is told it. `None` for a literal, whose type
    /// the column's decides.
    pub(super) param: Option<i32>,
}

/// What the catalog must confirm about one statement.
#[derive(Debug, Default)]
pub(super) struct Uses {
    pub(super) relations: Vec<Named>,
    pub(super) functions: Vec<String>,
    pub(super) operators: Vec<String>,
    /// Operators whose operand types the check does not know: leakproof only if every
    /// built-in operator of the name is.
    pub(super) untyped_operators: Vec<String>,
    pub(super) typed_operators: Vec<TypedOp>,
    pub(super) types: Vec<String>,
    /// The fields of `x.field` references: `field(x)` where `x` has no such column.
    pub(super) fields: Vec<String>,
    /// An expression casts a row's value (the cast may fail, quoting it): fence.
    pub(super) casts_rows: bool,
}

fn push(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

fn refuse(kind: RefusalKind, name: Option<&str>, reason: String, hint: &str) -> RawSqlRefusal {
    RawSqlRefusal::new(kind, name, reason, hint)
}

fn construct(what: &str) -> RawSqlRefusal {
    refuse(
        RefusalKind::Construct,
        Some(what),
        format!("the SQL uses {what}, which raw SQL does not allow"),
        "write the query with SELECT, joins, subqueries, CTEs and the allowed built-in \
         functions, or use the repository",
    )
}

type Walk<T = ()> = Result<T, RawSqlRefusal>;

/// The walk's state: the CTE names in scope, and where each placeholder's CTE is referenced.
struct Walker<'a> {
    /// The placeholders' CTE names, in the rewrite's order.
    ours: &'a [String],
    /// Declared models' tables: naming one directly is refused with its placeholder as hint.
    models: &'a [&'a str],
    scopes: Vec<Vec<String>>,
    /// Range aliases: which placeholder each stands for, `None` if it stands for anything else.
    aliases: Vec<(String, Option<usize>)>,
    /// Range items in the whole statement (an unqualified column is attributed only when 1).
    ranges: usize,
    /// Operators on a column and a parameter or literal, resolved after the walk.
    pending: Vec<(String, ColumnRef, bool, Option<i32>)>,
    uses: Uses,
}

/// Parses `sql` as exactly one statement of PostgreSQL 15's grammar; `what` says what the
/// caller expected, for the refusal.
fn parse_one(sql: &str, what: &str) -> Walk<pg_query::protobuf::ParseResult> {
    let parsed = pg_query::parse(sql).map_err(|e| {
        let msg = match e {
            pg_query::Error::Parse(m) => m,
            other => other.to_string(),
        };
        refuse(
            RefusalKind::Lexical,
            None,
            format!("the SQL cannot be read as one PostgreSQL 15 statement: {msg}"),
            &format!("write {what} that PostgreSQL accepts"),
        )
    })?;
    if parsed.protobuf.stmts.len() != 1 {
        return Err(refuse(
            RefusalKind::Lexical,
            None,
            "the SQL holds more than one statement".into(),
            "send one statement per call",
        ));
    }
    Ok(parsed.protobuf)
}

fn statement_of(parsed: &pg_query::protobuf::ParseResult) -> Option<&NodeEnum> {
    parsed.stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref())
}

impl<'a> Walker<'a> {
    fn new(ours: &'a [String], models: &'a [&'a str]) -> Self {
        Walker {
            ours,
            models,
            scopes: Vec::new(),
            aliases: Vec::new(),
            ranges: 0,
            pending: Vec::new(),
            uses: Uses::default(),
        }
    }
}

/// Parses `sql` (the rewritten statement, whose first `ours.len()` CTEs are the placeholders')
/// and returns what the catalog must confirm.
pub(super) fn read(sql: &str, ours: &[String], models: &[&str]) -> Walk<Uses> {
    let parsed = parse_one(sql, "one SELECT query")?;
    let mut w = Walker::new(ours, models);
    match statement_of(&parsed) {
        Some(NodeEnum::SelectStmt(s)) => w.top(s)?,
        other => return Err(w.statement(other)),
    }
    w.resolve_pending();
    Ok(w.uses)
}

/// Parses a global write (`INSERT`, `UPDATE` or `DELETE`, see `write.rs`) and returns the table
/// it writes, as named, with what the catalog must confirm. The table is also among
/// `relations`, so the catalog judges it as it judges every table raw SQL names; what the
/// statement reads besides (a `SELECT`, `FROM`, `USING`, subqueries) is walked as raw SQL's
/// queries are, with no placeholder in scope.
///
/// Also which keys the statement may change in rows already there, which PostgreSQL then looks
/// up in the rows referencing them: `None` for a `DELETE` (every key), the columns an `UPDATE`
/// or an `INSERT .. ON CONFLICT DO UPDATE` sets, none for any other `INSERT`.
pub(super) fn read_write(sql: &str) -> Walk<(Named, Uses, Option<Vec<String>>)> {
    let parsed = parse_one(sql, "one INSERT, UPDATE or DELETE")?;
    let statement = statement_of(&parsed);
    let set = |list: &[Node]| -> Vec<String> {
        list.iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::ResTarget(t)) => Some(t.name.clone()),
                _ => None,
            })
            .collect()
    };
    let changes = match statement {
        Some(NodeEnum::InsertStmt(i)) => Some(
            i.on_conflict_clause
                .as_ref()
                .map_or_else(Vec::new, |c| set(&c.target_list)),
        ),
        Some(NodeEnum::UpdateStmt(u)) => Some(set(&u.target_list)),
        _ => None,
    };
    let mut w = Walker::new(&[], &[]);
    let target = w.write(statement)?;
    w.resolve_pending();
    Ok((target, w.uses, changes))
}

fn str_of(n: &Node) -> Option<&str> {
    match &n.node {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

/// A qualified name (`[schema.]name`) as a list of `String` nodes.
fn qualified(names: &[Node]) -> Option<(Option<&str>, &str)> {
    match names {
        [n] => Some((None, str_of(n)?)),
        [s, n] => Some((Some(str_of(s)?), str_of(n)?)),
        _ => None,
    }
}

/// The number of the parameter `n` is, if it is one.
fn param_number(n: &Node) -> Option<i32> {
    match &n.node {
        Some(NodeEnum::ParamRef(p)) => Some(p.number),
        _ => None,
    }
}

/// A parameter or a literal whose type is the column's (text, integer, boolean, NULL) or, for a
/// parameter, the type its value was bound with (checked against the column's by the catalog).
fn typed_by_column(n: &Node) -> bool {
    use pg_query::protobuf::a_const::Val;
    match &n.node {
        Some(NodeEnum::ParamRef(_)) => true,
        Some(NodeEnum::AConst(c)) => {
            c.isnull || matches!(c.val, Some(Val::Sval(_) | Val::Ival(_) | Val::Boolval(_)))
        }
        _ => false,
    }
}

fn row_independent(n: &Node) -> bool {
    match &n.node {
        Some(NodeEnum::AConst(_) | NodeEnum::ParamRef(_)) => true,
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().is_some_and(row_independent),
        _ => false,
    }
}

impl Walker<'_> {
    fn statement(&self, node: Option<&NodeEnum>) -> RawSqlRefusal {
        let what = match node {
            Some(NodeEnum::InsertStmt(_)) => "INSERT",
            Some(NodeEnum::UpdateStmt(_)) => "UPDATE",
            Some(NodeEnum::DeleteStmt(_)) => "DELETE",
            Some(NodeEnum::MergeStmt(_)) => "MERGE",
            _ => "a statement other than a query",
        };
        refuse(
            RefusalKind::Statement,
            Some(what),
            format!("the SQL is or holds {what}; raw SQL only reads"),
            "write through the repository, or run administrative SQL as a migration",
        )
    }

    /// A global write's statement: one `INSERT`, `UPDATE` or `DELETE`, without `RETURNING`,
    /// whose CTEs only read. Returns the table it writes.
    fn write(&mut self, node: Option<&NodeEnum>) -> Walk<Named> {
        self.scopes.push(Vec::new());
        let target = match node {
            Some(NodeEnum::InsertStmt(i)) => {
                let InsertStmt {
                    relation,
                    cols,
                    select_stmt,
                    on_conflict_clause,
                    returning_list,
                    with_clause,
                    r#override: _,
                } = &**i;
                no_returning(returning_list)?;
                self.with(with_clause)?;
                let target = self.target(relation)?;
                self.exprs(cols)?;
                if let Some(s) = select_stmt {
                    match &s.node {
                        Some(NodeEnum::SelectStmt(q)) => self.select(q)?,
                        other => return Err(self.statement(other.as_ref())),
                    }
                }
                if let Some(c) = on_conflict_clause {
                    if let Some(infer) = &c.infer {
                        for e in &infer.index_elems {
                            match &e.node {
                                Some(NodeEnum::IndexElem(e))
                                    if e.collation.is_empty() && e.opclass.is_empty() =>
                                {
                                    self.opt(&e.expr)?;
                                }
                                _ => return Err(construct("an ON CONFLICT target with options")),
                            }
                        }
                        self.opt(&infer.where_clause)?;
                    }
                    self.exprs(&c.target_list)?;
                    self.opt(&c.where_clause)?;
                }
                target
            }
            Some(NodeEnum::UpdateStmt(u)) => {
                let UpdateStmt {
                    relation,
                    target_list,
                    where_clause,
                    from_clause,
                    returning_list,
                    with_clause,
                } = &**u;
                no_returning(returning_list)?;
                self.with(with_clause)?;
                let target = self.target(relation)?;
                for f in from_clause {
                    self.range_item(f)?;
                }
                self.exprs(target_list)?;
                self.opt(where_clause)?;
                target
            }
            Some(NodeEnum::DeleteStmt(d)) => {
                let DeleteStmt {
                    relation,
                    using_clause,
                    where_clause,
                    returning_list,
                    with_clause,
                } = &**d;
                no_returning(returning_list)?;
                self.with(with_clause)?;
                let target = self.target(relation)?;
                for f in using_clause {
                    self.range_item(f)?;
                }
                self.opt(where_clause)?;
                target
            }
            other => {
                let what = match other {
                    Some(NodeEnum::SelectStmt(_)) => "SELECT",
                    Some(NodeEnum::MergeStmt(_)) => "MERGE",
                    _ => "a statement other than INSERT, UPDATE or DELETE",
                };
                return Err(refuse(
                    RefusalKind::Statement,
                    Some(what),
                    format!("the SQL is {what}; a global write is one INSERT, UPDATE or DELETE"),
                    "read through raw SQL, and run administrative SQL as a migration",
                ));
            }
        };
        self.scopes.pop();
        Ok(target)
    }

    /// The table a write changes. Never a CTE, whatever is in scope: PostgreSQL resolves a
    /// write's target among tables only, so a CTE named like a tenant table must not hide it.
    fn target(&mut self, relation: &Option<RangeVar>) -> Walk<Named> {
        let Some(r) = relation else {
            return Err(construct("a write without a table"));
        };
        if !r.catalogname.is_empty() {
            return Err(construct("a relation qualified with a database name"));
        }
        let named = Named {
            schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
            name: r.relname.clone(),
        };
        if let Some(refusal) = system_relation(&named) {
            return Err(refusal);
        }
        self.ranges += 1;
        let alias = r
            .alias
            .as_ref()
            .map_or(r.relname.as_str(), |a| a.aliasname.as_str());
        self.alias(alias, None);
        if !self.uses.relations.contains(&named) {
            self.uses.relations.push(named.clone());
        }
        Ok(named)
    }

    /// The statement: its first CTEs are the placeholders', whose bodies are tenancy's own.
    fn top(&mut self, s: &SelectStmt) -> Walk {
        let Some(with) = &s.with_clause else {
            if !self.ours.is_empty() {
                return Err(construct("a statement without the placeholders' WITH"));
            }
            return self.select(s);
        };
        let mut scope = Vec::new();
        for (i, cte) in with.ctes.iter().enumerate() {
            let Some(NodeEnum::CommonTableExpr(c)) = &cte.node else {
                return Err(construct("a WITH item that is not a query"));
            };
            if i < self.ours.len() {
                if c.ctename != self.ours[i] {
                    return Err(construct("a WITH item in place of a placeholder"));
                }
                scope.push(c.ctename.clone());
            }
        }
        // Ours are visible everywhere; the caller's own follow in the usual scope rules.
        self.scopes.push(scope);
        let user_ctes = &with.ctes[self.ours.len()..];
        self.with_items(user_ctes, with.recursive)?;
        self.select_body(s)?;
        self.scopes.pop();
        Ok(())
    }

    /// The caller's CTEs, pushed on the innermost scope: each is visible to those after it, and
    /// to itself when `recursive`.
    fn with_items(&mut self, ctes: &[Node], recursive: bool) -> Walk {
        if recursive {
            for cte in ctes {
                if let Some(NodeEnum::CommonTableExpr(c)) = &cte.node {
                    // In a recursive WITH it is visible to every item, the placeholders' too,
                    // whose tables it would stand in for: `{spins}` would read it.
                    if let Some(m) = self.models.iter().find(|m| **m == c.ctename) {
                        return Err(refuse(
                            RefusalKind::DeclaredTable,
                            Some(m),
                            format!(
                                "a WITH RECURSIVE item is named {m:?}, like the declared table: \
                                 it would stand in for the table that {{{m}}} reads"
                            ),
                            "name the WITH item otherwise",
                        ));
                    }
                    self.scopes
                        .last_mut()
                        .expect("a scope")
                        .push(c.ctename.clone());
                }
            }
        }
        for cte in ctes {
            let Some(NodeEnum::CommonTableExpr(c)) = &cte.node else {
                return Err(construct("a WITH item that is not a query"));
            };
            if c.search_clause.is_some() || c.cycle_clause.is_some() {
                return Err(construct("SEARCH or CYCLE"));
            }
            match c.ctequery.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::SelectStmt(q)) => self.select(q)?,
                other => return Err(self.statement(other)),
            }
            if !recursive {
                self.scopes
                    .last_mut()
                    .expect("a scope")
                    .push(c.ctename.clone());
            }
        }
        Ok(())
    }

    fn with(&mut self, with: &Option<WithClause>) -> Walk {
        match with {
            None => Ok(()),
            Some(w) => self.with_items(&w.ctes, w.recursive),
        }
    }

    /// A query in its own CTE scope.
    fn select(&mut self, s: &SelectStmt) -> Walk {
        self.scopes.push(Vec::new());
        self.with(&s.with_clause)?;
        self.select_body(s)?;
        self.scopes.pop();
        Ok(())
    }

    fn select_body(&mut self, s: &SelectStmt) -> Walk {
        let SelectStmt {
            distinct_clause,
            into_clause,
            target_list,
            from_clause,
            where_clause,
            group_clause,
            group_distinct: _,
            having_clause,
            window_clause,
            values_lists,
            sort_clause,
            limit_offset,
            limit_count,
            limit_option: _,
            locking_clause,
            with_clause: _,
            op,
            all: _,
            larg,
            rarg,
        } = s;
        if into_clause.is_some() {
            return Err(refuse(
                RefusalKind::SelectInto,
                Some("into"),
                "the SQL uses SELECT ... INTO, which creates a table holding the tenant's rows \
                 outside its scope (a temporary one stays on the pooled connection for the \
                 next tenant)"
                    .into(),
                "return the rows, or INSERT them into a tenant table through its model",
            ));
        }
        if !locking_clause.is_empty() {
            return Err(refuse(
                RefusalKind::Statement,
                Some("FOR UPDATE"),
                "the SQL locks rows (FOR UPDATE / FOR SHARE), and the locks outlive the statement"
                    .into(),
                "lock rows through the repository inside a TenantTx",
            ));
        }
        if SetOperation::from_i32(*op) != Some(SetOperation::SetopNone) {
            for arm in [larg, rarg].into_iter().flatten() {
                self.select(arm)?;
            }
        }
        // FROM first: its aliases are what the expressions refer to.
        for f in from_clause {
            self.range_item(f)?;
        }
        for n in distinct_clause
            .iter()
            .chain(target_list)
            .chain(group_clause)
            .chain(window_clause)
            .chain(values_lists)
            .chain(sort_clause)
            .chain(
                [where_clause, having_clause, limit_offset, limit_count]
                    .into_iter()
                    .flatten()
                    .map(|b| &**b),
            )
        {
            self.expr(n)?;
        }
        Ok(())
    }

    fn alias(&mut self, name: &str, placeholder: Option<usize>) {
        match self.aliases.iter_mut().find(|(a, _)| a == name) {
            Some(entry) if entry.1 != placeholder => entry.1 = None,
            Some(_) => {}
            None => self.aliases.push((name.to_owned(), placeholder)),
        }
    }

    fn range_item(&mut self, n: &Node) -> Walk {
        self.ranges += 1;
        match &n.node {
            Some(NodeEnum::RangeVar(r)) => self.range_var(r),
            Some(NodeEnum::JoinExpr(j)) => {
                self.ranges -= 1;
                for side in [&j.larg, &j.rarg].into_iter().flatten() {
                    self.range_item(side)?;
                }
                if let Some(a) = &j.alias {
                    self.alias(&a.aliasname, None);
                }
                if let Some(a) = &j.join_using_alias {
                    self.alias(&a.aliasname, None);
                }
                for u in &j.using_clause {
                    self.expr(u)?;
                }
                if let Some(q) = &j.quals {
                    self.expr(q)?;
                }
                Ok(())
            }
            Some(NodeEnum::RangeSubselect(r)) => {
                if let Some(a) = &r.alias {
                    self.alias(&a.aliasname, None);
                }
                match r.subquery.as_deref().and_then(|n| n.node.as_ref()) {
                    Some(NodeEnum::SelectStmt(s)) => self.select(s),
                    other => Err(self.statement(other)),
                }
            }
            Some(NodeEnum::RangeFunction(r)) => {
                if let Some(a) = &r.alias {
                    self.alias(&a.aliasname, None);
                }
                for item in &r.functions {
                    // Each is a list: the call, then its column definitions.
                    let Some(NodeEnum::List(l)) = &item.node else {
                        return Err(construct("a FROM function of an unknown form"));
                    };
                    for x in &l.items {
                        self.expr(x)?;
                    }
                }
                for c in &r.coldeflist {
                    self.expr(c)?;
                }
                Ok(())
            }
            _ => Err(construct(kind_name(n))),
        }
    }

    fn range_var(&mut self, r: &RangeVar) -> Walk {
        let alias = r.alias.as_ref().map(|a| a.aliasname.as_str());
        if r.schemaname.is_empty() && r.catalogname.is_empty() {
            let in_scope = self.scopes.iter().any(|s| s.contains(&r.relname));
            if in_scope {
                // Innermost wins: a caller's CTE may shadow a placeholder's name.
                let innermost_user = self.scopes.iter().skip(1).any(|s| s.contains(&r.relname))
                    || self.scopes[0]
                        .iter()
                        .skip(self.ours.len())
                        .any(|n| n == &r.relname);
                // An alias that renames the columns (`AS s(a, b)`) makes `s.a` another column
                // than the table's `a`: no reference through it is attributed.
                let renamed = r.alias.as_ref().is_some_and(|a| !a.colnames.is_empty());
                let ours = if innermost_user || renamed {
                    None
                } else {
                    self.ours.iter().position(|o| o == &r.relname)
                };
                self.alias(alias.unwrap_or(&r.relname), ours);
                return Ok(());
            }
        }
        if let Some(m) = self.models.iter().find(|m| **m == r.relname) {
            return Err(refuse(
                RefusalKind::DeclaredTable,
                Some(m),
                format!("the SQL names the table {m:?} directly"),
                &format!("write {{{m}}} so that only the tenant's rows are read"),
            ));
        }
        self.alias(alias.unwrap_or(&r.relname), None);
        if !r.catalogname.is_empty() {
            return Err(construct("a relation qualified with a database name"));
        }
        let named = Named {
            schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
            name: r.relname.clone(),
        };
        if let Some(refusal) = system_relation(&named) {
            return Err(refusal);
        }
        if !self.uses.relations.contains(&named) {
            self.uses.relations.push(named);
        }
        Ok(())
    }

    fn func_call(&mut self, f: &FuncCall) -> Walk {
        let FuncCall {
            funcname,
            args,
            agg_order,
            agg_filter,
            over,
            agg_within_group: _,
            agg_star: _,
            agg_distinct: _,
            func_variadic: _,
            funcformat: _,
            location: _,
        } = f;
        let shown = funcname
            .iter()
            .filter_map(str_of)
            .collect::<Vec<_>>()
            .join(".");
        let name = match qualified(funcname) {
            Some((None | Some("pg_catalog"), name)) if FUNCTIONS.contains(&name) => name,
            Some((_, name)) => {
                return Err(refuse(
                    RefusalKind::Function,
                    Some(name),
                    format!(
                        "the SQL calls {shown}, which is not one of the built-in functions raw \
                         SQL may call (those that read only their arguments: no catalog, \
                         statistics, setting, sequence, or table named in a string)"
                    ),
                    "compute it in the application, or read the rows through {table} \
                     placeholders and the allowed built-ins",
                ));
            }
            None => return Err(construct(&format!("the function name {shown}"))),
        };
        push(&mut self.uses.functions, name);
        for n in args.iter().chain(agg_order) {
            self.expr(n)?;
        }
        if let Some(n) = agg_filter {
            self.expr(n)?;
        }
        if let Some(w) = over {
            for n in w.partition_clause.iter().chain(&w.order_clause) {
                self.expr(n)?;
            }
            for n in [&w.start_offset, &w.end_offset].into_iter().flatten() {
                self.expr(n)?;
            }
        }
        Ok(())
    }

    fn operator(&mut self, names: &[Node]) -> Walk<String> {
        let shown = names
            .iter()
            .filter_map(str_of)
            .collect::<Vec<_>>()
            .join(".");
        match qualified(names) {
            Some((None | Some("pg_catalog"), op)) if OPERATORS.contains(&op) => {
                push(&mut self.uses.operators, op);
                Ok(op.to_owned())
            }
            _ => Err(refuse(
                RefusalKind::Operator,
                Some(&shown),
                format!(
                    "the SQL uses the operator {shown}, which is not one of the built-in operators raw SQL may use"
                ),
                "use the comparison, arithmetic, text, JSON, array and range operators of \
                 PostgreSQL",
            )),
        }
    }

    fn type_name(&mut self, t: &TypeName) -> Walk {
        let shown = t
            .names
            .iter()
            .filter_map(str_of)
            .collect::<Vec<_>>()
            .join(".");
        match qualified(&t.names) {
            Some((None | Some("pg_catalog"), ty))
                if TYPES.contains(&ty) && !t.pct_type && !t.setof =>
            {
                push(&mut self.uses.types, ty);
                for m in &t.typmods {
                    self.expr(m)?;
                }
                Ok(())
            }
            _ => Err(refuse(
                RefusalKind::Cast,
                Some(&shown),
                format!(
                    "the SQL casts to {shown}, which is not one of the built-in types raw SQL \
                     may cast to (the reg* types look names up in the catalog)"
                ),
                "cast to a plain built-in type (text, integers, numeric, dates and times, \
                 uuid, json, jsonb ...), or bind the value",
            )),
        }
    }

    fn expr(&mut self, n: &Node) -> Walk {
        let Some(node) = &n.node else { return Ok(()) };
        match node {
            NodeEnum::ColumnRef(c) => {
                for f in &c.fields {
                    if !matches!(f.node, Some(NodeEnum::String(_) | NodeEnum::AStar(_))) {
                        return Err(construct("a column reference of an unknown form"));
                    }
                }
                if let [_, .., last] = c.fields.as_slice()
                    && let Some(field) = str_of(last)
                {
                    push(&mut self.uses.fields, field);
                }
                Ok(())
            }
            NodeEnum::ParamRef(_)
            | NodeEnum::AConst(_)
            | NodeEnum::String(_)
            | NodeEnum::Integer(_)
            | NodeEnum::Float(_)
            | NodeEnum::Boolean(_)
            | NodeEnum::BitString(_)
            | NodeEnum::AStar(_)
            | NodeEnum::SetToDefault(_) => Ok(()),
            // CURRENT_SCHEMA reads the session's search_path, which a pooled connection carries
            // from one tenant to the next: a setting, like current_setting().
            NodeEnum::SqlvalueFunction(f) => {
                if SqlValueFunctionOp::from_i32(f.op)
                    == Some(SqlValueFunctionOp::SvfopCurrentSchema)
                {
                    return Err(refuse(
                        RefusalKind::Function,
                        Some("current_schema"),
                        "the SQL reads CURRENT_SCHEMA, a setting of the pooled connection".into(),
                        "the tenant's schema is reached through {table} placeholders",
                    ));
                }
                Ok(())
            }
            NodeEnum::FuncCall(f) => self.func_call(f),
            NodeEnum::AExpr(a) => {
                let kind = AExprKind::from_i32(a.kind).unwrap_or(AExprKind::Undefined);
                let op = match kind {
                    // BETWEEN is read as >= and <=.
                    AExprKind::AexprBetween
                    | AExprKind::AexprNotBetween
                    | AExprKind::AexprBetweenSym
                    | AExprKind::AexprNotBetweenSym => {
                        for op in [">=", "<="] {
                            push(&mut self.uses.operators, op);
                            push(&mut self.uses.untyped_operators, op);
                        }
                        None
                    }
                    AExprKind::Undefined => return Err(construct("an unknown operator form")),
                    _ => Some(self.operator(&a.name)?),
                };
                // A column against a parameter or literal: the operator of the column's type.
                if let Some(op) = op {
                    let (l, r) = (a.lexpr.as_deref(), a.rexpr.as_deref());
                    match (
                        kind,
                        l.and_then(|l| l.node.as_ref()),
                        r.and_then(|r| r.node.as_ref()),
                    ) {
                        (AExprKind::AexprOp, Some(NodeEnum::ColumnRef(c)), _)
                            if r.is_some_and(typed_by_column) =>
                        {
                            self.pending
                                .push((op, c.clone(), true, r.and_then(param_number)));
                        }
                        (AExprKind::AexprOp, _, Some(NodeEnum::ColumnRef(c)))
                            if l.is_some_and(typed_by_column) =>
                        {
                            self.pending
                                .push((op, c.clone(), false, l.and_then(param_number)));
                        }
                        _ => push(&mut self.uses.untyped_operators, &op),
                    }
                }
                for side in [&a.lexpr, &a.rexpr].into_iter().flatten() {
                    self.expr(side)?;
                }
                Ok(())
            }
            NodeEnum::BoolExpr(b) => self.exprs(&b.args),
            NodeEnum::NullTest(t) => self.opt(&t.arg),
            NodeEnum::BooleanTest(t) => self.opt(&t.arg),
            NodeEnum::CaseExpr(c) => {
                self.opt(&c.arg)?;
                self.exprs(&c.args)?;
                self.opt(&c.defresult)
            }
            NodeEnum::CaseWhen(w) => {
                self.opt(&w.expr)?;
                self.opt(&w.result)
            }
            NodeEnum::CoalesceExpr(c) => self.exprs(&c.args),
            NodeEnum::MinMaxExpr(m) => {
                // GREATEST and LEAST compare with the type's ordering operators.
                for op in ["<", ">"] {
                    push(&mut self.uses.operators, op);
                    push(&mut self.uses.untyped_operators, op);
                }
                self.exprs(&m.args)
            }
            NodeEnum::RowExpr(r) => self.exprs(&r.args),
            NodeEnum::AArrayExpr(a) => self.exprs(&a.elements),
            NodeEnum::AIndirection(i) => {
                for field in i.indirection.iter().filter_map(str_of) {
                    push(&mut self.uses.fields, field);
                }
                self.opt(&i.arg)?;
                self.exprs(&i.indirection)
            }
            NodeEnum::AIndices(i) => {
                self.opt(&i.lidx)?;
                self.opt(&i.uidx)
            }
            NodeEnum::TypeCast(c) => {
                if let Some(t) = &c.type_name {
                    self.type_name(t)?;
                }
                if !c.arg.as_deref().is_some_and(row_independent) {
                    self.uses.casts_rows = true;
                }
                self.opt(&c.arg)
            }
            NodeEnum::CollateClause(c) => self.opt(&c.arg),
            NodeEnum::NamedArgExpr(a) => self.opt(&a.arg),
            NodeEnum::ResTarget(t) => {
                self.exprs(&t.indirection)?;
                self.opt(&t.val)
            }
            NodeEnum::SortBy(s) => {
                if !s.use_op.is_empty() {
                    let op = self.operator(&s.use_op)?;
                    push(&mut self.uses.untyped_operators, &op);
                }
                self.opt(&s.node)
            }
            NodeEnum::WindowDef(w) => {
                self.exprs(&w.partition_clause)?;
                self.exprs(&w.order_clause)?;
                self.opt(&w.start_offset)?;
                self.opt(&w.end_offset)
            }
            NodeEnum::GroupingSet(g) => self.exprs(&g.content),
            NodeEnum::List(l) => self.exprs(&l.items),
            NodeEnum::ColumnDef(c) => {
                if c.raw_default.is_some()
                    || c.cooked_default.is_some()
                    || c.coll_clause.is_some()
                    || !c.constraints.is_empty()
                {
                    return Err(construct("a column definition with options"));
                }
                match &c.type_name {
                    Some(t) => self.type_name(t),
                    None => Err(construct("a column definition without a type")),
                }
            }
            NodeEnum::SubLink(s) => {
                let kind = SubLinkType::from_i32(s.sub_link_type);
                if !matches!(
                    kind,
                    Some(
                        SubLinkType::ExistsSublink
                            | SubLinkType::AllSublink
                            | SubLinkType::AnySublink
                            | SubLinkType::ExprSublink
                            | SubLinkType::ArraySublink
                    )
                ) {
                    return Err(construct("a row comparison with a subquery"));
                }
                if !s.oper_name.is_empty() {
                    let op = self.operator(&s.oper_name)?;
                    push(&mut self.uses.untyped_operators, &op);
                } else if kind == Some(SubLinkType::AnySublink) {
                    // `x IN (SELECT ...)` is `= ANY`.
                    push(&mut self.uses.operators, "=");
                    push(&mut self.uses.untyped_operators, "=");
                }
                self.opt(&s.testexpr)?;
                match s.subselect.as_deref().and_then(|n| n.node.as_ref()) {
                    Some(NodeEnum::SelectStmt(q)) => self.select(q),
                    other => Err(self.statement(other)),
                }
            }
            _ => Err(construct(kind_name(n))),
        }
    }

    fn exprs(&mut self, ns: &[Node]) -> Walk {
        ns.iter().try_for_each(|n| self.expr(n))
    }

    fn opt(&mut self, n: &Option<Box<Node>>) -> Walk {
        match n {
            Some(n) => self.expr(n),
            None => Ok(()),
        }
    }

    /// Attributes each pending operator's column to a placeholder, where the reference is
    /// certain: `alias.column` with an alias that only ever stands for that placeholder, or a
    /// bare column in a statement of one range item.
    fn resolve_pending(&mut self) {
        for (op, c, left, param) in std::mem::take(&mut self.pending) {
            let fields: Vec<&str> = c.fields.iter().filter_map(str_of).collect();
            // `s.*` (a star among the fields) is a whole row, no column: left unattributed
            // rather than read as a column named `s`.
            let whole_row = fields.len() != c.fields.len();
            let relation = match fields.as_slice() {
                _ if whole_row => None,
                [alias, _] => self
                    .aliases
                    .iter()
                    .find(|(a, _)| a == alias)
                    .and_then(|(_, p)| *p),
                [_] if self.ranges == 1 && self.aliases.len() == 1 => self.aliases[0].1,
                _ => None,
            };
            let (Some(relation), Some(column)) = (relation, fields.last()) else {
                push(&mut self.uses.untyped_operators, &op);
                continue;
            };
            {
                let t = TypedOp {
                    op,
                    left,
                    relation,
                    column: (*column).to_owned(),
                    param,
                };
                if !self.uses.typed_operators.contains(&t) {
                    self.uses.typed_operators.push(t);
                }
            }
        }
    }
}

/// A global write returns a count, not rows: `RETURNING` would have nowhere to go.
fn no_returning(list: &[Node]) -> Walk {
    if list.is_empty() {
        Ok(())
    } else {
        Err(refuse(
            RefusalKind::Construct,
            Some("RETURNING"),
            "the SQL uses RETURNING, but a global write returns only the number of rows it \
             changed"
                .into(),
            "leave RETURNING out, and read the rows back with raw SQL if you need them",
        ))
    }
}

/// Refusals that need no catalog: system schemas and views, the registry.
fn system_relation(r: &Named) -> Option<RawSqlRefusal> {
    {
        let schema = r.schema.as_deref();
        let system_schema = matches!(schema, Some("pg_catalog" | "information_schema"))
            || schema.is_some_and(|s| s.starts_with("pg_"));
        if system_schema || r.name.starts_with("pg_") {
            let name = match schema {
                Some(s) if system_schema && !r.name.starts_with("pg_") => s,
                Some(s) if s.starts_with("pg_") && s != "pg_catalog" => s,
                _ => &r.name,
            };
            return Some(RawSqlRefusal::new(
                RefusalKind::SystemView,
                Some(name),
                format!(
                    "the SQL names {name:?}, a system catalog or view: they show values, \
                     statements or counts of every tenant (planner statistics, other sessions' \
                     queries, cached statements)"
                ),
                "read it through a superuser connection, not tenant SQL",
            ));
        }
        if schema == Some("tenancy") {
            return Some(RawSqlRefusal::new(
                RefusalKind::TenantSchema,
                Some("tenancy"),
                "the SQL names the tenant registry (schema tenancy)".into(),
                "the registry is not readable from tenant SQL; use Tenancy's methods",
            ));
        }
        None
    }
}

/// A node kind's name, for a refusal.
fn kind_name(n: &Node) -> &'static str {
    match &n.node {
        Some(NodeEnum::XmlExpr(_) | NodeEnum::XmlSerialize(_)) => "an XML expression",
        Some(NodeEnum::RangeTableSample(_)) => "TABLESAMPLE",
        Some(NodeEnum::RangeTableFunc(_)) => "XMLTABLE",
        Some(NodeEnum::GroupingFunc(_)) => "GROUPING",
        Some(NodeEnum::CurrentOfExpr(_)) => "WHERE CURRENT OF",
        Some(NodeEnum::MultiAssignRef(_)) => "a multiple assignment",
        Some(NodeEnum::RowCompareExpr(_)) => "a row comparison",
        _ => "a construct the check does not know",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<String> {
        vec!["tenancy_scoped_spins".to_owned()]
    }

    fn uses(user: &str) -> Walk<Uses> {
        let sql = format!(
            r#"WITH "tenancy_scoped_spins" AS (SELECT * FROM "spins" WHERE "tenant_id" = $9) {user}"#
        );
        read(&sql, &ours(), &["spins"])
    }

    fn kind(user: &str) -> RefusalKind {
        match uses(user) {
            Err(r) => r.kind(),
            Ok(u) => panic!("{user:?} was accepted: {u:?}"),
        }
    }

    #[test]
    fn placeholders_and_ctes_are_relations_everything_else_is_named() {
        let u = uses("SELECT * FROM tenancy_scoped_spins s, plans p").unwrap();
        assert_eq!(
            u.relations,
            [Named {
                schema: None,
                name: "plans".into()
            }]
        );
        let u =
            uses("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) a, tenancy_scoped_spins")
                .unwrap();
        assert!(u.relations.is_empty(), "{u:?}");
        // A CTE's name is not in scope outside its query.
        let u =
            uses("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) a, x, tenancy_scoped_spins")
                .unwrap();
        assert_eq!(u.relations.len(), 1);
        assert_eq!(
            kind("SELECT * FROM public.spins"),
            RefusalKind::DeclaredTable
        );
    }

    #[test]
    fn only_allowed_calls_operators_and_casts() {
        assert_eq!(
            kind("SELECT to_regclass('spins') FROM tenancy_scoped_spins"),
            RefusalKind::Function
        );
        assert_eq!(
            kind("SELECT 'spins'::regclass FROM tenancy_scoped_spins"),
            RefusalKind::Cast
        );
        assert_eq!(
            kind("SELECT CAST('spins' AS pg_catalog.regclass) FROM tenancy_scoped_spins"),
            RefusalKind::Cast
        );
        assert_eq!(
            kind("SELECT public.lower('x') FROM tenancy_scoped_spins"),
            RefusalKind::Function
        );
        assert_eq!(
            kind("SELECT 1 OPERATOR(public.===) 1 FROM tenancy_scoped_spins"),
            RefusalKind::Operator
        );
        assert_eq!(
            kind("SELECT xmlelement(name a) FROM tenancy_scoped_spins"),
            RefusalKind::Construct
        );
        assert_eq!(
            kind("SELECT 1 INTO x FROM tenancy_scoped_spins"),
            RefusalKind::SelectInto
        );
        assert_eq!(
            kind("SELECT * FROM tenancy_scoped_spins FOR UPDATE"),
            RefusalKind::Statement
        );
        assert_eq!(
            kind("DELETE FROM tenancy_scoped_spins"),
            RefusalKind::Statement
        );
        // PostgreSQL 14 and older read `1into` as `1 INTO`: refused whichever way it is read.
        assert!(matches!(
            kind("SELECT 1into x FROM tenancy_scoped_spins"),
            RefusalKind::Lexical | RefusalKind::SelectInto
        ));
        let u = uses(
            "SELECT lower(s.note), count(*) FILTER (WHERE s.duration BETWEEN $1 AND $2) \
             FROM tenancy_scoped_spins s WHERE s.id = $3 GROUP BY 1",
        )
        .unwrap();
        assert_eq!(u.functions, ["lower", "count"]);
        assert_eq!(u.operators, [">=", "<=", "="]);
        assert_eq!(
            u.typed_operators,
            [TypedOp {
                op: "=".into(),
                left: true,
                relation: 0,
                column: "id".into(),
                param: Some(3),
            }]
        );
        assert!(!u.casts_rows);
        assert!(
            uses("SELECT s.note::int FROM tenancy_scoped_spins s")
                .unwrap()
                .casts_rows
        );
        assert!(
            !uses("SELECT $1::int FROM tenancy_scoped_spins s")
                .unwrap()
                .casts_rows
        );
    }

    /// A column is attributed to the placeholder's table only where its name is the table's:
    /// not through an alias that renames the columns, and a whole row (`s.*`) is no column.
    #[test]
    fn renamed_columns_and_whole_rows_are_not_attributed() {
        let typed = |user: &str| uses(user).unwrap().typed_operators;
        assert_eq!(
            typed("SELECT 1 FROM tenancy_scoped_spins s WHERE s.duration > $1").len(),
            1
        );
        for user in [
            "SELECT 1 FROM tenancy_scoped_spins AS s(tenant_id, id, duration) WHERE s.duration > $1",
            "SELECT 1 FROM tenancy_scoped_spins AS s(tenant_id, id, duration) WHERE duration > $1",
            "SELECT 1 FROM tenancy_scoped_spins AS duration WHERE duration.* > $1",
        ] {
            let u = uses(user).unwrap();
            assert!(u.typed_operators.is_empty(), "{user}: {u:?}");
            assert_eq!(u.untyped_operators, [">"], "{user}");
        }
    }
}
