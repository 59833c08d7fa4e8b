-- Identity providers per tenant (issue 5): OIDC and LDAP sign-in, external identities,
-- and which memberships and team memberships a provider manages (so a later sign-in can
-- take back what the provider granted without touching grants made by hand).

create table identity_providers (
    id integer primary key,
    tenant_id bigint not null references tenants (id),
    slug text not null,
    kind text not null check (kind in ('oidc', 'ldap')),
    display_name text not null,
    -- JSON, kind-specific; the secret inside (client_secret, bind_password) is sealed.
    settings text not null,
    -- JSON list of {group, role, teams}.
    group_mappings text not null default '[]',
    created_at bigint not null,
    updated_at bigint not null,
    unique (tenant_id, slug)
);
create unique index identity_providers_tenant_id on identity_providers (tenant_id, id);

-- (provider, subject) -> user: the OIDC 'sub' or the directory entry's DN.
create table external_identities (
    provider_id bigint not null references identity_providers (id) on delete cascade,
    subject text not null,
    user_id bigint not null references users (id),
    created_at bigint not null,
    last_sign_in_at bigint not null,
    primary key (provider_id, subject)
);
create index external_identities_user on external_identities (user_id);

-- A membership role a provider granted. 'manual_role' is the role the member had by hand
-- before the provider raised it (restored when the provider's grant goes away), or null
-- when the provider created the membership (then the membership goes away with it).
create table provider_memberships (
    tenant_id bigint not null,
    user_id bigint not null,
    provider_id bigint not null references identity_providers (id) on delete cascade,
    role text not null check (role in ('admin', 'author', 'viewer')),
    manual_role text check (manual_role in ('owner', 'admin', 'author', 'viewer')),
    primary key (tenant_id, user_id),
    foreign key (tenant_id, user_id) references memberships (tenant_id, user_id) on delete cascade
);

-- A team membership a provider created.
create table provider_team_members (
    tenant_id bigint not null,
    team_id bigint not null,
    user_id bigint not null,
    provider_id bigint not null references identity_providers (id) on delete cascade,
    primary key (team_id, user_id),
    foreign key (team_id, user_id) references team_members (team_id, user_id) on delete cascade
);
