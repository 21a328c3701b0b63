// A real OpenID Provider (the npm package oidc-provider) on 127.0.0.1, for the end-to-end tests
// and the demo. Test fixture only: fixed client secrets, made-up accounts, development-only
// login pages, state in memory.
//
//   node server.mjs serve --port PORT --keys KEYS.json    (or PROVIDER_PORT / PROVIDER_KEYS)
//                         [--tls-cert CERT.pem --tls-key KEY.pem]  HTTPS, issuer https://127.0.0.1:PORT
//   node server.mjs genkeys KEYS.json [--tag TAG]          a private JWKS: one RS256, one ES256 key
//
// Issuer: http://127.0.0.1:PORT. Keys are given as a private JWKS file and never change while
// the process runs: a key rotation is a restart with another file (the provider signs with the
// first key of each algorithm and publishes all of them at jwks_uri).
//
// Access tokens are RFC 9068 JWTs (header typ at+jwt) for one of the resource servers below;
// without a `resource` parameter the token is for api://documents. Custom claims: `authz.roles`
// (see ROLES) and `tenant`. Client credentials: sub is the client_id. Authorization code (for an
// ID token and a user's access token): log in at the devInteractions pages as any account name,
// e.g. scripted by tests/provider/oidc_client.py. Logout (end_session) posts Back-Channel Logout
// tokens to the web application's backchannel_logout_uri (PROVIDER_BACKCHANNEL_LOGOUT_URI).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { parseArgs } from 'node:util';


const HOST = '127.0.0.1';

// Resource indicator -> what its access tokens carry and how they are signed.
const RESOURCE_SERVERS = {
  'api://documents': { scope: 'documents:read documents:write', alg: 'RS256' },
  'api://documents-es256': { scope: 'documents:read documents:write', alg: 'ES256' },
};
const DEFAULT_RESOURCE = 'api://documents';
const ACCESS_TOKEN_TTL = 600; // seconds

// Fixed test secrets: this provider only ever listens on loopback.
const CLIENTS = [
  {
    client_id: 'reports',
    client_secret: 'reports-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'documents:read',
  },
  {
    client_id: 'billing',
    client_secret: 'billing-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'documents:read documents:write',
  },
  {
    // A web application whose users log in (authorization code flow). When its users log
    // out, the provider posts a Back-Channel Logout token to PROVIDER_BACKCHANNEL_LOGOUT_URI
    // (the example API backend's endpoint), if set.
    client_id: 'webapp',
    client_secret: 'webapp-secret',
    grant_types: ['authorization_code'],
    redirect_uris: ['http://127.0.0.1/callback'],
    response_types: ['code'],
    scope: 'openid profile documents:read documents:write',
    ...(process.env.PROVIDER_BACKCHANNEL_LOGOUT_URI ? {
      backchannel_logout_uri: process.env.PROVIDER_BACKCHANNEL_LOGOUT_URI,
      backchannel_logout_session_required: true,
    } : {}),
  },
];

// Roles put into access tokens as the custom claim authz.roles, by account or by client.
const ROLES = {
  alice: ['editor'],
  bob: ['viewer'],
  reports: ['auditor'],
  billing: ['billing'],
};

function usage(message) {
  process.stderr.write(`server.mjs: ${message}\n`
    + 'usage: node server.mjs serve --port PORT --keys KEYS.json\n'
    + '       node server.mjs genkeys KEYS.json [--tag TAG]\n');
  process.exit(2);
}

// One RSA 2048 (RS256) and one P-256 (ES256) private key as a JWKS, with kids that say which.
function genkeys(file, tag) {
  const stamp = tag || new Date().toISOString().replace(/[-:]/g, '').slice(0, 15);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const keys = [
    { ...rsa, kid: `rs256-${stamp}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es256-${stamp}`, alg: 'ES256', use: 'sig' },
  ];
  writeFileSync(file, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
}

function configuration(jwks, errors) {
  return {
    jwks,
    clients: CLIENTS,
    // Signs the interaction cookies; a per-process random key is enough for a test fixture.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, name: id, preferred_username: id };
        },
      };
    },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    // Every scope a client may be registered with (the resource servers' too).
    scopes: ['openid', 'profile', 'documents:read', 'documents:write'],
    features: {
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      // Development-only login and consent pages: any account name logs in, no password.
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf || DEFAULT_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          const server = RESOURCE_SERVERS[resourceIndicator];
          if (!server) {
            throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
          }
          return {
            scope: server.scope,
            audience: resourceIndicator,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: server.alg } },
          };
        },
      },
    },
    // The provider refuses to fetch special-use addresses (SSRF protection); this fixture's
    // only outgoing requests are back-channel logouts to the API backend on loopback, so
    // loopback is allowed and everything else is refused.
    fetch(url, options) {
      if (new URL(url).hostname !== HOST) {
        return Promise.reject(new Error(`refusing to fetch ${url}: loopback only`));
      }
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    // Cannot override sub, scope, iss, aud, exp: those stay the provider's. A user's access
    // token carries its session id (`sid`, as the ID token and a logout token name it), so
    // that a back-channel logout can revoke it.
    async extraTokenClaims(ctx, token) {
      const who = token.accountId || token.clientId;
      return { authz: { roles: ROLES[who] || [] }, tenant: 'acme', ...(token.sid ? { sid: token.sid } : {}) };
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      IdToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
    },
  };
}

async function serve(port, keysFile, tls) {
  // Imported here so that genkeys runs without loading (and warning about) the provider.
  const { default: Provider, errors } = await import('oidc-provider');
  const jwks = JSON.parse(readFileSync(keysFile, 'utf8'));
  const issuer = `${tls ? 'https' : 'http'}://${HOST}:${port}`;
  const provider = new Provider(issuer, configuration(jwks, errors));
  provider.on('backchannel.success', (ctx, client) => {
    process.stdout.write(`provider: back-channel logout posted to ${client.clientId}\n`);
  });
  provider.on('backchannel.error', (ctx, err, client) => {
    process.stderr.write(`provider: back-channel logout to ${client.clientId} failed: ${err.message}${err.cause ? ` (${err.cause.code || err.cause.message})` : ""}\n`);
  });
  const handler = provider.callback();
  const server = tls
    ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler)
    : createHttpServer(handler);
  server.on('listening', () => {
    const kids = jwks.keys.map((k) => k.kid).join(', ');
    process.stdout.write(`provider: listening on ${issuer} (keys: ${kids})\n`);
  });
  server.on('error', (err) => {
    process.stderr.write(`provider: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(port, HOST);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // idle keep-alive connections would hold close() open
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function main(argv) {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      keys: { type: 'string' },
      tag: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
    },
  });
  if (command === 'genkeys') {
    if (positionals.length !== 1) usage('genkeys needs one output file');
    genkeys(positionals[0], values.tag);
  } else if (command === 'serve') {
    const port = Number(values.port || process.env.PROVIDER_PORT);
    const keys = values.keys || process.env.PROVIDER_KEYS;
    if (!Number.isInteger(port) || port < 1 || port > 65535) usage('need --port (1-65535)');
    if (!keys) usage('need --keys (a private JWKS file)');
    const cert = values['tls-cert'];
    const key = values['tls-key'];
    if (Boolean(cert) !== Boolean(key)) usage('--tls-cert and --tls-key go together');
    await serve(port, keys, cert ? { cert, key } : null);
  } else {
    usage(`unknown command ${command ?? '(none)'}`);
  }
}

await main(process.argv.slice(2));
