/**
 * SECURITY: one reading of every JSON document. JSON.parse, PHP's json_decode (GLPI) and PostgreSQL's jsonb
 * keep the last of two equal keys; other readers keep the first, or fail. Keys that differ only in case
 * collide wherever names are folded (GLPI lower-cases the XML names it converts; the gateway's inventory view
 * lower-cases keys), and the gateway's own clean-up for jsonb (sanitizeJson: NUL dropped, lone surrogates
 * replaced) turns "ss\u0000n" into a second "ssn" that silently replaces the first. So an object with two
 * keys that are equal — as written, once \u escapes are decoded, once cleaned for jsonb, or once lower-cased
 * — is refused, at every depth: agents never send one (their keys come from Perl hashes), and one linear
 * pass over the whole text (about a millisecond for a 230 KB inventory) spares deciding which depths a
 * reader may one day look at.
 */
import { AppError } from '../errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

/** Index of the quote that closes the string opening at `open`. */
function stringEnd(text: string, open: number): number {
  let end = text.indexOf('"', open + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/**
 * Whether the key between the quotes is lower-case ASCII letters, digits and '_' only (nearly every key an
 * agent sends): then it is already what `folded` would make of it.
 */
function plainKey(text: string, open: number, close: number): boolean {
  for (let k = open + 1; k < close; k++) {
    const c = text.charCodeAt(k);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return false;
  }
  return true;
}

/** The key as a reader that decodes escapes, cleans it for jsonb and folds case would see it. */
function folded(text: string, open: number, close: number): { key: string; folded: string } {
  const raw = text.slice(open + 1, close);
  if (plainKey(text, open, close)) return { key: raw, folded: raw };
  const key = raw.includes('\\') ? (JSON.parse(text.slice(open, close + 1)) as string) : raw;
  let clean = key.includes('\u0000') ? key.split('\u0000').join('') : key;
  if (!(clean as WellFormed).isWellFormed()) clean = (clean as WellFormed).toWellFormed();
  return { key, folded: clean.toLowerCase() };
}

function collision(first: string, second: string): AppError {
  const quote = (k: string) => JSON.stringify(k.length > 64 ? `${k.slice(0, 64)}…` : k);
  return new AppError(
    'bad_request',
    first === second
      ? `Invalid JSON: duplicate key ${quote(first)}`
      : `Invalid JSON: keys ${quote(first)} and ${quote(second)} differ only in case or invisible characters`,
  );
}

/**
 * Refuses an object holding two keys equal as described above. Runs on text JSON.parse has accepted, so it
 * only tracks structure: which strings are keys, and the keys already seen in each open object.
 */
export function assertUniqueKeys(text: string): void {
  const frames: (Map<string, string> | null)[] = []; // null: an array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20) continue; // white space, half of a pretty-printed inventory (JSON.parse accepted the text)
    if (c === QUOTE) {
      const close = stringEnd(text, i);
      const keys = frames[frames.length - 1];
      if (expectKey && keys) {
        const k = folded(text, i, close);
        const seen = keys.get(k.folded);
        if (seen !== undefined) throw collision(seen, k.key);
        keys.set(k.folded, k.key);
        expectKey = false;
      }
      i = close;
    } else if (c === 0x7b /* { */) {
      frames.push(new Map());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      frames.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = frames[frames.length - 1] != null;
    }
  }
}
