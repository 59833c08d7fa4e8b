-- Leases (issue 6): a named lock that replicas sharing this database take in turn, such as
-- the push lock of one app. A holder renews its lease while it works; the lease of a holder
-- that died simply expires, so a killed server never blocks the others for long.

create table leases (
    name text primary key,
    holder text not null,
    expires_at bigint not null
);
