-- Issue 16. Signed-in sessions and app sessions keep their user's account (session epoch,
-- superadmin, forced password change; memberships are counted already) in each replica's
-- memory while the change counter of 0023 stays put: so every change to a user (sign out
-- everywhere, a password change or reset, a disabled or removed user) bumps it too.
create trigger users_insert_counts after insert on users
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger users_update_counts after update on users
begin
    update change_counter set n = n + 1 where id = 1;
end;

create trigger users_delete_counts after delete on users
begin
    update change_counter set n = n + 1 where id = 1;
end;
