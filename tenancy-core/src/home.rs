//! Where a tenant's rows live, as one value resolved when its context is minted.
//!
//! A [`Placement`] is what the registry records; a [`Home`] is what a statement needs from it:
//! nothing on shared tables, the quoted schema on the own-schema placement. Resolving it once,
//! when the registry row is read, means no statement path branches on a placement and a schema
//! that could disagree, and a new placement (a database or a server of its own) is a new variant.
//!
//! The names tenancy gives the schemas it creates live here too, so that what creates a schema
//! and what refuses one on a `search_path` cannot drift apart.

use std::fmt;

use crate::{Placement, Slug, TenantId, ValidationError, ident};

/// The tenant column's name when a model does not name another (`#[tenant_scoped]`'s
/// `tenant_column`), and the column raw SQL and the model check look for first.
pub const DEFAULT_TENANT_COLUMN: &str = "tenant_id";

/// The prefix of an own-schema tenant's schema: `t_` and its slug (see [`tenant_schema`]).
pub const TENANT_SCHEMA_PREFIX: &str = "t_";

/// The prefix of a spare schema: one built ahead of time, with the tenant migrations applied,
/// and renamed to a tenant's when an own-schema tenant is created.
pub const SPARE_SCHEMA_PREFIX: &str = "tenancy_spare_";

/// The prefix of a moved tenant's old schema: kept, out of the way of new tenants' schemas,
/// until the old copy is purged (see [`old_copy_schema`]).
pub const OLD_COPY_SCHEMA_PREFIX: &str = "tenancy_old_";

/// The name an own-schema tenant's schema takes when the tenant moves out of it: the old copy,
/// named by the tenant's id (never by its slug, which another tenant may take meanwhile).
///
/// ```
/// use tenancy_core::{TenantId, home::{is_tenant_schema, old_copy_schema}};
///
/// let id: TenantId = "0f0f0f0f-0000-4000-8000-000000000001".parse()?;
/// let name = old_copy_schema(id);
/// assert_eq!(name, "tenancy_old_0f0f0f0f000040008000000000000001");
/// assert!(is_tenant_schema(&name));
/// # Ok::<(), tenancy_core::ValidationError>(())
/// ```
pub fn old_copy_schema(id: TenantId) -> String {
    format!("{OLD_COPY_SCHEMA_PREFIX}{}", id.as_uuid().simple())
}

/// The schema of an own-schema tenant: `t_` and the slug, hyphens as underscores. Slugs are
/// lowercase and at most 48 characters, so two slugs never map to one schema, by case folding
/// or by truncation.
///
/// ```
/// use tenancy_core::{Slug, home::tenant_schema};
///
/// assert_eq!(tenant_schema(&Slug::parse("acme-eu")?)?, "t_acme_eu");
/// # Ok::<(), tenancy_core::ValidationError>(())
/// ```
///
/// # Errors
/// [`ValidationError::Identifier`] if the name is not a schema tenancy may create (it always is
/// for a valid slug; the check keeps the promise local).
pub fn tenant_schema(slug: &Slug) -> Result<String, ValidationError> {
    let name = format!("{TENANT_SCHEMA_PREFIX}{}", slug.as_str().replace('-', "_"));
    ident::validate_schema(&name)?;
    Ok(name)
}

/// Whether `name` (unquoted, as PostgreSQL folds it) is a schema tenancy made for a tenant:
/// an own-schema tenant's, a spare one, or a moved tenant's old copy.
///
/// ```
/// use tenancy_core::home::is_tenant_schema;
///
/// assert!(is_tenant_schema("t_acme"));
/// assert!(is_tenant_schema("tenancy_spare_0f"));
/// assert!(!is_tenant_schema("public"));
/// ```
pub fn is_tenant_schema(name: &str) -> bool {
    name.starts_with(TENANT_SCHEMA_PREFIX)
        || name.starts_with(SPARE_SCHEMA_PREFIX)
        || name.starts_with(OLD_COPY_SCHEMA_PREFIX)
}

