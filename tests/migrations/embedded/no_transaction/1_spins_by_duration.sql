-- no-transaction
CREATE INDEX CONCURRENTLY spins_by_duration ON spins (tenant_id, duration);
