//! The API's request and response bodies, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::store;
use crate::tenancy::{Role, Visibility};

/// `{"error": {"code", "message"}}`, the shape of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `validation_failed`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `quota_exceeded`, `payload_too_large`, …
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The errors any authenticated route may answer.
#[derive(IntoResponses)]
#[expect(dead_code, reason = "only its OpenAPI description is used")]
pub enum Errors {
    /// The request is malformed or a value is invalid (`validation_failed`).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No or an invalid token (`unauthorized`, `invalid_token`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The resource is visible but the principal may not do this (`forbidden`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource, or one the principal may not see (`not_found`).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The change conflicts with existing data (`conflict`, `last_owner`).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than the API accepts (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The body is not `application/json` (`unsupported_media_type`).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
}

/// Cursor pagination: `limit` items after `cursor` (the `next_cursor` of the previous
/// page).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

/// Per-tenant quotas.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotasBody {
    /// Number of apps (0 to 1,000,000).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub max_apps: i64,
    /// Callbacks running at once across the tenant's apps (1 to 10,000).
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_concurrent_callbacks: i64,
    /// Memory cap of one callback in MiB (1 to 4,096; the platform's cap still applies).
    #[schema(minimum = 1, maximum = 4_096)]
    pub callback_memory_mb: i64,
    /// Deadline of one callback in ms (1 to 86,400,000; the platform's cap still applies).
    #[schema(minimum = 1, maximum = 86_400_000)]
    pub callback_deadline_ms: i64,
    /// Bytes of stored app versions (0 to 2^40).
    #[schema(minimum = 0, maximum = 1_099_511_627_776_i64)]
    pub max_version_storage_bytes: i64,
    /// CPU share when tenants compete (1 to 10,000; default 100). Omitted in a change:
    /// unchanged.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub cpu_weight: Option<i64>,
    /// Background jobs queued or running at once across the tenant's apps, each app at
    /// most half (1 to 10,000; default 16). Omitted in a change: unchanged.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_jobs: Option<i64>,
    /// Deadline of one background job in ms (1 to 86,400,000; default 600,000; the
    /// platform's job deadline still applies). Omitted in a change: unchanged.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86_400_000)]
    pub job_deadline_ms: Option<i64>,
    /// Bytes of the shared cache, memoized answers included (0 to 2^40; default 64 MiB;
    /// the platform's `[cache] tenant_max_mb` still applies). Omitted in a change: unchanged.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_099_511_627_776_i64)]
    pub cache_bytes: Option<i64>,
}

impl From<store::Quotas> for QuotasBody {
    fn from(q: store::Quotas) -> Self {
        Self {
            max_apps: q.max_apps,
            max_concurrent_callbacks: q.max_concurrent_callbacks,
            callback_memory_mb: q.callback_memory_mb,
            callback_deadline_ms: q.callback_deadline_ms,
            max_version_storage_bytes: q.max_version_storage_bytes,
            cpu_weight: Some(q.cpu_weight),
            max_jobs: Some(q.max_jobs),
            job_deadline_ms: Some(q.job_deadline_ms),
            cache_bytes: Some(q.cache_bytes),
        }
    }
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantBody {
    /// Its id.
    pub id: i64,
    /// Its slug (URL segment).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Its quotas.
    pub quotas: QuotasBody,
    /// When a superadmin suspended it (Unix ms); null while it runs.
    pub suspended_at: Option<i64>,
}

impl From<store::Tenant> for TenantBody {
    fn from(t: store::Tenant) -> Self {
        Self {
            id: t.id.0,
            slug: t.slug,
            name: t.name,
            created_at: t.created_at,
            quotas: t.quotas.into(),
            suspended_at: t.suspended_at,
        }
    }
}

/// What deleting a tenant removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedTenantBody {
    /// The tenant's slug (reserved from now on: no new tenant takes it).
    pub slug: String,
    /// Apps removed.
    pub apps: u64,
    /// App versions removed.
    pub versions: u64,
    /// Memberships removed (the users stay).
    pub memberships: u64,
    /// Every other row removed (assets, data files, settings, grants, teams, tokens,
    /// invitations, identity providers, data sources).
    pub other_rows: u64,
    /// Data folders removed from this server's disk.
    pub data_folders: usize,
    /// Cache entries removed.
    pub cache_entries: u64,
}

impl From<crate::platform_admin::TenantRemoval> for DeletedTenantBody {
    fn from(r: crate::platform_admin::TenantRemoval) -> Self {
        Self {
            slug: r.rows.slug,
            apps: r.rows.apps,
            versions: r.rows.versions,
            memberships: r.rows.memberships,
            other_rows: r.rows.other_rows,
            data_folders: r.data_folders,
            cache_entries: r.cache_entries,
        }
    }
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    /// The tenants.
    pub items: Vec<TenantBody>,
    /// Cursor of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A member of a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBody {
    /// The user's id.
    pub user_id: i64,
    /// Their address.
    pub email: String,
    /// Their role.
    #[schema(value_type = String, example = "viewer")]
    pub role: Role,
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// The members.
    pub items: Vec<MemberBody>,
    /// Cursor of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A team with its members' ids.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamBody {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its members.
    pub members: Vec<i64>,
}

