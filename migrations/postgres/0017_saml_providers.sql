-- Issue 13: SAML 2.0 identity providers (kind 'saml').
alter table identity_providers drop constraint identity_providers_kind_check;
alter table identity_providers
    add constraint identity_providers_kind_check check (kind in ('oidc', 'ldap', 'saml'));
