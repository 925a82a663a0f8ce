-- The seed's fidget-spinner app (tests/common's SPINNER_SCHEMA): every key leads with the tenant.
CREATE TABLE spinners (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id),
    id         uuid NOT NULL,
    name       text NOT NULL,
    color      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE TABLE spins (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    spinner_id uuid NOT NULL,
    duration   integer NOT NULL,
    note       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, spinner_id) REFERENCES spinners (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX spins_recent ON spins (tenant_id, created_at DESC);
