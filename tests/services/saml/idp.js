// Tessera's test SAML 2.0 identity provider: samlify's IdentityProvider (XML-DSig by
// xml-crypto, exclusive c14n, RSA-SHA256) behind a password form of our own.
//
// Flow (SP-initiated, Web Browser SSO profile): the service provider redirects the browser to
// /idp/{mode}/sso with an AuthnRequest (HTTP-Redirect binding); the IdP shows its login form;
// after the password, it fetches the SP's metadata from the request's Issuer (Tessera's SP
// entity id is its metadata URL), and answers with an auto-submitting HTML form that POSTs a
// Response with a signed Assertion to the SP's AssertionConsumerService (HTTP-POST binding).
//
// Modes (the path's {mode}):
//   good   signs with the key whose certificate /idp/{mode}/metadata publishes
//   rogue  publishes the same certificate but signs with another key (a forged answer)
//
// Settings come from the environment:
//   SAML_PORT          port on 127.0.0.1 (default 9500)
//   SAML_KEY / SAML_CERT            PEM files of the published signing key and certificate
//   SAML_ROGUE_KEY / SAML_ROGUE_CERT  PEM files of the other key (mode rogue)
//   SAML_TTL_SECONDS   lifetime of an assertion (default 300)
//   SAML_PEOPLE_FILE   JSON {name: {password, email, groups}}, read again at every sign-in
//
// People (without a file): alice/alice-pw in [analysts], bob/bob-pw in [admins],
// carol/carol-pw in no group.
import fs from 'node:fs';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import samlify from 'samlify';

const env = process.env;
const port = Number(env.SAML_PORT || 9500);
const base = `http://127.0.0.1:${port}`;
const ttl = Number(env.SAML_TTL_SECONDS || 300);
const entityID = `${base}/idp`;

// The AuthnRequest is read, not schema-checked: the test IdP trusts its SPs' XML shape
// (the signatures it makes are what the tests are about).
samlify.setSchemaValidator({ validate: async () => 'skipped' });

const builtInPeople = {
  alice: { password: 'alice-pw', email: 'alice@example.org', groups: ['analysts'] },
  bob: { password: 'bob-pw', email: 'bob@example.org', groups: ['admins'] },
  carol: { password: 'carol-pw', email: 'carol@example.org', groups: [] },
};
const people = () => (env.SAML_PEOPLE_FILE
  ? JSON.parse(fs.readFileSync(env.SAML_PEOPLE_FILE, 'utf8'))
  : builtInPeople);

const read = (path) => fs.readFileSync(path, 'utf8');
const publishedCert = read(env.SAML_CERT);
const keys = {
  good: read(env.SAML_KEY),
  rogue: read(env.SAML_ROGUE_KEY),
};

