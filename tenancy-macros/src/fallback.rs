//! What to emit when the input is wrong: the errors, and the struct as written (without our
//! helper attributes), so that the only messages the user sees are ours.

use proc_macro2::TokenStream;
use quote::quote;

pub fn fallback(item: &syn::DeriveInput, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.into_iter().map(|e| e.to_compile_error());
    let item = strip_helper_attrs(item);
    quote! {
        #(#errors)*
        #item
    }
}

/// The item without `#[tenancy(...)]` on its fields (or an enum's variants and their fields): an
/// attribute macro cannot declare helper attributes, so they must not reach the compiler, which
/// would add "cannot find attribute `tenancy`" to our own message.
pub fn strip_helper_attrs(item: &syn::DeriveInput) -> syn::DeriveInput {
    let mut item = item.clone();
    let strip = |attrs: &mut Vec<syn::Attribute>| {
        attrs.retain(|a| !a.path().is_ident(crate::symbol::TENANCY));
    };
    match &mut item.data {
        syn::Data::Struct(s) => s.fields.iter_mut().for_each(|f| strip(&mut f.attrs)),
        syn::Data::Enum(e) => {
            for v in &mut e.variants {
                strip(&mut v.attrs);
                v.fields.iter_mut().for_each(|f| strip(&mut f.attrs));
            }
        }
        syn::Data::Union(u) => u.fields.named.iter_mut().for_each(|f| strip(&mut f.attrs)),
    }
    item
}
