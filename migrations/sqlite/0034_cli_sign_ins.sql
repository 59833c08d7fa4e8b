-- Issue 17. `tessera login`: a command line asks for a sign-in (device authorization, as in
-- RFC 8628), the person approves it in a browser where they are signed in, and the command
-- line collects an API token once. Only the sha256 of the device code is stored; the token
-- waits sealed (the platform key) until it is collected, then only its public id stays.
create table cli_sign_ins (
    id integer primary key,
    device_code_sha256 text not null unique,
    user_code text not null unique,
    client_name text not null,
    client_addr text not null default '',
    tenant_hint text not null default '',
    created_at bigint not null,
    expires_at bigint not null,
    last_polled_at bigint,
    tenant_id bigint references tenants (id),
    approved_by bigint references users (id),
    approved_at bigint,
    denied_at bigint,
    token_public_id text,
    token_sealed text,
    collected_at bigint
);
create index cli_sign_ins_expiry on cli_sign_ins (expires_at);
