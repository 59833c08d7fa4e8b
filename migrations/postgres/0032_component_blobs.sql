-- Issue 16: a version's component leaves app_versions for a table of its own,
-- content-addressed per tenant like data blobs (0018): a tenant whose 1,000 apps run the
-- same component stores it once, and a hash names nothing in another tenant. size_bytes
-- sits before content, so the storage quota's sum never reads the bytes.
create table app_components (
    tenant_id bigint not null references tenants (id),
    sha256 text not null,
    size_bytes bigint not null,
    content bytea not null,
    primary key (tenant_id, sha256)
);
create index app_components_size on app_components (tenant_id, size_bytes);

-- Every stored version's bytes, once per (tenant, hash).
insert into app_components (tenant_id, sha256, size_bytes, content)
    select a.tenant_id, v.sha256, octet_length(v.component), v.component
    from app_versions v join apps a on a.id = v.app_id
    on conflict (tenant_id, sha256) do nothing;

-- Whether another version of the tenant still uses a hash (pruning, deleting an app).
create index app_versions_component on app_versions (sha256, app_id);

-- Expand, not contract (docs/operations.md "Upgrades"): replicas of the previous release
-- may still run against this schema, so the column stays, empty and nullable, and a
-- version such a replica stores has its bytes moved here as it is inserted. A later
-- release drops the column and this trigger.
alter table app_versions alter column component drop not null;
update app_versions set component = null;

create function move_component_bytes() returns trigger language plpgsql as $$
begin
    if new.component is not null then
        insert into app_components (tenant_id, sha256, size_bytes, content)
            select a.tenant_id, new.sha256, octet_length(new.component), new.component
            from apps a where a.id = new.app_id
            on conflict (tenant_id, sha256) do nothing;
        new.component := null;
    end if;
    return new;
end;
$$;

create trigger app_versions_move_component before insert on app_versions
    for each row execute function move_component_bytes();
