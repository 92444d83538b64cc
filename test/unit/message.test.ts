import { describe, expect, it } from 'vitest';
import {
  REDACTED,
  parseJsonMessage,
  parseXmlMessage,
  redactPerlArgs,
  validDeviceid,
} from '../../src/protocol/message.js';
import { textOf } from '../helpers/fixtures.js';
import { appErrorOf } from './app-error.js';

function xmlRequest(inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>${inner}</REQUEST>\n`;
}

function badRequest(fn: () => unknown): string {
  const err = appErrorOf(fn);
  expect(err.code).toBe('bad_request');
  expect(err.status).toBe(400);
  return err.publicMessage;
}

describe('validDeviceid', () => {
  it('trims and returns a normal deviceid', () => {
    expect(validDeviceid('  lab-ws17-2024-06-03-08-41-55 ')).toBe('lab-ws17-2024-06-03-08-41-55');
    expect(validDeviceid(12345)).toBe('12345');
  });

  it('accepts 255 characters, refuses 256', () => {
    expect(validDeviceid('d'.repeat(255))).toHaveLength(255);
    badRequest(() => validDeviceid('d'.repeat(256)));
  });

  it.each([undefined, null, '', '   ', {}, []])('refuses %j as missing', (v) => {
    expect(badRequest(() => validDeviceid(v))).toMatch(/deviceid/i);
  });

  it.each(['a\u0000b', 'a\nb', 'a\u001bb', 'a\u007fb'])('refuses control characters in %j', (v) => {
    expect(badRequest(() => validDeviceid(v))).toMatch(/control/);
  });
});

describe('parseXmlMessage', () => {
  it('PROLOG (real FusionInventory capture) → kind prolog, no identity', () => {
    const text = textOf('fusioninventory-plain', '0001-post-prolog.json');
    const msg = parseXmlMessage(text);
    expect(msg).toMatchObject({
      format: 'xml',
      kind: 'prolog',
      action: 'PROLOG',
      deviceid: 'vm-2026-11-22-19-06-45',
      partial: false,
      identity: null,
      json: null,
    });
    expect(msg.text).toBe(text);
    expect(msg.redacted).toBe(false);
  });

  it('GLPI agent PROLOG → kind prolog', () => {
    expect(parseXmlMessage(textOf('glpi-plain', '0001-post-prolog.json'))).toMatchObject({
      kind: 'prolog',
      deviceid: 'vm-2026-11-22-19-23-03',
    });
  });

  it('INVENTORY (real capture) → kind inventory with identity, text unchanged', () => {
    const text = textOf('fusioninventory-plain', '0002-post-inventory.json');
    const msg = parseXmlMessage(text);
    expect(msg).toMatchObject({
      format: 'xml',
      kind: 'inventory',
      action: 'INVENTORY',
      deviceid: 'vm-2026-11-22-19-06-45',
      partial: false,
    });
    expect(msg.identity).toMatchObject({
      name: 'vm',
      macs: ['02:fc:00:00:00:01', '56:bf:77:4b:c3:80', 'fa:92:48:3b:c8:95'],
    });
    expect(msg.redacted).toBe(false);
    expect(msg.text).toBe(text);
  });

  it('XML inventory with ACCOUNTINFO TAG → identity.tag', () => {
    expect(parseXmlMessage(textOf('fusioninventory-tag', '0002-post-inventory.json')).identity?.tag).toBe(
      'acceptance-tag',
    );
  });

  it('QUERY is case-insensitive and trimmed', () => {
    expect(parseXmlMessage(xmlRequest('<QUERY> prolog </QUERY><DEVICEID>d</DEVICEID>'))).toMatchObject({
      kind: 'prolog',
      action: 'PROLOG',
    });
    expect(parseXmlMessage(xmlRequest('<QUERY>Inventory</QUERY><DEVICEID>d</DEVICEID>')).kind).toBe('inventory');
  });

  it('a missing QUERY means INVENTORY (as GLPI)', () => {
    const msg = parseXmlMessage(
      xmlRequest('<CONTENT><HARDWARE><NAME>h</NAME></HARDWARE></CONTENT><DEVICEID>d</DEVICEID>'),
    );
    expect(msg).toMatchObject({ kind: 'inventory', action: 'INVENTORY' });
    expect(msg.identity?.name).toBe('h');
  });

  it.each([
    ['NETDISCOVERY', 'netdiscovery'],
    ['SNMPQUERY', 'netinventory'],
    ['snmpquery', 'netinventory'],
    ['REGISTER', 'other'],
    ['FOO', 'other'],
  ])('QUERY %s → kind %s, no identity', (query, kind) => {
    const msg = parseXmlMessage(
      xmlRequest(
        `<CONTENT><DEVICE><INFO><MAC>00:11:22:33:44:55</MAC></INFO></DEVICE></CONTENT><DEVICEID>foo</DEVICEID><QUERY>${query}</QUERY>`,
      ),
    );
    expect(msg.kind).toBe(kind);
    expect(msg.identity).toBeNull();
    expect(msg.deviceid).toBe('foo');
  });

  it('root other than REQUEST → bad_request', () => {
    expect(badRequest(() => parseXmlMessage('<REPLY><DEVICEID>d</DEVICEID><QUERY>PROLOG</QUERY></REPLY>'))).toContain(
      'REQUEST',
    );
  });

  it('malformed XML → bad_request', () => {
    badRequest(() => parseXmlMessage('<REQUEST><DEVICEID>d</DEVICEID><QUERY>PROLOG</QUERY>'));
    badRequest(() => parseXmlMessage('<!DOCTYPE x [<!ENTITY a "b">]><REQUEST><DEVICEID>&a;</DEVICEID></REQUEST>'));
  });

  it.each([
    ['missing', '<QUERY>PROLOG</QUERY>'],
    ['empty', '<QUERY>PROLOG</QUERY><DEVICEID></DEVICEID>'],
    ['self-closed', '<QUERY>PROLOG</QUERY><DEVICEID/>'],
    ['blank', '<QUERY>PROLOG</QUERY><DEVICEID>   </DEVICEID>'],
    ['10 KB', `<QUERY>PROLOG</QUERY><DEVICEID>${'d'.repeat(10 * 1024)}</DEVICEID>`],
    ['with control characters', '<QUERY>PROLOG</QUERY><DEVICEID>dev\u0001ice</DEVICEID>'],
    ['nested only in CONTENT', '<CONTENT><DEVICEID>d</DEVICEID></CONTENT><QUERY>INVENTORY</QUERY>'],
  ])('deviceid %s → bad_request', (_label, inner) => {
    badRequest(() => parseXmlMessage(xmlRequest(inner)));
  });

  it('redacts --password in PERL_ARGS (fusioninventory-basic-auth inventory)', () => {
    const text = textOf('fusioninventory-basic-auth', '0006-post-inventory.json');
    expect(text).toContain('--password acceptance-pw');
    const msg = parseXmlMessage(text);
    expect(msg.redacted).toBe(true);
    expect(msg.text).not.toContain('acceptance-pw');
    // The whole field is blanked (a password may hold anything); the rest of the document is byte-for-byte the same.
    expect(msg.text).toBe(text.replace(/<PERL_ARGS>[^<]*<\/PERL_ARGS>/, `<PERL_ARGS>${REDACTED}</PERL_ARGS>`));
    expect(msg).toMatchObject({ kind: 'inventory', deviceid: 'vm-2026-11-22-19-06-45' });
  });
});

describe('redactPerlArgs', () => {
  it.each([
    ['--password secret'],
    ['--password=secret'],
    ['--oauth-client-secret  s3 --oauth-client-id=cid'],
    ['--ssl-key-password k'],
    ['--server x -p secret'],
    ['--server x -p s'], // one character
    ['--password my pass phrase --debug'], // spaces: no rule can tell where it ends
    ['--password=&quot;a b&quot; --debug'], // quotes, escaped by the XML writer
    ["--password 'it''s' --debug"],
    ['--password a\\b\\ --debug'], // backslashes
    ['--user me --password x'],
    ['--proxy http://u:p@proxy:3128/'],
    ['--debug --password'],
  ])('XML PERL_ARGS %j: blanked whole', (args) => {
    expect(redactPerlArgs(`<PERL_ARGS>${args}</PERL_ARGS><OTHER>--password keep</OTHER>`)).toBe(
      `<PERL_ARGS>${REDACTED}</PERL_ARGS><OTHER>--password keep</OTHER>`,
    );
  });

  it('XML PERL_ARGS in CDATA', () => {
    expect(redactPerlArgs('<PERL_ARGS><![CDATA[--password <x>]]></PERL_ARGS>')).toBe(
      `<PERL_ARGS>${REDACTED}</PERL_ARGS>`,
    );
  });

  it.each([
    ['--force --password=secret --debug'],
    ['--password \\"a b\\\\c\\" --debug'], // a JSON string holding quotes and backslashes
    ['--password \\u0022x'],
    ['-p x'],
  ])('JSON perl_args %j: the string value blanked whole, the rest kept', (args) => {
    const text = `{\n   "perl_args": "${args}",\n   "comment": "--password keep"\n}`;
    expect(redactPerlArgs(text)).toBe(`{\n   "perl_args": "${REDACTED}",\n   "comment": "--password keep"\n}`);
    expect(JSON.parse(redactPerlArgs(text))).toEqual({ perl_args: REDACTED, comment: '--password keep' });
  });

  it('compact JSON: only the perl_args value', () => {
    const text = '{"a":{"perl_args":"--password x y","name":"GLPI"},"b":"--password keep"}';
    expect(redactPerlArgs(text)).toBe(`{"a":{"perl_args":"${REDACTED}","name":"GLPI"},"b":"--password keep"}`);
  });

  it('every PERL_ARGS occurrence', () => {
    const out = redactPerlArgs('<PERL_ARGS>--password a</PERL_ARGS><PERL_ARGS>--password b</PERL_ARGS>');
    expect(out).toBe(`<PERL_ARGS>${REDACTED}</PERL_ARGS><PERL_ARGS>${REDACTED}</PERL_ARGS>`);
  });

  it('leaves text without credential options identical', () => {
    const text = '<PERL_ARGS>--server http://127.0.0.1:8080/ --debug --user-agent x --passwords-file-free</PERL_ARGS>';
    expect(redactPerlArgs(text)).toBe(text);
  });
});

describe('parseJsonMessage', () => {
  it('CONTACT (glpi-second-run 0006) → kind contact, no identity, not redacted', () => {
    const text = textOf('glpi-second-run', '0006-post-contact.json');
    const msg = parseJsonMessage(text);
    expect(msg).toMatchObject({
      format: 'json',
      kind: 'contact',
      action: 'contact',
      deviceid: 'vm-2026-11-22-19-23-24',
      partial: false,
      identity: null,
      redacted: false,
    });
    expect(msg.text).toBe(text);
    expect(msg.json).toEqual(JSON.parse(text));
  });

  it('CONTACT with a tag keeps it in json (glpi-second-run-tag 0006)', () => {
    expect(parseJsonMessage(textOf('glpi-second-run-tag', '0006-post-contact.json')).json?.tag).toBe('acceptance-tag');
  });

  it('full inventory (glpi-plain 0005) → kind inventory, partial false, identity', () => {
    const msg = parseJsonMessage(textOf('glpi-plain', '0005-post-inventory.json'));
    expect(msg).toMatchObject({
      kind: 'inventory',
      action: 'inventory',
      partial: false,
      deviceid: 'vm-2026-11-22-19-23-03',
    });
    expect(msg.identity).toMatchObject({
      name: 'vm',
      macs: ['02:fc:00:00:00:01', '56:bf:77:4b:c3:80', 'fa:92:48:3b:c8:95'],
    });
  });

  it('partial inventory (glpi-second-run 0007) → partial true', () => {
    const text = textOf('glpi-second-run', '0007-post-inventory.json');
    const msg = parseJsonMessage(text);
    expect(msg).toMatchObject({
      kind: 'inventory',
      partial: true,
      deviceid: 'vm-2026-11-22-19-23-24',
      redacted: false,
    });
    expect(msg.identity).toMatchObject({ name: 'vm', macs: [], agentVersion: 'GLPI-Agent_v1.12-dev' });
    expect(msg.text).toBe(text);
  });

  it('partial must be exactly true', () => {
    expect(parseJsonMessage('{"action":"inventory","deviceid":"d","content":{},"partial":"true"}').partial).toBe(false);
  });

  it('root tag → identity.tag (glpi-tag 0003)', () => {
    expect(parseJsonMessage(textOf('glpi-tag', '0003-post-inventory.json')).identity?.tag).toBe('acceptance-tag');
  });

  it.each([
    ['get_params', 'get_params'],
    ['netinventory', 'netinventory'],
    ['netdiscovery', 'netdiscovery'],
    ['Contact', 'contact'],
    ['register', 'other'],
    ['esx', 'other'],
  ])('action %s → kind %s, action kept as sent', (action, kind) => {
    const msg = parseJsonMessage(JSON.stringify({ action, deviceid: 'd' }));
    expect(msg.kind).toBe(kind);
    expect(msg.action).toBe(action);
  });

  it.each([
    ['missing action', '{"deviceid":"d"}'],
    ['empty action', '{"action":"","deviceid":"d"}'],
    ['numeric action', '{"action":1,"deviceid":"d"}'],
    ['an array body', '[{"action":"contact","deviceid":"d"}]'],
    ['a string body', '"contact"'],
    ['null', 'null'],
    ['invalid JSON', '{"action":"contact",'],
    ['missing deviceid', '{"action":"contact"}'],
    ['empty deviceid', '{"action":"contact","deviceid":""}'],
    ['10 KB deviceid', JSON.stringify({ action: 'contact', deviceid: 'd'.repeat(10 * 1024) })],
    ['deviceid with control characters', JSON.stringify({ action: 'contact', deviceid: 'a\u0000b' })],
    ['inventory without content', '{"action":"inventory","deviceid":"d"}'],
    ['inventory with null content', '{"action":"inventory","deviceid":"d","content":null}'],
    ['inventory with array content', '{"action":"inventory","deviceid":"d","content":[]}'],
    ['inventory with string content', '{"action":"inventory","deviceid":"d","content":"x"}'],
  ])('refuses %s with bad_request', (_label, text) => {
    badRequest(() => parseJsonMessage(text));
  });

  it.each([
    ['at the top level', '{"action":"contact","deviceid":"d","__proto__":{"polluted":true}}'],
    [
      'nested, with spaces',
      '{"action":"inventory","deviceid":"d","content":{"hardware":{"__proto__" : {"polluted":true}}}}',
    ],
    ['written with a \\u escape', '{"action":"contact","deviceid":"d","\\u005f_proto__":{"polluted":true}}'],
  ])('refuses a __proto__ key %s', (_label, text) => {
    expect(badRequest(() => parseJsonMessage(text))).toMatch(/__proto__|forbidden/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts "__proto__" as a value', () => {
    expect(parseJsonMessage('{"action":"contact","deviceid":"d","name":"__proto__"}').kind).toBe('contact');
  });

  it('redacts httpd-plugins token, user and password in CONTACT, json and text alike', () => {
    const contact = {
      action: 'contact',
      deviceid: 'lab-ws17-2024-06-03-08-41-55',
      'httpd-plugins': {
        inventory: { disabled: 'no', token: 's3cr3t', url_path: '/inventory' },
        basic: { user: 'u-name', password: 'p-word' },
        ssl: { ssl_key_file: '/etc/k.pem', ssl_cert_file: '/etc/c.pem' },
        proxy: 'disabled',
      },
      'httpd-port': 62354,
      name: 'GLPI-Agent',
      version: '1.12',
    };
    const text = JSON.stringify(contact, null, 3);
    const msg = parseJsonMessage(text);
    expect(msg.redacted).toBe(true);
    const plugins = msg.json!['httpd-plugins'] as Record<string, unknown> & { ssl: Record<string, unknown> };
    expect(plugins.inventory).toEqual({ disabled: 'no', token: REDACTED, url_path: '/inventory' });
    expect(plugins.basic).toEqual({ user: REDACTED, password: REDACTED });
    expect(plugins.ssl.ssl_key_file).toBe(REDACTED);
    expect(plugins.proxy).toBe('disabled');
    for (const secret of ['s3cr3t', 'u-name', 'p-word', '/etc/k.pem']) {
      expect(msg.text).not.toContain(secret);
      expect(JSON.stringify(msg.json)).not.toContain(secret);
    }
    expect(msg.text).toContain(REDACTED);
    expect(JSON.parse(msg.text)).toEqual(msg.json);
    expect(msg.json!['httpd-port']).toBe(62354);
  });

  it('redacts --password in perl_args in the stored text (glpi-basic-auth 0009)', () => {
    const text = textOf('glpi-basic-auth', '0009-post-inventory.json');
    expect(text).toContain('--password acceptance-pw');
    const msg = parseJsonMessage(text);
    expect(msg.redacted).toBe(true);
    expect(msg.text).not.toContain('acceptance-pw');
    expect(msg.text).toContain(`"perl_args": "${REDACTED}"`);
    expect(() => JSON.parse(msg.text) as unknown).not.toThrow();
  });

  // AgentMessage.json is documented as "the parsed message, secrets redacted", and agent-service merges
  // msg.json.content of partial inventories (which always carry versionprovider) into the stored view.
  it('redacts --password in perl_args in the parsed json too (glpi-basic-auth 0009)', () => {
    const msg = parseJsonMessage(textOf('glpi-basic-auth', '0009-post-inventory.json'));
    expect(JSON.stringify(msg.json)).not.toContain('acceptance-pw');
    const provider = (msg.json!.content as { versionprovider: { perl_args: string } }).versionprovider;
    expect(provider.perl_args).toBe(REDACTED);
  });

  it('a message without secrets: redacted false, text identical to the input', () => {
    for (const [scenario, file] of [
      ['glpi-plain', '0005-post-inventory.json'],
      ['glpi-contact-pending', '0006-post-contact.json'],
    ] as const) {
      const text = textOf(scenario, file);
      const msg = parseJsonMessage(text);
      expect(msg.redacted).toBe(false);
      expect(msg.text).toBe(text);
    }
  });

  it('a CONTACT whose plugins are already redacted is not marked redacted again', () => {
    const text = JSON.stringify({
      action: 'contact',
      deviceid: 'd',
      'httpd-plugins': { inventory: { token: REDACTED } },
    });
    const msg = parseJsonMessage(text);
    expect(msg.redacted).toBe(false);
    expect(msg.text).toBe(text);
  });
});
