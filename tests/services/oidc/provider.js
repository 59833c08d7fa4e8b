// Tessera's test OpenID provider: panva's `oidc-provider` with a password-checking login
// page of our own, automatic consent, and three people whose claims carry groups.
//
// Settings come from the environment (all optional):
//   OIDC_PORT            port on 127.0.0.1 (default 9400)
//   OIDC_ISSUER          issuer URL, compared byte for byte by relying parties
//                        (default http://127.0.0.1:$OIDC_PORT)
//   OIDC_REDIRECT_URIS   comma-separated redirect URIs of the main client
//   OIDC_CLIENT_ID / OIDC_CLIENT_SECRET          main client (dashboard / dashboard-secret)
//   OIDC_OTHER_CLIENT_ID / OIDC_OTHER_CLIENT_SECRET  a second client with the same redirect
//                        URIs, for tokens meant for someone else (other / other-secret)
//   OIDC_TTL_SECONDS     lifetime of id and access tokens (default 600)
//   OIDC_PEOPLE_FILE     JSON object {name: {password, email, email_verified, name, groups}}
//                        replacing the people below; read again at every sign-in, so a
//                        test can change someone's groups while the provider runs
//   OIDC_ID_TOKEN_ALG    the id_token's JWS algorithm: RS256 (default), RS384, RS512, PS256,
//                        PS384, PS512, ES256, ES384 or EdDSA; the JWKS publishes one new key
//                        of that kind (with its `alg`) and discovery lists only that algorithm
//   OIDC_TOKEN_AUTH_METHOD  the main client's token endpoint authentication:
//                        client_secret_basic (default), client_secret_post or private_key_jwt
//   OIDC_AUTH_METHODS    comma-separated methods discovery lists as supported (default: the
//                        main client's method only); the `other` client uses the first
//                        secret-based one of them and is left out when there is none
//   OIDC_CLIENT_JWKS_URI for private_key_jwt: where the provider fetches the main client's
//                        public keys (Tessera serves them per provider)
//   OIDC_ROLES_SHAPE     "groups" (default): a `groups` claim; "keycloak": the groups go to
//                        `realm_access.roles` and `resource_access.<client id>.roles` instead
//                        (scopes `groups` and `roles`), as Keycloak puts a realm's roles
//
// The issuer may have a path (OIDC_ISSUER=http://127.0.0.1:PORT/realms/acme, as Keycloak's
// are): the provider then answers under that path only.
//
// People: alice/alice-pw in [analysts], bob/bob-pw in [admins], carol/carol-pw in no group
// (and her address is not verified).
import fs from 'node:fs';
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const port = Number(env.OIDC_PORT || 9400);
const issuer = env.OIDC_ISSUER || `http://127.0.0.1:${port}`;
const redirectUris = (env.OIDC_REDIRECT_URIS || 'http://127.0.0.1:8080/auth/oidc/callback')
  .split(',').map((u) => u.trim()).filter((u) => u.length > 0);
const ttl = Number(env.OIDC_TTL_SECONDS || 600);
const mountPath = new URL(issuer).pathname.replace(/\/$/, '');
const idTokenAlg = env.OIDC_ID_TOKEN_ALG || 'RS256';
const authMethod = env.OIDC_TOKEN_AUTH_METHOD || 'client_secret_basic';
const authMethods = (env.OIDC_AUTH_METHODS || authMethod).split(',').map((m) => m.trim()).filter((m) => m);
const rolesShape = env.OIDC_ROLES_SHAPE || 'groups';
const mainClientId = env.OIDC_CLIENT_ID || 'dashboard';
if (!['groups', 'keycloak'].includes(rolesShape)) throw new Error(`OIDC_ROLES_SHAPE ${rolesShape}?`);
if (authMethod === 'private_key_jwt' && !env.OIDC_CLIENT_JWKS_URI) throw new Error('private_key_jwt needs OIDC_CLIENT_JWKS_URI');

const builtInPeople = {
  alice: { password: 'alice-pw', email: 'alice@example.org', email_verified: true, name: 'Alice', preferred_username: 'alice', groups: ['analysts'] },
  bob: { password: 'bob-pw', email: 'bob@example.org', email_verified: true, name: 'Bob', preferred_username: 'bob', groups: ['admins'] },
  carol: { password: 'carol-pw', email: 'carol@example.org', email_verified: false, name: 'Carol', preferred_username: 'carol', groups: [] },
};

const people = () => (env.OIDC_PEOPLE_FILE
  ? JSON.parse(fs.readFileSync(env.OIDC_PEOPLE_FILE, 'utf8'))
  : builtInPeople);

