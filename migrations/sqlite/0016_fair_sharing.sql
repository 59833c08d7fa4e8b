-- Issue 12. Fair sharing, as part of each tenant's quotas:
-- cpu_weight: the tenant's CPU share when tenants compete (200 gets twice the CPU of 100);
-- max_jobs: background jobs queued or running at once across its apps (each app at most
-- half of it, at least 1);
-- job_deadline_ms: deadline of one background job (the platform's `[jobs] deadline_secs`
-- still caps it).
alter table tenants add column cpu_weight bigint not null default 100
    check (cpu_weight between 1 and 10000);
alter table tenants add column max_jobs bigint not null default 16
    check (max_jobs between 1 and 10000);
alter table tenants add column job_deadline_ms bigint not null default 600000
    check (job_deadline_ms between 1 and 86400000);
