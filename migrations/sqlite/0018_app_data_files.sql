-- Issue 14: the files of an app version's data/ folder, content-addressed per tenant.
-- A blob is stored once per tenant (its bytes count once against the tenant's storage
-- quota, and a hash names nothing in another tenant); a version lists its files as
-- (path, sha256, size). size_bytes sits before content so summing sizes never reads the
-- bytes, and the (tenant_id, size_bytes) index covers the quota's sum.
create table app_data_blobs (
    tenant_id bigint not null references tenants (id),
    sha256 text not null,
    size_bytes bigint not null,
    content blob not null,
    primary key (tenant_id, sha256)
);
create index app_data_blobs_size on app_data_blobs (tenant_id, size_bytes);

create table app_version_data (
    version_id bigint not null references app_versions (id),
    tenant_id bigint not null,
    path text not null,
    sha256 text not null,
    size_bytes bigint not null,
    primary key (version_id, path),
    foreign key (tenant_id, sha256) references app_data_blobs (tenant_id, sha256)
);
create index app_version_data_blob on app_version_data (tenant_id, sha256);

-- The hash of the version's data manifest (sorted paths and hashes), null when it has no
-- data files: names the folder a server materializes it into.
alter table app_versions add column data_sha256 text;
