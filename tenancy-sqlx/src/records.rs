//! The serialised shapes of records whose Rust shape does not serialise as wanted (feature
//! `serde`): a migration outcome tagged by kind, a report's rows as flat objects, an archive's
//! tables as objects.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::migrate::{MigrationFailure, MigrationReport, MigrationTarget, Outcome};

/// [`Outcome`] as it is serialised: `{"outcome": "applied", "versions": [..]}` ...
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum OutcomeRecord {
    Applied { versions: Vec<i64> },
    UpToDate,
    Failed(MigrationFailure),
}

impl From<Outcome> for OutcomeRecord {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Applied(versions) => Self::Applied { versions },
            Outcome::UpToDate => Self::UpToDate,
            Outcome::Failed(f) => Self::Failed(f),
        }
    }
}

impl From<OutcomeRecord> for Outcome {
    fn from(o: OutcomeRecord) -> Self {
        match o {
            OutcomeRecord::Applied { versions } => Self::Applied(versions),
            OutcomeRecord::UpToDate => Self::UpToDate,
            OutcomeRecord::Failed(f) => Self::Failed(f),
        }
    }
}

/// One target of a report and how it fared, as one object.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ReportRow {
    #[serde(flatten)]
    target: MigrationTarget,
    #[serde(flatten)]
    outcome: Outcome,
}

/// [`MigrationReport`] as it is serialised.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ReportRecord {
    outcomes: Vec<ReportRow>,
}

impl From<MigrationReport> for ReportRecord {
    fn from(r: MigrationReport) -> Self {
        Self {
            outcomes: r
                .outcomes
                .into_iter()
                .map(|(target, outcome)| ReportRow { target, outcome })
                .collect(),
        }
    }
}

impl From<ReportRecord> for MigrationReport {
    fn from(r: ReportRecord) -> Self {
        Self {
            outcomes: r
                .outcomes
                .into_iter()
                .map(|row| (row.target, row.outcome))
                .collect(),
        }
    }
}

/// An archive's `(table, rows)` pairs as `[{"table": .., "rows": ..}]`.
pub(crate) mod table_rows {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct TableRows<T> {
        table: T,
        rows: u64,
    }

    pub(crate) fn serialize<S: Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(table, rows)| TableRows {
            table: table.as_str(),
            rows: *rows,
        }))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, u64)>, D::Error> {
        let v: Vec<TableRows<String>> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|t| (t.table, t.rows)).collect())
    }
}

#[cfg(test)]
mod tests {
    use tenancy_core::{Placement, TenantId, TenantStatus};

    use crate::{ArchiveSummary, AuditRecord, MigrationFailure, MigrationReport, MigrationTarget};
    use crate::{Outcome, Tenant};

    fn round_trip<T>(v: &T) -> (serde_json::Value, T)
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let json = serde_json::to_value(v).expect("serialises");
        let back = serde_json::from_value(json.clone()).expect("deserialises");
        (json, back)
    }

    fn at(s: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn a_tenant_round_trips_with_readable_times_and_names() {
        let tenant = Tenant {
            id: TenantId::new_v4(),
            slug: "acme".into(),
            name: "Acme".into(),
            placement: Placement::OwnSchema,
            status: TenantStatus::Deleted,
            created_at: at("2026-12-01T10:00:00.5Z"),
            deleted_at: Some(at("2026-12-02T11:00:00Z")),
            hosts: vec!["acme.example.com".into()],
            schema: Some("t_acme".into()),
            database: None,
            server: "primary".into(),
        };
        let (json, back) = round_trip(&tenant);
        assert_eq!(back, tenant);
        assert_eq!(json["id"], tenant.id.to_string());
        assert_eq!(json["placement"], "own_schema");
        assert_eq!(json["status"], "deleted");
        assert_eq!(json["created_at"], "2026-12-01T10:00:00.5Z");
        assert_eq!(json["deleted_at"], "2026-12-02T11:00:00Z");
        let active = Tenant {
            deleted_at: None,
            ..tenant
        };
        let (json, back) = round_trip(&active);
        assert_eq!(json["deleted_at"], serde_json::Value::Null);
        assert_eq!(back, active);
    }

    #[test]
    fn an_audit_record_round_trips() {
        let record = AuditRecord {
            id: 7,
            at: at("2026-12-01T10:00:00Z"),
            actor: "ops@example.com".into(),
            reason: "ticket 4411".into(),
            action: "tenant.suspend".into(),
            tenant_ids: vec![TenantId::new_v4()],
            grant_id: Some(3),
            detail: None,
        };
        let (json, back) = round_trip(&record);
        assert_eq!(back, record);
        assert_eq!(json["tenant_ids"][0], record.tenant_ids[0].to_string());
        assert_eq!(json["at"], "2026-12-01T10:00:00Z");
    }

    #[test]
    fn a_migration_report_round_trips_as_flat_rows() {
        let id = TenantId::new_v4();
        let report = MigrationReport {
            outcomes: vec![
                (MigrationTarget::SharedTables, Outcome::Applied(vec![2, 3])),
                (
                    MigrationTarget::Tenant {
                        id,
                        slug: "acme".into(),
                        schema: "t_acme".into(),
                    },
                    Outcome::Failed(MigrationFailure {
                        version: Some(2),
                        sqlstate: Some("42P01".into()),
                        message: "no such table".into(),
                    }),
                ),
                (
                    MigrationTarget::Spare {
                        schema: "tenancy_spare_x".into(),
                    },
                    Outcome::UpToDate,
                ),
            ],
        };
        let (json, back) = round_trip(&report);
        assert_eq!(back.outcomes, report.outcomes);
        assert_eq!(
            json["outcomes"][0],
            serde_json::json!({"target": "shared_tables", "outcome": "applied", "versions": [2, 3]})
        );
        assert_eq!(
            json["outcomes"][1],
            serde_json::json!({
                "target": "tenant", "id": id.to_string(), "slug": "acme", "schema": "t_acme",
                "outcome": "failed", "version": 2, "sqlstate": "42P01", "message": "no such table",
            })
        );
        assert_eq!(json["outcomes"][2]["outcome"], "up_to_date");
    }

    #[test]
    fn an_archive_summary_names_its_tables() {
        let summary = ArchiveSummary {
            source: Some(TenantId::new_v4()),
            tables: vec![("spinners".into(), 3), ("spins".into(), 10)],
            rows: 13,
            bytes: 400,
        };
        let (json, back) = round_trip(&summary);
        assert_eq!(back, summary);
        assert_eq!(
            json["tables"],
            serde_json::json!([{"table": "spinners", "rows": 3}, {"table": "spins", "rows": 10}])
        );
    }
}