/// An app.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppBody {
    /// Its id.
    pub id: i64,
    /// Its name (URL segment).
    pub name: String,
    /// `public`, `tenant` or `restricted`.
    #[schema(value_type = String, example = "tenant")]
    pub visibility: Visibility,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Number of the live version.
    pub live_version: Option<i64>,
    /// Title of the live version.
    pub title: Option<String>,
}

impl From<store::AppRecord> for AppBody {
    fn from(a: store::AppRecord) -> Self {
        Self {
            id: a.id.0,
            name: a.name,
            visibility: a.visibility,
            created_at: a.created_at,
            live_version: a.live_version,
            title: a.title,
        }
    }
}

/// A page of apps.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppPage {
    /// The apps the principal may open (a page may hold fewer than `limit`).
    pub items: Vec<AppBody>,
    /// Cursor of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A stored version of an app.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionBody {
    /// Number within the app.
    pub number: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// Component size.
    pub size_bytes: i64,
    /// Title.
    pub title: String,
    /// Who deployed it.
    pub source: String,
    /// When, Unix ms.
    pub created_at: i64,
    /// Whether it is live.
    pub live: bool,
    /// The git commit it was pushed from (null for CLI and API deploys).
    pub commit: Option<String>,
    /// Who pushed it (null for CLI and API deploys: `source` names them).
    pub author: Option<String>,
    /// The build's output as the pusher saw it (null for CLI and API deploys).
    pub build_log: Option<String>,
}

impl From<crate::store::VersionRecord> for VersionBody {
    fn from(v: crate::store::VersionRecord) -> Self {
        Self {
            number: v.number,
            sha256: v.sha256,
            size_bytes: v.size_bytes,
            title: v.title,
            source: v.source,
            created_at: v.created_at,
            live: v.live,
            commit: v.commit,
            author: v.author,
            build_log: v.build_log,
        }
    }
}

/// Who is on an app's access lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppAccessBody {
    /// Users who may deploy it.
    pub collaborators: Vec<i64>,
    /// Users granted it.
    pub user_grants: Vec<i64>,
    /// Teams granted it.
    pub team_grants: Vec<i64>,
}

/// An API token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    /// Its public id.
    pub id: String,
    /// Its user.
    pub user_id: i64,
    /// Its role.
    #[schema(value_type = String, example = "author")]
    pub role: Role,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
    /// Revoked, Unix ms.
    pub revoked_at: Option<i64>,
    /// Last use, Unix ms.
    pub last_used_at: Option<i64>,
}

impl From<store::TokenSummary> for TokenBody {
    fn from(t: store::TokenSummary) -> Self {
        Self {
            id: t.public_id,
            user_id: t.user_id.0,
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenBody {
    /// The whole token, to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Its public id (for listing and revoking).
    pub id: String,
    /// Its role.
    #[schema(value_type = String, example = "author")]
    pub role: Role,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditBody {
    /// Increasing id.
    pub id: i64,
    /// When, Unix ms.
    pub at: i64,
    /// The tenant, null for platform changes.
    pub tenant_id: Option<i64>,
    /// Who.
    pub actor: String,
    /// What (`noun.verb`).
    pub action: String,
    /// To what.
    pub target: String,
    /// From where.
    pub remote_addr: Option<String>,
    /// Details.
    pub detail: serde_json::Value,
}

impl From<store::AuditEntry> for AuditBody {
    fn from(e: store::AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            tenant_id: e.tenant_id.map(|t| t.0),
            actor: e.actor,
            action: e.action,
            target: e.target,
            remote_addr: e.remote_addr,
            detail: e.detail,
        }
    }
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditBody>,
    /// Cursor of the next (older) page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Which of an app's log lines to answer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The `next` of an earlier answer: only lines after it (without it, the latest lines).
    #[param(max_length = 64)]
    pub after: Option<String>,
    /// At most this many lines, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// One line of an app's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLineBody {
    /// When a replica received it, Unix ms.
    pub at: i64,
    /// The version that wrote it.
    pub version: i64,
    /// `stdout`, `stderr`, `log <level>` (`host.log`), `error` (a failed callback, with
    /// its error id) or `platform` (lines over the app's log rate were dropped).
    pub stream: String,
    /// The text (cut to 400 characters).
    pub message: String,
    /// The request whose callback wrote it (`X-Request-Id`), if any.
    pub request_id: Option<String>,
    /// Its place in the log.
    pub cursor: String,
}

/// Lines of an app's log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogBody {
    /// The lines.
    pub lines: Vec<LogLineBody>,
    /// Ask again with `after` set to this for newer lines only.
    pub next: String,
    /// The lines come from every replica (Redis); else from the replica that answered.
    pub shared: bool,
}

impl From<crate::applog::Tail> for LogBody {
    fn from(tail: crate::applog::Tail) -> Self {
        LogBody {
            lines: tail
                .lines
                .into_iter()
                .map(|l| LogLineBody {
                    at: l.at,
                    version: l.version,
                    stream: l.stream,
                    message: l.message,
                    request_id: l.request_id,
                    cursor: l.cursor,
                })
                .collect(),
            next: tail.next,
            shared: tail.shared,
        }
    }
}