// A new signing key of the configured kind on every start.
const keyKinds = {
  RS: ['rsa', { modulusLength: 2048 }],
  PS: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
  ES384: ['ec', { namedCurve: 'P-384' }],
  EdDSA: ['ed25519', {}],
};
const kind = keyKinds[idTokenAlg] || keyKinds[idTokenAlg.slice(0, 2)];
if (!kind || !/^(RS|PS)(256|384|512)$|^ES(256|384)$|^EdDSA$/.test(idTokenAlg)) throw new Error(`OIDC_ID_TOKEN_ALG ${idTokenAlg}?`);
const { privateKey } = generateKeyPairSync(kind[0], kind[1]);
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomBytes(6).toString('hex')}`, alg: idTokenAlg, use: 'sig' };

const client = (id, secret, method) => ({
  client_id: id,
  ...(method === 'private_key_jwt'
    ? { jwks_uri: env.OIDC_CLIENT_JWKS_URI }
    : { client_secret: secret }),
  redirect_uris: redirectUris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: method,
  id_token_signed_response_alg: idTokenAlg,
});
const otherMethod = authMethods.find((m) => m === 'client_secret_basic' || m === 'client_secret_post');
const clients = [client(mainClientId, env.OIDC_CLIENT_SECRET || 'dashboard-secret', authMethod)];
if (otherMethod) clients.push(client(env.OIDC_OTHER_CLIENT_ID || 'other', env.OIDC_OTHER_CLIENT_SECRET || 'other-secret', otherMethod));

// The person's groups as the configured claim shape.
const groupClaims = (groups) => (rolesShape === 'keycloak'
  ? { realm_access: { roles: groups }, resource_access: { [mainClientId]: { roles: groups } } }
  : { groups });
const groupClaimNames = rolesShape === 'keycloak' ? ['realm_access', 'resource_access'] : ['groups'];

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const html = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body>${body}</body></html>`;

const provider = new Provider(issuer, {
  clients,
  clientAuthMethods: authMethods,
  // oidc-provider refuses to fetch from special-use addresses (SSRF protection); in the
  // tests Tessera's JWKS URL (private_key_jwt) is on 127.0.0.1, so that check is dropped here.
  fetch: (url, options) => {
    const { dispatcher: _ssrfCheck, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  enabledJWA: { idTokenSigningAlgValues: [idTokenAlg] },
  scopes: ['openid', 'email', 'profile', 'groups', 'roles'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: groupClaimNames,
    roles: groupClaimNames,
  },
  // Put the scopes' claims into the id_token, not only into userinfo.
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const person = people()[sub];
    if (!person) return undefined;
    const { password: _secret, groups, ...claims } = person;
    return { accountId: sub, claims: async () => ({ sub, ...claims, ...groupClaims(groups || []) }) };
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  pkce: { required: () => true },
  ttl: { IdToken: ttl, AccessToken: ttl, AuthorizationCode: 120, Interaction: 600, Session: 3600, Grant: 3600 },
  interactions: { url: (_ctx, interaction) => `${mountPath}/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = html('Error', `<pre id="error">${escape(JSON.stringify(out))}</pre>`);
  },
});

// Why a request failed, in the log (a line each; oidc-provider answers only the error code).
for (const event of ['grant.error', 'server_error', 'jwks.error']) {
  provider.on(event, (_ctx, error) => console.error(`${event}: ${error.message} ${error.error_detail || ''} ${error.cause?.message || ''} ${error.cause?.error_description || ''}`));
}

function form(request) {
  return new Promise((resolve, reject) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => resolve(new URLSearchParams(body)));
    request.on('error', reject);
  });
}

const loginPage = (uid, error) => html('Sign in to the test provider', `<h1>Test provider</h1>
${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="${escape(mountPath)}/interaction/${escape(uid)}/login">
<label>User <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button>
</form>`);

async function interaction(request, response, uid, verb) {
  const details = await provider.interactionDetails(request, response);
  if (details.uid !== uid) throw new Error('unknown interaction');
  if (details.prompt.name === 'consent') {
    // First-party test clients: grant whatever was asked.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(request, response, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (verb === 'login' && request.method === 'POST') {
    const fields = await form(request);
    const who = fields.get('username') || '';
    const person = people()[who];
    if (!person || person.password !== (fields.get('password') || '')) {
      response.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      return response.end(loginPage(uid, 'Wrong user or password.'));
    }
    return provider.interactionFinished(request, response, { login: { accountId: who } }, { mergeWithLastSubmission: false });
  }
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  return response.end(loginPage(uid));
}

const oidc = provider.callback();
const server = http.createServer((request, response) => {
  // Under an issuer with a path, only that path is the provider's (mounted as oidc-provider's
  // documentation shows: the prefix is taken off `url` and kept in `originalUrl`).
  if (mountPath) {
    if (request.url !== mountPath && !request.url.startsWith(`${mountPath}/`) && !request.url.startsWith(`${mountPath}?`)) {
      response.writeHead(404, { 'content-type': 'text/plain' });
      return response.end('not under the issuer\'s path');
    }
    request.originalUrl = request.url;
    request.url = request.url.slice(mountPath.length) || '/';
  }
  const path = new URL(request.url, 'http://x').pathname;
  const match = /^\/interaction\/([\w-]+)(?:\/(login))?$/.exec(path);
  if (!match) return oidc(request, response);
  interaction(request, response, match[1], match[2]).catch((error) => {
    console.error(`interaction failed: ${error.message}`);
    if (!response.headersSent) response.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
    response.end(html('Error', `<p id="error">${escape(error.message)}</p>`));
  });
});
server.listen(port, '127.0.0.1', () => console.log(`test OIDC provider ${issuer} ready`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
