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

/// The struct without `#[tenancy(...)]` on its fields: an attribute macro cannot declare helper
/// attributes, so they must not reach the compiler.
pub fn strip_helper_attrs(item: &syn::DeriveInput) -> syn::DeriveInput {
    let mut item = item.clone();
    if let syn::Data::Struct(s) = &mut item.data {
        for f in s.fields.iter_mut() {
            f.attrs
                .retain(|a| !a.path().is_ident(crate::symbol::TENANCY));
        }
    }
    item
}
