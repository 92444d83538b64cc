/**
 * CLI output never hands a terminal a control character that came from the data: a device name sent by an
 * agent as `\x1b]0;owned\x07` or with a C1 CSI (U+009B) is printed as visible escapes, in tables, in
 * message lines and in --json.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cell, escapeControls, printJson, printTable, write } from '../../src/cli/output.js';

const HOSTILE = 'pc\x1b]0;owned\x07-\x9b31m\r\nFAKE ROW\x00\x7f\u202egnp.exe\u2028';
/** Any C0 but the newline, DEL, C1, line separators and bidi overrides. */
const ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

function captured(fn: () => void): string {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  });
  try {
    fn();
  } finally {
    spy.mockRestore();
  }
  return out;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('control characters in CLI output', () => {
  it('are escaped visibly, each as \\xNN or \\uNNNN', () => {
    expect(escapeControls('a\x1bb\x9bc\x00d\x7fe\u202ef')).toBe('a\\x1bb\\x9bc\\x00d\\x7fe\\u202ef');
    expect(escapeControls('line\nbreak\ttab')).toBe('line\\x0abreak\\x09tab');
    expect(escapeControls('line\nbreak', { keepNewlines: true })).toBe('line\nbreak');
    expect(escapeControls('plain ünïcode, 中文 and emoji 🙂')).toBe('plain ünïcode, 中文 and emoji 🙂');
  });

  it('never reach the terminal from a table: one line per row, nothing active', () => {
    const out = captured(() =>
      printTable([{ id: 1, name: HOSTILE, macs: ['aa\x1b[2J', 'bb'] }], ['id', 'name', 'macs']),
    );
    expect(out).not.toMatch(ACTIVE);
    expect(out.split('\n')).toHaveLength(3); // header, the row, and the final newline
    expect(out).toContain('pc\\x1b]0;owned\\x07-\\x9b31m\\x0d\\x0aFAKE');
    expect(cell(['aa\x1b[2J', 'bb'])).toBe('aa\\x1b[2J,bb');
  });

  it('never reach the terminal from a message line or from --json (which still parses to the same value)', () => {
    const line = captured(() => write(`device ${HOSTILE} is rejected\n`));
    expect(line).not.toMatch(ACTIVE);
    expect(line.endsWith(' is rejected\n')).toBe(true);
    const json = captured(() => printJson({ name: HOSTILE }));
    expect(json).not.toMatch(ACTIVE);
    expect(JSON.parse(json)).toEqual({ name: HOSTILE });
  });
});