/// A schema name that was validated once and is kept double-quoted, ready for SQL text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct QuotedSchema {
    name: String,
    quoted: String,
}

impl QuotedSchema {
    /// Validates `name` as a schema tenancy may create or use (see
    /// [`ident::validate_schema`]) and quotes it.
    ///
    /// ```
    /// use tenancy_core::home::QuotedSchema;
    ///
    /// assert_eq!(QuotedSchema::new("t_acme")?.as_sql(), r#""t_acme""#);
    /// assert!(QuotedSchema::new("pg_catalog").is_err());
    /// # Ok::<(), tenancy_core::ValidationError>(())
    /// ```
    ///
    /// # Errors
    /// [`ValidationError::Identifier`] naming the rule broken.
    pub fn new(name: &str) -> Result<Self, ValidationError> {
        ident::validate_schema(name)?;
        Ok(Self {
            name: name.to_owned(),
            quoted: ident::quote(name),
        })
    }

    /// The name as the catalog holds it (`t_acme`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quoted name, as it goes into SQL text (`"t_acme"`).
    pub fn as_sql(&self) -> &str {
        &self.quoted
    }

    /// [`TENANT_DATABASE_SCHEMA`]: not a schema tenancy creates (so [`QuotedSchema::new`]
    /// refuses it), the one a tenant database's tables live in.
    fn database_schema() -> Self {
        Self {
            name: TENANT_DATABASE_SCHEMA.to_owned(),
            quoted: ident::quote(TENANT_DATABASE_SCHEMA),
        }
    }
}

impl fmt::Debug for QuotedSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted)
    }
}

/// The schema an own-database tenant's tables live in, inside its database: the tenant
/// migrations run there, and statements name it as they name an own-schema tenant's schema.
pub const TENANT_DATABASE_SCHEMA: &str = "public";

/// The key of the server the registry lives on, where a tenant is unless its row names another.
pub const PRIMARY_SERVER: &str = "primary";

/// The name of an own-database tenant's database, validated once (an identifier tenancy may
/// write, and not one of PostgreSQL's own databases), and the key of the server it is on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DatabaseRef {
    name: String,
    server: String,
}

impl DatabaseRef {
    /// Validates `name` as a database tenancy may connect a tenant to.
    ///
    /// ```
    /// use tenancy_core::home::DatabaseRef;
    ///
    /// assert_eq!(DatabaseRef::new("tenancy_ab_0f")?.as_str(), "tenancy_ab_0f");
    /// assert!(DatabaseRef::new("postgres").is_err());
    /// assert!(DatabaseRef::new("a\"b").is_err());
    /// # Ok::<(), tenancy_core::ValidationError>(())
    /// ```
    ///
    /// # Errors
    /// [`ValidationError::Identifier`] naming the rule broken.
    pub fn new(name: &str) -> Result<Self, ValidationError> {
        ident::validate(name)?;
        if matches!(name, "postgres" | "template0" | "template1") {
            return Err(ValidationError::Identifier {
                input: name.to_owned(),
                reason: "is one of PostgreSQL's own databases",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            server: PRIMARY_SERVER.to_owned(),
        })
    }

    /// The same database on the server keyed `server` (see [`validate_server_key`]).
    ///
    /// ```
    /// use tenancy_core::home::DatabaseRef;
    ///
    /// let db = DatabaseRef::new("tenancy_ab_0f")?.on_server("eu-2")?;
    /// assert_eq!(db.server(), "eu-2");
    /// assert!(DatabaseRef::new("tenancy_ab_0f")?.on_server("EU 2").is_err());
    /// # Ok::<(), tenancy_core::ValidationError>(())
    /// ```
    ///
    /// # Errors
    /// [`ValidationError::Identifier`] for a malformed key.
    pub fn on_server(mut self, server: &str) -> Result<Self, ValidationError> {
        validate_server_key(server)?;
        server.clone_into(&mut self.server);
        Ok(self)
    }

    /// The bare name, as the registry records it and a connection names it.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The key of the server the database is on ([`PRIMARY_SERVER`] unless the registry row
    /// names another).
    pub fn server(&self) -> &str {
        &self.server
    }
}

impl fmt::Debug for DatabaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.server == PRIMARY_SERVER {
            f.write_str(&self.name)
        } else {
            write!(f, "{}@{}", self.name, self.server)
        }
    }
}

