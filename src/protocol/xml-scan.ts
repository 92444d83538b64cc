/**
 * The XML the gateway accepts, checked in one linear pass that also records where the root's children and
 * the sections of <CONTENT> lie (src/protocol/xml.ts then parses only the few small ones it reads).
 *
 * SECURITY: one reading of every document. The hot path reads DEVICEID, QUERY and the identity sections
 * from this scan, not from a full parse, so the scan must find exactly the elements any conforming parser
 * finds in the same bytes (fast-xml-parser's full parse, in test/unit/xml-differential.test.ts; libxml2 in
 * GLPI). Rather than re-implement every corner of XML and hope two implementations agree on it, the scan
 * accepts the profile the agents actually send (test/fixtures: an XML declaration, plain elements, text,
 * the predefined entities) and refuses, as bad input (a 400 in the agent's format), every construct two
 * parsers can read differently:
 * - attributes, whatever their quoting: a quoted value may hold '>', '/>' or '<' (a scanner that ends tags
 *   at the first '>' then sees elements that are not there), and GLPI's SimpleXML-to-JSON conversion would
 *   turn them into "@attributes" keys the gateway never read;
 * - comments, CDATA sections and processing instructions (all but the leading XML declaration): they hide
 *   markup from one reader and not another (`<!-->` is not a whole comment), GLPI's converter drops CDATA
 *   text and lists comments as "comment" children;
 * - DOCTYPE and ENTITY declarations (no entity is ever expanded), entity references other than the five
 *   predefined ones (fast-xml-parser would decode HTML names such as &nbsp; that XML does not define),
 *   character references to characters XML does not allow, a bare '&', ']]>' in text;
 * - element names outside ASCII letters, digits, '_', '.', '-' (no namespaces, no non-ASCII names);
 * - mixed content (text beside child elements: each parser keeps a different part of it);
 * - control characters, U+FFFE/U+FFFF, lone surrogates, text outside the root, a second root, nesting
 *   deeper than MAX_XML_DEPTH (the pass is iterative: hostile nesting cannot exhaust the stack).
 * White space inside tags (`<NAME >`, `</NAME\n>`, `<NAME />`) and self-closing elements are plain XML and
 * are read as any parser reads them.
 */
import { AppError } from '../errors.js';

export const MAX_XML_DEPTH = 64;

export interface XmlSpan {
  name: string;
  start: number;
  end: number;
}

export interface XmlScan {
  root: string;
  /** Direct children of the root, in document order. */
  rootChildren: XmlSpan[];
  /** Direct children of the root's <CONTENT>, in document order. */
  contentSections: XmlSpan[];
}

export function badXml(message: string): AppError {
  return new AppError('bad_request', `Invalid XML: ${message}`);
}

/** Refuses what no agent sends and what would make a parser expand or fetch anything. */
export function assertNoDoctype(text: string): void {
  if (/<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST)/i.test(text))
    throw badXml('DOCTYPE and entity declarations are not accepted');
}

// Matching control characters is the point of this expression.

const CONTROL_CHAR = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;
const REFERENCE = /&(?:lt|gt|amp|quot|apos|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));/y;
/** The declaration agents send: version 1.0, an encoding name, standalone. Nothing else may precede the root. */
const XML_DECL =
  /<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:"1\.0"|'1\.0')(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:"[A-Za-z][\w.-]*"|'[A-Za-z][\w.-]*'))?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\r\n]*\?>/y;

type WellFormed = string & { isWellFormed(): boolean };

/** XML 1.0 §2.2 Char, for character references. */
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/** Characters, over the whole text at once (native passes, no per-character JavaScript). */
function assertCharacters(text: string): void {
  if (CONTROL_CHAR.test(text)) throw badXml('control characters are not allowed');
  if (!(text as WellFormed).isWellFormed()) throw badXml('the text is not well-formed Unicode');
}

