//! The platform's side of the guest capabilities of WIT 0.2.0: `data.query` runs on the
//! tenant's data sources ([`crate::datasources`]) and `cache` on the shared cache
//! ([`crate::cache`]), each for the app that owns the component and nobody else.
//!
//! The sandbox calls these on a helper thread of its own (never a tokio worker), with the
//! call's CPU ticket given back, so they may block on the server's runtime until the domain
//! function answers or the call's deadline passes.

use std::sync::Arc;
use std::time::Duration;

use sandbox::{CallContext, QueryError};
use tokio::runtime::Handle;

use crate::cache::{Cache, CacheScope};
use crate::datasources::{self, DataSources, QueryContext};
use crate::ids::{AppId, TenantId, UserId};

/// What every app's guest may reach, scoped per call to the component's owner.
pub struct PlatformCapabilities {
    datasources: Arc<DataSources>,
    cache: Arc<Cache>,
    runtime: Handle,
}

impl PlatformCapabilities {
    /// Capabilities backed by `datasources` and `cache`, run on `runtime`.
    pub fn new(datasources: Arc<DataSources>, cache: Arc<Cache>, runtime: Handle) -> Self {
        Self {
            datasources,
            cache,
            runtime,
        }
    }
}

impl PlatformCapabilities {
    /// The cache quota of `tenant`'s guests (its `cache_bytes`).
    pub fn set_cache_quota(&self, tenant: TenantId, bytes: i64) {
        self.cache.set_tenant_quota(tenant, bytes);
    }
}

fn owner_ids(call: &CallContext) -> (TenantId, AppId) {
    (TenantId(call.owner.tenant), AppId(call.owner.app))
}

/// The cache namespace of the component's app. A deploy's check instance (app 0) gets a
/// namespace of its own that no app shares.
fn scope(call: &CallContext) -> CacheScope {
    let (tenant, app) = owner_ids(call);
    CacheScope { tenant, app }
}

/// The viewer a query may see: none in a memoized call, whose answer is shared between
/// viewers, so row-level security then sees an anonymous viewer.
fn query_viewer(call: &CallContext) -> Option<datasources::Viewer> {
    if call.memoized {
        return None;
    }
    let viewer = call.viewer.as_ref()?;
    Some(datasources::Viewer {
        user_id: UserId(viewer.user_id.parse().ok()?),
        email: viewer.email.clone().unwrap_or_default(),
        groups: viewer.groups.clone(),
    })
}

fn query_param(param: &sandbox::Param) -> datasources::Param {
    match param {
        sandbox::Param::Null => datasources::Param::Null,
        sandbox::Param::Boolean(b) => datasources::Param::Bool(*b),
        sandbox::Param::Integer(i) => datasources::Param::Int(*i),
        sandbox::Param::Float(f) => datasources::Param::Float(*f),
        sandbox::Param::Text(t) => datasources::Param::Text(t.clone()),
    }
}

fn query_error(error: datasources::QueryError) -> QueryError {
    match error {
        datasources::QueryError::NotGranted(m) => QueryError::NotGranted(m),
        datasources::QueryError::Refused(m) => QueryError::Refused(m),
        datasources::QueryError::Limit(m) => QueryError::Limit(m),
        datasources::QueryError::Failed(m) => QueryError::Failed(m),
        datasources::QueryError::Unavailable(m) => QueryError::Unavailable(m),
    }
}

impl sandbox::Capabilities for PlatformCapabilities {
    fn query(
        &self,
        call: &CallContext,
        source: &str,
        sql: &str,
        params: &[sandbox::Param],
    ) -> Result<Vec<u8>, QueryError> {
        let (tenant, app) = owner_ids(call);
        let context = QueryContext {
            tenant,
            app,
            viewer: query_viewer(call),
        };
        let params: Vec<datasources::Param> = params.iter().map(query_param).collect();
        let output = self
            .runtime
            .block_on(
                self.datasources
                    .query(context, source, sql, &params, call.deadline.into()),
            )
            .map_err(query_error)?;
        // The sandbox refuses an answer over `call.max_answer_bytes` before the guest sees it.
        Ok(output.arrow_ipc)
    }

    fn cache_get(&self, call: &CallContext, key: &str) -> Result<Option<Vec<u8>>, String> {
        // The timeout is made inside the runtime: its timer needs the runtime's reactor.
        let get = self.cache.get(scope(call), key);
        match self
            .runtime
            .block_on(async { tokio::time::timeout(call.remaining(), get).await })
        {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Ok(None),
        }
    }

    fn cache_set(
        &self,
        call: &CallContext,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), String> {
        let set = self.cache.set(scope(call), key, value, ttl);
        match self
            .runtime
            .block_on(async { tokio::time::timeout(call.remaining(), set).await })
        {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Ok(()),
        }
    }

    fn cache_delete(&self, call: &CallContext, key: &str) -> Result<(), String> {
        let delete = self.cache.delete(scope(call), key);
        match self
            .runtime
            .block_on(async { tokio::time::timeout(call.remaining(), delete).await })
        {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Ok(()),
        }
    }
}
