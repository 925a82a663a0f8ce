//! Splitting SQL text into its top-level statements, as PostgreSQL splits it, with raw SQL's
//! lexer: for the migration check that refuses transaction control (`migrate/check.rs`), and
//! for running migrations, tenancy's and the registry's, a statement at a time ([`split`]).

use std::ops::Range;

use super::lex::{Tok, Token, lex};

/// The text of each top-level statement of `sql`, without its `;` (leading comments dropped,
/// those inside kept), or `None` when the lexer cannot read it with certainty (see
/// [`lex`]): the caller then keeps the text whole.
///
/// Why split at all: Citus hands the text a DDL statement arrived in, whole, to its workers as
/// one prepared statement, so `CREATE INDEX` on a distributed table fails with "cannot insert
/// multiple commands into a prepared statement" unless it arrives alone. Run one at a time, in
/// order and in the same transaction, the statements do on PostgreSQL what the whole text did.
pub(crate) fn split(sql: &str) -> Option<Vec<&str>> {
    let tokens = lex(sql).ok()?;
    Some(
        statements(sql, &tokens)
            .into_iter()
            .map(|s| &sql[s.text])
            .collect(),
    )
}

/// One top-level statement: its tokens, and its text up to the `;` (strings and comments
/// included, which the tokens skip).
pub(crate) struct Statement<'t> {
    pub(crate) tokens: &'t [Token],
    pub(crate) text: Range<usize>,
}

pub(crate) fn word(t: &Token) -> Option<&str> {
    match &t.tok {
        Tok::Ident {
            name,
            quoted: false,
        } => Some(name),
        _ => None,
    }
}

/// The top-level statements of `tokens`, split as PostgreSQL splits them: at `;` outside
/// parentheses (a rule's actions) and outside `BEGIN ATOMIC ... END` bodies.
pub(crate) fn statements<'t>(sql: &str, tokens: &'t [Token]) -> Vec<Statement<'t>> {
    let mut out = Vec::new();
    let (mut start, mut parens, mut atomic) = (0, 0usize, 0usize);
    let mut at_start = true;
    let push = |from: usize, to: usize, end: usize, out: &mut Vec<Statement<'t>>| {
        if to > from {
            out.push(Statement {
                tokens: &tokens[from..to],
                text: tokens[from].span.start..end,
            });
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        let first = at_start;
        at_start = false;
        match (&t.tok, word(t)) {
            (Tok::Semi, _) if parens == 0 && atomic == 0 => {
                push(start, i, t.span.start, &mut out);
                start = i + 1;
                at_start = true;
            }
            (Tok::Semi, _) => at_start = true,
            (_, Some("atomic")) if i > 0 && word(&tokens[i - 1]) == Some("begin") => {
                atomic += 1;
                at_start = true;
            }
            (_, Some("end")) if first && atomic > 0 => atomic -= 1,
            (Tok::Other, _) => match &sql[t.span.clone()] {
                "(" => parens += 1,
                ")" => parens = parens.saturating_sub(1),
                _ => {}
            },
            _ => {}
        }
    }
    push(start, tokens.len(), sql.len(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_where_postgresql_does_and_nowhere_else() {
        let sql = "-- a comment; with a semicolon\n\
                   CREATE TABLE t (a text DEFAULT 'x;y', \"b;\" int);\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                   CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n\
                   CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b);;\n\
                   /* last; */ CREATE INDEX i ON t (a) -- no semicolon\n";
        assert_eq!(
            split(sql).unwrap(),
            vec![
                "CREATE TABLE t (a text DEFAULT 'x;y', \"b;\" int)",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
                "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
                "CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b)",
                "CREATE INDEX i ON t (a) -- no semicolon\n",
            ]
        );
    }

    #[test]
    fn text_it_cannot_read_is_not_split() {
        // A backslash in a '...' string reads two ways, by standard_conforming_strings.
        assert_eq!(split("SELECT 'a\\'; SELECT 1"), None);
        assert_eq!(split("  -- nothing\n"), Some(vec![]));
    }
}
