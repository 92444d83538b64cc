/**
 * Client certificates as credentials of their own (TLS_CLIENT_CA with TLS_CLIENT_CERT=optional|required),
 * on a real TLS listener on 127.0.0.1 with a PKI made by `openssl`: agents without a certificate
 * authenticate as before; a verified certificate is registered on first use (authType `cert`, fingerprint
 * and subject recorded) and pins the device it registers; a revoked, unverifiable or foreign certificate
 * gets exactly the 401 of a missing credential; `agent-gate certs list|revoke` manage them.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { type AuthGateway, BOOTSTRAP_SECRET, startAuthGateway } from '../helpers/fusioninventory-auth.js';
import { textOf } from '../helpers/fixtures.js';
import {
  type ClientCert,
  type Pki,
  answerShape,
  httpsPost,
  httpsRequest,
  makePki,
  tls12Handshake,
} from './client-cert-pki.js';
import { TEST_ADMIN_TOKEN } from '../helpers/secrets.js';

const actor = { name: 'test:certs', remoteAddr: null };
const CHALLENGE = 'Basic realm="agent-gate"';

const BASE_INVENTORY = textOf('fusioninventory-plain', '0002-post-inventory.json');
const BASE_DEVICEID = /<DEVICEID>([^<]*)<\/DEVICEID>/.exec(BASE_INVENTORY)![1]!;
/** A full inventory of a machine of its own (deviceid, UUID, serial), compressed as the agents send it. */
function inventory(deviceid: string, serial: string): Buffer {
  const xml = BASE_INVENTORY.replaceAll(BASE_DEVICEID, deviceid)
    .replace('<SSN></SSN>', `<SSN>${serial}</SSN>`)
    .replace('<HARDWARE>', `<HARDWARE>\n      <UUID>${serial}-uuid</UUID>`);
  return zlib.deflateSync(xml);
}
const prolog = (deviceid: string) =>
  `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY><TOKEN>12345678</TOKEN></REQUEST>\n`;
const basic = (password: string) => `Basic ${Buffer.from(`inventory:${password}`).toString('base64')}`;
const ZLIB = 'application/x-compress-zlib';

let pki: Pki;
beforeAll(() => {
  pki = makePki('agent-gate-certs-');
});
afterAll(() => pki?.remove());

const cli = (databaseUrl: string, args: string[]) => runCli(args, { DATABASE_URL: databaseUrl });

