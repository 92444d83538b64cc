/**
 * Mutations of real agent XML for the differential test: constructs two XML readers could read differently
 * (quoted attribute values holding markup, comments, CDATA, processing instructions, white space inside
 * tags, entity references) and decoy DEVICEID / QUERY / CONTENT / HARDWARE / BIOS / ACCOUNTINFO elements at
 * other depths. Each operator names itself so a failure says which construct slipped through.
 */
import type { Rng } from './prng.js';

export interface Mutated {
  text: string;
  ops: string[];
}

const DECOYS = [
  '<DEVICEID>evil-deviceid</DEVICEID>',
  '<QUERY>PROLOG</QUERY>',
  '<QUERY>INVENTORY</QUERY>',
  '<CONTENT><HARDWARE><NAME>evil</NAME><UUID>0badc0de-0000-4000-8000-000000000001</UUID></HARDWARE></CONTENT>',
  '<HARDWARE><NAME>evil</NAME><UUID>0badc0de-0000-4000-8000-000000000002</UUID></HARDWARE>',
  '<BIOS><SSN>EVILSERIAL1</SSN><SMANUFACTURER>Evil Inc</SMANUFACTURER></BIOS>',
  '<NETWORKS><DESCRIPTION>evil0</DESCRIPTION><MACADDR>66:66:66:00:00:01</MACADDR></NETWORKS>',
  '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>evil-tag</KEYVALUE></ACCOUNTINFO>',
  '<OPERATINGSYSTEM><FULL_NAME>Evil OS</FULL_NAME></OPERATINGSYSTEM>',
  '<VERSIONCLIENT>Evil-Agent_v6.6</VERSIONCLIENT>',
  '<TAG>evil-tag</TAG>',
  '<hardware><name>evil</name></hardware>',
  '<Hardware><NAME>evil</NAME></Hardware>',
  '</CONTENT><CONTENT>',
  '</REQUEST><REQUEST>',
  '</HARDWARE><HARDWARE>',
  '</DEVICEID><DEVICEID>',
];

const ENTITIES = [
  '&amp;',
  '&lt;',
  '&#65;',
  '&#x41;',
  '&nbsp;',
  '&copy;',
  '&#0;',
  '&#1;',
  '&#xD800;',
  '&#x110000;',
  '&',
  '&foo;',
  ']]>',
  '>',
  '"',
];

const WS = [' ', '\n', '\t', '\r\n', '  \n  '];

/** Where tags start: the positions of '<' (after a mutation they may sit inside inserted constructs too). */
function tagStarts(text: string): number[] {
  const out: number[] = [];
  for (let i = text.indexOf('<'); i !== -1; i = text.indexOf('<', i + 1)) out.push(i);
  return out;
}

/** Positions inside leaf values: just after a '>' that a non-'<' character follows. */
function valuePoints(text: string): number[] {
  const out: number[] = [];
  for (let i = text.indexOf('>'); i !== -1; i = text.indexOf('>', i + 1)) {
    if (i + 1 < text.length && text[i + 1] !== '<' && text[i + 1] !== '\n') out.push(i + 1);
  }
  return out;
}

function insertAt(text: string, at: number, s: string): string {
  return text.slice(0, at) + s + text.slice(at);
}

function quoted(r: Rng, body: string): string {
  const q = r.pick(['"', "'"]);
  return `${q}${body.split(q).join('')}${q}`;
}

/** A construct that hides a decoy (or markup characters) from a correct reader. */
function construct(r: Rng, decoy: string): [string, string] {
  const q = r.pick(['"', "'"]);
  const choices: [string, string][] = [
    ['attr-self-closing', `<X a=${quoted(r, decoy)}/>`],
    ['attr-smuggle', `<X a=${q}></X>${decoy}<X b=${q}>x</X>`],
    ['attr-gt', `<X a=${quoted(r, '>')}>${r.pick(['', 'v'])}</X>`],
    ['attr-slash-gt', `<X a=${quoted(r, '/>')}>${decoy}</X>`],
    ['attr-lt', `<X a=${quoted(r, '<')}/>`],
    ['comment', `<!--${decoy}-->`],
    ['comment-short', `<!-->${decoy}-->`],
    ['comment-dash', `<!--->${decoy}-->`],
    ['comment-double-dash', `<!-- -- ${decoy}-->`],
    ['cdata', `<![CDATA[${decoy}]]>`],
    ['cdata-split', `<![CDATA[]]]]><![CDATA[>${decoy}]]>`],
    ['pi', `<?pi ${decoy}?>`],
    ['pi-gt', `<?pi a>${decoy}?>`],
    ['xml-decl-again', '<?xml version="1.0"?>'],
    ['doctype', `<!DOCTYPE REQUEST [<!ENTITY e "${decoy.replace(/"/g, '')}">]>`],
    ['decoy', decoy],
  ];
  return r.pick(choices);
}

