-- Issue 11. Session ids are stored as the hex sha256 of the id from now on (the cookie's
-- id never reaches the database): sessions stored under their clear id end here.
delete from sessions;

-- A provider used to link any account with the same verified email. Links made that way
-- (identity newer than its account) to an account that does not belong to the provider's
-- tenant (a superadmin, a local password, a role in another tenant) are dropped: only the
-- account's owner may link them again, signed in, from the account page.
delete from external_identities
where created_at <> (select u.created_at from users u where u.id = external_identities.user_id)
  and (
    exists (
      select 1 from users u
      where u.id = external_identities.user_id
        and (u.superadmin <> 0 or u.password_hash is not null)
    )
    or exists (
      select 1 from memberships m
      join identity_providers p on p.id = external_identities.provider_id
      where m.user_id = external_identities.user_id and m.tenant_id <> p.tenant_id
    )
  );
