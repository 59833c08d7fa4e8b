-- The files of an app version's assets/ folder (CSS, JS, images, favicon), stored with
-- the version they were deployed with and served under /apps/{tenant}/{app}/assets/.
-- Paths are validated before they get here (platform/src/assets.rs).
create table app_assets (
    version_id bigint not null references app_versions (id),
    path text not null,
    sha256 text not null,
    size_bytes bigint not null,
    content bytea not null,
    primary key (version_id, path)
);
