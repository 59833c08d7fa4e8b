-- The git commit a version was pushed from (null for CLI and API deploys).
alter table app_versions add column commit_sha text;
