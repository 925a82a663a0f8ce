//! `#[tenancy::test]`: parses the attribute and wraps the async test in the runtime's runner
//! (`tenancy::testing::run`), which owns the database, the runtime and the cleanup. The
//! expansion mints nothing: tenants are created and resolved by the runner, through the
//! registry.

use std::path::Path;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, LitInt, LitStr, Token};

/// The attribute's arguments.
#[derive(Default)]
struct Args {
    migrations: Option<LitStr>,
    tenants: Vec<(String, Span, Ident)>,
    flavor: Option<LitStr>,
    worker_threads: Option<LitInt>,
    max_connections: Option<LitInt>,
    krate: Option<syn::Path>,
}

/// `acme = "shared"`, or `"acme-corp" = "schema"` for a slug that is not a Rust identifier.
struct TenantArg {
    slug: String,
    span: Span,
    placement: LitStr,
}

impl Parse for TenantArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (slug, span) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.span())
        } else if input.peek(Ident::peek_any) {
            let ident = input.call(Ident::parse_any)?;
            (ident.unraw().to_string(), ident.span())
        } else {
            return Err(input.error(
                "a tenant is `slug = \"shared\"`, `slug = \"schema\"` or `slug = \"database\"` (a string for a slug with `-`)",
            ));
        };
        input.parse::<Token![=]>()?;
        let placement = input.parse()?;
        Ok(Self {
            slug,
            span,
            placement,
        })
    }
}

/// The placements a test may ask for, by the name the attribute uses.
const PLACEMENTS: [(&str, &str); 3] = [
    ("shared", "SharedTable"),
    ("schema", "OwnSchema"),
    ("database", "OwnDatabase"),
];

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item: ItemFn = match syn::parse2(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Vec::new();
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(e) => {
            errors.push(e);
            Args::default()
        }
    };
    check_fn(&item, &mut errors);
    if let Some(dir) = &args.migrations
        && let Err(e) = check_migrations(dir)
    {
        errors.push(e);
    }
    if let Some(first) = errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    }) {
        // The function alone, so that its body's errors still show, once.
        let e = first.to_compile_error();
        return quote!(#e #item);
    }
    expand_ok(&args, &mut item)
}

fn parse_args(args: TokenStream) -> syn::Result<Args> {
    let mut out = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("migrations") {
            out.migrations = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("tenants") {
            let content;
            syn::parenthesized!(content in meta.input);
            let list = Punctuated::<TenantArg, Token![,]>::parse_terminated(&content)?;
            for tenant in list {
                let variant = placement_variant(&tenant.placement)?;
                if let Err(e) = tenancy_core::Slug::parse(&tenant.slug) {
                    return Err(syn::Error::new(
                        tenant.span,
                        format!("`{}` is not a tenant slug: {e}", tenant.slug),
                    ));
                }
                if out.tenants.iter().any(|(s, _, _)| *s == tenant.slug) {
                    return Err(syn::Error::new(
                        tenant.span,
                        format!("tenant `{}` is asked for twice", tenant.slug),
                    ));
                }
                out.tenants.push((tenant.slug, tenant.span, variant));
            }
        } else if meta.path.is_ident("flavor") {
            let flavor: LitStr = meta.value()?.parse()?;
            if !matches!(flavor.value().as_str(), "current_thread" | "multi_thread") {
                return Err(syn::Error::new(
                    flavor.span(),
                    "unknown flavor: expected \"current_thread\" or \"multi_thread\"",
                ));
            }
            out.flavor = Some(flavor);
        } else if meta.path.is_ident("worker_threads") {
            out.worker_threads = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("max_connections") {
            out.max_connections = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("crate") {
            let path: LitStr = meta.value()?.parse()?;
            out.krate = Some(path.parse()?);
        } else {
            return Err(meta.error(
                "unknown argument: expected `migrations = \"dir\"`, `tenants(slug = \"shared\" | \"schema\" | \"database\", ...)`, \
                 `max_connections = N`, `flavor = \"...\"`, `worker_threads = N` or `crate = \"...\"`",
            ));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, args)?;
    if let Some(n) = &out.worker_threads
        && out
            .flavor
            .as_ref()
            .is_none_or(|f| f.value() != "multi_thread")
    {
        return Err(syn::Error::new(
            n.span(),
            "`worker_threads` needs `flavor = \"multi_thread\"`",
        ));
    }
    Ok(out)
}

fn placement_variant(lit: &LitStr) -> syn::Result<Ident> {
    let value = lit.value();
    if let Some((_, variant)) = PLACEMENTS.iter().find(|(name, _)| *name == value) {
        return Ok(Ident::new(variant, lit.span()));
    }
    let why = format!(
        "unknown placement \"{value}\": expected \"shared\" (shared tables), \"schema\" (a schema of \
         its own) or \"database\" (a database of its own)"
    );
    Err(syn::Error::new(lit.span(), why))
}

fn check_fn(item: &ItemFn, errors: &mut Vec<syn::Error>) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            "#[tenancy::test] needs an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "a #[tenancy::test] function cannot be generic",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        errors.push(syn::Error::new(
            receiver.span(),
            "a #[tenancy::test] function is not a method",
        ));
    } else if sig.inputs.len() > 1 {
        errors.push(syn::Error::new(
            sig.inputs.span(),
            "a #[tenancy::test] function takes one argument, `t: tenancy::testing::TestTenancy`, or none",
        ));
    }
    if let Some(attr) = item.attrs.iter().find(|a| a.path().is_ident("test")) {
        errors.push(syn::Error::new(
            attr.span(),
            "#[tenancy::test] already makes this a test: remove #[test]",
        ));
    }
}

