-- Issue 17. A tenant's life cycle: a superadmin suspends it (its apps, pushes and its
-- members' tokens answer 503 until it is resumed) or deletes it. A deleted tenant keeps
-- its row as a tombstone (slug, name, when) and nothing else: its id is never handed to a
-- new tenant, so the audit log's rows of it never appear in another tenant's log, and its
-- slug never names someone else's apps behind old links.
alter table tenants add column suspended_at bigint;
alter table tenants add column deleted_at bigint;