/// Checks a server key: 1 to 32 characters, lowercase ASCII letters, digits and `-`, starting
/// with a letter (what the registry's `tenancy.servers` accepts). A key names a server the
/// application maps to connect options; it is never a URL or a credential.
///
/// ```
/// use tenancy_core::home::validate_server_key;
///
/// assert!(validate_server_key("eu-2").is_ok());
/// assert!(validate_server_key("postgres://u:p@h/db").is_err());
/// ```
///
/// # Errors
/// [`ValidationError::Identifier`] naming the rule broken.
pub fn validate_server_key(key: &str) -> Result<(), ValidationError> {
    let ok = key.len() <= 32
        && key.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Identifier {
            input: key.to_owned(),
            reason: "a server key is 1 to 32 lowercase letters, digits and '-', starting with a letter",
        })
    }
}

/// Where one tenant's rows live: what every statement of its context needs to name its tables.
///
/// Built from the registry row by [`Home::new`], which refuses a placement this version does
/// not serve, so holding a `Home` means its statements can be built.
///
/// ```
/// use tenancy_core::{Placement, home::Home};
///
/// let shared = Home::new(Placement::SharedTable, None)?;
/// assert_eq!(shared.schema(), None);
/// let own = Home::new(Placement::OwnSchema, Some("t_acme"))?;
/// assert_eq!(own.schema(), Some(r#""t_acme""#));
/// assert_eq!(own.placement(), Placement::OwnSchema);
/// let db = Home::of(Placement::OwnDatabase, None, Some("tenancy_ab_0f"))?;
/// assert_eq!(db.schema(), Some(r#""public""#));
/// assert_eq!(db.database().map(|d| d.as_str()), Some("tenancy_ab_0f"));
/// # Ok::<(), tenancy_core::home::Unserved>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Home {
    /// The shared tables, unqualified; every statement binds the tenant.
    SharedTable,
    /// The tenant's own schema; statements name it and still bind the tenant.
    OwnSchema(QuotedSchema),
    /// A database of the tenant's own: statements name its tenant schema
    /// ([`TENANT_DATABASE_SCHEMA`]), still bind the tenant, and run on a connection to that
    /// database.
    OwnDatabase {
        /// The tenant's database.
        database: DatabaseRef,
        /// [`TENANT_DATABASE_SCHEMA`], quoted.
        schema: QuotedSchema,
    },
    /// The shared tables of a server other than the registry's: they live in that server's
    /// home database, made like an own database but holding many tenants' rows, told apart by
    /// the tenant column as on the registry's server. Statements name its
    /// [`TENANT_DATABASE_SCHEMA`], bind the tenant, and run on a connection to that database.
    ServerShared {
        /// The server's home database.
        database: DatabaseRef,
        /// [`TENANT_DATABASE_SCHEMA`], quoted.
        schema: QuotedSchema,
    },
    /// An own schema on a server other than the registry's: the schema is in that server's
    /// home database (the one [`Home::ServerShared`] tenants share), beside its shared tables.
    /// Statements name the schema, bind the tenant, and run on a connection to that database.
    ServerSchema {
        /// The server's home database.
        database: DatabaseRef,
        /// The tenant's schema there, quoted.
        schema: QuotedSchema,
    },
}

