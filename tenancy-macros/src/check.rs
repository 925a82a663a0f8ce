//! Validation: everything that can be known wrong before any code is generated.

use std::collections::HashMap;

use crate::ast::{Field, Model};
use crate::ctxt::Ctxt;

pub fn check(cx: &Ctxt, model: &Model<'_>) {
    check_identifiers(cx, model);
    check_attribute_combinations(cx, model);
    check_key(cx, model);
    check_tenant_column(cx, model);
    check_duplicate_columns(cx, model);
}

fn check_identifiers(cx: &Ctxt, model: &Model<'_>) {
    let bad = |what: &str, name: &str, span| {
        if let Err(e) = tenancy_core::ident::validate(name) {
            let reason = match e {
                tenancy_core::ValidationError::Identifier { reason, .. } => reason,
                _ => "is not a valid identifier",
            };
            cx.syn_error(syn::Error::new(span, format!("{what} {name:?} {reason}")));
        }
    };
    bad("table name", &model.table, model.table_span);
    bad(
        "tenant column",
        &model.tenant_column,
        model.tenant_column_span,
    );
    for f in model.columns() {
        bad("column name", &f.column, f.column_span);
    }
}

fn check_attribute_combinations(cx: &Ctxt, model: &Model<'_>) {
    for f in &model.fields {
        let a = &f.attrs;
        if let Some(span) = a.skip.span()
            && (a.id.is_set() || a.rename.is_set() || a.default.is_set() || a.read_only.is_set())
        {
            cx.syn_error(syn::Error::new(
                span,
                "#[tenancy(skip)] fields are not columns: drop the other tenancy attributes",
            ));
        }
        if let (Some(span), true) = (a.read_only.span(), a.default.is_set()) {
            cx.syn_error(syn::Error::new(
                span,
                "#[tenancy(read_only)] already leaves the column to the database on insert: drop `default`",
            ));
        }
    }
}

fn check_key(cx: &Ctxt, model: &Model<'_>) {
    let marked: Vec<&Field<'_>> = model
        .fields
        .iter()
        .filter(|f| f.attrs.id.is_set())
        .collect();
    for extra in marked.iter().skip(1) {
        cx.error_spanned_by(
            extra.ident,
            format!(
                "a model has one key; `{}` is already marked #[tenancy(id)]",
                marked[0].ident
            ),
        );
    }
    let skipped_id = model
        .fields
        .iter()
        .find(|f| f.ident == "id" && !f.persisted());
    match (model.key(), skipped_id) {
        (None, Some(id)) if marked.is_empty() => cx.syn_error(syn::Error::new(
            id.attrs.skip.span().unwrap_or_else(|| id.ident.span()),
            format!(
                "`{}` has no key: its field `id` would be the key, but #[tenancy(skip)] makes it not a column; \
                 drop `skip`, or mark the uuid primary key with #[tenancy(id)]",
                model.ident
            ),
        )),
        (None, _) if marked.is_empty() => cx.error_spanned_by(
            model.ident,
            format!(
                "`{}` has no key: mark its uuid primary key with #[tenancy(id)] (or name the field `id`)",
                model.ident
            ),
        ),
        (Some(key), _) if !is_uuid(key.ty) => {
            let ty = key.ty;
            cx.error_spanned_by(
                key.ty,
                format!(
                    "the key `{}` must be a `uuid::Uuid`, found `{}`",
                    key.ident,
                    quote::quote!(#ty).to_string().replace(' ', "")
                ),
            );
        }
        _ => {}
    }
}

fn is_uuid(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Uuid" && s.arguments.is_empty()),
        _ => false,
    }
}

fn check_tenant_column(cx: &Ctxt, model: &Model<'_>) {
    for f in model.columns() {
        if f.column == model.tenant_column {
            let hint = if model.attrs.tenant_column.is_set() {
                ""
            } else {
                " (or set #[tenant_scoped(tenant_column = \"...\")] if this is not the tenant)"
            };
            cx.error_spanned_by(
                f.ident,
                format!(
                    "`{}` is the tenant column, which tenancy fills from the TenantCtx: remove this field{hint}",
                    f.column
                ),
            );
        }
    }
}

fn check_duplicate_columns(cx: &Ctxt, model: &Model<'_>) {
    let mut seen: HashMap<&str, &syn::Ident> = HashMap::new();
    for f in model.columns() {
        if let Some(first) = seen.get(f.column.as_str()) {
            cx.syn_error(syn::Error::new(
                f.column_span,
                format!(
                    "column `{}` is already the column of field `{first}`",
                    f.column
                ),
            ));
        } else {
            seen.insert(&f.column, f.ident);
        }
    }
}
