//! Typed attributes: `#[tenant_scoped(...)]` options and `#[tenancy(...)]` field options.
//!
//! Unknown keys and repeated keys are recorded in the [`Ctxt`] (a repeat at its second
//! occurrence) and parsing goes on, so every mistake is reported in one build.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::symbol::*;

/// An option given at most once, remembered with the span it was written at.
pub struct Attr<T> {
    name: &'static str,
    value: Option<(Span, T)>,
}

impl<T> Attr<T> {
    fn none(name: &'static str) -> Self {
        Self { name, value: None }
    }

    fn set(&mut self, cx: &Ctxt, what: &str, meta: &ParseNestedMeta<'_>, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                &meta.path,
                format!("duplicate {what} attribute `{}`", self.name),
            );
        } else {
            self.value = Some((
                meta.path
                    .get_ident()
                    .map_or_else(Span::call_site, |i| i.span()),
                value,
            ));
        }
    }

    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    pub fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }

    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }
}

/// Skips whatever value an unknown key carries (`= lit` or `(...)`), so parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|m| skip_value(&m))?;
    }
    Ok(())
}

fn key(meta: &ParseNestedMeta<'_>) -> String {
    let path = &meta.path;
    quote::quote!(#path).to_string().replace(' ', "")
}

/// `#[tenant_scoped(table = "...", tenant_column = "...", new_derive(...), crate = "...")]`
pub struct Container {
    pub table: Attr<LitStr>,
    pub tenant_column: Attr<LitStr>,
    pub new_derive: Attr<Vec<Path>>,
    pub krate: Attr<Path>,
}

impl Container {
    pub fn from_args(cx: &Ctxt, args: TokenStream) -> Self {
        let mut c = Self {
            table: Attr::none(TABLE),
            tenant_column: Attr::none(TENANT_COLUMN),
            new_derive: Attr::none(NEW_DERIVE),
            krate: Attr::none(CRATE),
        };
        let parser = syn::meta::parser(|meta| {
            let what = "tenant_scoped";
            if meta.path.is_ident(TABLE) {
                let v: LitStr = meta.value()?.parse()?;
                c.table.set(cx, what, &meta, v);
            } else if meta.path.is_ident(TENANT_COLUMN) {
                let v: LitStr = meta.value()?.parse()?;
                c.tenant_column.set(cx, what, &meta, v);
            } else if meta.path.is_ident(NEW_DERIVE) {
                let content;
                syn::parenthesized!(content in meta.input);
                let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                c.new_derive
                    .set(cx, what, &meta, paths.into_iter().collect());
            } else if meta.path.is_ident(CRATE) {
                let v: LitStr = meta.value()?.parse()?;
                match v.parse::<Path>() {
                    Ok(p) => c.krate.set(cx, what, &meta, p),
                    Err(_) => {
                        cx.error_spanned_by(&v, "`crate` must name a path, like \"::tenancy\"")
                    }
                }
            } else {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown tenant_scoped option `{}`; expected one of: {CONTAINER_OPTIONS}",
                        key(&meta)
                    ),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(e) = parser.parse2(args) {
            cx.syn_error(e);
        }
        c
    }
}

/// `#[tenancy(id, rename = "...", default, read_only, skip)]` on a field.
pub struct FieldAttrs {
    pub id: Attr<()>,
    pub rename: Attr<LitStr>,
    pub default: Attr<()>,
    pub read_only: Attr<()>,
    pub skip: Attr<()>,
}

impl FieldAttrs {
    pub fn from_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> Self {
        let mut f = Self {
            id: Attr::none(ID),
            rename: Attr::none(RENAME),
            default: Attr::none(DEFAULT),
            read_only: Attr::none(READ_ONLY),
            skip: Attr::none(SKIP),
        };
        for attr in attrs.iter().filter(|a| a.path().is_ident(TENANCY)) {
            if let syn::Meta::Path(_) = attr.meta {
                cx.error_spanned_by(
                    attr,
                    format!("expected #[tenancy(...)] with one of: {FIELD_OPTIONS}"),
                );
                continue;
            }
            let result = attr.parse_nested_meta(|meta| {
                let what = "tenancy";
                if meta.path.is_ident(ID) {
                    f.id.set(cx, what, &meta, ());
                } else if meta.path.is_ident(RENAME) {
                    let v: LitStr = meta.value()?.parse()?;
                    f.rename.set(cx, what, &meta, v);
                } else if meta.path.is_ident(DEFAULT) {
                    f.default.set(cx, what, &meta, ());
                } else if meta.path.is_ident(READ_ONLY) {
                    f.read_only.set(cx, what, &meta, ());
                } else if meta.path.is_ident(SKIP) {
                    f.skip.set(cx, what, &meta, ());
                } else {
                    cx.error_spanned_by(
                        &meta.path,
                        format!(
                            "unknown tenancy attribute `{}`; expected one of: {FIELD_OPTIONS}",
                            key(&meta)
                        ),
                    );
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(e) = result {
                cx.syn_error(e);
            }
        }
        f
    }
}
