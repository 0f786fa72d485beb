import { anyTagAt, findTags, type HtmlTag } from './html-tags.js';

/** Named entities worth decoding in mail; anything else is left as written. */
const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  // A non-breaking space becomes a plain one so "4111&nbsp;1111…" scans like typed text.
  nbsp: ' ',
  ensp: ' ',
  emsp: ' ',
  thinsp: ' ',
  // Zero-width characters pad preheaders; dropping them keeps numbers contiguous.
  zwnj: '',
  zwj: '',
  shy: '',
  copy: '©',
  reg: '®',
  trade: '™',
  euro: '€',
  pound: '£',
  yen: '¥',
  cent: '¢',
  sect: '§',
  deg: '°',
  middot: '·',
  bull: '•',
  hellip: '…',
  ndash: '–',
  mdash: '—',
  lsquo: '‘',
  rsquo: '’',
  sbquo: '‚',
  ldquo: '“',
  rdquo: '”',
  bdquo: '„',
  laquo: '«',
  raquo: '»',
  times: '×',
  divide: '÷',
};

const ENTITY = /&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]{1,31}));?/g;

/**
 * Decodes numeric entities and the common named ones in {@link NAMED_ENTITIES}. Unknown names and
 * invalid code points are left untouched rather than guessed.
 */
export function decodeHtmlEntities(text: string): string {
  return text.replace(ENTITY, (whole, dec: string | undefined, hex: string | undefined, name: string | undefined) => {
    if (name !== undefined) {
      const named = NAMED_ENTITIES[name] ?? NAMED_ENTITIES[name.toLowerCase()];
      return named ?? whole;
    }
    const codePoint = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex ?? '', 16);
    if (!Number.isFinite(codePoint) || codePoint <= 0 || codePoint > 0x10ffff) return whole;
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) return whole;
    if (codePoint === 0xa0) return ' ';
    if (codePoint === 0x200b || codePoint === 0x200c || codePoint === 0x200d || codePoint === 0xad) return '';
    return String.fromCodePoint(codePoint);
  });
}

/**
 * Removes every `<open …>…</close>` section (case-insensitive) with plain index scans: a regex with
 * a lazy body goes quadratic on mail full of unclosed `<script` tags. An unclosed section runs to
 * the end, as a browser would treat it.
 */
function removeSections(html: string, open: string, close: string, replacement: string): string {
  const lower = html.toLowerCase();
  let out = '';
  let from = 0;
  for (;;) {
    const start = lower.indexOf(open, from);
    if (start === -1) break;
    // `<script` must not match `<scripts`; comments (`<!--`) need no such check.
    const next = lower.charAt(start + open.length);
    if (/^<[a-z]/.test(open) && /[a-z0-9-]/.test(next)) {
      out += html.slice(from, start + open.length);
      from = start + open.length;
      continue;
    }
    out += html.slice(from, start) + replacement;
    const end = lower.indexOf(close, start + open.length);
    if (end === -1) return out;
    const gt = close.endsWith('>') ? end + close.length - 1 : lower.indexOf('>', end);
    if (gt === -1) return out;
    from = gt + 1;
  }
  return out + html.slice(from);
}

/** Tags after which readable text starts on a new line. */
const BLOCK_TAGS = new Set(
  'address article aside blockquote br dd div dl dt footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody tfoot thead tr ul'.split(
    ' ',
  ),
);
/** Table cells are separated by a space so adjacent cells do not merge into one number. */
const CELL_TAGS = new Set(['td', 'th']);
/** `blockquote`: a longer word is no block or cell name. */
const LONGEST_NAME = 10;
const SLASH = 0x2f;
/** Characters or quoted strings a tag may hold; the bound keeps a stray `<` from hiding the text after it. */
const MAX_TAG_UNITS = 4000;

/** What a tag leaves in the text: a line break after a block, a space between cells, else nothing. */
function tagReplacement(html: string, tag: HtmlTag): string {
  const nameStart = html.charCodeAt(tag.start + 1) === SLASH ? tag.start + 2 : tag.start + 1;
  // The whole word counts, as `\b` did: `<pre>` is a block, `<progress>` and `<p_x>` are not.
  let end = nameStart;
  while (end < tag.end && end - nameStart <= LONGEST_NAME && isWordChar(html.charCodeAt(end))) end++;
  const word = html.slice(nameStart, end).toLowerCase();
  if (BLOCK_TAGS.has(word)) return '\n';
  return CELL_TAGS.has(word) ? ' ' : '';
}

/** `\w`: an ASCII letter, digit or underscore. */
function isWordChar(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || code === 0x5f;
}

/** Replaces every tag in one linear pass (see {@link findTags}). */
function replaceTags(html: string): string {
  let out = '';
  let from = 0;
  for (const tag of findTags(html, { openAt: anyTagAt, maxUnits: MAX_TAG_UNITS })) {
    out += html.slice(from, tag.start) + tagReplacement(html, tag);
    from = tag.end;
  }
  return out + html.slice(from);
}

/**
 * Turns an HTML body into plain text for scanning: drops comments, `<head>`, `<script>`,
 * `<style>` and `<noscript>`, breaks lines at block elements, removes the remaining tags, decodes
 * entities and collapses whitespace. Not a renderer: the goal is text in which numbers written
 * across inline tags or `&nbsp;` read as they do on screen.
 */
export function htmlToText(html: string): string {
  let text = removeSections(html, '<!--', '-->', ' ');
  for (const tag of ['head', 'script', 'style', 'noscript', 'template']) {
    text = removeSections(text, `<${tag}`, `</${tag}`, ' ');
  }
  text = replaceTags(text);
  text = decodeHtmlEntities(text);
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t\f\v\u00a0]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
