-- Apps live on their own origin (issue 11). Two kinds of short-lived keys, stored by the
-- sha256 of their secret so a copy of the database opens nothing: `code:` rows are the
-- one-time hand-off codes that give a signed-in person a session on the apps origin
-- (taken once, a minute to live), `link:` rows tie those app sessions to the platform
-- session that made them (deleted when it signs out).

create table app_handoffs (
    key text primary key,
    data text not null,
    expires_at bigint not null
);

create index app_handoffs_expiry on app_handoffs (expires_at);
