/**
 * The reference reading of a JSON message, written apart from the gateway: a small recursive-descent parser
 * that reads objects as PHP's json_decode does (GLPI: the last of two equal keys wins, keys are
 * case-sensitive) and notes when a document has more than one plausible reading — two equal keys (readers
 * that keep the first disagree), or keys equal once lower-cased or once the gateway's jsonb clean-up (NUL
 * dropped, lone surrogates replaced) is applied.
 */
import { AppError } from '../../../src/errors.js';
import { type AgentMessage, parseJsonMessage } from '../../../src/protocol/message.js';

export interface JsonReference {
  value: unknown;
  /** Why the document has more than one reading, or null. */
  ambiguous: string | null;
}

type WellFormed = string & { toWellFormed(): string };

function folded(key: string): string {
  return (key.split('\u0000').join('') as WellFormed).toWellFormed().toLowerCase();
}

export function referenceJson(text: string): JsonReference {
  let i = 0;
  let ambiguous: string | null = null;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at ${i}`);
  };
  const string = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    return JSON.parse(m[0]) as unknown;
  };
  const object = (): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const seen = new Map<string, string>();
    i++;
    ws();
    if (text[i] === '}') return (i++, out);
    for (;;) {
      ws();
      if (text[i] !== '"') fail('expected a key');
      const key = string();
      const f = folded(key);
      const previous = seen.get(f);
      if (previous !== undefined && ambiguous === null)
        ambiguous =
          previous === key
            ? `duplicate key ${JSON.stringify(key)}`
            : `keys ${JSON.stringify(previous)} and ${JSON.stringify(key)} collide`;
      seen.set(f, key);
      ws();
      if (text[i++] !== ':') fail('expected :');
      Object.defineProperty(out, key, { value: value(), enumerable: true, configurable: true, writable: true });
      ws();
      if (text[i] === ',') i++;
      else if (text[i] === '}') return (i++, out);
      else fail('expected , or }');
    }
  };
  const array = (): unknown[] => {
    const out: unknown[] = [];
    i++;
    ws();
    if (text[i] === ']') return (i++, out);
    for (;;) {
      out.push(value());
      ws();
      if (text[i] === ',') i++;
      else if (text[i] === ']') return (i++, out);
      else fail('expected , or ]');
    }
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return { value: v, ambiguous };
}

export type JsonGateway = { accepted: true; msg: AgentMessage } | { accepted: false; message: string };

export function gatewayJson(text: string): JsonGateway {
  try {
    return { accepted: true, msg: parseJsonMessage(text) };
  } catch (err) {
    if (err instanceof AppError && err.code === 'bad_request' && err.status === 400)
      return { accepted: false, message: err.publicMessage };
    throw err;
  }
}
