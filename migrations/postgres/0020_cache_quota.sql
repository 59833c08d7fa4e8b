-- Issue 14. The shared cache: bytes a tenant's entries (memoized answers included) may
-- take; the operator's `[cache] tenant_max_mb` still caps it. 0 turns the cache off for
-- the tenant. Default 64 MiB.
alter table tenants add column cache_bytes bigint not null default 67108864
    check (cache_bytes between 0 and 1099511627776);
