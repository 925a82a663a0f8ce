//! The customers' cache on Redis. Every key is made by `ctx.cache_key` (`tenant:<uuid>:<key>`),
//! so two customers never share an entry whatever the key says, and a purged customer's keys
//! are found by their prefix.

use redis::AsyncCommands;
use tenancy::{TenantCtx, TenantRef};

/// A Redis connection that reads and writes only under a tenant's prefix.
#[derive(Clone)]
pub struct Cache {
    conn: redis::aio::MultiplexedConnection,
}

impl Cache {
    /// Connects to Redis at `url` (`redis://127.0.0.1:6379`).
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            conn: client.get_multiplexed_async_connection().await?,
        })
    }

    /// Stores `value` under the tenant's `key` for `ttl_secs`.
    pub async fn put(
        &self,
        ctx: &TenantCtx,
        key: &str,
        value: &str,
        ttl_secs: u64,
    ) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.set_ex(ctx.cache_key(key), value, ttl_secs).await
    }

    /// The tenant's value under `key`, if any.
    pub async fn get(&self, ctx: &TenantCtx, key: &str) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn.clone();
        conn.get(ctx.cache_key(key)).await
    }

    /// Deletes every key of a tenant: run it when the tenant is purged (it no longer resolves,
    /// so this takes its `TenantRef`). Returns how many keys were removed.
    pub async fn purge(&self, tenant: TenantRef) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        // The prefix is a uuid: no glob characters to escape.
        let pattern = tenant.cache_key("*");
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        if keys.is_empty() {
            return Ok(0);
        }
        conn.del(&keys).await
    }
}
