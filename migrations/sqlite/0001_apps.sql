-- Tenants, apps and their immutable versions. The tenant is only a path segment for now;
-- users, roles and memberships come with the tenancy model.
create table tenants (
    id integer primary key,
    slug text not null unique,
    created_at bigint not null
);

create table apps (
    id integer primary key,
    tenant_id bigint not null references tenants (id),
    name text not null,
    visibility text not null default 'public',
    live_version_id bigint,
    created_at bigint not null,
    unique (tenant_id, name)
);

create table app_versions (
    id integer primary key,
    app_id bigint not null references apps (id),
    number bigint not null,
    sha256 text not null,
    component blob not null,
    size_bytes bigint not null,
    title text not null,
    source text not null,
    created_at bigint not null,
    unique (app_id, number)
);
