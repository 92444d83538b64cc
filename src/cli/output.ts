/**
 * CLI output: `--json` prints exactly one JSON document (scripts parse it); otherwise a plain aligned table.
 *
 * Device names, deviceids, serials and the like come from agents, so anyone holding a registration key
 * chooses them. None of their control characters reaches the operator's terminal: C0 (U+0000–U+001F), DEL
 * and C1 (U+0080–U+009F, which some terminals honour as escape sequences), plus the Unicode line separators
 * and bidirectional overrides that reorder what is shown, are printed visibly as `\xNN` / `\uNNNN`. In a
 * table cell a newline or a tab is escaped too (a row stays one line); in a message line only the line
 * breaks the CLI itself writes are kept. JSON escapes C0 itself; C1 and the others are written as `\u00NN`
 * (the same JSON value).
 */

const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const CONTROLS_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function visible(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every control character (newlines too, unless `keepNewlines`) shown as an escape. */
export function escapeControls(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(opts.keepNewlines ? CONTROLS_BUT_NEWLINE : CONTROLS, visible);
}

/** Writes a message line to stdout, its control characters (other than newlines) escaped. */
export function write(text: string): void {
  process.stdout.write(escapeControls(text, { keepNewlines: true }));
}

/** Same as write, to stderr. */
export function writeError(text: string): void {
  process.stderr.write(escapeControls(text, { keepNewlines: true }));
}

const JSON_RAW_CONTROLS = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function printJson(value: unknown): void {
  const text = JSON.stringify(value, null, 2).replace(
    JSON_RAW_CONTROLS,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  process.stdout.write(`${text}\n`);
}

function raw(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (v instanceof Date) return v.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (Array.isArray(v)) return v.length ? v.map(raw).join(',') : '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v) ?? '-';
}

/** One value as a table cell: one line, nothing a terminal would act on. */
export function cell(v: unknown): string {
  return escapeControls(raw(v));
}

export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.min(48, Math.max(c.length, ...cells.map((row) => row[i]!.length))));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 1)}…` : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n${cells.map(line).join('\n')}\n`);
}
