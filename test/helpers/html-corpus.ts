/**
 * Ordinary HTML mail, generated from a seed: the tags, attribute quoting and text that newsletters
 * and replies use, including `>` and `<` inside quoted values and stray `<` in text. For checking
 * that a rewrite of a scanner finds what it found before.
 */
export function ordinaryHtml(seed: number, tags = 200): string {
  let state = seed >>> 0 || 1;
  const random = (n: number): number => {
    // xorshift32: small, seeded, good enough to vary the shapes.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  const pick = <T>(items: readonly T[]): T => items[random(items.length)]!;
  const names = [
    'p',
    'P',
    'div',
    'span',
    'td',
    'TH',
    'tr',
    'table',
    'br',
    'a',
    'A',
    'img',
    'IMG',
    'b',
    'font',
    'h1',
    'li',
    'ul',
    'center',
    'o:p',
    'v:rect',
    'pre',
    'progress',
    'abbr',
    'area',
  ];
  const values = [
    'https://www.shop.example/sale?utm_source=news&amp;utm_medium=email',
    'https://u1.ct.sendgrid.net/ls/click?upn=x',
    'https://open.shop.example/o.gif?u=1',
    'a > b',
    "it's",
    'say "hi"',
    'width:1px;height:1px',
    'display:none',
    '1',
    '600',
    '<br>',
    '',
  ];
  const texts = ['Hello', ' Card 4111 1111 1111 1111 ', 'a < b and c > d', '&nbsp;', '&lt;img&gt;', 'caf&eacute;', '\n', '  ', "don't"];
  const attribute = (): string => {
    const name = pick(['href', 'src', 'style', 'width', 'height', 'title', 'alt', 'class', 'HREF', 'hidden']);
    const value = pick(values);
    const form = random(4);
    if (form === 0 && !value.includes('"')) return ` ${name}="${value}"`;
    if (form === 1 && !value.includes("'")) return ` ${name}='${value}'`;
    if (form === 2 && /^[^\s"'<>=`]+$/.test(value)) return ` ${name}=${value}`;
    if (form === 3) return ` ${name}`;
    return ` ${name}="${value.replace(/"/g, '&quot;')}"`;
  };
  let html = pick(['', '<!DOCTYPE html>', '<!doctype html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">']);
  for (let k = 0; k < tags; k++) {
    const name = pick(names);
    let attributes = '';
    for (let n = random(4); n > 0; n--) attributes += attribute();
    const close = pick(['>', ' >', '/>', ' />', '\n>']);
    html += `<${name}${attributes}${close}${pick(texts)}`;
    if (random(3) === 0) html += `</${name}>`;
    if (random(20) === 0) html += pick(['<![endif]>', '< not a tag', '<3', '</ p>', '<a\u00a0href="https://x.example/?fbclid=1">']);
  }
  return html;
}
