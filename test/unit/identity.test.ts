import { describe, expect, it } from 'vitest';
import {
  identityFromSections,
  isJunkSerial,
  isJunkUuid,
  lowerKeys,
  normalizeMac,
  xmlSectionsToJsonShape,
} from '../../src/protocol/identity.js';
import { readXmlRequest } from '../../src/protocol/xml.js';
import { textOf } from '../helpers/fixtures.js';

/** Identity of an XML inventory text, the way message.ts builds it. */
function xmlIdentity(text: string) {
  const { sections, tag } = xmlSectionsToJsonShape(readXmlRequest(text).identity);
  return identityFromSections(sections, tag);
}

function jsonIdentity(text: string) {
  const msg = JSON.parse(text) as { content: Record<string, unknown>; tag?: unknown };
  return identityFromSections(msg.content, msg.tag);
}

// PROTOCOL.md §4.2 (GLPI src/Blacklist.php) plus the common extras.
const JUNK_SERIALS = [
  '',
  '   ',
  'N/A',
  'none',
  'None',
  'empty',
  'INVALID',
  'Not Specified',
  'To Be Filled By O.E.M.',
  'to be filled by o.e.m.',
  'System Serial Number',
  'SystemSerialNumb',
  'OEM_Serial',
  'Unknow',
  'EVAL',
  'IATPASS',
  '(null string)',
  'Tulip Computers',
  'Serial Number xxxxxx',
  'xxxxxxxxxxx',
  'NNNNNNN',
  '0',
  '00000000',
  '1111111',
  '0101',
  '12345',
  '123456',
  '1234567',
  '12345678',
  '123456789',
  '1234567890',
  '0123456789',
  '123456789000',
  '12345678901234567',
  'SYS-1234567890',
  'SYS-9876543210',
  'SN-12345',
  'SN-1234567890',
  'MB-1234567890',
  '1.0',
  '2.3.4',
  'Default string',
  ' DEFAULT STRING ',
];
const GOOD_SERIALS = [
  'CZC4318XKQ',
  'PXKQC0B8L1',
  '5CG1234ABC',
  '1234',
  '12345678901',
  'VMware-42 1a 2b',
  'SN-123456',
  '0012',
];

const JUNK_UUIDS = [
  'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '03000200-0400-0500-0006-000700080009',
  '6AB5B300-538D-1014-9FB5-B0684D007B53',
  '01010101-0101-0101-0101-010101010101',
  '2',
  '00000000-0000-0000-0000-000000000000',
];

const JUNK_MACS = [
  '',
  '00:00:00:00:00:00',
  'FE:FF:FF:FF:FF:FF',
  '00:50:56:C0:00:01',
  '00:50:56:c0:12:34',
  '0a:00:27:00:00:00',
  '02:00:4e:43:50:49',
  '20:41:53:59:4e:ff',
  '33:50:6f:45:30:30',
  '50:50:54:50:30:30',
  '24:b6:20:52:41:53',
  '00:a0:c6:00:00:00',
  '02:80:37:EC:02:00',
  '00:0b:ca:fe:00:00',
  '00-00-00-00-00-00',
];

describe('isJunkSerial', () => {
  it.each(JUNK_SERIALS)('drops %j', (v) => {
    expect(isJunkSerial(v)).toBe(true);
  });

  it.each(GOOD_SERIALS)('keeps %j', (v) => {
    expect(isJunkSerial(v)).toBe(false);
  });
});

describe('isJunkUuid', () => {
  it.each(JUNK_UUIDS)('drops %j', (v) => {
    expect(isJunkUuid(v)).toBe(true);
  });

  it('keeps a real SMBIOS UUID, in any case', () => {
    expect(isJunkUuid('7D1E4C2A-0F3B-4A55-9C1E-2B8D6F0A9E11')).toBe(false);
    expect(isJunkUuid('7d1e4c2a-0f3b-4a55-9c1e-2b8d6f0a9e11')).toBe(false);
  });
});

