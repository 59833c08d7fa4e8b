-- Sign-in throttling in the database, so every replica counts the same failures (it was in
-- memory per replica). One row per throttle key (`account:<email>`, `address:<ip>`): the
-- failures since the last success, until when attempts are refused, and the last failure
-- (rows idle for a day are swept, so old failures are forgotten).

create table sign_in_throttle (
    key text primary key,
    failures bigint not null,
    blocked_until bigint not null,
    last_failure_at bigint not null
);
