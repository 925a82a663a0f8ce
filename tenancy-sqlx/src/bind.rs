//! Binding a tenant's statement so that no user code can change which tenant it acts for.
//!
//! sqlx hands every `Encode` the statement's whole argument buffer (`PgArgumentBuffer` derefs to
//! `Vec<u8>`). Read against `sqlx-postgres-0.9.0/src/arguments.rs`, that leaves three doors to
//! an encoder of a user's type:
//!
//! 1. it can rewrite bytes already in the buffer: the arguments bound before it, and their
//!    length prefixes, which decide where the server reads each later argument;
//! 2. it can call sqlx's own array and record encoders with the buffer at a length of its
//!    choosing, leaving a *type hole* (four bytes sqlx overwrites with a type's oid at send
//!    time, after every encoder has run) at any offset, including one the tenant will fill;
//! 3. likewise sqlx's JSON encoder leaves a *patch*, a callback run at send time on the buffer
//!    from its offset on. Registering a patch of one's own is not possible (`patch_with` is
//!    private to sqlx), so this door is the same as the second.
//!
//! Three rules close them, all in this module:
//!
//! - a user type's encoder never sees the statement's buffer: [`Fenced`] runs it on an empty
//!   buffer of its own and copies the bytes it wrote, so holes and patches it leaves stay in that
//!   buffer and are dropped (a value that needs one is refused: see [`Fenced`]);
//! - the tenant is bound last ([`finish`]), so no encoder runs after it is written;
//! - before the tenant is written, the buffer is read as the server will read it: every argument
//!   bound before it must span exactly what its length prefix says, ending where the tenant's
//!   begins, and the tenant must go to the placeholder the statement reads it from. A mismatch is
//!   [`Error::TenantBinding`] and the statement is not sent.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgTypeInfo};
use sqlx::{Arguments, Encode, Postgres, Type};
use uuid::Uuid;

use crate::{Error, Result};

/// Arguments of a tenant's statement, complete: the tenant is bound, last, at the placeholder
/// the statement reads it from. The only way to run a tenant's statement takes one (see
/// `TenantUnit`), and the only way to make one is [`finish`].
pub(crate) struct TenantArgs(PgArguments);

impl TenantArgs {
    pub(crate) fn into_inner(self) -> PgArguments {
        self.0
    }
}

/// Binds `tenant` as the last argument, read by the statement as `$placeholder`.
///
/// # Errors
/// [`Error::TenantBinding`] if `placeholder` is not the next parameter (the statement would read
/// the tenant from a value bound for something else) or if the arguments before it are not laid
/// out as the server will read them. The statement must not be sent.
pub(crate) fn finish(
    mut args: PgArguments,
    tenant: Uuid,
    placeholder: usize,
) -> Result<TenantArgs> {
    let before = args.len();
    if before + 1 != placeholder {
        return Err(Error::TenantBinding(format!(
            "the statement reads the tenant from ${placeholder}, but {before} values were bound before it"
        )));
    }
    args.add(TenantArg { id: tenant, before })
        .map_err(|e| Error::TenantBinding(e.to_string()))?;
    Ok(TenantArgs(args))
}

/// The tenant's argument: written by this crate's code alone, after checking what comes before.
struct TenantArg {
    id: Uuid,
    /// How many arguments precede it.
    before: usize,
}

