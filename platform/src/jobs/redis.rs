//! Job records in Redis, shared by every replica: `tessera:job:{id}` holds the record
//! (JSON), `…:progress` the latest progress report, `…:cancel` the cancel flag and
//! `…:polled` the page's latest sign of life (it expires after the unpolled window). Every
//! other key expires [`RECORD_TTL`](super::RECORD_TTL) after its last write, so an abandoned job
//! leaves nothing behind for long.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{Job, RECORD_TTL, Result};

/// Job records in Redis.
#[derive(Clone)]
pub struct RedisJobs {
    connection: ConnectionManager,
}

fn key(id: &str, part: &str) -> String {
    format!("tessera:job:{id}{part}")
}

impl RedisJobs {
    /// Connect to `url` (`redis://host:port/db`); fails if Redis does not answer.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let mut connection = ConnectionManager::new(client).await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(Self { connection })
    }

    fn ttl() -> u64 {
        RECORD_TTL.as_secs()
    }

    pub(super) async fn put(&self, job: &Job) -> Result<()> {
        let json = serde_json::to_string(job)?;
        let mut connection = self.connection.clone();
        let () = connection
            .set_ex(key(&job.id, ""), json, Self::ttl())
            .await?;
        Ok(())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<Job>> {
        let mut connection = self.connection.clone();
        let json: Option<String> = connection.get(key(id, "")).await?;
        Ok(match json {
            Some(json) => Some(serde_json::from_str(&json)?),
            None => None,
        })
    }

    pub(super) async fn remove(&self, id: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        let _: u64 = connection
            .del(&[
                key(id, ""),
                key(id, ":progress"),
                key(id, ":cancel"),
                key(id, ":polled"),
            ])
            .await?;
        Ok(())
    }

    pub(super) async fn take_progress(&self, id: &str) -> Result<Option<String>> {
        let mut connection = self.connection.clone();
        Ok(connection.get_del(key(id, ":progress")).await?)
    }

    pub(super) async fn set_progress(&self, id: &str, json: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        let () = connection
            .set_ex(key(id, ":progress"), json, Self::ttl())
            .await?;
        Ok(())
    }

    pub(super) async fn request_cancel(&self, id: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        let () = connection
            .set_ex(key(id, ":cancel"), 1, Self::ttl())
            .await?;
        Ok(())
    }

    pub(super) async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let mut connection = self.connection.clone();
        Ok(connection.exists(key(id, ":cancel")).await?)
    }

    pub(super) async fn touch(&self, id: &str, window: Duration) -> Result<()> {
        let mut connection = self.connection.clone();
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = connection.pset_ex(key(id, ":polled"), 1, millis).await?;
        Ok(())
    }

    pub(super) async fn polled(&self, id: &str) -> Result<bool> {
        let mut connection = self.connection.clone();
        Ok(connection.exists(key(id, ":polled")).await?)
    }
}
