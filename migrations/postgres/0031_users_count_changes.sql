-- Issue 16. Signed-in sessions and app sessions keep their user's account (session epoch,
-- superadmin, forced password change; memberships are counted already) in each replica's
-- memory while the change counter of 0023 stays put: so every change to a user (sign out
-- everywhere, a password change or reset, a disabled or removed user) bumps it too.
create constraint trigger users_counts after insert or update or delete on users
    deferrable initially deferred for each row execute function bump_change_counter();
