/**
 * TLS at the gateway's own listener (TLS_CERT/TLS_KEY, and TLS_CLIENT_CA for mutual TLS), with a throw-away
 * PKI made by the `openssl` command: a CA, a server certificate for 127.0.0.1, and client certificates whose
 * subject CN is a client id (admin.createClient). Over HTTPS the Basic key flow works as over HTTP; with
 * TLS_CLIENT_CA and TLS_CLIENT_CERT=required a connection without a certificate from that CA is refused
 * during the TLS handshake, and a verified certificate with no Authorization header authenticates as the
 * client its CN names. Certificates as credentials of their own (and the optional mode): client-certs.test.ts.
 */
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthGateway, BOOTSTRAP_SECRET, startAuthGateway } from '../helpers/fusioninventory-auth.js';
import { type Pki, makePki } from './client-cert-pki.js';

const actor = { name: 'test:tls', remoteAddr: null };
const CHALLENGE = 'Basic realm="agent-gate"';

// The throw-away PKI is the one the client-certificate tests use (test CA, rogue CA, server for 127.0.0.1).
let pki: Pki;
let caPem: Buffer;
const file = (name: string) => pki.file(name);
/** A client certificate whose subject CN is `cn`, signed by `ca`. */
const makeClient = (name: string, cn: string, ca: 'ca' | 'rogue-ca' = 'ca') => {
  const { cert, key } = pki.client(name, cn, ca);
  return { cert, key };
};

beforeAll(() => {
  pki = makePki('agent-gate-tls-');
  caPem = pki.caPem;
});

afterAll(() => {
  pki?.remove();
});

interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peer: { subjectCn: unknown; issuerCn: unknown };
}

/** One POST over a new TLS connection to 127.0.0.1, trusting only the test CA. */
function httpsPost(
  port: number,
  opts: { body: string; authorization?: string; cert?: Buffer; key?: Buffer },
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      'Content-Type': 'application/xml',
      'User-Agent': 'FusionInventory-Agent_v2.6-3',
      'Content-Length': String(Buffer.byteLength(opts.body)),
    };
    if (opts.authorization) headers.Authorization = opts.authorization;
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        headers,
        ca: caPem,
        cert: opts.cert,
        key: opts.key,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            peer: { subjectCn: peer.subject?.CN, issuerCn: peer.issuer?.CN },
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function prolog(deviceid: string): string {
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY><TOKEN>12345678</TOKEN></REQUEST>\n`;
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Refused during the TLS handshake: the request fails with a TLS alert (or the reset after it), never an HTTP status. */
async function expectTlsRefusal(attempt: Promise<HttpsAnswer>): Promise<void> {
  const outcome = await attempt.then(
    (a) => `answered HTTP ${a.status}`,
    (err: NodeJS.ErrnoException) => err.code ?? err.message,
  );
  expect(outcome).toMatch(/^(ERR_SSL_\w*ALERT\w*|ECONNRESET|EPIPE)$/);
}

/**
 * A bare TLS 1.2 handshake, where the server's verdict on the client certificate is part of the handshake
 * itself (in TLS 1.3 the client finishes first and only learns of the refusal when it reads).
 */
function tls12Handshake(
  port: number,
  opts: { cert?: Buffer; key?: Buffer },
): Promise<{ secure: true } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: caPem,
      cert: opts.cert,
      key: opts.key,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timeout')));
    socket.once('secureConnect', () => {
      socket.end();
      resolve({ secure: true });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

describe('HTTPS with TLS_CERT/TLS_KEY', () => {
  let gw: AuthGateway;
  beforeAll(async () => {
    gw = await startAuthGateway({ TLS_CERT: file('server.crt'), TLS_KEY: file('server.key') });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('listens on https://127.0.0.1 with the configured certificate', async () => {
    expect(gw.server.url).toBe(`https://127.0.0.1:${gw.server.port}`);
    const a = await httpsPost(gw.server.port, { body: prolog('tls-probe-2024-06-03-08-41-55') });
    expect(a.peer).toEqual({ subjectCn: '127.0.0.1', issuerCn: 'agent-gate test CA' });
  });

  it('a PROLOG gets the Basic challenge, then SEND with the registration key; recorded as key "default" v1', async () => {
    const deviceid = 'tls-basic-2024-06-03-08-41-55';
    const challenged = await httpsPost(gw.server.port, { body: prolog(deviceid) });
    expect(challenged.status).toBe(401);
    expect(challenged.headers['www-authenticate']).toBe(CHALLENGE);

    const a = await httpsPost(gw.server.port, {
      body: prolog(deviceid),
      authorization: basic('inventory', BOOTSTRAP_SECRET),
    });
    expect(a.status).toBe(200);
    expect(a.body).toMatch(/<REPLY>[\s\S]*<PROLOG_FREQ>24<\/PROLOG_FREQ>[\s\S]*<RESPONSE>SEND<\/RESPONSE>/);
    const [reg] = await gw.server.deps.records.registrations({ deviceid });
    expect(reg).toMatchObject({
      kind: 'prolog',
      status: 200,
      authType: 'key:basic',
      authUser: 'inventory',
      keyName: 'default',
      keyVersion: 1,
    });
  });

  it('asks for no client certificate: one presented is ignored, the Basic challenge still applies', async () => {
    const stray = makeClient('stray', 'agc_00000000000000000000');
    const a = await httpsPost(gw.server.port, { body: prolog('tls-stray-2024-06-03-08-41-55'), ...stray });
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe(CHALLENGE);
  });
});