const idpFor = (mode, privateKey) => samlify.IdentityProvider({
  entityID,
  signingCert: publishedCert,
  privateKey,
  wantAuthnRequestsSigned: false,
  nameIDFormat: ['urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'],
  singleSignOnService: [{
    Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    Location: `${base}/idp/${mode}/sso`,
  }],
  requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  generateID: () => `_${randomBytes(16).toString('hex')}`,
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body>${body}</body></html>`;

const attribute = (name, values) => `<saml:Attribute Name="${escape(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${
  values.map((v) => `<saml:AttributeValue xsi:type="xs:string">${escape(v)}</saml:AttributeValue>`).join('')
}</saml:Attribute>`;

// The SP's metadata, fetched from its entity id (an http URL) at every sign-in.
async function spFor(issuer) {
  if (!/^https?:\/\//.test(issuer)) throw new Error(`unknown SP ${issuer}`);
  const answer = await fetch(issuer);
  if (!answer.ok) throw new Error(`SP metadata ${issuer}: ${answer.status}`);
  return samlify.ServiceProvider({ metadata: await answer.text() });
}

async function respond(mode, query, who) {
  const idp = idpFor(mode, keys[mode]);
  const request = { query, octetString: '' };
  // The Issuer is read first (unverified) to find the SP, then the request is parsed
  // against that SP's metadata.
  const inflated = samlify.Utility.inflateString(decodeURIComponent(query.SAMLRequest));
  const issuer = /<(?:\w+:)?Issuer[^>]*>([^<]+)</.exec(inflated)?.[1]?.trim() || '';
  const sp = await spFor(issuer);
  const info = await idp.parseLoginRequest(sp, 'redirect', request);
  const person = people()[who];
  const now = new Date();
  const until = new Date(now.getTime() + ttl * 1000).toISOString();
  const acs = sp.entityMeta.getAssertionConsumerService('post');
  const { context } = await idp.createLoginResponse(sp, info, 'post', { email: person.email }, (template) => {
    const id = idp.entitySetting.generateID();
    const values = {
      ID: id,
      AssertionID: idp.entitySetting.generateID(),
      Destination: acs,
      Audience: sp.entityMeta.getEntityID(),
      SubjectRecipient: acs,
      Issuer: entityID,
      IssueInstant: now.toISOString(),
      StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
      ConditionsNotBefore: now.toISOString(),
      ConditionsNotOnOrAfter: until,
      SubjectConfirmationDataNotOnOrAfter: until,
      NameIDFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
      NameID: `person-${who}`,
      InResponseTo: info.extract.request.id,
      AuthnStatement: `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="${escape(id)}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`,
      AttributeStatement: `<saml:AttributeStatement>${attribute('email', [person.email])}${attribute('groups', person.groups)}</saml:AttributeStatement>`,
    };
    // Attribute and AuthnStatement XML is ours: put it in after the escaping replacement.
    const xml = samlify.SamlLib.replaceTagsByValue(template, { ...values, AuthnStatement: '@@AUTHN@@', AttributeStatement: '@@ATTRS@@' })
      .replace('@@AUTHN@@', values.AuthnStatement)
      .replace('@@ATTRS@@', values.AttributeStatement);
    return { id, context: xml };
  });
  return page('Signing in', `<form method="post" action="${escape(acs)}">`
    + `<input type="hidden" name="SAMLResponse" value="${escape(context)}">`
    + (query.RelayState !== undefined ? `<input type="hidden" name="RelayState" value="${escape(query.RelayState)}">` : '')
    + '<button type="submit">Continue</button></form>'
    + '<script>document.forms[0].submit()</script>');
}

const loginForm = (mode, query, error) => page('Sign in', `${error ? `<p role="alert">${escape(error)}</p>` : ''}`
  + `<form method="post" action="/idp/${mode}/login">`
  + `<input type="hidden" name="SAMLRequest" value="${escape(query.SAMLRequest || '')}">`
  + (query.RelayState !== undefined ? `<input type="hidden" name="RelayState" value="${escape(query.RelayState)}">` : '')
  + '<input id="username" name="username"><input id="password" name="password" type="password">'
  + '<button type="submit">Sign in</button></form>');

const body = (req) => new Promise((resolve, reject) => {
  let text = '';
  req.on('data', (chunk) => {
    text += chunk;
    if (text.length > 1 << 20) reject(new Error('too large'));
  });
  req.on('end', () => resolve(text));
});

const server = http.createServer(async (req, res) => {
  const send = (status, type, text) => {
    res.writeHead(status, { 'content-type': type });
    res.end(text);
  };
  try {
    const url = new URL(req.url, base);
    const match = /^\/idp\/(good|rogue)\/(metadata|sso|login)$/.exec(url.pathname);
    if (!match) return send(404, 'text/plain', 'not found');
    const [, mode, what] = match;
    if (what === 'metadata') {
      return send(200, 'application/samlmetadata+xml', idpFor(mode, keys.good).getMetadata());
    }
    if (what === 'sso' && req.method === 'GET') {
      const query = Object.fromEntries(url.searchParams);
      if (!query.SAMLRequest) return send(400, 'text/plain', 'no SAMLRequest');
      return send(200, 'text/html', loginForm(mode, query));
    }
    if (what === 'login' && req.method === 'POST') {
      const form = Object.fromEntries(new URLSearchParams(await body(req)));
      const query = { SAMLRequest: form.SAMLRequest };
      if (form.RelayState !== undefined) query.RelayState = form.RelayState;
      const person = people()[form.username];
      if (!person || person.password !== form.password) {
        return send(401, 'text/html', loginForm(mode, query, 'Wrong user name or password.'));
      }
      return send(200, 'text/html', await respond(mode, query, form.username));
    }
    return send(405, 'text/plain', 'method not allowed');
  } catch (e) {
    console.error(e);
    return send(500, 'text/plain', `error: ${e.message}`);
  }
});

server.listen(port, '127.0.0.1', () => console.log(`SAML IdP at ${entityID}`));
