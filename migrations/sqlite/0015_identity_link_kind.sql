-- Issue 11. How each external identity was linked: 'created' (made together with its
-- account by that provider's sign-in), 'email' (linked by verified email to an account
-- that belonged to the provider's tenant) or 'explicit' (linked by the account's owner,
-- signed in, on /account). A 'created' or 'email' link signs in only while the account
-- still belongs to the provider's tenant; an 'explicit' one always does. Existing links
-- are taken as 'created', the safe side: their owners link them again if need be.
alter table external_identities
    add column link_kind text not null default 'created'
    check (link_kind in ('created', 'email', 'explicit'));
