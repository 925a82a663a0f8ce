//! Provisioning a tenant database (in progress).