/// The folder must be there when the test compiles: a typo fails the build, not each test.
fn check_migrations(dir: &LitStr) -> syn::Result<()> {
    let Ok(root) = std::env::var("CARGO_MANIFEST_DIR") else {
        return Ok(()); // not under cargo: the runner reports it
    };
    let path = Path::new(&root).join(dir.value());
    if !path.is_dir() {
        return Err(syn::Error::new(
            dir.span(),
            format!("no migrations folder `{}` in this package", dir.value()),
        ));
    }
    if !path.join("shared").is_dir() && !path.join("tenant").is_dir() {
        return Err(syn::Error::new(
            dir.span(),
            format!(
                "`{}` has neither a `shared/` nor a `tenant/` folder of migrations",
                dir.value()
            ),
        ));
    }
    Ok(())
}

fn expand_ok(args: &Args, item: &mut ItemFn) -> TokenStream {
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::tenancy));
    let attrs = std::mem::take(&mut item.attrs);
    let vis = &item.vis;
    let name = &item.sig.ident;
    let name_str = name.to_string();
    let body_name = format_ident!("__tenancy_test_{}", name);
    let mut body_fn = item.clone();
    body_fn.sig.ident = body_name.clone();
    body_fn.vis = syn::Visibility::Inherited;
    let call = if item.sig.inputs.is_empty() {
        quote!(|_| #body_name())
    } else {
        quote!(#body_name)
    };
    let flavor = match (&args.flavor, &args.worker_threads) {
        (Some(f), Some(n)) if f.value() == "multi_thread" => {
            quote!(#krate::testing::Flavor::MultiThread(::core::option::Option::Some(#n)))
        }
        (Some(f), None) if f.value() == "multi_thread" => {
            quote!(#krate::testing::Flavor::MultiThread(::core::option::Option::None))
        }
        _ => quote!(#krate::testing::Flavor::CurrentThread),
    };
    let migrations = args.migrations.as_ref().map(|dir| {
        quote! {
            .and_then(|s| s.migrations_dir(::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", #dir)))
        }
    });
    let max_connections = args
        .max_connections
        .as_ref()
        .map(|n| quote!(.max_connections(#n)));
    let tenants = args.tenants.iter().map(
        |(slug, span, variant)| quote_spanned!(*span=> .tenant(#slug, #krate::Placement::#variant)),
    );
    let check_name = format_ident!("__tenancy_test_check_{}", name);
    quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #body_fn
            #krate::testing::run(
                #flavor,
                ::core::result::Result::Ok::<_, #krate::testing::SetupError>(
                    #krate::testing::TestSetup::new(::core::concat!(::core::module_path!(), "::", #name_str)),
                )
                #migrations
                .map(|s| s #max_connections #(#tenants)*),
                #call,
            )
        }

        // Outside `cfg(test)` the test above is compiled out: this keeps the body's signature
        // checked against what the runner hands in, in every build.
        #[cfg(not(test))]
        #[allow(dead_code, non_snake_case)]
        fn #check_name() {
            #body_fn
            #krate::testing::check_body(#call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: TokenStream, input: TokenStream) -> String {
        expand(args, input).to_string()
    }

    #[test]
    fn tenants_become_setup_calls_in_order_and_slugs_may_be_strings() {
        let out = expand_str(
            quote!(
                tenants(acme = "shared", "acme-corp" = "schema"),
                max_connections = 3
            ),
            quote!(
                async fn t(t: TestTenancy) {}
            ),
        );
        let acme = out.find(". tenant (\"acme\" , :: tenancy :: Placement :: SharedTable)");
        let corp = out.find(". tenant (\"acme-corp\" , :: tenancy :: Placement :: OwnSchema)");
        assert!(acme.is_some() && corp.is_some() && acme < corp, "{out}");
        assert!(out.contains(". max_connections (3)"), "{out}");
        assert!(out.contains("Flavor :: CurrentThread"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let out = expand_str(
            quote!(tenants(acme = "shard")),
            quote!(
                fn t(a: u8, b: u8) {}
            ),
        );
        for message in [
            "unknown placement",
            "needs an `async fn`",
            "takes one argument",
        ] {
            assert!(out.contains(message), "{message}: {out}");
        }
    }

    #[test]
    fn a_renamed_crate_is_used_in_the_expansion() {
        let out = expand_str(
            quote!(crate = "my_tenancy"),
            quote!(
                async fn t() {}
            ),
        );
        assert!(out.contains("my_tenancy :: testing :: run"), "{out}");
        assert!(out.contains("| _ | __tenancy_test_t ()"), "{out}");
    }
}