/// Why a registry row has no [`Home`] this version can serve: the row does not match its
/// placement (an own-schema tenant without a schema, a shared-table one with one, an
/// own-database one without a valid database name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unserved {
    /// The placement the registry records.
    pub placement: Placement,
}

impl fmt::Display for Unserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the placement {} is not supported", self.placement)
    }
}

impl std::error::Error for Unserved {}

impl Home {
    /// The home of a registry row: its placement and its `schema_name`.
    ///
    /// # Errors
    /// [`Unserved`] when this version cannot serve the row (see there).
    pub fn new(placement: Placement, schema: Option<&str>) -> Result<Self, Unserved> {
        Self::of(placement, schema, None)
    }

    /// The home of a registry row: its placement, `schema_name` and `database_name`.
    ///
    /// # Errors
    /// [`Unserved`] when the row does not match its placement.
    pub fn of(
        placement: Placement,
        schema: Option<&str>,
        database: Option<&str>,
    ) -> Result<Self, Unserved> {
        let unserved = |_| Unserved { placement };
        match (placement, schema, database) {
            (Placement::SharedTable, None, None) => Ok(Self::SharedTable),
            (Placement::OwnSchema, Some(name), None) => QuotedSchema::new(name)
                .map(Self::OwnSchema)
                .map_err(unserved),
            (Placement::OwnDatabase, None, Some(name)) => Ok(Self::OwnDatabase {
                database: DatabaseRef::new(name).map_err(unserved)?,
                schema: QuotedSchema::database_schema(),
            }),
            _ => Err(Unserved { placement }),
        }
    }

    /// The home of a shared-table tenant on a server other than the registry's: `database`,
    /// that server's home database (see [`Home::ServerShared`]).
    ///
    /// ```
    /// use tenancy_core::{Placement, home::{DatabaseRef, Home}};
    ///
    /// let db = DatabaseRef::new("tenancy_ab_home_eu_2")?.on_server("eu-2")?;
    /// let home = Home::server_shared(db);
    /// assert_eq!(home.placement(), Placement::SharedTable);
    /// assert_eq!(home.schema(), Some(r#""public""#));
    /// assert_eq!(home.database().map(|d| d.server()), Some("eu-2"));
    /// assert!(home.is_server_shared());
    /// # Ok::<(), tenancy_core::ValidationError>(())
    /// ```
    pub fn server_shared(database: DatabaseRef) -> Self {
        Self::ServerShared {
            database,
            schema: QuotedSchema::database_schema(),
        }
    }

    /// Whether the tenant shares its database with other tenants on a server other than the
    /// registry's ([`Home::ServerShared`]): its database is not its own to copy, drop or read
    /// whole.
    pub fn is_server_shared(&self) -> bool {
        matches!(self, Self::ServerShared { .. })
    }

    /// The home of an own-schema tenant on a server other than the registry's: `schema` in
    /// `database`, that server's home database (see [`Home::ServerSchema`]).
    ///
    /// ```
    /// use tenancy_core::{Placement, home::{DatabaseRef, Home, QuotedSchema}};
    ///
    /// let db = DatabaseRef::new("tenancy_ab_home_eu_2")?.on_server("eu-2")?;
    /// let home = Home::server_schema(db, QuotedSchema::new("t_acme")?);
    /// assert_eq!(home.placement(), Placement::OwnSchema);
    /// assert_eq!(home.schema(), Some(r#""t_acme""#));
    /// assert_eq!(home.schema_name(), Some("t_acme"));
    /// assert!(home.in_server_home() && !home.is_server_shared());
    /// # Ok::<(), tenancy_core::ValidationError>(())
    /// ```
    pub fn server_schema(database: DatabaseRef, schema: QuotedSchema) -> Self {
        Self::ServerSchema { database, schema }
    }

    /// Whether the tenant lives in a server's home database ([`Home::ServerShared`] or
    /// [`Home::ServerSchema`]): a database other tenants live in too.
    pub fn in_server_home(&self) -> bool {
        matches!(self, Self::ServerShared { .. } | Self::ServerSchema { .. })
    }

