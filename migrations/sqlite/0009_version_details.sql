-- Who pushed a version (the pusher of a `git push`; null for CLI, API and demo deploys,
-- whose `source` names them) and the build's output as the author saw it.
alter table app_versions add column author text;
alter table app_versions add column build_log text;
