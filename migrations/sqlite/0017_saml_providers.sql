-- Issue 13: SAML 2.0 identity providers (kind 'saml'). SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt; migrations run with foreign keys off
-- (`Store::connect`), so dropping the old table does not cascade to the identities and
-- memberships that point at providers, and the keys are checked afterwards.
create table identity_providers_new (
    id integer primary key,
    tenant_id bigint not null references tenants (id),
    slug text not null,
    kind text not null check (kind in ('oidc', 'ldap', 'saml')),
    display_name text not null,
    -- JSON, kind-specific; the secret inside (client_secret, bind_password) is sealed.
    settings text not null,
    -- JSON list of {group, role, teams}.
    group_mappings text not null default '[]',
    created_at bigint not null,
    updated_at bigint not null,
    unique (tenant_id, slug)
);
insert into identity_providers_new
    (id, tenant_id, slug, kind, display_name, settings, group_mappings, created_at, updated_at)
    select id, tenant_id, slug, kind, display_name, settings, group_mappings, created_at, updated_at
    from identity_providers;
drop table identity_providers;
alter table identity_providers_new rename to identity_providers;
create unique index identity_providers_tenant_id on identity_providers (tenant_id, id);
