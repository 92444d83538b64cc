/**
 * Threat: a password the agent copies into its own messages (CONTACT `httpd-plugins`, `perl_args` of an
 * agent run with --debug) is kept or forwarded to GLPI because it is not the presented secret, or holds
 * quotes, backslashes or spaces, or is too short for the occurrence-based redaction.
 * Protection: the fields are blanked whole, whatever they hold (src/protocol/message.ts): a perl_args that
 * names a credential option, and every credential-like key of each httpd plugin. Checked on the real GLPI
 * Agent and FusionInventory captures, modified to carry such values: what is stored and what reaches GLPI.
 */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { REDACTED } from '../../src/protocol/message.js';
import { loadScenario } from '../helpers/fixtures.js';
import {
  FI_HEADERS,
  GA_HEADERS,
  KEY_A_SECRET,
  basic,
  drain,
  fiInventoryText,
  gaInventoryDoc,
  jsonBody,
  useGate,
} from './support.js';

/** Passwords a plain "find the presented secret" pass misses: quotes, backslashes, spaces, one character. */
const SECRETS = ['q"uo\'te', 'back\\sl\\ash', 'two words here', 'Z', 'pw<&>x'];

const CONTACT = loadScenario('glpi-second-run').find((r) => r.classified.kind === 'contact')!;

const gate = useGate();

const auth = { Authorization: basic('inventory', KEY_A_SECRET) };

function expectNoSecret(where: string, text: string): void {
  for (const s of SECRETS.filter((x) => x.length > 1))
    expect(text, `${where} holds ${JSON.stringify(s)}`).not.toContain(s);
  // The one-character password: only where it was, as a whole value.
  expect(text, `${where} holds the short password`).not.toMatch(/(-p |"password":\s*")Z\b/);
}

async function storedBodies(deviceid: string): Promise<string[]> {
  const rows = await gate.ctx.sql<{ body: Buffer; compression: string }[]>`
    select s.body, s.compression from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid}`;
  return rows.map((r) =>
    (r.compression === 'none'
      ? r.body
      : r.compression === 'gzip'
        ? zlib.gunzipSync(r.body)
        : zlib.inflateSync(r.body)
    ).toString('utf8'),
  );
}

describe('secrets an agent copies into its messages', () => {
  it('CONTACT httpd-plugins: every credential field blanked whole in what is stored', async () => {
    const doc = JSON.parse(CONTACT.decoded_text) as Record<string, unknown>;
    doc['httpd-plugins'] = {
      basicauthentication: { basic_authentication_user: SECRETS[0], basic_authentication_password: SECRETS[1] },
      inventory: { disabled: 'no', token: SECRETS[2], url_path: '/inventory' },
      proxy: { disabled: 'no', password: SECRETS[3], pass: SECRETS[4] },
      ssl: { ssl_key_file: { nested: SECRETS[1] }, ports: 0 },
    };
    const res = await gate.raw({
      headers: { ...GA_HEADERS, 'Content-Type': 'application/x-compress-zlib', ...auth },
      body: zlib.deflateSync(JSON.stringify(doc, null, 3)),
    });
    expect(res.status).toBe(200);
    const [reg] = await gate.ctx.sql<{ details: Record<string, Record<string, Record<string, unknown>>> }[]>`
      select details from registrations where kind = 'contact' order by id desc limit 1`;
    const plugins = reg!.details['httpd-plugins']!;
    expect(plugins.basicauthentication).toEqual({
      basic_authentication_user: REDACTED,
      basic_authentication_password: REDACTED,
    });
    expect(plugins.inventory).toEqual({ disabled: 'no', token: REDACTED, url_path: '/inventory' });
    expect(plugins.proxy).toEqual({ disabled: 'no', password: REDACTED, pass: REDACTED });
    expect(plugins.ssl).toEqual({ ssl_key_file: REDACTED, ports: 0 });
    expectNoSecret('the stored CONTACT', JSON.stringify(reg!.details));
  });

  it.each([
    ['GLPI Agent JSON', 'ga'],
    ['FusionInventory XML', 'fi'],
  ] as const)('%s perl_args with any password: blanked in what is stored and forwarded to GLPI', async (_l, agent) => {
    const args = `--server http://127.0.0.1:8080/ --debug --user ${SECRETS[0]} --password ${SECRETS[1]} -p ${SECRETS[3]} --oauth-client-secret ${SECRETS[2]}`;
    let body: Buffer;
    let deviceid: string;
    if (agent === 'ga') {
      const doc = gaInventoryDoc();
      doc.content.versionprovider.perl_args = args;
      deviceid = doc.deviceid as string;
      body = jsonBody(doc);
    } else {
      const text = fiInventoryText().replace(
        /<PERL_ARGS>[^<]*<\/PERL_ARGS>/,
        `<PERL_ARGS>${args.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')}</PERL_ARGS>`,
      );
      deviceid = /<DEVICEID>([^<]+)<\/DEVICEID>/.exec(text)![1]!;
      body = zlib.deflateSync(text);
    }
    const res = await gate.raw({ headers: { ...(agent === 'ga' ? GA_HEADERS : FI_HEADERS), ...auth }, body });
    expect(res.status).toBe(200);
    const stored = await storedBodies(deviceid);
    expect(stored).toHaveLength(1);
    expectNoSecret('the stored inventory', stored[0]!);
    expect(stored[0]).toContain(agent === 'ga' ? `"perl_args": "${REDACTED}"` : `<PERL_ARGS>${REDACTED}</PERL_ARGS>`);
    // Approved: the held inventory goes to GLPI, blanked the same way.
    const approved = await gate.api('POST', '/api/v1/devices/approve', { ids: [deviceid], reason: 'test' });
    expect(approved.status).toBe(200);
    await drain(gate);
    const sent = gate.glpi.delivered().filter((r) => r.deviceid === deviceid);
    expect(sent).toHaveLength(1);
    expectNoSecret('what reached GLPI', sent[0]!.text);
    expect(sent[0]!.text).toContain(REDACTED);
  });
});
