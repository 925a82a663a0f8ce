ALTER TABLE outbox ADD COLUMN sent boolean NOT NULL DEFAULT false;
