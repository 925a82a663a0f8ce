//! A small SQL lexer: just enough of PostgreSQL's lexical rules to find, outside strings and
//! comments, the placeholders, the identifiers and the positional parameters of raw SQL.
//!
//! Where PostgreSQL's reading of the text could differ from this one, the text is refused
//! rather than guessed at: `U&` escapes, a backslash in a `'...'` string (its meaning depends on
//! `standard_conforming_strings`), unterminated strings, comments and quoted identifiers. Line
//! comments end at `\n` or `\r`, as PostgreSQL's do, and identifiers are folded and truncated
//! as PostgreSQL folds and truncates them (ASCII lowercase, 63 bytes), so that the name compared
//! here is the name the server looks up.

use std::ops::Range;

/// PostgreSQL truncates identifiers to `NAMEDATALEN - 1` bytes.
const MAX_IDENT_BYTES: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// `{name}`: a model's relation.
    Placeholder(String),
    /// An identifier (or a key word: the lexer does not tell them apart), as the server reads
    /// it: folded to ASCII lowercase unless it was double-quoted, truncated to 63 bytes.
    Ident {
        name: String,
        quoted: bool,
    },
    /// `$n`
    Param(u32),
    Dot,
    /// `;`
    Semi,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Range<usize>,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Splits `sql` into tokens, skipping whitespace, comments and string literals.
///
/// # Errors
/// A message for anything it cannot lex with certainty (an unterminated string or comment, a
/// stray brace, a `U&` identifier): raw SQL is refused rather than guessed at.
pub(crate) fn lex(sql: &str) -> Result<Vec<Token>, String> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let start = i;
        let c = b[i];
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                loop {
                    if i + 1 >= b.len() {
                        return Err("unterminated block comment".into());
                    }
                    if b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => i = skip_string(b, i, false)?,
            b'"' => {
                let (name, end) = quoted_ident(sql, i)?;
                out.push(Token {
                    tok: Tok::Ident {
                        name: truncate(name),
                        quoted: true,
                    },
                    span: start..end,
                });
                i = end;
            }
            b'$' => {
                let mut j = i + 1;
                if j < b.len() && b[j].is_ascii_digit() {
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    let n = sql[i + 1..j]
                        .parse()
                        .map_err(|_| "parameter number too large".to_string())?;
                    out.push(Token {
                        tok: Tok::Param(n),
                        span: start..j,
                    });
                    i = j;
                } else {
                    // $tag$ ... $tag$
                    while j < b.len() && ident_cont(b[j]) && b[j] != b'$' {
                        j += 1;
                    }
                    if j >= b.len() || b[j] != b'$' {
                        return Err("stray '$'".into());
                    }
                    let tag = &sql[i..=j];
                    let body = j + 1;
                    let end = sql[body..]
                        .find(tag)
                        .ok_or_else(|| format!("unterminated dollar-quoted string {tag}"))?;
                    i = body + end + tag.len();
                }
            }
            b'{' => {
                let close = sql[i..]
                    .find('}')
                    .ok_or_else(|| "'{' without '}'".to_string())?;
                let name = &sql[i + 1..i + close];
                if name.is_empty() || !name.bytes().all(ident_cont) {
                    return Err(format!("malformed placeholder {{{name}}}"));
                }
                out.push(Token {
                    tok: Tok::Placeholder(name.to_owned()),
                    span: start..i + close + 1,
                });
                i += close + 1;
            }
            b'}' => return Err("'}' without '{'".into()),
            b';' => {
                out.push(Token {
                    tok: Tok::Semi,
                    span: start..i + 1,
                });
                i += 1;
            }
            b'.' => {
                out.push(Token {
                    tok: Tok::Dot,
                    span: start..i + 1,
                });
                i += 1;
            }
            _ if ident_start(c) => {
                let mut j = i;
                while j < b.len() && ident_cont(b[j]) {
                    j += 1;
                }
                let word = &sql[i..j];
                match (word, b.get(j)) {
                    ("e" | "E", Some(b'\'')) => i = skip_string(b, j, true)?,
                    ("u&" | "U&", _) => return Err("U& strings are not supported".into()),
                    ("b" | "B" | "x" | "X" | "n" | "N", Some(b'\'')) => {
                        i = skip_string(b, j, false)?
                    }
                    _ if b.get(j) == Some(&b'&') && matches!(word, "u" | "U") => {
                        return Err("U& strings and identifiers are not supported".into());
                    }
                    _ => {
                        out.push(Token {
                            tok: Tok::Ident {
                                name: truncate(word.to_ascii_lowercase()),
                                quoted: false,
                            },
                            span: start..j,
                        });
                        i = j;
                    }
                }
            }
            _ if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Other,
                    span: start..i,
                });
            }
            _ => {
                // One character of punctuation; advance by a whole UTF-8 character.
                let len = sql[i..].chars().next().map_or(1, char::len_utf8);
                out.push(Token {
                    tok: Tok::Other,
                    span: start..i + len,
                });
                i += len;
            }
        }
    }
    Ok(out)
}