describe('mutual TLS with TLS_CLIENT_CA and TLS_CLIENT_CERT=required', () => {
  let gw: AuthGateway;
  let clientId: string;
  let clientCert: { cert: Buffer; key: Buffer };

  beforeAll(async () => {
    gw = await startAuthGateway({
      TLS_CERT: file('server.crt'),
      TLS_KEY: file('server.key'),
      TLS_CLIENT_CA: file('ca.crt'),
      TLS_CLIENT_CERT: 'required',
    });
    ({ clientId } = await gw.server.deps.admin.createClient({ name: 'tls-agent' }, actor));
    clientCert = makeClient('client', clientId);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('refuses a connection without a client certificate during the TLS handshake, recording nothing', async () => {
    const watermark = await gw.lastRegistrationId();
    await expectTlsRefusal(
      httpsPost(gw.server.port, {
        body: prolog('tls-nocert-2024-06-03-08-41-55'),
        authorization: basic('inventory', BOOTSTRAP_SECRET),
      }),
    );
    expect(await tls12Handshake(gw.server.port, {})).toEqual({ error: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
    expect(await tls12Handshake(gw.server.port, clientCert)).toEqual({ secure: true });
    expect(await gw.registrationsAfter(watermark)).toEqual([]);
  });

  it('refuses a certificate from another CA during the TLS handshake, even with the client id as CN', async () => {
    const rogue = makeClient('rogue-client', clientId, 'rogue-ca');
    const watermark = await gw.lastRegistrationId();
    await expectTlsRefusal(httpsPost(gw.server.port, { body: prolog('tls-rogue-2024-06-03-08-41-55'), ...rogue }));
    // Node refuses it once OpenSSL has checked the chain: the handshake never completes (reset or alert).
    const handshake = await tls12Handshake(gw.server.port, rogue);
    expect('error' in handshake ? handshake.error : 'handshake completed').toMatch(
      /^(ECONNRESET|ERR_SSL_\w*ALERT\w*)$/,
    );
    expect(await gw.registrationsAfter(watermark)).toEqual([]);
  });

  it('accepts the client certificate with NO Authorization header as that client (auth_type client:certificate)', async () => {
    const deviceid = 'tls-mtls-2024-06-03-08-41-55';
    const a = await httpsPost(gw.server.port, { body: prolog(deviceid), ...clientCert });
    expect(a.status, a.body).toBe(200);
    expect(a.body).toContain('<RESPONSE>SEND</RESPONSE>');
    const [reg] = await gw.server.deps.records.registrations({ deviceid });
    expect(reg).toMatchObject({
      kind: 'prolog',
      status: 200,
      authType: 'client:certificate',
      clientId,
      keyName: null,
      keyVersion: null,
    });
    const [device] = await gw.server.deps.records.devices({ deviceid });
    expect(device?.deviceid).toBe(deviceid);
  });

  it('a verified certificate whose CN is no client gets the ordinary Basic challenge', async () => {
    const stranger = makeClient('stranger', 'agc_ffffffffffffffffffff');
    const watermark = await gw.lastRegistrationId();
    const a = await httpsPost(gw.server.port, { body: prolog('tls-stranger-2024-06-03-08-41-55'), ...stranger });
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe(CHALLENGE);
    expect((await gw.registrationsAfter(watermark)).filter((r) => r.status < 400)).toEqual([]);
  });

  it('the registration key still works over mutual TLS (certificate for the channel, Basic for the agent)', async () => {
    const deviceid = 'tls-mtls-basic-2024-06-03-08-41-55';
    const a = await httpsPost(gw.server.port, {
      body: prolog(deviceid),
      ...clientCert,
      authorization: basic('inventory', BOOTSTRAP_SECRET),
    });
    expect(a.status).toBe(200);
    const [reg] = await gw.server.deps.records.registrations({ deviceid });
    expect(reg).toMatchObject({ authType: 'key:basic', keyName: 'default', keyVersion: 1 });
  });

  it('once the client is revoked, its certificate no longer authenticates', async () => {
    // A client of this test's own (the others keep using theirs): its certificate works, until revoked.
    const own = await gw.server.deps.admin.createClient({ name: 'tls-agent-to-revoke' }, actor);
    const ownCert = makeClient('client-to-revoke', own.clientId);
    const before = await httpsPost(gw.server.port, { body: prolog('tls-revoked-2024-06-03-08-41-55'), ...ownCert });
    expect(before.status, before.body).toBe(200);
    await gw.server.deps.admin.revokeClient(own.clientId, actor);
    const a = await httpsPost(gw.server.port, { body: prolog('tls-revoked-2024-06-03-08-41-55'), ...ownCert });
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe(CHALLENGE);
  });
});
