/**
 * One reading of every JSON message (src/protocol/json-keys.ts, parseJsonMessage): two keys of one object
 * equal as written, once decoded, once cleaned for jsonb or once lower-cased are refused with the 400 in the
 * agent's JSON format; and the text the gateway keeps (stores, forwards) is the text it judged.
 */
import { describe, expect, it } from 'vitest';
import { assertUniqueKeys } from '../../src/protocol/json-keys.js';
import { REDACTED, parseJsonMessage } from '../../src/protocol/message.js';
import { textOf } from '../helpers/fixtures.js';
import { appErrorOf } from './app-error.js';

function inventory(content: string, root = ''): string {
  return `{"action":"inventory","content":{${content}},"deviceid":"d"${root}}`;
}

function refused(text: string): string {
  const err = appErrorOf(() => parseJsonMessage(text));
  expect(err.code).toBe('bad_request');
  expect(err.status).toBe(400);
  return err.publicMessage;
}

describe('assertUniqueKeys via parseJsonMessage: refused', () => {
  it.each([
    [
      'a duplicate deviceid at the root',
      '{"action":"contact","deviceid":"evil","deviceid":"real"}',
      /duplicate key "deviceid"/,
    ],
    ['a duplicate action', '{"action":"inventory","action":"contact","deviceid":"d"}', /duplicate key "action"/],
    ['a duplicate tag', inventory('', ',"tag":"a","tag":"b"'), /duplicate key "tag"/],
    ['a duplicate content', inventory('', ',"content":{}'), /duplicate key "content"/],
    ['a duplicate uuid in hardware', inventory('"hardware":{"uuid":"a","uuid":"b"}'), /duplicate key "uuid"/],
    ['a duplicate mac in networks[1]', inventory('"networks":[{"mac":"a"},{"mac":"b","mac":"c"}]'), /"mac"/],
    ['a duplicate key where the gateway reads nothing', inventory('"softwares":[{"name":"a","name":"b"}]'), /"name"/],
    ['keys differing only in case', '{"action":"contact","deviceid":"a","DeviceID":"b"}', /differ only in case/],
    ['a section differing only in case', inventory('"bios":{"ssn":"1"},"BIOS":{"ssn":"2"}'), /"bios" and "BIOS"/],
    ['a key written with a \\u escape', '{"action":"contact","deviceid":"a","dev\\u0069ceid":"b"}', /duplicate key/],
    ['a key equal once NUL is dropped', inventory('"bios":{"ssn":"1","ss\\u0000n":"2"}'), /invisible characters/],
    [
      'a key equal once a lone surrogate is replaced',
      '{"action":"c","deviceid":"d","a\\ud800":1,"a\\ufffd":2}',
      /keys/,
    ],
  ])('%s', (_label, text, message) => {
    expect(refused(text)).toMatch(message);
  });

  it('names the keys without echoing a long one whole', () => {
    const long = 'k'.repeat(500);
    expect(refused(`{"action":"c","deviceid":"d","${long}":1,"${long}":2}`)).toMatch(
      /^Invalid JSON: duplicate key "k{64}…"$/,
    );
  });
});

describe('assertUniqueKeys: accepted', () => {
  it.each([
    ['the same key in different objects', inventory('"hardware":{"name":"h"},"bios":{"name":"b"}')],
    ['the same key in each item of an array', inventory('"networks":[{"mac":"a"},{"mac":"b"}]')],
    ['a key-like string as a value', '{"action":"contact","deviceid":"d","note":"\\"deviceid\\": \\"x\\""}'],
    ['escaped quotes and backslashes in keys', '{"action":"contact","deviceid":"d","a\\"b":1,"a\\\\":2,"a\\\\\\"":3}'],
    ['keys after nested arrays', '{"action":"contact","x":[[1,{"deviceid":"inner"}],[]],"deviceid":"d"}'],
  ])('%s', (_label, text) => {
    expect(() => assertUniqueKeys(text)).not.toThrow();
    expect(parseJsonMessage(text).deviceid).toBe('d');
  });

  // Linear, about the cost of JSON.parse itself (best of 10, so a busy machine does not make it flaky).
  it('costs about what JSON.parse costs on the 230 KB captured inventory', () => {
    const text = textOf('glpi-plain', '0005-post-inventory.json');
    const best = (fn: () => unknown): number => {
      let min = Infinity;
      for (let i = 0; i < 5; i++) fn(); // warm up: the first runs are interpreted
      for (let i = 0; i < 10; i++) {
        const started = performance.now();
        fn();
        min = Math.min(min, performance.now() - started);
      }
      return min;
    };
    const parse = best(() => JSON.parse(text));
    const keys = best(() => assertUniqueKeys(text));
    expect(keys, `assertUniqueKeys ${keys.toFixed(2)} ms, JSON.parse ${parse.toFixed(2)} ms`).toBeLessThan(
      5 * parse + 2,
    );
  });
});

describe('the text kept is the text judged', () => {
  it('redacts perl_args before reading, so an escaped quote in a secret cannot change what is kept', () => {
    const text = inventory('"versionprovider":{"perl_args":"--server x --password=p\\"w --debug"}');
    const msg = parseJsonMessage(text);
    expect(msg.text).not.toContain('p\\"w');
    // The whole perl_args is blanked (it names a credential option), whatever the secret holds.
    expect(msg.text).toContain(`"perl_args":"${REDACTED}"`);
    expect(msg.text).not.toContain('--debug');
    expect(JSON.parse(msg.text)).toEqual(msg.json);
  });

  it('redacts a perl_args key written with an escape by serializing the judged message', () => {
    const msg = parseJsonMessage(inventory('"versionprovider":{"perl\\u005fargs":"--password=secret"}'));
    expect(msg.redacted).toBe(true);
    expect(msg.text).not.toContain('secret');
    expect(JSON.parse(msg.text)).toEqual(msg.json);
  });

  it('keeps an unredacted capture byte for byte', () => {
    const text = textOf('glpi-plain', '0005-post-inventory.json');
    expect(parseJsonMessage(text).text).toBe(text);
  });
});