    /// The placement this home serves.
    pub fn placement(&self) -> Placement {
        match self {
            Self::SharedTable | Self::ServerShared { .. } => Placement::SharedTable,
            Self::OwnSchema(_) | Self::ServerSchema { .. } => Placement::OwnSchema,
            Self::OwnDatabase { .. } => Placement::OwnDatabase,
        }
    }

    /// The database the tenant's statements run in when it is not the registry's: the
    /// tenant's own, or its server's home database ([`Home::ServerShared`],
    /// [`Home::ServerSchema`]).
    pub fn database(&self) -> Option<&DatabaseRef> {
        match self {
            Self::OwnDatabase { database, .. }
            | Self::ServerShared { database, .. }
            | Self::ServerSchema { database, .. } => Some(database),
            _ => None,
        }
    }

    /// The quoted schema statements name (`"t_acme"`); `None` on shared tables.
    pub fn schema(&self) -> Option<&str> {
        match self {
            Self::SharedTable => None,
            Self::OwnSchema(schema)
            | Self::OwnDatabase { schema, .. }
            | Self::ServerShared { schema, .. }
            | Self::ServerSchema { schema, .. } => Some(schema.as_sql()),
        }
    }

    /// The schema's name as the registry records it (`t_acme`, unquoted); `None` on shared
    /// tables.
    pub fn schema_name(&self) -> Option<&str> {
        match self {
            Self::SharedTable | Self::OwnDatabase { .. } | Self::ServerShared { .. } => None,
            Self::OwnSchema(schema) | Self::ServerSchema { schema, .. } => Some(schema.name()),
        }
    }

    /// The home a tenant with `slug` gets on `placement`: what creating it there, or moving it
    /// there, makes.
    ///
    /// ```
    /// use tenancy_core::{Placement, Slug, home::Home};
    ///
    /// let slug = Slug::parse("acme-eu")?;
    /// assert_eq!(Home::for_slug(Placement::OwnSchema, &slug)?.schema_name(), Some("t_acme_eu"));
    /// assert_eq!(Home::for_slug(Placement::SharedTable, &slug)?, Home::SharedTable);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Unserved`] for a placement this version does not build.
    pub fn for_slug(placement: Placement, slug: &Slug) -> Result<Self, Unserved> {
        match placement {
            Placement::SharedTable => Ok(Self::SharedTable),
            Placement::OwnSchema => {
                let name = tenant_schema(slug).map_err(|_| Unserved { placement })?;
                Self::new(placement, Some(&name))
            }
            _ => Err(Unserved { placement }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_that_does_not_match_its_placement_has_no_home() {
        for (placement, schema) in [
            (Placement::SharedTable, Some("t_acme")),
            (Placement::OwnSchema, None),
            (Placement::OwnSchema, Some("pg_toast")),
            (Placement::OwnDatabase, None),
        ] {
            assert_eq!(Home::new(placement, schema), Err(Unserved { placement }));
        }
        for (placement, schema, database) in [
            (Placement::OwnDatabase, None, Some("template1")),
            (
                Placement::OwnDatabase,
                None,
                Some("a\"; DROP DATABASE b; --"),
            ),
            (Placement::OwnDatabase, Some("t_acme"), Some("tenancy_x_0f")),
            (Placement::SharedTable, None, Some("tenancy_x_0f")),
        ] {
            assert_eq!(
                Home::of(placement, schema, database),
                Err(Unserved { placement })
            );
        }
    }

    #[test]
    fn what_creates_a_schema_and_what_recognises_one_agree() {
        let slug = Slug::parse("acme-eu").unwrap();
        let name = tenant_schema(&slug).unwrap();
        assert!(is_tenant_schema(&name));
        assert!(is_tenant_schema(&format!("{SPARE_SCHEMA_PREFIX}0f")));
    }
}