/** Entity and character references ('&' is rare in inventories), and ']]>' (XML 1.0 §2.4). */
function assertReferences(text: string): void {
  for (let at = text.indexOf('&'); at !== -1; at = text.indexOf('&', at + 1)) {
    REFERENCE.lastIndex = at;
    const m = REFERENCE.exec(text);
    if (!m) throw badXml('only &amp; &lt; &gt; &quot; &apos; and character references are allowed');
    if (m[1] === undefined && m[2] === undefined) continue;
    const cp = m[1] !== undefined ? parseInt(m[1], 10) : parseInt(m[2]!, 16);
    if (cp < 0x20 && !isXmlChar(cp)) throw badXml('control characters are not allowed');
    if (!isXmlChar(cp)) throw badXml('a character reference to a character XML does not allow');
  }
  if (text.includes(']]>')) throw badXml("']]>' is not allowed in text");
}

/** One pass over the document: the profile above, tag nesting, and the spans xml.ts reads. */
export function scanXml(text: string): XmlScan {
  assertNoDoctype(text);
  assertCharacters(text);
  const scan = new Scanner(text).run();
  // After the scan, which names comments and CDATA sections (that may hold '&' or ']]>') more clearly.
  assertReferences(text);
  return scan;
}

const HAS_CHILD = 1;
const HAS_TEXT = 2;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

function isNameStart(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}

function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d;
}

function sameChars(text: string, a: number, b: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (text.charCodeAt(a + k) !== text.charCodeAt(b + k)) return false;
  return true;
}

function skipSpace(text: string, from: number): number {
  let k = from;
  while (k < text.length && isSpace(text.charCodeAt(k))) k++;
  return k;
}

class Scanner {
  // Open elements as positions of their names (no string per tag: inventories have tens of thousands).
  private readonly nameAt: number[] = [];
  private readonly nameLen: number[] = [];
  private readonly starts: number[] = [];
  /** Per open element: HAS_CHILD and/or HAS_TEXT seen so far (both at once is mixed content). */
  private readonly seen = new Uint8Array(MAX_XML_DEPTH + 1);
  private root = '';
  private inContent = false;
  private readonly rootChildren: XmlSpan[] = [];
  private readonly contentSections: XmlSpan[] = [];

  constructor(private readonly text: string) {}

  run(): XmlScan {
    const text = this.text;
    let pos = 0;
    if (text.startsWith('<?xml', 0)) {
      XML_DECL.lastIndex = 0;
      if (!XML_DECL.test(text)) throw badXml('unsupported XML declaration or processing instruction');
      pos = XML_DECL.lastIndex;
    }
    for (let lt = text.indexOf('<', pos); lt !== -1; lt = text.indexOf('<', pos)) {
      this.textRun(pos, lt);
      pos = this.markup(lt);
    }
    this.textRun(pos, text.length);
    if (this.nameAt.length > 0) throw badXml(`<${this.openName(this.nameAt.length - 1)}> is not closed`);
    if (!this.root) throw badXml('no root element');
    return { root: this.root, rootChildren: this.rootChildren, contentSections: this.contentSections };
  }

  private openName(index: number): string {
    const at = this.nameAt[index]!;
    return this.text.slice(at, at + this.nameLen[index]!);
  }

  /** Character data between two tags: white space anywhere, text only inside an element without children. */
  private textRun(from: number, to: number): void {
    if (skipSpace(this.text, from) >= to) return;
    const depth = this.nameAt.length;
    if (depth === 0) throw badXml('text outside the root element');
    if (this.seen[depth - 1]! & HAS_CHILD) throw badXml(`<${this.openName(depth - 1)}> mixes text and elements`);
    this.seen[depth - 1]! |= HAS_TEXT;
  }

