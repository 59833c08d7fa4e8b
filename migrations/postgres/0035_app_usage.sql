-- Issue 17. Usage of each app per minute, for the console's charts and
-- `GET …/apps/{app}/usage`: callbacks run in the sandbox (and background jobs), failures,
-- sandbox limit hits (deadline, memory, output), shared-cache hits and misses, and the
-- callbacks' latency as a histogram (bucket_NN counts calls up to the bound `usage::BOUNDS_MS`
-- names, bucket_15 the rest). Each replica adds its own counts about once a minute (an
-- upsert that adds), so the rows are the sum over replicas. `minute` is the minute's
-- start in Unix ms. Rows older than eight days are pruned by the flush. No foreign key on
-- app_id: a flush may race an app's deletion; the flush writes only rows of apps that
-- exist, and deleting an app or a tenant deletes its rows.
create table app_usage (
    tenant_id bigint not null,
    app_id bigint not null,
    minute bigint not null,
    callbacks bigint not null default 0,
    errors bigint not null default 0,
    limit_hits bigint not null default 0,
    cache_hits bigint not null default 0,
    cache_misses bigint not null default 0,
    latency_sum_us bigint not null default 0,
    bucket_00 bigint not null default 0,
    bucket_01 bigint not null default 0,
    bucket_02 bigint not null default 0,
    bucket_03 bigint not null default 0,
    bucket_04 bigint not null default 0,
    bucket_05 bigint not null default 0,
    bucket_06 bigint not null default 0,
    bucket_07 bigint not null default 0,
    bucket_08 bigint not null default 0,
    bucket_09 bigint not null default 0,
    bucket_10 bigint not null default 0,
    bucket_11 bigint not null default 0,
    bucket_12 bigint not null default 0,
    bucket_13 bigint not null default 0,
    bucket_14 bigint not null default 0,
    bucket_15 bigint not null default 0,
    primary key (app_id, minute)
);
create index app_usage_minute on app_usage (minute);
create index app_usage_tenant on app_usage (tenant_id);
