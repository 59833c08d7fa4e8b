-- The tenancy model: users, memberships with roles, teams, app access lists, API tokens,
-- the audit log and per-tenant quotas. Timestamps are Unix milliseconds; flags are 0/1.

alter table tenants add column name text not null default '';
update tenants set name = slug;
-- Quotas, with the platform's defaults.
alter table tenants add column max_apps bigint not null default 100;
alter table tenants add column max_concurrent_callbacks bigint not null default 32;
alter table tenants add column callback_memory_mb bigint not null default 128;
alter table tenants add column callback_deadline_ms bigint not null default 5000;
alter table tenants add column max_version_storage_bytes bigint not null default 1073741824;

-- One identity per person; email is stored lowercased and unique.
create table users (
    id integer primary key,
    email text not null,
    -- argon2id PHC string; null for users who only sign in through a provider.
    password_hash text,
    password_must_change bigint not null default 0,
    superadmin bigint not null default 0,
    created_at bigint not null,
    disabled_at bigint
);
create unique index users_email_ci on users (lower(email));

create table memberships (
    tenant_id bigint not null references tenants (id),
    user_id bigint not null references users (id),
    role text not null check (role in ('owner', 'admin', 'author', 'viewer')),
    created_at bigint not null,
    primary key (tenant_id, user_id)
);
create index memberships_user on memberships (user_id);

create table teams (
    id integer primary key,
    tenant_id bigint not null references tenants (id),
    name text not null,
    created_at bigint not null,
    unique (tenant_id, name)
);
create unique index teams_tenant_id on teams (tenant_id, id);

-- A team member is a member of the team's tenant: both foreign keys carry the tenant.
create table team_members (
    tenant_id bigint not null,
    team_id bigint not null,
    user_id bigint not null,
    created_at bigint not null,
    primary key (team_id, user_id),
    foreign key (tenant_id, team_id) references teams (tenant_id, id) on delete cascade,
    foreign key (tenant_id, user_id) references memberships (tenant_id, user_id) on delete cascade
);
create index team_members_user on team_members (tenant_id, user_id);

create unique index apps_tenant_id on apps (tenant_id, id);

-- Who may open a `restricted` app (besides the tenant's owners and admins).
create table app_user_grants (
    tenant_id bigint not null,
    app_id bigint not null,
    user_id bigint not null,
    created_at bigint not null,
    primary key (app_id, user_id),
    foreign key (tenant_id, app_id) references apps (tenant_id, id) on delete cascade,
    foreign key (tenant_id, user_id) references memberships (tenant_id, user_id) on delete cascade
);

create table app_team_grants (
    tenant_id bigint not null,
    app_id bigint not null,
    team_id bigint not null,
    created_at bigint not null,
    primary key (app_id, team_id),
    foreign key (tenant_id, app_id) references apps (tenant_id, id) on delete cascade,
    foreign key (tenant_id, team_id) references teams (tenant_id, id) on delete cascade
);

-- Who may deploy an app (besides the tenant's owners and admins).
create table app_collaborators (
    tenant_id bigint not null,
    app_id bigint not null,
    user_id bigint not null,
    created_at bigint not null,
    primary key (app_id, user_id),
    foreign key (tenant_id, app_id) references apps (tenant_id, id) on delete cascade,
    foreign key (tenant_id, user_id) references memberships (tenant_id, user_id) on delete cascade
);

-- Only a sha256 of the token is stored; `public_id` is the short part of the token that
-- finds the row.
create table api_tokens (
    id integer primary key,
    public_id text not null unique,
    tenant_id bigint not null references tenants (id),
    user_id bigint not null references users (id),
    role text not null check (role in ('owner', 'admin', 'author', 'viewer')),
    secret_sha256 text not null,
    created_at bigint not null,
    expires_at bigint,
    revoked_at bigint,
    last_used_at bigint
);
create index api_tokens_tenant on api_tokens (tenant_id, id);

-- Append-only: the triggers below refuse updates and deletes.
create table audit_log (
    id integer primary key,
    at bigint not null,
    tenant_id bigint,
    actor text not null,
    action text not null,
    target text not null,
    remote_addr text,
    detail text not null default '{}'
);
create index audit_log_tenant on audit_log (tenant_id, id);

create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'the audit log is append-only');
end;

create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'the audit log is append-only');
end;
