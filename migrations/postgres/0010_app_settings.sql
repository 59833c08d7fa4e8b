-- Per-app settings and secrets (issue 6), read by the app's guest through the
-- `host.setting` import. A plain setting's value is stored as is; a secret's value is
-- sealed (XChaCha20-Poly1305 under the platform key, bound to the app and the name), so
-- the database never holds it in the clear.

create table app_settings (
    app_id bigint not null references apps (id) on delete cascade,
    name text not null,
    kind text not null check (kind in ('plain', 'secret')),
    value text not null,
    updated_at bigint not null,
    updated_by text not null,
    primary key (app_id, name)
);

-- Bumped by every change of the app's settings: running servers compare it with what
-- they loaded and load the app again with the new values, as they do after a deploy.
alter table apps add column settings_revision bigint not null default 0;
