// A test-only stand-in for an OpenID provider's token endpoint that hands out FORGED
// id_tokens, for the attacks a real provider never produces: a certified provider such as
// tests/services/oidc/provider.js will not sign with `alg: none`, with HMAC keyed by its own
// public key, with an algorithm it does not publish, or with a key missing from its JWKS.
// Those tokens reach a relying party only from a compromised or impersonated token
// endpoint, so this plays that endpoint. Tessera is otherwise driven exactly as with a real
// provider: discovery, the authorization redirect (no login form: it answers at once), the
// code exchange and the JWKS.
//
// Node's standard library only (no npm packages). Environment:
//   FORGER_PORT        port on 127.0.0.1
//   FORGER_MODE_FILE   JSON {"mode": ..., "publish_second": bool} read at every request:
//     valid            RS256 with the published key (the control)
//     none             `alg: none`, empty signature
//     hs256-public-key HS256 keyed with the published RSA public key (PEM): the classic
//                      algorithm confusion attack
//     unpublished-alg  PS256 with the published RSA key: the JWKS names no `alg` (as Entra
//                      ID's does) and discovery lists RS256 only
//     unknown-key      RS256 with a second key, `kid` "second", in the JWKS only when
//                      publish_second is true (a rotation)
//   FORGER_CLIENT_ID   the audience (default dashboard)
// GET /_test/stats answers {"jwks_fetches": n}.
import fs from 'node:fs';
import http from 'node:http';
import { createHmac, createSign, generateKeyPairSync, randomBytes, constants } from 'node:crypto';

const port = Number(process.env.FORGER_PORT);
const issuer = `http://127.0.0.1:${port}`;
const modeFile = process.env.FORGER_MODE_FILE;
const clientId = process.env.FORGER_CLIENT_ID || 'dashboard';

const first = generateKeyPairSync('rsa', { modulusLength: 2048 });
const second = generateKeyPairSync('rsa', { modulusLength: 2048 });
// Keys without `alg`, as Microsoft Entra ID publishes them: only discovery's
// id_token_signing_alg_values_supported (RS256) says which algorithm they sign.
const jwk = (pair, kid) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' });
const codes = new Map();
let jwksFetches = 0;

const mode = () => JSON.parse(fs.readFileSync(modeFile, 'utf8'));
const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

function idToken(nonce) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, aud: clientId, sub: 'mallory', email: 'mallory@example.org', email_verified: true,
    groups: ['admins'], nonce, iat: now, exp: now + 600,
  };
  const { mode: kind } = mode();
  const sign = (alg, header) => {
    const input = `${b64(header)}.${b64(claims)}`;
    if (alg === 'none') return `${input}.`;
    if (alg === 'HS256') {
      const secret = first.publicKey.export({ format: 'pem', type: 'spki' });
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    }
    const pair = header.kid === 'second' ? second : first;
    const signer = createSign('sha256');
    signer.update(input);
    const options = alg === 'PS256'
      ? { key: pair.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
      : pair.privateKey;
    return `${input}.${signer.sign(options).toString('base64url')}`;
  };
  switch (kind) {
    case 'valid': return sign('RS256', { alg: 'RS256', kid: 'first' });
    case 'none': return sign('none', { alg: 'none', kid: 'first' });
    case 'hs256-public-key': return sign('HS256', { alg: 'HS256', kid: 'first' });
    case 'unpublished-alg': return sign('PS256', { alg: 'PS256', kid: 'first' });
    case 'unknown-key': return sign('RS256', { alg: 'RS256', kid: 'second' });
    default: throw new Error(`unknown mode ${kind}`);
  }
}

function json(response, status, body) {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
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

const server = http.createServer(async (request, response) => {
  try {
    const url = new URL(request.url, issuer);
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        return json(response, 200, {
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic'],
          code_challenge_methods_supported: ['S256'],
        });
      case '/jwks': {
        jwksFetches += 1;
        const keys = [jwk(first, 'first')];
        if (mode().publish_second) keys.push(jwk(second, 'second'));
        return json(response, 200, { keys });
      }
      case '/_test/stats':
        return json(response, 200, { jwks_fetches: jwksFetches });
      case '/auth': {
        const code = randomBytes(16).toString('hex');
        codes.set(code, url.searchParams.get('nonce'));
        const back = new URL(url.searchParams.get('redirect_uri'));
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state'));
        back.searchParams.set('iss', issuer);
        response.writeHead(303, { location: back.href });
        return response.end();
      }
      case '/token': {
        const fields = await form(request);
        const nonce = codes.get(fields.get('code'));
        codes.delete(fields.get('code'));
        if (nonce === undefined) return json(response, 400, { error: 'invalid_grant' });
        return json(response, 200, { access_token: randomBytes(16).toString('hex'), token_type: 'Bearer', expires_in: 600, id_token: idToken(nonce) });
      }
      default:
        response.writeHead(404);
        return response.end();
    }
  } catch (error) {
    return json(response, 500, { error: 'server_error', error_description: error.message });
  }
});
server.listen(port, '127.0.0.1', () => console.log(`forging token endpoint ${issuer} ready`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