describe('TLS_CLIENT_CERT=optional', () => {
  let gw: AuthGateway;
  let port: number;
  let laptop: ClientCert;
  let baseline401: ReturnType<typeof answerShape>;
  const deviceid = 'cert-laptop-2026-12-01-10-00-00';
  const post = (opts: Parameters<typeof httpsPost>[2]) => httpsPost(port, pki.caPem, opts);
  const send = (cert: ClientCert | null, body: Buffer, authorization?: string) =>
    post({ body, contentType: ZLIB, authorization, ...(cert ? { cert: cert.cert, key: cert.key } : {}) });
  const deviceRow = async () => {
    const [row] = await gw.server.deps.db.sql<
      { id: number; state: string; name: string; serial: string; lastSeen: Date; certId: number | null }[]
    >`select id, state, name, serial, last_seen as "lastSeen", registered_cert_id as "certId" from devices where deviceid = ${deviceid}`;
    return row;
  };
  const events = (kind: string) =>
    gw.server.deps.db.sql<{ deviceid: string | null; details: Record<string, unknown> }[]>`
      select deviceid, details from security_events where kind = ${kind} order by id`;

  beforeAll(async () => {
    gw = await startAuthGateway({
      TLS_CERT: pki.file('server.crt'),
      TLS_KEY: pki.file('server.key'),
      TLS_CLIENT_CA: pki.file('ca.crt'),
      TLS_CLIENT_CERT: 'optional',
    });
    port = gw.server.port;
    laptop = pki.client('laptop', 'pc-laptop-01');
    // The answer to an inventory with no credential at all: what every refusal below must look like.
    baseline401 = answerShape(await send(null, inventory(deviceid, 'SER-LAPTOP')));
    expect(baseline401.status).toBe(401);
    expect((baseline401.headers as Record<string, unknown>)['www-authenticate']).toBe(CHALLENGE);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('without a certificate the handshake completes and Basic works as before', async () => {
    expect(await tls12Handshake(port, pki.caPem, {})).toEqual({ secure: true });
    const id = 'cert-none-2026-12-01-10-00-00';
    expect((await post({ body: prolog(id) })).status).toBe(401);
    const a = await post({ body: prolog(id), authorization: basic(BOOTSTRAP_SECRET) });
    expect(a.status).toBe(200);
    const [reg] = await gw.server.deps.records.registrations({ deviceid: id });
    expect(reg).toMatchObject({ authType: 'key:basic', keyName: 'default', certFingerprint: null, certSubject: null });
  });

  it('a verified certificate alone is accepted: authType cert, fingerprint and subject recorded, device pinned', async () => {
    const a = await send(laptop, inventory(deviceid, 'SER-LAPTOP'));
    expect(a.status, a.body.toString()).toBe(200);
    const [reg] = await gw.server.deps.records.registrations({ deviceid });
    expect(reg).toMatchObject({
      kind: 'inventory',
      status: 200,
      outcome: 'quarantined',
      authType: 'cert',
      authUser: null,
      keyName: null,
      clientId: null,
      certFingerprint: laptop.fingerprint,
      certSubject: laptop.subject,
    });
    const [cert] = await gw.server.deps.admin.listCertificates();
    expect(cert).toMatchObject({
      fingerprint: laptop.fingerprint,
      subject: laptop.subject,
      issuer: 'CN=agent-gate test CA',
      notBefore: expect.any(Date),
      notAfter: expect.any(Date),
      revokedAt: null,
      devicesPinned: 1,
    });
    const [certRow] = await gw.server.deps.db.sql<{ id: number }[]>`
      select id from client_certificates where fingerprint = ${laptop.fingerprint}`;
    expect(Number((await deviceRow())!.certId)).toBe(Number(certRow!.id));
    await gw.server.deps.review.decide([deviceid], 'approve', 'vetted', actor);
    expect((await send(laptop, inventory(deviceid, 'SER-LAPTOP'))).status).toBe(200);
    expect((await deviceRow())!.state).toBe('approved');
  });

  it('the same device through the shared key gets the identical 401 and a device_credential_mismatch event', async () => {
    const before = await deviceRow();
    const a = await send(null, inventory(deviceid, 'SER-LAPTOP'), basic(BOOTSTRAP_SECRET));
    expect(answerShape(a)).toEqual(baseline401);
    expect(await deviceRow()).toEqual(before);
    expect((await events('device_credential_mismatch')).at(-1)).toMatchObject({
      deviceid,
      details: { credential: 'key:default' },
    });
    // Another certificate from the same CA does not speak for it either.
    const other = pki.client('other', 'pc-other-02');
    expect(answerShape(await send(other, inventory(deviceid, 'SER-LAPTOP')))).toEqual(baseline401);
    expect(await deviceRow()).toEqual(before);
  });

  it('a certificate from another CA gets the identical 401, even with a valid Basic header, and nothing is recorded', async () => {
    const rogue = pki.client('rogue', 'pc-laptop-01', 'rogue-ca');
    const watermark = await gw.lastRegistrationId();
    const id = 'cert-rogue-2026-12-01-10-00-00';
    expect(answerShape(await send(rogue, inventory(id, 'SER-ROGUE')))).toEqual(baseline401);
    expect(answerShape(await send(rogue, inventory(id, 'SER-ROGUE'), basic(BOOTSTRAP_SECRET)))).toEqual(baseline401);
    expect(await gw.registrationsAfter(watermark)).toEqual([]);
    expect((await events('invalid_credential')).at(-1)).toMatchObject({
      details: {
        scheme: 'certificate',
        fingerprint: rogue.fingerprint,
        reason: expect.stringMatching(/^unverified: /),
      },
    });
    expect((await gw.server.deps.admin.listCertificates()).map((c) => c.fingerprint)).not.toContain(rogue.fingerprint);
  });

  it('a Basic header alongside a verified certificate names the principal; the certificate is recorded with it', async () => {
    const desk = pki.client('desk', 'pc-desk-03');
    const id = 'cert-desk-basic-2026-12-01-10-00-00';
    expect(
      (await post({ body: prolog(id), cert: desk.cert, key: desk.key, authorization: basic(BOOTSTRAP_SECRET) })).status,
    ).toBe(200);
    const [reg] = await gw.server.deps.records.registrations({ deviceid: id });
    expect(reg).toMatchObject({ authType: 'key:basic', keyName: 'default', certFingerprint: desk.fingerprint });
  });

  it('CLI: certs list --json, then certs revoke --fingerprint (colons, upper case) --json, audited; the revoked certificate gets the identical 401', async () => {
    const url = gw.server.deps.config.databaseUrl!;
    const listed = await cli(url, ['certs', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as {
      fingerprint: string;
      devicesPinned: number;
      revokedAt: string | null;
    }[];
    expect(rows.find((r) => r.fingerprint === laptop.fingerprint)).toMatchObject({ devicesPinned: 1, revokedAt: null });

    expect((await cli(url, ['certs', 'revoke', '--fingerprint', 'abc'])).code).not.toBe(0);
    const revoked = await cli(url, ['certs', 'revoke', '--fingerprint', laptop.colonFingerprint, '--json']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({
      fingerprint: laptop.fingerprint,
      revokedAt: expect.any(String),
      revokedBy: expect.stringMatching(/^cli:/),
    });
    const [entry] = await gw.server.deps.admin.listAudit({ limit: 1, action: 'cert.revoke' });
    expect(entry).toMatchObject({ targetType: 'client_certificate', targetId: laptop.fingerprint });

    const before = await deviceRow();
    expect(answerShape(await send(laptop, inventory(deviceid, 'SER-LAPTOP')))).toEqual(baseline401);
    // Falling back to the shared key does not get around the revocation: the device stays pinned to the certificate.
    expect(answerShape(await send(null, inventory(deviceid, 'SER-LAPTOP'), basic(BOOTSTRAP_SECRET)))).toEqual(
      baseline401,
    );
    expect(await deviceRow()).toEqual(before);
    expect((await events('invalid_credential')).at(-1)).toMatchObject({
      details: { scheme: 'certificate', reason: 'revoked', fingerprint: laptop.fingerprint },
    });
  });
});

describe('TLS_CLIENT_CERT=required', () => {
  let gw: AuthGateway;
  let port: number;
  beforeAll(async () => {
    gw = await startAuthGateway({
      TLS_CERT: pki.file('server.crt'),
      TLS_KEY: pki.file('server.key'),
      TLS_CLIENT_CA: pki.file('ca.crt'),
      TLS_CLIENT_CERT: 'required',
    });
    port = gw.server.port;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('refuses the handshake without a certificate or with one from another CA; a verified one authenticates (cert)', async () => {
    const rogue = pki.client('rogue-required', 'pc-rogue', 'rogue-ca');
    const good = pki.client('good-required', 'pc-good-04');
    expect(await tls12Handshake(port, pki.caPem, {})).toEqual({ error: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
    expect(await tls12Handshake(port, pki.caPem, rogue)).toEqual({
      error: expect.stringMatching(/^(ECONNRESET|ERR_SSL_\w*ALERT\w*)$/),
    });
    const id = 'cert-required-2026-12-01-10-00-00';
    const a = await httpsPost(port, pki.caPem, { body: prolog(id), cert: good.cert, key: good.key });
    expect(a.status).toBe(200);
    const [reg] = await gw.server.deps.records.registrations({ deviceid: id });
    expect(reg).toMatchObject({ authType: 'cert', certFingerprint: good.fingerprint });
  });
});

describe('admin API', () => {
  let gw: AuthGateway;
  beforeAll(async () => {
    gw = await startAuthGateway({
      TLS_CERT: pki.file('server.crt'),
      TLS_KEY: pki.file('server.key'),
      TLS_CLIENT_CA: pki.file('ca.crt'),
      BOOTSTRAP_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      SECRET_CACHE_TTL: '1h',
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('GET /api/v1/certs and POST /api/v1/certs/:fingerprint/revoke (admin); revocation applies at once in this process', async () => {
    const c = pki.client('api', 'pc-api-05');
    const id = 'cert-api-2026-12-01-10-00-00';
    const port = gw.server.port;
    const api = (method: 'GET' | 'POST', p: string) =>
      httpsRequest(port, pki.caPem, {
        method,
        path: p,
        headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      }).then((a) => ({ status: a.status, json: JSON.parse(a.body.toString()) as unknown }));
    expect((await httpsPost(port, pki.caPem, { body: prolog(id), cert: c.cert, key: c.key })).status).toBe(200);
    const list = await api('GET', '/api/v1/certs');
    expect(list.status).toBe(200);
    expect(list.json).toEqual([expect.objectContaining({ fingerprint: c.fingerprint, subject: c.subject })]);
    const revoke = await api('POST', `/api/v1/certs/${c.colonFingerprint}/revoke`);
    expect(revoke).toMatchObject({ status: 200, json: { fingerprint: c.fingerprint, revokedBy: 'operator:admin' } });
    expect((await api('POST', `/api/v1/certs/${'0'.repeat(64)}/revoke`)).status).toBe(404);
    // SECRET_CACHE_TTL is 1 h here: a revocation through this process's API clears its cache at once.
    expect((await httpsPost(port, pki.caPem, { body: prolog(id), cert: c.cert, key: c.key })).status).toBe(401);
  });
});
