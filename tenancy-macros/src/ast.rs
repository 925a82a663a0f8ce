//! The model of the input: the struct, its options and its fields, resolved to columns.

use proc_macro2::{Span, TokenStream};

use crate::attr::{Container, FieldAttrs};
use crate::ctxt::Ctxt;
use crate::symbol::DEFAULT_TENANT_COLUMN;

pub struct Model<'a> {
    pub item: &'a syn::DeriveInput,
    pub ident: &'a syn::Ident,
    pub attrs: Container,
    /// The table: `table = "..."`, or the snake-cased struct name plus `s`.
    pub table: String,
    pub table_span: Span,
    pub tenant_column: String,
    pub tenant_column_span: Span,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub original: &'a syn::Field,
    pub ident: &'a syn::Ident,
    pub ty: &'a syn::Type,
    pub attrs: FieldAttrs,
    /// The column: `rename = "..."` or the field's name.
    pub column: String,
    pub column_span: Span,
    /// The model's key, resolved once by [`Model::from_syn`]: marked `#[tenancy(id)]`, or named
    /// `id` when no field is marked.
    pub is_key: bool,
}

impl Field<'_> {
    pub fn persisted(&self) -> bool {
        !self.attrs.skip.is_set()
    }

    /// Written by inserts: not filled by the database.
    pub fn inserted(&self) -> bool {
        self.persisted() && !self.attrs.default.is_set() && !self.attrs.read_only.is_set()
    }

    /// Written by updates: not the key (marked or implicit), not read-only.
    pub fn updated(&self) -> bool {
        self.persisted() && !self.is_key && !self.attrs.read_only.is_set()
    }
}

impl<'a> Model<'a> {
    /// Parses the input; `None` if it is not a struct with named fields (the error is recorded).
    pub fn from_syn(cx: &Ctxt, args: TokenStream, item: &'a syn::DeriveInput) -> Option<Self> {
        let attrs = Container::from_args(cx, args);
        let fields = match &item.data {
            syn::Data::Struct(s) => match &s.fields {
                syn::Fields::Named(named) => &named.named,
                syn::Fields::Unnamed(f) => {
                    cx.error_spanned_by(
                        f,
                        "#[tenant_scoped] needs a struct with named fields, not a tuple struct",
                    );
                    return None;
                }
                syn::Fields::Unit => {
                    cx.error_spanned_by(
                        &item.ident,
                        "#[tenant_scoped] needs a struct with named fields, not a unit struct",
                    );
                    return None;
                }
            },
            syn::Data::Enum(e) => {
                cx.error_spanned_by(
                    e.enum_token,
                    "#[tenant_scoped] applies to structs with named fields, not enums",
                );
                return None;
            }
            syn::Data::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "#[tenant_scoped] applies to structs with named fields, not unions",
                );
                return None;
            }
        };
        // `Generics` prints without its where clause, so each part is pointed at on its own.
        let generics = &item.generics;
        if !generics.params.is_empty() {
            cx.error_spanned_by(
                generics,
                "#[tenant_scoped] does not support generic parameters: a model maps one table with fixed column types",
            );
        } else if let Some(where_clause) = &generics.where_clause {
            cx.error_spanned_by(
                where_clause,
                "#[tenant_scoped] does not support where clauses: a model maps one table with fixed column types",
            );
        }
        let (table, table_span) = match attrs.table.get() {
            Some(lit) => (lit.value(), lit.span()),
            None => (
                format!("{}s", snake_case(&item.ident.to_string())),
                item.ident.span(),
            ),
        };
        let (tenant_column, tenant_column_span) = match attrs.tenant_column.get() {
            Some(lit) => (lit.value(), lit.span()),
            None => (DEFAULT_TENANT_COLUMN.to_owned(), Span::call_site()),
        };
        let mut fields: Vec<Field<'a>> = fields
            .iter()
            .filter_map(|f| {
                let ident = f.ident.as_ref()?;
                let attrs = FieldAttrs::from_attrs(cx, &f.attrs);
                let (column, column_span) = match attrs.rename.get() {
                    Some(lit) => (lit.value(), lit.span()),
                    None => (
                        ident.to_string().trim_start_matches("r#").to_owned(),
                        ident.span(),
                    ),
                };
                Some(Field {
                    original: f,
                    ident,
                    ty: &f.ty,
                    attrs,
                    column,
                    column_span,
                    is_key: false,
                })
            })
            .collect();
        if let Some(i) = resolve_key(&fields) {
            fields[i].is_key = true;
        }
        Some(Self {
            item,
            ident: &item.ident,
            attrs,
            table,
            table_span,
            tenant_column,
            tenant_column_span,
            fields,
        })
    }

    /// The persisted fields, in declaration order: the model's columns.
    pub fn columns(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|f| f.persisted())
    }

    /// The key: the field marked `#[tenancy(id)]`, else a field named `id`.
    pub fn key(&self) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.is_key)
    }
}

/// Index of the key among `fields`: the first persisted field marked `#[tenancy(id)]`, else, if
/// none is marked, the persisted field named `id`.
fn resolve_key(fields: &[Field<'_>]) -> Option<usize> {
    let persisted = || fields.iter().enumerate().filter(|(_, f)| f.persisted());
    if fields.iter().any(|f| f.attrs.id.is_set()) {
        persisted()
            .find(|(_, f)| f.attrs.id.is_set())
            .map(|(i, _)| i)
    } else {
        persisted().find(|(_, f)| f.ident == "id").map(|(i, _)| i)
    }
}

/// `FidgetSpinner` -> `fidget_spinner`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `created_at` -> `CREATED_AT`.
pub fn screaming(name: &str) -> String {
    name.trim_start_matches("r#").to_uppercase()
}
