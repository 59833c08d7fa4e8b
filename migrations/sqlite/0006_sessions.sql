-- Browser sessions (issue 5), stored here when no Redis is configured. The data is the
-- session record as JSON; expiry_date is Unix milliseconds (idle timeout, renewed on use).
create table sessions (
    id text primary key,
    data text not null,
    expiry_date bigint not null
);
create index sessions_expiry on sessions (expiry_date);

-- "Sign out everywhere" raises a user's epoch; a session signed in under an older epoch ends.
alter table users add column session_epoch bigint not null default 0;