/// Skips a `'...'` literal starting at `i`; `''` is a quote, and with `escapes` (an `E'...'`
/// string) so is `\'`. Without `escapes`, a backslash is refused: PostgreSQL reads it as an
/// escape when `standard_conforming_strings` is off, and then the string ends elsewhere.
fn skip_string(b: &[u8], mut i: usize, escapes: bool) -> Result<usize, String> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' if escapes => i += 2,
            b'\\' => {
                return Err("a backslash in a '...' string (its meaning depends on \
                            standard_conforming_strings); write an E'...' string or bind the value"
                    .into());
            }
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string literal".into())
}

/// Cuts an identifier to the 63 bytes PostgreSQL keeps, on a character boundary.
fn truncate(mut name: String) -> String {
    if name.len() > MAX_IDENT_BYTES {
        let mut end = MAX_IDENT_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

fn quoted_ident(sql: &str, i: usize) -> Result<(String, usize), String> {
    let b = sql.as_bytes();
    let mut j = i + 1;
    let mut name = String::new();
    while j < b.len() {
        if b[j] == b'"' {
            if b.get(j + 1) == Some(&b'"') {
                name.push('"');
                j += 2;
                continue;
            }
            return Ok((name, j + 1));
        }
        let ch = sql[j..].chars().next().unwrap_or('\u{fffd}');
        name.push(ch);
        j += ch.len_utf8();
    }
    Err("unterminated quoted identifier".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(sql: &str) -> Vec<Tok> {
        lex(sql).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn ident(name: &str, quoted: bool) -> Tok {
        Tok::Ident {
            name: name.into(),
            quoted,
        }
    }

    #[test]
    fn finds_placeholders_idents_and_params() {
        assert_eq!(
            toks("SELECT s.id FROM {spins} s WHERE s.d > $1"),
            vec![
                ident("select", false),
                ident("s", false),
                Tok::Dot,
                ident("id", false),
                ident("from", false),
                Tok::Placeholder("spins".into()),
                ident("s", false),
                ident("where", false),
                ident("s", false),
                Tok::Dot,
                ident("d", false),
                Tok::Other,
                Tok::Param(1),
            ]
        );
    }

    #[test]
    fn skips_strings_and_comments() {
        let t = toks(
            "SELECT 'spins {x}', E'it\\'s spins', $q$ spins $q$, /* spins /* nested */ */ 1 -- spins\n",
        );
        assert!(
            !t.iter()
                .any(|t| matches!(t, Tok::Ident { name, .. } if name == "spins"))
        );
        assert!(!t.iter().any(|t| matches!(t, Tok::Placeholder(_))));
    }

    #[test]
    fn quoted_identifiers_keep_case() {
        assert_eq!(toks(r#""Spins""x""y""#), vec![ident("Spins\"x\"y", true)]);
        assert_eq!(toks("SPINS"), vec![ident("spins", false)]);
    }

    #[test]
    fn refuses_what_it_cannot_lex() {
        for bad in [
            "'open",
            "\"open",
            "/* open",
            "{spins",
            "spins}",
            "$tag$ open",
            "U&\"x\"",
            "u&'x'",
            "{a b}",
            "'\\'",
            "'a\\' , spins, '",
            "N'\\'",
            "$tag$ open $TAG$",
        ] {
            assert!(lex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn escape_strings_may_hold_backslashes() {
        assert_eq!(toks("E'it\\'s spins' x"), vec![ident("x", false)]);
        assert_eq!(toks("e'\\\\' x"), vec![ident("x", false)]);
    }

    #[test]
    fn line_comments_end_at_cr_or_lf() {
        assert_eq!(toks("-- a\rspins"), vec![ident("spins", false)]);
        assert_eq!(toks("-- a\nspins"), vec![ident("spins", false)]);
        assert_eq!(toks("-- a spins"), vec![]);
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(toks("/* a /* b */ spins */ x"), vec![ident("x", false)]);
        assert_eq!(toks("/*/ spins */ x"), vec![ident("x", false)]);
        assert!(lex("/* a /* b */ spins").is_err());
    }

    #[test]
    fn folds_and_truncates_as_postgres_does() {
        // ASCII lowercase only: PostgreSQL leaves other letters alone in UTF-8.
        assert_eq!(toks("SPÍNS"), vec![ident("spÍns", false)]);
        // 63 bytes, on a character boundary.
        let long = "b".repeat(70);
        assert_eq!(toks(&long), vec![ident(&"b".repeat(63), false)]);
        assert_eq!(
            toks(&format!("\"{long}\"")),
            vec![ident(&"b".repeat(63), true)]
        );
        let wide = format!("{}é", "c".repeat(62));
        assert_eq!(toks(&wide), vec![ident(&"c".repeat(62), false)]);
    }

    #[test]
    fn dollar_quotes_and_identifiers_with_dollars() {
        assert_eq!(toks("$a$ spins $b$ x $a$ y"), vec![ident("y", false)]);
        assert_eq!(toks("$$ spins $$ y"), vec![ident("y", false)]);
        assert_eq!(toks("spins$x$"), vec![ident("spins$x$", false)]);
        assert_eq!(toks("x;"), vec![ident("x", false), Tok::Semi]);
    }
}
