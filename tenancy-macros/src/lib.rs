//! The `#[tenant_scoped]` attribute of [tenancy](https://docs.rs/tenancy). Use it through the
//! `tenancy` crate, which documents it.
//!
//! Built like a small compiler, after serde_derive and thiserror: `ast` parses the struct and
//! its attributes, `check` validates and collects every error with its span, `expand`
//! writes the model description. On error, `fallback` emits the errors and the struct alone,
//! so one mistake gives one message.
//!
//! The expansion only describes the model (table, columns, key, decoding and binding of its
//! fields). It never mints a token and never runs SQL: every query goes through the runtime's
//! `Repo`, whose methods demand a tenant scope.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod fallback;
mod symbol;
mod test_attr;

use proc_macro::TokenStream;

/// Makes a struct a tenant-scoped model. See the `tenancy` crate's documentation.
#[proc_macro_attribute]
pub fn tenant_scoped(args: TokenStream, input: TokenStream) -> TokenStream {
    let expansion = tenant_scoped_inner(args.into(), input.into());
    let mut out = TokenStream::from(expansion.tokens);
    if !expansion.text.is_empty() {
        // The compiler's own lexer (see `expand::Expansion`).
        match expansion.text.parse::<TokenStream>() {
            Ok(tokens) => out.extend([tokens]),
            Err(e) => out.extend([TokenStream::from(
                syn::Error::new(
                    proc_macro2::Span::call_site(),
                    format!("#[tenant_scoped] generated invalid code ({e:?}); please report this"),
                )
                .to_compile_error(),
            )]),
        }
    }
    out
}

/// Runs an async test on a database of its own, with tenants handed in: `#[tenancy::test]`
/// (the facade re-exports it under that name, feature `testing`), which documents it.
#[proc_macro_attribute]
pub fn tenancy_test(args: TokenStream, input: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), input.into()).into()
}

/// The testable entry point: tokens in, tokens (and source text) out.
fn tenant_scoped_inner(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> expand::Expansion {
    let only = |tokens| expand::Expansion {
        tokens,
        text: String::new(),
    };
    let item: syn::DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(e) => return only(e.to_compile_error()),
    };
    let cx = ctxt::Ctxt::new();
    let model = ast::Model::from_syn(&cx, args, &item);
    if let Some(model) = &model {
        check::check(&cx, model);
    }
    match (cx.finish(), model) {
        (Ok(()), Some(model)) => expand::expand(&model),
        (Err(errors), _) => only(fallback::fallback(&item, errors)),
        (Ok(()), None) => only(fallback::fallback(&item, Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand(args: proc_macro2::TokenStream, input: proc_macro2::TokenStream) -> String {
        let expansion = tenant_scoped_inner(args, input);
        let text: proc_macro2::TokenStream = expansion.text.parse().expect("valid Rust");
        format!("{} {text}", expansion.tokens)
    }

    #[test]
    fn expands_a_model() {
        let out = expand(
            quote!(table = "spins"),
            quote! {
                pub struct Spin {
                    #[tenancy(id)]
                    pub id: Uuid,
                    #[tenancy(rename = "dur")]
                    pub duration: i32,
                    #[tenancy(read_only)]
                    pub created_at: OffsetDateTime,
                }
            },
        );
        assert!(out.contains("pub struct NewSpin"), "{out}");
        assert!(out.contains("\"dur\""), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            !out.contains("tenancy (id)"),
            "helper attributes must be stripped: {out}"
        );
    }

    #[test]
    fn implicit_key_is_read_only() {
        let out = expand(
            quote!(),
            quote! {
                pub struct Spin {
                    pub id: Uuid,
                    pub duration: i32,
                }
            },
        );
        let id = out.find("const ID").expect("an ID handle");
        let duration = out.find("const DURATION").expect("a DURATION handle");
        assert!(out[id..duration].contains("ReadOnly"), "{out}");
        assert!(out[duration..].contains("Writable"), "{out}");
    }

    #[test]
    fn collects_every_error() {
        let out = expand(
            quote!(tabel = "x"),
            quote! {
                struct Spin {
                    #[tenancy(wat)]
                    id: i64,
                    tenant_id: Uuid,
                }
            },
        );
        assert!(out.matches("compile_error").count() >= 3, "{out}");
    }
}