impl Type<Postgres> for TenantArg {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for TenantArg {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        follows_arguments(buf, self.before, "tenant")?;
        buf.extend_from_slice(self.id.as_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        16
    }
}

/// Refuses to write `what` unless the `before` arguments already in `buf` end exactly where
/// sqlx reserved its length prefix: read as the server will read them, so no earlier argument
/// can have moved where `what` lands.
fn follows_arguments(
    buf: &PgArgumentBuffer,
    before: usize,
    what: &str,
) -> std::result::Result<(), BoxDynError> {
    // sqlx has reserved the four bytes of this argument's length prefix.
    let start = buf
        .len()
        .checked_sub(4)
        .ok_or("the argument buffer is shorter than a length prefix")?;
    let end = arguments_end(buf, before)?;
    if end != start {
        return Err(format!(
            "the {before} arguments before the {what} end at byte {end}, but the {what} would start at byte {start}"
        )
        .into());
    }
    Ok(())
}

/// Binds a report's tenants (the shared tables' `ANY($n)` ids, a schema branch's tenant) as
/// [`finish`] binds one tenant: only after reading the arguments before them as the server will,
/// so that no earlier argument can have moved where the server reads them from.
///
/// # Errors
/// [`Error::TenantBinding`] if the arguments before are not laid out as their length prefixes
/// say; the statement must not be sent.
pub(crate) fn bind_tenants<T>(args: &mut PgArguments, value: T) -> Result<()>
where
    T: for<'q> Encode<'q, Postgres> + Type<Postgres>,
{
    let before = args.len();
    args.add(Walked { value, before })
        .map_err(|e| Error::TenantBinding(e.to_string()))
}

/// A value of this crate's (tenants), written only where the arguments before it end.
struct Walked<T> {
    value: T,
    before: usize,
}

impl<T: Type<Postgres>> Type<Postgres> for Walked<T> {
    fn type_info() -> PgTypeInfo {
        T::type_info()
    }
}

impl<T> Encode<'_, Postgres> for Walked<T>
where
    T: for<'q> Encode<'q, Postgres> + Type<Postgres>,
{
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        follows_arguments(buf, self.before, "tenants")?;
        self.value.encode_by_ref(buf)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        self.value.produces()
    }

    fn size_hint(&self) -> usize {
        self.value.size_hint()
    }
}

/// Where the first `count` arguments of `buf` end, read as the server reads a Bind message:
/// each a big-endian `i32` length (-1 for NULL) and that many bytes.
fn arguments_end(buf: &[u8], count: usize) -> std::result::Result<usize, String> {
    let mut at = 0usize;
    for n in 1..=count {
        let prefix: [u8; 4] = buf
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("argument {n} has no length prefix"))?;
        at += 4;
        match i32::from_be_bytes(prefix) {
            -1 => {}
            len @ 0.. => {
                at = at
                    .checked_add(len as usize)
                    .filter(|&end| end <= buf.len())
                    .ok_or_else(|| format!("argument {n} claims more bytes than were written"))?;
            }
            len => return Err(format!("argument {n} has an invalid length {len}")),
        }
    }
    Ok(at)
}

/// A value bound through its own type's encoder, run on a buffer of its own (see the module
/// docs): the encoder sees nothing of the statement, and what it leaves for sqlx to do at send
/// time (type holes, patches) is dropped with its buffer.
///
/// Dropping them is safe for every built-in sqlx type but one case: an array or record whose
/// element type sqlx knows only by name (an array of a `#[derive(sqlx::Type)]` enum, say) needs
/// its type hole filled. Such a value is refused with an error before anything is sent, rather
/// than sent with a zero oid for the server to refuse.
pub(crate) struct Fenced<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Type<Postgres> + ?Sized> Type<Postgres> for Fenced<'_, T> {
    fn type_info() -> PgTypeInfo {
        T::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        T::compatible(ty)
    }
}

impl<'q, T> Encode<'q, Postgres> for Fenced<'_, T>
where
    T: Encode<'q, Postgres> + Type<Postgres> + ?Sized,
{
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        let mut own = PgArgumentBuffer::default();
        let null = self.0.encode_by_ref(&mut own)?;
        if let IsNull::Yes = null {
            if !own.is_empty() {
                return Err("a value encoded as NULL wrote bytes".into());
            }
            return Ok(IsNull::Yes);
        }
        let ty = self.0.produces().unwrap_or_else(T::type_info);
        if ty.oid().is_none() && leaves_late_writes(&own) {
            return Err(format!(
                "a value of PostgreSQL type {ty} needs sqlx to finish encoding it at send time (type ids or a patch), \
                 which tenancy does not allow; bind it through a type with a built-in oid (e.g. an array of text)"
            )
            .into());
        }
        buf.extend_from_slice(&own);
        Ok(IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.0.produces().unwrap_or_else(T::type_info))
    }

    fn size_hint(&self) -> usize {
        self.0.size_hint()
    }
}