  private markup(lt: number): number {
    const text = this.text;
    const next = text.charCodeAt(lt + 1);
    if (next === 0x2f /* / */) return this.endTag(lt);
    if (next === 0x21 /* ! */) {
      if (text.startsWith('<!--', lt))
        throw badXml(text.includes('-->', lt + 4) ? 'comments are not accepted' : 'unterminated comment');
      if (text.startsWith('<![CDATA[', lt))
        throw badXml(text.includes(']]>', lt + 9) ? 'CDATA sections are not accepted' : 'unterminated CDATA section');
      throw badXml('unexpected markup declaration');
    }
    if (next === 0x3f /* ? */)
      throw badXml(
        text.includes('?>', lt + 2)
          ? 'processing instructions are not accepted'
          : 'unterminated processing instruction',
      );
    return this.startTag(lt);
  }

  private startTag(lt: number): number {
    const text = this.text;
    const from = lt + 1;
    let end = from;
    if (isNameStart(text.charCodeAt(end))) while (isNameChar(text.charCodeAt(end))) end++;
    const k = skipSpace(text, end);
    const c = text.charCodeAt(k);
    if (k >= text.length) throw badXml('unterminated tag');
    if (end === from) {
      const empty = c === 0x3e || c === 0x2f || isSpace(text.charCodeAt(from));
      throw badXml(empty ? 'empty tag name' : 'element names are ASCII letters, digits, _ . and -');
    }
    if (c === 0x3e /* > */) return this.open(lt, from, end - from, false, k + 1);
    if (c === 0x2f && text.charCodeAt(k + 1) === 0x3e /* /> */) return this.open(lt, from, end - from, true, k + 2);
    const name = text.slice(from, end);
    if (k > end && isNameStart(c)) throw badXml(`attributes are not accepted (<${name}>)`);
    throw badXml(`unexpected character in <${name}> tag`);
  }

  private open(lt: number, from: number, len: number, selfClosing: boolean, end: number): number {
    const depth = this.nameAt.length;
    if (depth === 0) {
      if (this.root) throw badXml('more than one root element');
      this.root = this.text.slice(from, from + len);
    } else {
      if (this.seen[depth - 1]! & HAS_TEXT) throw badXml(`<${this.openName(depth - 1)}> mixes text and elements`);
      this.seen[depth - 1]! |= HAS_CHILD;
    }
    if (depth === 1) this.inContent = len === 7 && this.text.startsWith('CONTENT', from);
    if (selfClosing) {
      this.record(depth, from, len, lt, end);
      return end;
    }
    if (depth >= MAX_XML_DEPTH) throw badXml(`nesting deeper than ${MAX_XML_DEPTH}`);
    this.nameAt.push(from);
    this.nameLen.push(len);
    this.starts.push(lt);
    this.seen[depth] = 0;
    return end;
  }

  private endTag(lt: number): number {
    const text = this.text;
    const from = lt + 2;
    let end = from; // read loosely, for the message: the name must equal the open element's anyway
    for (let c = text.charCodeAt(end); end < text.length; c = text.charCodeAt(++end))
      if (isSpace(c) || c === 0x3c || c === 0x3e || c === 0x2f) break;
    const k = skipSpace(text, end);
    if (k >= text.length) throw badXml('unterminated tag');
    if (end === from) throw badXml('empty tag name');
    if (text.charCodeAt(k) !== 0x3e) throw badXml(`unexpected character in </${text.slice(from, end)}> tag`);
    const depth = this.nameAt.length;
    if (depth === 0) throw badXml(`unexpected </${text.slice(from, end)}>`);
    const len = end - from;
    if (this.nameLen[depth - 1] !== len || !sameChars(text, this.nameAt[depth - 1]!, from, len))
      throw badXml(`</${text.slice(from, end)}> closes <${this.openName(depth - 1)}>`);
    this.nameAt.pop();
    this.nameLen.pop();
    this.record(depth - 1, from, len, this.starts.pop()!, k + 1);
    return k + 1;
  }

  /** depth = number of elements still open around this one once it is closed */
  private record(depth: number, from: number, len: number, start: number, end: number): void {
    if (depth === 1) this.rootChildren.push({ name: this.text.slice(from, from + len), start, end });
    else if (depth === 2 && this.inContent)
      this.contentSections.push({ name: this.text.slice(from, from + len), start, end });
  }
}