/** Rewrites one start tag `<NAME>` into a variant with an attribute or white space. */
function retag(r: Rng, text: string, at: number): [string, string] | null {
  const m = /^<([A-Za-z_][\w.-]*)(\/?)>/.exec(text.slice(at, at + 80));
  if (!m) return null;
  const [whole, name, slash] = m as unknown as [string, string, string];
  const variants: [string, string][] = [
    [
      'attr-on-tag',
      `<${name} a=${quoted(r, r.pick(['>', '/>', '<', 'plain', `></${name}><DEVICEID>evil</DEVICEID><${name} b=`]))}${slash}>`,
    ],
    ['ws-after-name', `<${name}${r.pick(WS)}${slash}>`],
    ['ws-before-name', `<${r.pick(WS)}${name}${slash}>`],
    ['slash-ws', slash ? `<${name}/${r.pick(WS)}>` : `<${name}${r.pick(WS)}/>`],
    ['lower-case-name', `<${name.toLowerCase()}${slash}>`],
  ];
  const [op, replacement] = r.pick(variants);
  return [op, text.slice(0, at) + replacement + text.slice(at + whole.length)];
}

/** White space (or a stray '/') inside an end tag. */
function reclose(r: Rng, text: string, at: number): [string, string] | null {
  const m = /^<\/([A-Za-z_][\w.-]*)>/.exec(text.slice(at, at + 80));
  if (!m) return null;
  const [whole, name] = m as unknown as [string, string];
  const [op, replacement] = r.pick<[string, string]>([
    ['ws-in-end-tag', `</${name}${r.pick(WS)}>`],
    ['ws-before-end-name', `</${r.pick(WS)}${name}>`],
    ['slash-end-tag', `</${name}/>`],
  ]);
  return [op, text.slice(0, at) + replacement + text.slice(at + whole.length)];
}

/** A copy of an identity section (or DEVICEID) next to itself, with one value changed. */
function duplicate(r: Rng, text: string): [string, string] | null {
  const name = r.pick(['HARDWARE', 'BIOS', 'DEVICEID', 'QUERY', 'ACCOUNTINFO', 'OPERATINGSYSTEM', 'CONTENT']);
  const start = text.indexOf(`<${name}>`);
  const close = text.indexOf(`</${name}>`, start);
  if (start === -1 || close === -1) return null;
  const end = close + name.length + 3;
  const copy = text.slice(start, end).replace(/>([^<\s][^<]*)</, '>evil-$1<');
  const at = r.chance(0.5) ? start : end;
  return [`duplicate-${name}`, insertAt(text, at, copy)];
}

/** Markup characters and names sprinkled anywhere (also over the document's own tags). */
const NOISE = ['<', '>', '/', '!', '?', '"', "'", '=', '&', ';', '[', ']', '-', ' ', '\n', 'A', '#', 'é'];
const NOISE_WORDS = ['DEVICEID', 'CONTENT', 'HARDWARE', 'QUERY', 'amp', 'CDATA', '<A>', '</A>', '<A/>'];

function noise(r: Rng, text: string): [string, string] {
  const at = r.int(text.length + 1);
  if (r.chance(0.2)) return ['markup-noise-cut', text.slice(0, at) + text.slice(at + 1 + r.int(3))];
  let s = '';
  for (let q = 1 + r.int(4); q > 0; q--) s += r.chance(0.8) ? r.pick(NOISE) : r.pick(NOISE_WORDS);
  return ['markup-noise', insertAt(text, at, s)];
}

export function mutateXml(r: Rng, base: string): Mutated {
  let text = base;
  const ops: string[] = [];
  const n = 1 + r.int(3);
  for (let k = 0; k < n; k++) {
    const kind = r.int(11);
    const starts = tagStarts(text);
    const at = starts.length ? r.pick(starts) : 0;
    let result: [string, string] | null = null;
    if (kind <= 3) {
      const [op, s] = construct(r, r.pick(DECOYS));
      result = [op, insertAt(text, at, s)];
    } else if (kind === 4) result = retag(r, text, at);
    else if (kind === 5) result = reclose(r, text, at);
    else if (kind === 6) result = duplicate(r, text);
    else if (kind === 7) {
      const points = valuePoints(text);
      if (points.length) result = ['entity', insertAt(text, r.pick(points), r.pick(ENTITIES))];
    } else if (kind === 8) {
      const points = valuePoints(text);
      const [op, s] = construct(r, r.pick(['evil', '<X/>', '</DEVICEID>', ...DECOYS.slice(0, 3)]));
      if (points.length) result = [`in-value-${op}`, insertAt(text, r.pick(points), s)];
    } else if (kind === 9) {
      result = [
        r.pick(['text-in-element', 'text-outside-root']),
        insertAt(text, r.chance(0.7) ? at : text.length, 'junk'),
      ];
    } else result = noise(r, text);
    if (result) {
      ops.push(result[0]);
      text = result[1];
    }
  }
  return { text, ops };
}

/** Changes no XML reader should disagree on, nor refuse: white space after names, empty-element forms. */
export function benignXml(r: Rng, base: string): Mutated {
  const ops: string[] = [];
  let text = base;
  if (r.chance(0.5)) {
    text = text.replace(/<([A-Z_]+)>/g, (m, name: string) => (r.chance(0.2) ? `<${name}${r.pick(WS)}>` : m));
    ops.push('ws-after-names');
  }
  if (r.chance(0.5)) {
    text = text.replace(/<\/([A-Z_]+)>/g, (m, name: string) => (r.chance(0.2) ? `</${name}${r.pick(WS)}>` : m));
    ops.push('ws-in-end-tags');
  }
  if (r.chance(0.5)) {
    text = text.replace(/<([A-Z_]+)><\/\1>/g, (m, name: string) =>
      r.chance(0.5) ? `<${name}${r.pick(['', ' '])}/>` : m,
    );
    ops.push('self-closing-empties');
  }
  return { text, ops };
}