/// Whether an encoder left type holes or patches in `buf`. sqlx exposes them only through the
/// buffer's `Debug` form; asked only of values whose type is known by name alone (rare, and
/// small), never on the hot path.
fn leaves_late_writes(buf: &PgArgumentBuffer) -> bool {
    let shown = format!("{buf:?}");
    !(shown.contains("patches: []") && shown.contains("hole_offsets: []"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arguments_as_the_server_does() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&7i32.to_be_bytes());
        buf.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(arguments_end(&buf, 2), Ok(12));
        assert!(arguments_end(&buf, 3).is_err());
        buf[3] = 40;
        assert!(arguments_end(&buf, 1).is_err());
    }

    #[test]
    fn the_tenant_goes_last_at_its_placeholder() {
        let tenant = Uuid::new_v4();
        let mut args = PgArguments::default();
        args.add(1_i32).unwrap();
        assert!(finish(args.clone(), tenant, 1).is_err());
        assert!(finish(args.clone(), tenant, 3).is_err());
        assert!(finish(args, tenant, 2).is_ok());
    }

    #[test]
    fn a_null_that_writes_bytes_is_refused() {
        // sqlx writes the length -1 for a NULL and leaves what the encoder wrote: the server would
        // read those bytes as the next argument.
        struct LyingNull;
        impl Type<Postgres> for LyingNull {
            fn type_info() -> PgTypeInfo {
                <Uuid as Type<Postgres>>::type_info()
            }
        }
        impl Encode<'_, Postgres> for LyingNull {
            fn encode_by_ref(
                &self,
                buf: &mut PgArgumentBuffer,
            ) -> std::result::Result<IsNull, BoxDynError> {
                buf.extend_from_slice(&16_i32.to_be_bytes());
                buf.extend_from_slice(Uuid::new_v4().as_bytes());
                Ok(IsNull::Yes)
            }
        }
        let mut args = PgArguments::default();
        let err = args.add(Fenced(&LyingNull)).unwrap_err();
        assert!(err.to_string().contains("NULL"), "{err}");
        assert_eq!(args.len(), 0);
    }

    #[test]
    fn a_named_array_is_refused_before_sending() {
        #[derive(Clone)]
        struct Mood;
        impl Type<Postgres> for Mood {
            fn type_info() -> PgTypeInfo {
                PgTypeInfo::with_name("mood")
            }
        }
        impl sqlx::postgres::PgHasArrayType for Mood {
            fn array_type_info() -> PgTypeInfo {
                PgTypeInfo::with_name("_mood")
            }
        }
        impl Encode<'_, Postgres> for Mood {
            fn encode_by_ref(
                &self,
                buf: &mut PgArgumentBuffer,
            ) -> std::result::Result<IsNull, BoxDynError> {
                buf.extend_from_slice(b"ok");
                Ok(IsNull::No)
            }
        }
        let mut args = PgArguments::default();
        assert!(args.add(Fenced(&Mood)).is_ok());
        let err = args.add(Fenced(&vec![Mood])).unwrap_err();
        assert!(err.to_string().contains("_mood"), "{err}");
    }

    #[test]
    fn a_reports_tenants_follow_arguments_laid_out_as_read() {
        // An encoder handed the statement's buffer (none is: see `Fenced`) that rewrote the
        // length prefix of the argument before it would shift where the server reads the
        // tenants from.
        struct Rewrites;
        impl Type<Postgres> for Rewrites {
            fn type_info() -> PgTypeInfo {
                <i32 as Type<Postgres>>::type_info()
            }
        }
        impl Encode<'_, Postgres> for Rewrites {
            fn encode_by_ref(
                &self,
                buf: &mut PgArgumentBuffer,
            ) -> std::result::Result<IsNull, BoxDynError> {
                buf[3] = 40;
                buf.extend_from_slice(&0_i32.to_be_bytes());
                Ok(IsNull::No)
            }
        }
        let ids = vec![Uuid::new_v4()];
        let mut args = PgArguments::default();
        args.add(1_i32).unwrap();
        bind_tenants(&mut args, ids.clone()).unwrap();
        assert_eq!(args.len(), 2);
        let mut args = PgArguments::default();
        args.add(1_i32).unwrap();
        args.add(Rewrites).unwrap();
        let err = bind_tenants(&mut args, ids).unwrap_err();
        assert!(matches!(err, Error::TenantBinding(_)), "{err}");
    }
}
