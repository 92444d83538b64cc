/**
 * Attack: someone holding the shared registration key (it is on every machine of a site) tries to speak for
 * a device that registered with a client certificate of its own, to overwrite its record or feed GLPI a
 * forged inventory. The device is pinned to its certificate: the attacker gets exactly the 401 of a missing
 * credential, the victim's row is unchanged and nothing reaches the GLPI outbox (UPSTREAM_URL is set, to
 * an unused loopback port, so an accepted inventory of the approved victim would be queued).
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthGateway, BOOTSTRAP_SECRET, startAuthGateway } from '../helpers/fusioninventory-auth.js';
import { textOf } from '../helpers/fixtures.js';
import { type ClientCert, type Pki, answerShape, httpsPost, makePki } from '../integration/client-cert-pki.js';

const BASE = textOf('fusioninventory-plain', '0002-post-inventory.json');
const BASE_DEVICEID = /<DEVICEID>([^<]*)<\/DEVICEID>/.exec(BASE)![1]!;
const VICTIM = 'victim-pc-2026-12-01-09-00-00';
const inventory = (name: string, serial: string) =>
  zlib.deflateSync(
    BASE.replaceAll(BASE_DEVICEID, VICTIM)
      .replace('<SSN></SSN>', `<SSN>${serial}</SSN>`)
      .replace(/(<HARDWARE>[\s\S]*?<NAME>)[^<]*(<\/NAME>)/, `$1${name}$2`),
  );
const basic = (password: string) => `Basic ${Buffer.from(`attacker:${password}`).toString('base64')}`;

describe('the shared key cannot speak for a certificate-pinned device', () => {
  let pki: Pki;
  let gw: AuthGateway;
  let victimCert: ClientCert;
  let port: number;
  const send = (body: Buffer, o: { cert?: ClientCert; authorization?: string } = {}) =>
    httpsPost(port, pki.caPem, {
      body,
      contentType: 'application/x-compress-zlib',
      authorization: o.authorization,
      ...(o.cert ? { cert: o.cert.cert, key: o.cert.key } : {}),
    });
  const victimRow = async () =>
    (
      await gw.server.deps.db.sql`
        select id, state, name, serial, uuid, macs, ips, os, last_seen, last_remote_addr, registered_key_id,
               registered_client_pk, registered_cert_id, conflict_details from devices where deviceid = ${VICTIM}`
    )[0];
  const outbox = async () =>
    (await gw.server.deps.db.sql<{ n: number }[]>`select count(*)::int as n from outbox where deviceid = ${VICTIM}`)[0]!
      .n;

  beforeAll(async () => {
    pki = makePki('agent-gate-certs-attack-');
    gw = await startAuthGateway({
      TLS_CERT: pki.file('server.crt'),
      TLS_KEY: pki.file('server.key'),
      TLS_CLIENT_CA: pki.file('ca.crt'),
      UPSTREAM_URL: 'http://127.0.0.1:9/front/inventory.php',
      UPSTREAM_WORKERS: '0',
    });
    port = gw.server.port;
    victimCert = pki.client('victim', 'victim-pc');
    expect((await send(inventory('victim-pc', 'SER-VICTIM'), { cert: victimCert })).status).toBe(200);
    await gw.server.deps.review.decide([VICTIM], 'approve', 'vetted', { name: 'test:setup', remoteAddr: null });
    // The victim's own inventories are forwarded (the held one on approval, then this one): the outbox works for it.
    expect((await send(inventory('victim-pc', 'SER-VICTIM'), { cert: victimCert })).status).toBe(200);
    expect(await outbox()).toBe(2);
  });
  afterAll(async () => {
    await gw?.close();
    pki?.remove();
  });

  it('the shared key, with or without a certificate of its own, gets the identical 401; nothing changes or is queued', async () => {
    const before = await victimRow();
    const missing = answerShape(await send(inventory('victim-pc', 'SER-VICTIM')));
    expect(missing.status).toBe(401);
    const forged = inventory('evil', 'SER-EVIL');
    const attackerCert = pki.client('attacker', 'attacker-pc');
    for (const attempt of [
      { authorization: basic(BOOTSTRAP_SECRET) },
      { authorization: basic(BOOTSTRAP_SECRET), cert: attackerCert },
      { cert: attackerCert },
      // A certificate from another CA carrying the victim's subject.
      { cert: pki.client('forged', 'victim-pc', 'rogue-ca') },
    ]) {
      expect(answerShape(await send(forged, attempt))).toEqual(missing);
    }
    expect(await victimRow()).toEqual(before);
    expect(await outbox()).toBe(2);
    const [events] = await gw.server.deps.db.sql<{ n: number }[]>`
      select count(*)::int as n from security_events where kind = 'device_credential_mismatch' and deviceid = ${VICTIM}`;
    expect(events!.n).toBe(3);
  });
});
