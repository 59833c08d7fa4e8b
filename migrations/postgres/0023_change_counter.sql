-- Issue 16. A counter every change to who may open which app (and which version serves it)
-- bumps, in the same transaction, by trigger: each replica polls it once a second and drops
-- its cached lookups when it moved, so no write path can forget to tell them.
-- Deferred constraint triggers: the counter row is locked only at commit, after every
-- other lock the transaction takes, so writers cannot deadlock on it.
create table change_counter (
    id integer primary key check (id = 1),
    n bigint not null
);
insert into change_counter (id, n) values (1, 0);

create function bump_change_counter() returns trigger language plpgsql as $$
begin
    update change_counter set n = n + 1 where id = 1;
    return null;
end;
$$;

create constraint trigger tenants_counts after insert or update or delete on tenants
    deferrable initially deferred for each row execute function bump_change_counter();

create constraint trigger apps_counts after insert or update or delete on apps
    deferrable initially deferred for each row execute function bump_change_counter();

create constraint trigger memberships_counts after insert or update or delete on memberships
    deferrable initially deferred for each row execute function bump_change_counter();

create constraint trigger team_members_counts after insert or update or delete on team_members
    deferrable initially deferred for each row execute function bump_change_counter();

create constraint trigger app_user_grants_counts after insert or update or delete on app_user_grants
    deferrable initially deferred for each row execute function bump_change_counter();

create constraint trigger app_team_grants_counts after insert or update or delete on app_team_grants
    deferrable initially deferred for each row execute function bump_change_counter();

create constraint trigger app_collaborators_counts after insert or update or delete on app_collaborators
    deferrable initially deferred for each row execute function bump_change_counter();
