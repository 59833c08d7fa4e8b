-- Issue 16. A counter every change to who may open which app (and which version serves it)
-- bumps, in the same transaction, by trigger: each replica polls it once a second and drops
-- its cached lookups when it moved, so no write path can forget to tell them.
create table change_counter (
    id integer primary key check (id = 1),
    n integer not null
);
insert into change_counter (id, n) values (1, 0);

create trigger tenants_insert_counts after insert on tenants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger tenants_update_counts after update on tenants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger tenants_delete_counts after delete on tenants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger apps_insert_counts after insert on apps
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger apps_update_counts after update on apps
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger apps_delete_counts after delete on apps
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger memberships_insert_counts after insert on memberships
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger memberships_update_counts after update on memberships
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger memberships_delete_counts after delete on memberships
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger team_members_insert_counts after insert on team_members
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger team_members_update_counts after update on team_members
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger team_members_delete_counts after delete on team_members
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_user_grants_insert_counts after insert on app_user_grants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_user_grants_update_counts after update on app_user_grants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_user_grants_delete_counts after delete on app_user_grants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_team_grants_insert_counts after insert on app_team_grants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_team_grants_update_counts after update on app_team_grants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_team_grants_delete_counts after delete on app_team_grants
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_collaborators_insert_counts after insert on app_collaborators
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_collaborators_update_counts after update on app_collaborators
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger app_collaborators_delete_counts after delete on app_collaborators
begin
    update change_counter set n = n + 1 where id = 1;
end;
