import { describe, expect, it } from 'vitest';
import { anyTagAt, findTags, type FindTagsOptions, startTagOpener } from '../../src/mail/scanners/html-tags.js';
import { ordinaryHtml } from '../helpers/html-corpus.js';

/** The regexes the scanners used before the tokenizer; quadratic on hostile input, the reference on ordinary mail. */
const LEGACY_IMAGE_OR_LINK = /<(img|a)(?=[\s/>])((?:[^>"']|"[^"]*"|'[^']*'){0,8000})>/gi;
const LEGACY_ANY_TAG = /<(?:\/?[a-zA-Z][a-zA-Z0-9:-]*|!)(?:[^>"']|"[^"]*"|'[^']*'){0,4000}>/g;

const IMAGE_OR_LINK: FindTagsOptions = { openAt: startTagOpener(['img', 'a']), maxUnits: 8000 };
const ANY_TAG: FindTagsOptions = { openAt: anyTagAt, maxUnits: 4000 };

function spans(html: string, options: FindTagsOptions): string[] {
  return [...findTags(html, options)].map((tag) => html.slice(tag.start, tag.end));
}

/** Characters the tokenizer looks at for `html`. */
function examined(html: string, options: FindTagsOptions): number {
  const counter = { examined: 0 };
  for (const _ of findTags(html, { ...options, counter }));
  return counter.examined;
}

describe('findTags', () => {
  it('finds the tags the regexes found, on ordinary HTML', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const html = ordinaryHtml(seed);
      expect(spans(html, IMAGE_OR_LINK), `seed ${seed}`).toEqual([...html.matchAll(LEGACY_IMAGE_OR_LINK)].map((m) => m[0]));
      expect(spans(html, ANY_TAG), `seed ${seed}`).toEqual([...html.matchAll(LEGACY_ANY_TAG)].map((m) => m[0]));
    }
  });

  it('ends a tag at the first > outside quotes and reports where its name ends', () => {
    const html = `x <A title='a > b' href="c>d">y</a><img/><imgx src=z> <a`;
    expect([...findTags(html, IMAGE_OR_LINK)]).toEqual([
      { start: 2, nameEnd: 4, end: 30 },
      { start: 35, nameEnd: 39, end: 41 },
    ]);
  });

  it('treats a tag left open past the bound, or a quote never closed, as text and finds the tags after it', () => {
    const html = `<a ${'x'.repeat(8001)}<a href="1"><a title="never closed <img src='2'>`;
    expect(spans(html, IMAGE_OR_LINK)).toEqual(['<a href="1">', "<img src='2'>"]);
  });

  it('looks at each character of hostile input a bounded number of times', () => {
    const hostile = {
      'unclosed tags': '<a '.repeat(800_000),
      'unclosed tags without spaces': '<a<a/'.repeat(500_000),
      'unclosed double quotes': `${'<a "'.padEnd(1_000_000, 'x')}`.repeat(3),
      'alternating quotes': `<a "${"'".repeat(10)}<a '`.repeat(100_000),
      'unclosed declarations': '<!'.repeat(1_000_000),
      'one long name': `<${'p'.repeat(2_000_000)}`,
    };
    for (const [label, html] of Object.entries(hostile)) {
      for (const options of [IMAGE_OR_LINK, ANY_TAG]) {
        expect(examined(html, options), label).toBeLessThanOrEqual(3 * html.length);
      }
    }
  });
});
