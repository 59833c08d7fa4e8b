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

const builtInPeople = {
  alice: { password: 'alice-pw', email: 'alice@example.org', email_verified: true, name: 'Alice', preferred_username: 'alice', groups: ['analysts'] },
  bob: { password: 'bob-pw', email: 'bob@example.org', email_verified: true, name: 'Bob', preferred_username: 'bob', groups: ['admins'] },
  carol: { password: 'carol-pw', email: 'carol@example.org', email_verified: false, name: 'Carol', preferred_username: 'carol', groups: [] },
};

const people = () => (env.OIDC_PEOPLE_FILE
  ? JSON.parse(fs.readFileSync(env.OIDC_PEOPLE_FILE, 'utf8'))
  : builtInPeople);

// A new RS256 key on every start.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };

const client = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  redirect_uris: redirectUris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const html = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body>${body}</body></html>`;

const provider = new Provider(issuer, {
  clients: [
    client(env.OIDC_CLIENT_ID || 'dashboard', env.OIDC_CLIENT_SECRET || 'dashboard-secret'),
    client(env.OIDC_OTHER_CLIENT_ID || 'other', env.OIDC_OTHER_CLIENT_SECRET || 'other-secret'),
  ],
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // Put the scopes' claims into the id_token, not only into userinfo.
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const person = people()[sub];
    if (!person) return undefined;
    const { password: _secret, ...claims } = person;
    return { accountId: sub, claims: async () => ({ sub, ...claims }) };
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  pkce: { required: () => true },
  ttl: { IdToken: ttl, AccessToken: ttl, AuthorizationCode: 120, Interaction: 600, Session: 3600, Grant: 3600 },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = html('Error', `<pre id="error">${escape(JSON.stringify(out))}</pre>`);
  },
});

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
<form method="post" action="/interaction/${escape(uid)}/login">
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
  const path = new URL(request.url, issuer).pathname;
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
