-- Issue 17. Invitations by single-use link: a tenant admin creates one with a role, the
-- link (shown once) carries a secret whose sha256 is all that is stored; accepting it
-- grants the role, once, before it expires.
create table invitations (
    id integer primary key,
    tenant_id bigint not null references tenants (id),
    token_sha256 text not null unique,
    role text not null check (role in ('owner', 'admin', 'author', 'viewer')),
    note text not null default '',
    created_by text not null,
    created_at bigint not null,
    expires_at bigint not null,
    accepted_at bigint,
    accepted_by bigint references users (id),
    revoked_at bigint
);
create index invitations_tenant on invitations (tenant_id, id);
