/** One tag found by {@link findTags}: `html.slice(start, end)` is the whole tag, `<` to `>`. */
export interface HtmlTag {
  /** Offset of the `<`. */
  start: number;
  /** Offset just past the tag's name, where its attributes start. */
  nameEnd: number;
  /** Offset just past the `>`. */
  end: number;
}

/** Options of {@link findTags}. */
export interface FindTagsOptions {
  /**
   * Given the offset of a `<`, returns the offset just past the name of a tag of interest that
   * starts there, or -1 when none does (that `<` is then text). Looks at a few characters only.
   */
  openAt(html: string, lt: number): number;
  /**
   * Most characters or whole quoted strings a tag may hold between its name and `>`; a longer
   * one is not a tag.
   */
  maxUnits: number;
  /** Incremented by every character looked at, so tests can check the cost is linear. (Default: none) */
  counter?: { examined: number };
}

const GT = 0x3e;
const DOUBLE_QUOTE = 0x22;
const SINGLE_QUOTE = 0x27;

/**
 * The tags in `html`, in order. A tag ends at the first `>` outside double- or single-quoted
 * strings, as `<name(?:[^>"']|"[^"]*"|'[^']*'){0,maxUnits}>` would match it. Where no tag ends,
 * scanning resumes where that attempt stopped (at the unit past the bound, or just past a quote
 * that is never closed) instead of at the next `<`, so no character is looked at twice and the
 * cost stays linear on hostile input. The one difference from that regex: a tag starting inside
 * what a failed attempt already covered is not found, which takes a tag left open for thousands
 * of characters or a quote never closed, not something ordinary mail has.
 */
export function* findTags(html: string, options: FindTagsOptions): Generator<HtmlTag> {
  const { openAt, maxUnits, counter } = options;
  const length = html.length;
  let from = 0;
  while (from < length) {
    const start = html.indexOf('<', from);
    if (counter) counter.examined += (start === -1 ? length : start + 1) - from;
    if (start === -1) return;
    const nameEnd = openAt(html, start);
    if (nameEnd === -1) {
      from = start + 1;
      continue;
    }
    if (counter) counter.examined += nameEnd - start - 1;
    let i = nameEnd;
    let units = 0;
    let end = -1;
    for (;;) {
      if (i >= length) break;
      const c = html.charCodeAt(i);
      if (c === GT) {
        end = i + 1;
        break;
      }
      if (units === maxUnits) break;
      units++;
      if (c === DOUBLE_QUOTE || c === SINGLE_QUOTE) {
        const close = html.indexOf(c === DOUBLE_QUOTE ? '"' : "'", i + 1);
        if (close === -1) {
          // No such quote further on, so no later attempt can reach this search again.
          if (counter) counter.examined += length - i;
          i += 1;
          break;
        }
        if (counter) counter.examined += close + 1 - i;
        i = close + 1;
      } else {
        if (counter) counter.examined += 1;
        i++;
      }
    }
    if (end !== -1) {
      if (counter) counter.examined += 1;
      yield { start, nameEnd, end };
      from = end;
    } else {
      from = i;
    }
  }
}

/**
 * An `openAt` for start tags with one of `names` (lowercase), matched case-insensitively and
 * followed by whitespace, `/` or `>`, as `<(img|a)(?=[\s/>])` does.
 */
export function startTagOpener(names: readonly string[]): FindTagsOptions['openAt'] {
  return (html, lt) => {
    for (const name of names) {
      const nameEnd = lt + 1 + name.length;
      if (startsWithIgnoringCase(html, lt + 1, name) && /[\s/>]/.test(html.charAt(nameEnd))) return nameEnd;
    }
    return -1;
  };
}

/** An `openAt` for any start or end tag or declaration: `<name`, `</name` or `<!`, as `<(?:\/?[a-zA-Z][a-zA-Z0-9:-]*|!)`. */
export function anyTagAt(html: string, lt: number): number {
  let at = lt + 1;
  if (html.charCodeAt(at) === 0x21 /* ! */) return at + 1;
  if (html.charCodeAt(at) === 0x2f /* / */) at++;
  if (!isAsciiLetter(html.charCodeAt(at))) return -1;
  at++;
  for (let c = html.charCodeAt(at); isAsciiLetter(c) || (c >= 0x30 && c <= 0x3a) || c === 0x2d; c = html.charCodeAt(++at));
  return at;
}

function isAsciiLetter(code: number): boolean {
  return (code | 0x20) >= 0x61 && (code | 0x20) <= 0x7a;
}

/** True when `html` holds `word` (lowercase ASCII letters) at `at`, in either case. */
function startsWithIgnoringCase(html: string, at: number, word: string): boolean {
  if (at + word.length > html.length) return false;
  for (let k = 0; k < word.length; k++) {
    if ((html.charCodeAt(at + k) | 0x20) !== word.charCodeAt(k)) return false;
  }
  return true;
}