describe('normalizeMac', () => {
  it.each(JUNK_MACS)('drops %j', (v) => {
    expect(normalizeMac(v)).toBeNull();
  });

  it.each([
    ['3c:52:82:11:4e:0a'],
    ['3C:52:82:11:4E:0A'],
    ['3C-52-82-11-4E-0A'],
    ['3c5282114e0a'],
    ['3c52.8211.4e0a'],
    ['  3c:52:82:11:4e:0a\n'],
  ])('normalises %j to lower-case colon form', (v) => {
    expect(normalizeMac(v)).toBe('3c:52:82:11:4e:0a');
  });

  it('refuses values that are not 6 bytes', () => {
    expect(normalizeMac('3c:52:82:11:4e')).toBeNull();
    expect(normalizeMac('3c:52:82:11:4e:0a:ff')).toBeNull();
    expect(normalizeMac('not a mac')).toBeNull();
  });

  it('keeps a VMware guest MAC (00:50:56 but not the host-only C0 range)', () => {
    expect(normalizeMac('00:50:56:9a:01:02')).toBe('00:50:56:9a:01:02');
  });
});

describe('identityFromSections', () => {
  const base = {
    bios: { ssn: 'CZC4318XKQ', msn: 'PXKQC0B8L1', smanufacturer: 'HP', smodel: 'Z2 G4', assettag: 'A-1' },
    hardware: { name: 'lab-ws17', uuid: '7D1E4C2A-0F3B-4A55-9C1E-2B8D6F0A9E11', vmsystem: 'Physical' },
    operatingsystem: { full_name: 'Ubuntu 24.04 LTS', fqdn: 'lab-ws17.example.org' },
    networks: [{ description: 'eno1', mac: '3c:52:82:11:4e:0a', virtualdev: false, ipaddress: '192.0.2.10' }],
    versionclient: 'GLPI-Agent_v1.12',
  };

  it('reads the PROTOCOL §3.4 example', () => {
    expect(identityFromSections(base, 'paris-dc2')).toEqual({
      name: 'lab-ws17',
      uuid: '7d1e4c2a-0f3b-4a55-9c1e-2b8d6f0a9e11',
      serial: 'CZC4318XKQ',
      msn: 'PXKQC0B8L1',
      assetTag: 'A-1',
      manufacturer: 'HP',
      model: 'Z2 G4',
      macs: ['3c:52:82:11:4e:0a'],
      physicalMacs: ['3c:52:82:11:4e:0a'],
      ips: ['192.0.2.10'],
      os: 'Ubuntu 24.04 LTS',
      tag: 'paris-dc2',
      agentVersion: 'GLPI-Agent_v1.12',
    });
  });

  it('an empty message gives an all-empty identity', () => {
    expect(identityFromSections({}, undefined)).toEqual({
      name: null,
      uuid: null,
      serial: null,
      msn: null,
      assetTag: null,
      manufacturer: null,
      model: null,
      macs: [],
      physicalMacs: [],
      ips: [],
      os: null,
      tag: null,
      agentVersion: null,
    });
  });

  it('lower-cases the UUID and drops junk ones', () => {
    expect(identityFromSections({ hardware: { uuid: 'ABCDEF01-2345-6789-ABCD-EF0123456789' } }, null).uuid).toBe(
      'abcdef01-2345-6789-abcd-ef0123456789',
    );
    expect(identityFromSections({ hardware: { uuid: 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF' } }, null).uuid).toBeNull();
  });

  it('falls back to MSN when SSN is junk or empty', () => {
    expect(identityFromSections({ bios: { ssn: 'To Be Filled By O.E.M.', msn: 'BOARD123' } }, null)).toMatchObject({
      serial: 'BOARD123',
      msn: 'BOARD123',
    });
    expect(identityFromSections({ bios: { ssn: '', msn: 'BOARD123' } }, null).serial).toBe('BOARD123');
    expect(identityFromSections({ bios: { ssn: 'Default string', msn: '0' } }, null)).toMatchObject({
      serial: null,
      msn: null,
    });
  });

  it('drops junk vendors and models', () => {
    const id = identityFromSections(
      { bios: { smanufacturer: 'System manufacturer', smodel: 'System Product Name' } },
      null,
    );
    expect(id.manufacturer).toBeNull();
    expect(id.model).toBeNull();
    expect(identityFromSections({ bios: { smodel: 'All Series' } }, null).model).toBeNull();
  });

  it('uses the board vendor and model when the system ones are absent', () => {
    expect(identityFromSections({ bios: { mmanufacturer: 'ASUSTeK', mmodel: 'PRIME B450' } }, null)).toMatchObject({
      manufacturer: 'ASUSTeK',
      model: 'PRIME B450',
    });
  });

  it('puts physical MACs before virtual ones, deduplicated, junk dropped', () => {
    const id = identityFromSections(
      {
        networks: [
          { description: 'docker0', mac: '02:42:ac:11:00:01', virtualdev: true },
          { description: 'lo', mac: '00:00:00:00:00:00', virtualdev: true },
          { description: 'eno1', mac: '3C:52:82:11:4E:0A', virtualdev: false },
          { description: 'eno1:1', mac: '3c-52-82-11-4e-0a', virtualdev: 0 },
          { description: 'wlan0', mac: 'a4:c3:f0:00:11:22' },
          { description: 'vmnet1', mac: '00:50:56:C0:00:01', virtualdev: false },
        ],
      },
      null,
    );
    expect(id.macs).toEqual(['3c:52:82:11:4e:0a', 'a4:c3:f0:00:11:22', '02:42:ac:11:00:01']);
  });

  it.each([true, 1, '1', 'true'])('treats virtualdev=%j as virtual', (flag) => {
    const id = identityFromSections(
      {
        networks: [
          { mac: '02:42:ac:11:00:01', virtualdev: flag },
          { mac: '3c:52:82:11:4e:0a', virtualdev: '0' },
        ],
      },
      null,
    );
    expect(id.macs).toEqual(['3c:52:82:11:4e:0a', '02:42:ac:11:00:01']);
  });

  it('drops loopback and unspecified addresses from ips, keeps real IPv4 and IPv6', () => {
    const id = identityFromSections(
      {
        networks: [
          { ipaddress: '127.0.0.1' },
          { ipaddress6: '::1' },
          { ipaddress: '0.0.0.0' },
          { ipaddress: '10.1.2.3', ipaddress6: 'fd00::2' },
          { ipaddress: '10.1.2.3' },
          { ipaddress: '<script>' },
        ],
      },
      null,
    );
    expect(id.ips).toEqual(['10.1.2.3', 'fd00::2']);
  });

  it('accepts a single network object as well as a list', () => {
    expect(identityFromSections({ networks: { mac: '3c:52:82:11:4e:0a' } }, null).macs).toEqual(['3c:52:82:11:4e:0a']);
  });

  it('takes the name from hardware, else the OS fqdn', () => {
    expect(identityFromSections({ operatingsystem: { fqdn: 'host.example.org' } }, null).name).toBe('host.example.org');
  });

  it('builds the OS from name and version when full_name is missing', () => {
    expect(identityFromSections({ operatingsystem: { name: 'Debian GNU/Linux', version: '12.11' } }, null).os).toBe(
      'Debian GNU/Linux 12.11',
    );
  });

  it('strips control characters from every field', () => {
    const id = identityFromSections(
      {
        hardware: { name: 'ho\u0000st\u001b[31m\u007f\n' },
        bios: { ssn: 'AB\tC123\r\n' },
        versionclient: 'GLPI-Agent\u0007_v1.12',
      },
      'ta\u0000g\n',
    );
    expect(id.name).toBe('host[31m');
    expect(id.serial).toBe('ABC123');
    expect(id.agentVersion).toBe('GLPI-Agent_v1.12');
    expect(id.tag).toBe('tag');
  });

  it('a value made only of control characters or spaces is null', () => {
    expect(identityFromSections({ hardware: { name: '\u0001\u0002 ' } }, '\u0000').name).toBeNull();
    expect(identityFromSections({}, '\u0000').tag).toBeNull();
  });

  it('caps field lengths at 255 characters', () => {
    const long = 'x'.repeat(10_000);
    const id = identityFromSections({ hardware: { name: long }, bios: { ssn: `S${long}` }, versionclient: long }, long);
    expect(id.name).toHaveLength(255);
    expect(id.serial).toHaveLength(255);
    expect(id.agentVersion).toHaveLength(255);
    expect(id.tag).toHaveLength(255);
    expect(
      identityFromSections({ networks: [{ ipaddress6: `fd00::${'1:'.repeat(5000)}1` }] }, null).ips.every(
        (ip) => ip.length <= 64,
      ),
    ).toBe(true);
  });

  it('converts numbers to strings and ignores objects', () => {
    const id = identityFromSections({ hardware: { name: 42 }, bios: { ssn: { nested: 'x' } } }, 7);
    expect(id.name).toBe('42');
    expect(id.serial).toBeNull();
    expect(id.tag).toBe('7');
  });
});

describe('xmlSectionsToJsonShape', () => {
  it('lower-cases sections and keys, copies MACADDR to mac, finds the TAG in ACCOUNTINFO', () => {
    const { sections, tag } = xmlSectionsToJsonShape({
      HARDWARE: { NAME: 'h' },
      NETWORKS: [{ MACADDR: '3c:52:82:11:4e:0a', VIRTUALDEV: '0' }],
      ACCOUNTINFO: [{ KEYNAME: 'TAG', KEYVALUE: 'paris-dc2' }],
    });
    expect(sections.hardware).toEqual({ name: 'h' });
    expect(sections.networks).toEqual([{ macaddr: '3c:52:82:11:4e:0a', mac: '3c:52:82:11:4e:0a', virtualdev: '0' }]);
    expect(tag).toBe('paris-dc2');
  });

  it('no ACCOUNTINFO TAG → null tag', () => {
    expect(xmlSectionsToJsonShape({ ACCOUNTINFO: [{ KEYNAME: 'X', KEYVALUE: 'y' }] }).tag).toBeNull();
    expect(xmlSectionsToJsonShape({}).tag).toBeNull();
  });

  // As GLPI's converter: a tag only from a lone ACCOUNTINFO whose KEYNAME is exactly TAG.
  it('no tag where GLPI would see none: KEYNAME in another case, or several ACCOUNTINFO', () => {
    expect(xmlSectionsToJsonShape({ ACCOUNTINFO: [{ KEYNAME: 'tag', KEYVALUE: 'paris-dc2' }] }).tag).toBeNull();
    const two = [
      { KEYNAME: 'OTHER', KEYVALUE: 'no' },
      { KEYNAME: 'TAG', KEYVALUE: 'paris-dc2' },
    ];
    expect(xmlSectionsToJsonShape({ ACCOUNTINFO: two }).tag).toBeNull();
  });
});

describe('lowerKeys', () => {
  it('lower-cases nested keys and arrays', () => {
    expect(lowerKeys({ A: [{ B: 1 }, 'S'], C: { D: null } })).toEqual({ a: [{ b: 1 }, 'S'], c: { d: null } });
  });

  it('never copies a __proto__ key', () => {
    const input = JSON.parse('{"__proto__": {"polluted": true}, "A": 1}') as Record<string, unknown>;
    const out = lowerKeys(input) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(out).toEqual({ a: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('identity of the real captures', () => {
  const expected = {
    name: 'vm',
    uuid: null,
    serial: null, // <SSN></SSN>: containers have no serial
    msn: null,
    macs: ['02:fc:00:00:00:01', '56:bf:77:4b:c3:80', 'fa:92:48:3b:c8:95'], // eth0 first; lo's 00:00:… dropped
    physicalMacs: ['02:fc:00:00:00:01'], // ifb0/ifb1 are virtual
    ips: ['192.0.2.2', 'fd00::2', 'fe80::fc:ff:fe00:1'], // 127.0.0.1 and ::1 dropped
    os: 'Debian GNU/Linux 12 (bookworm)',
  };

  it('FusionInventory XML inventory', () => {
    const id = xmlIdentity(textOf('fusioninventory-plain', '0002-post-inventory.json'));
    expect(id).toMatchObject({ ...expected, tag: null, agentVersion: 'FusionInventory-Agent_v2.6-3' });
  });

  it('GLPI agent XML and JSON inventories of the same machine give the same identity', () => {
    const fromXml = xmlIdentity(textOf('glpi-legacy-server', '0005-post-inventory.json'));
    const fromJson = jsonIdentity(textOf('glpi-plain', '0005-post-inventory.json'));
    expect(fromJson).toMatchObject({ ...expected, tag: null, agentVersion: 'GLPI-Agent_v1.12-dev' });
    expect(fromXml).toEqual(fromJson);
  });

  it('tag from ACCOUNTINFO in XML (fusioninventory-tag)', () => {
    expect(xmlIdentity(textOf('fusioninventory-tag', '0002-post-inventory.json')).tag).toBe('acceptance-tag');
  });

  it('tag from the root "tag" in JSON (glpi-tag, glpi-second-run-tag partial)', () => {
    expect(jsonIdentity(textOf('glpi-tag', '0003-post-inventory.json')).tag).toBe('acceptance-tag');
    expect(jsonIdentity(textOf('glpi-second-run-tag', '0007-post-inventory.json')).tag).toBe('acceptance-tag');
  });

  it('a partial inventory without networks has no MACs and no IPs, but still a name', () => {
    const id = jsonIdentity(textOf('glpi-second-run', '0007-post-inventory.json'));
    expect(id).toMatchObject({ name: 'vm', macs: [], ips: [], agentVersion: 'GLPI-Agent_v1.12-dev' });
  });
});
