-- Tenant data sources (issue 14): named PostgreSQL, MySQL/MariaDB and SQLite sources a
-- tenant's admins register and grant to apps. The connection settings (host, user,
-- password, ...) are one JSON document sealed under the platform key, bound to the tenant
-- and the source's name; the limits are optional per-source values below the operator's.

create table data_sources (
    id integer primary key,
    tenant_id bigint not null references tenants (id) on delete cascade,
    name text not null,
    kind text not null check (kind in ('postgres', 'mysql', 'sqlite')),
    connection text not null,
    statement_timeout_ms bigint,
    max_rows bigint,
    max_bytes bigint,
    pool_size bigint,
    created_at bigint not null,
    updated_at bigint not null,
    updated_by text not null,
    unique (tenant_id, name)
);

create table data_source_grants (
    source_id bigint not null references data_sources (id) on delete cascade,
    app_id bigint not null references apps (id) on delete cascade,
    granted_at bigint not null,
    granted_by text not null,
    primary key (source_id, app_id)
);

create index data_source_grants_app on data_source_grants (app_id);
