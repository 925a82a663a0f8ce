//! International host names: UTS 46 (IDNA) through the `idna` crate, and the script check
//! that refuses look-alike labels.
//!
//! A name is stored in its ASCII (punycode) form, the form DNS and `Host` headers carry, so
//! `bücher.example` and `xn--bcher-kva.example` are one key in the registry. Only this module
//! knows Unicode; the rest of [`Hostname`](super::Hostname) checks the ASCII form.

use icu_properties::CodePointMapData;
use icu_properties::props::{GeneralCategory, GeneralCategoryGroup, Script};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// The ASCII form of a name that holds non-ASCII characters: UTS 46 mapping (case folding,
/// normalisation) and punycode. Lengths are left to the caller, which names the rule broken.
pub(super) fn to_ascii(name: &str) -> Result<String, &'static str> {
    Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Ignore,
        )
        .map(|ascii| ascii.into_owned())
        .map_err(|_| "is not a valid internationalised name (IDNA, UTS 46)")
}

/// The Unicode form of a validated ASCII name, for showing to people.
pub(super) fn to_unicode(ascii: &str) -> String {
    let (unicode, _) = Uts46::new().to_unicode(
        ascii.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
    );
    unicode.into_owned()
}

/// Checks a punycode label (`xn--...`, lowercase): it must decode to a valid name whose
/// encoding is this label again (one spelling per name), in one script.
pub(super) fn check_label(label: &str) -> Result<(), &'static str> {
    let (unicode, decoded) = Uts46::new().to_unicode(
        label.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
    );
    if decoded.is_err() {
        return Err("has a punycode label that does not decode to a valid name");
    }
    if to_ascii(&unicode).as_deref() != Ok(label) {
        return Err("has a punycode label that is not the canonical form of its name");
    }
    if !letters_digits_marks(&unicode) {
        return Err("holds a symbol or punctuation that IDNA 2008 does not allow (a look-alike?)");
    }
    if !one_script(&unicode) {
        return Err("mixes scripts in one label (a look-alike of another name?)");
    }
    Ok(())
}

/// Whether a decoded label holds only letters, marks, decimal digits and hyphens. UTS 46 also
/// lets through symbols that IDNA 2008 disallows (`⁄`, a fraction slash that reads as `/`;
/// emoji); a tenant's domain has no use for them, and they are how look-alikes are made.
fn letters_digits_marks(label: &str) -> bool {
    let categories = CodePointMapData::<GeneralCategory>::new();
    let allowed = GeneralCategoryGroup::Letter
        .union(GeneralCategoryGroup::Mark)
        .union(GeneralCategoryGroup::DecimalNumber);
    label
        .chars()
        .all(|c| c == '-' || allowed.contains(categories.get(c)))
}

/// Whether a label's letters come from one script, as UTS 39's "highly restrictive" level
/// counts them: Latin may join Han with Hiragana and Katakana, with Bopomofo, or with Hangul
/// (how Japanese, Chinese and Korean names are written). Digits, hyphens and combining marks
/// belong to every script. This is what lets `pаypal` with a Cyrillic `а` through nowhere.
fn one_script(label: &str) -> bool {
    const ALLOWED_MIXES: [&[Script]; 3] = [
        &[
            Script::Latin,
            Script::Han,
            Script::Hiragana,
            Script::Katakana,
        ],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    let scripts = CodePointMapData::<Script>::new();
    let mut seen: Vec<Script> = Vec::new();
    for c in label.chars() {
        let script = scripts.get(c);
        if script != Script::Common && script != Script::Inherited && !seen.contains(&script) {
            seen.push(script);
        }
    }
    seen.len() <= 1
        || ALLOWED_MIXES
            .iter()
            .any(|mix| seen.iter().all(|s| mix.contains(s)))
}
