-- Issue 16: a version's component leaves app_versions for a table of its own,
-- content-addressed per tenant like data blobs (0018): a tenant whose 1,000 apps run the
-- same component stores it once, and a hash names nothing in another tenant. size_bytes
-- sits before content, so the storage quota's sum never reads the bytes; app_versions rows
-- no longer carry the component, so reading a title, an author or a source (app lists, the
-- gallery and its search) no longer walks a component's overflow pages.
create table app_components (
    tenant_id bigint not null references tenants (id),
    sha256 text not null,
    size_bytes bigint not null,
    content blob not null,
    primary key (tenant_id, sha256)
);
create index app_components_size on app_components (tenant_id, size_bytes);

-- Every stored version's bytes, once per (tenant, hash); `where true` lets SQLite parse
-- the upsert after a select.
insert into app_components (tenant_id, sha256, size_bytes, content)
    select a.tenant_id, v.sha256, length(v.component), v.component
    from app_versions v join apps a on a.id = v.app_id
    where true
    on conflict (tenant_id, sha256) do nothing;

-- Whether another version of the tenant still uses a hash (pruning, deleting an app).
create index app_versions_component on app_versions (sha256, app_id);

-- SQLite rewrites every row without the column.
alter table app_versions drop column component;
