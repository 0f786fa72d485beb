import { describe, expect, it } from 'vitest';
import { htmlToText } from '../../src/mail/scanners/html-to-text.js';
import { ordinaryHtml } from '../helpers/html-corpus.js';
import { maskValue, scanMessagePii, scanPii, type PiiFinding } from '../../src/mail/scanners/pii.js';
import { isValidIban, isValidNir, passesLuhn } from '../../src/mail/scanners/pii-validators.js';
import type { ScannableMessage } from '../../src/mail/scanners/scannable-message.js';

/** The French NIR key: 97 − (13-digit number mod 97), two digits. */
function nirKey(thirteenDigits: string): string {
  return String(97 - (Number(thirteenDigits) % 97)).padStart(2, '0');
}

/** Asserts no finding carries the raw value, with or without its separators. */
function expectNoRawValue(findings: readonly object[], raws: readonly string[]): void {
  const serialized = JSON.stringify(findings);
  for (const raw of raws) {
    expect(serialized).not.toContain(raw);
    expect(serialized).not.toContain(raw.replace(/[\s-]/g, ''));
  }
}

describe('check digits', () => {
  it('Luhn accepts test cards and rejects a changed digit', () => {
    expect(passesLuhn('4111111111111111')).toBe(true);
    expect(passesLuhn('4111111111111112')).toBe(false);
    expect(passesLuhn('378282246310005')).toBe(true);
  });

  it('IBAN needs mod 97, the country length and a known country', () => {
    expect(isValidIban('GB82WEST12345698765432')).toBe(true);
    expect(isValidIban('GB82WEST12345698765433')).toBe(false);
    expect(isValidIban('GB82WEST1234569876543')).toBe(false);
    expect(isValidIban('DE89370400440532013000')).toBe(true);
    expect(isValidIban('XX82WEST12345698765432')).toBe(false);
  });

  it('NIR key treats Corsica 2A as 19 and 2B as 18', () => {
    expect(isValidNir(`1850578006084${nirKey('1850578006084')}`)).toBe(true);
    expect(isValidNir(`290122A004123${nirKey('2901219004123')}`)).toBe(true);
    expect(isValidNir(`290122B004123${nirKey('2901218004123')}`)).toBe(true);
    // A key computed as if the department were "20" is wrong.
    expect(isValidNir(`290122A004123${nirKey('2901220004123')}`)).toBe(false);
  });
});

describe('maskValue', () => {
  it('stars all but the last four letters or digits and keeps separators', () => {
    expect(maskValue('4111 1111 1111 1111')).toBe('**** **** **** 1111');
    expect(maskValue('FR76 3000 6000 0112 3456 7890 189')).toBe('**** **** **** **** **** ***0 189');
    expect(maskValue('+33 6 12 34 56 78')).toBe('+** * ** ** 56 78');
  });
});

describe('scanPii: cards', () => {
  it('finds Luhn-valid cards with a plausible prefix in every common layout', () => {
    const text = 'Visa 4111 1111 1111 1111, dashed 5555-5555-5555-4444, Amex 3782 822463 10005, plain 6011111111111117.';
    expect(scanPii(text)).toEqual<PiiFinding[]>([
      { kind: 'CARD', subtype: 'VISA', masked: '**** **** **** 1111', offset: 5 },
      { kind: 'CARD', subtype: 'MASTERCARD', masked: '****-****-****-4444', offset: 33 },
      { kind: 'CARD', subtype: 'AMEX', masked: '**** ****** *0005', offset: 59 },
      { kind: 'CARD', subtype: 'DISCOVER', masked: '************1117', offset: 84 },
    ]);
    expectNoRawValue(scanPii(text), ['4111 1111 1111 1111', '5555-5555-5555-4444', '3782 822463 10005', '6011111111111117']);
  });

  it('ignores a failed Luhn check, an implausible prefix and part of a longer number', () => {
    expect(scanPii('Card 4111 1111 1111 1112 declined')).toEqual([]);
    // 1234567812345670 passes Luhn but no scheme starts with 1.
    expect(scanPii('Ref 1234567812345670')).toEqual([]);
    expect(scanPii('Tracking 41111111111111110000')).toEqual([]);
    expect(scanPii('Total 4111111111111111.00')).toEqual([]);
  });
});

describe('scanPii: IBAN', () => {
  it('finds valid IBANs, printed or compact, and reports the country', () => {
    const text = 'Pay to GB82 WEST 1234 5698 7654 32 or DE89370400440532013000.';
    expect(scanPii(text)).toEqual<PiiFinding[]>([
      { kind: 'IBAN', subtype: 'GB', masked: '**** **** **** **** **54 32', offset: 7 },
      { kind: 'IBAN', subtype: 'DE', masked: '******************3000', offset: 38 },
    ]);
    expectNoRawValue(scanPii(text), ['GB82 WEST 1234 5698 7654 32', 'DE89370400440532013000']);
  });

  it('rejects a changed digit, a wrong length and an unknown country', () => {
    expect(scanPii('IBAN GB82 WEST 1234 5698 7654 33')).toEqual([]);
    expect(scanPii('IBAN GB82WEST123456987654329')).toEqual([]);
    expect(scanPii('IBAN QQ82WEST12345698765432')).toEqual([]);
  });

  it('stops at the country length when words follow', () => {
    expect(scanPii('IBAN GB82 WEST 1234 5698 7654 32 THANKS')).toEqual([
      { kind: 'IBAN', subtype: 'GB', masked: '**** **** **** **** **54 32', offset: 5 },
    ]);
  });
});

describe('scanPii: national ids', () => {
  it('finds a valid SSN and ignores every never-issued range', () => {
    expect(scanPii('SSN 123-45-6789')).toEqual([{ kind: 'NATIONAL_ID', subtype: 'US_SSN', masked: '***-**-6789', offset: 4 }]);
    expect(scanPii('000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000')).toEqual([]);
  });

  it('finds French NIRs, Corsica included, and rejects a wrong key', () => {
    const mainland = `1 85 05 78 006 084 ${nirKey('1850578006084')}`;
    const corsica = `2 90 12 2A 004 123 ${nirKey('2901219004123')}`;
    expect(scanPii(`NIR ${mainland} / ${corsica}`)).toEqual<PiiFinding[]>([
      { kind: 'NATIONAL_ID', subtype: 'FR_NIR', masked: '* ** ** ** *** *84 91', offset: 4 },
      { kind: 'NATIONAL_ID', subtype: 'FR_NIR', masked: '* ** ** ** *** *23 67', offset: 28 },
    ]);
    expect(scanPii('NIR 1 85 05 78 006 084 92')).toEqual([]);
  });

  it('finds a UK NINO and rejects unallocated prefixes', () => {
    expect(scanPii('NI AB 12 34 56 C')).toEqual([{ kind: 'NATIONAL_ID', subtype: 'UK_NINO', masked: '** ** *4 56 C', offset: 3 }]);
    expect(scanPii('QQ123456C GB123456A')).toEqual([]);
  });
});

describe('scanPii: phones', () => {
  it('finds international and national numbers', () => {
    const text = 'Call +1 (555) 123-4567, +33 6 12 34 56 78, 06 12 34 56 78, 020 7946 0958 or 555.123.4567.';
    expect(scanPii(text)).toEqual<PiiFinding[]>([
      { kind: 'PHONE', subtype: 'INTERNATIONAL', masked: '+* (***) ***-4567', offset: 5 },
      { kind: 'PHONE', subtype: 'INTERNATIONAL', masked: '+** * ** ** 56 78', offset: 24 },
      { kind: 'PHONE', subtype: 'NATIONAL', masked: '** ** ** 56 78', offset: 43 },
      { kind: 'PHONE', subtype: 'NATIONAL', masked: '*** **** 0958', offset: 59 },
      { kind: 'PHONE', subtype: 'NATIONAL', masked: '***.***.4567', offset: 76 },
    ]);
  });

  it('ignores dates, short numbers, amounts and references', () => {
    expect(scanPii('On 01.02.2024, 2024-01-15 and 15/01/2024; total 12345678; ratio 0.12345678; ref 123456789; +33 12')).toEqual([]);
  });

  it('never reports a card or IBAN a second time as a phone', () => {
    const findings = scanPii('card 4111 1111 1111 1111 iban GB82 WEST 1234 5698 7654 32 ssn 123-45-6789');
    expect(findings.map((f) => f.kind)).toEqual(['CARD', 'IBAN', 'NATIONAL_ID']);
  });
});

describe('htmlToText', () => {
  it('drops head, scripts, styles and comments, breaks blocks and decodes entities', () => {
    const html =
      '<html><head><title>T</title><style>p{color:red}</style></head><body>' +
      '<p>Hello&nbsp;<b>Ann</b> &amp; co</p><!-- 4111 1111 1111 1111 --><script>var s = "</p>";</script>' +
      '<table><tr><td>Card</td><td>4111&#32;1111&#x20;1111 1111</td></tr></table><div>caf&eacute; &unknown;</div></body></html>';
    expect(htmlToText(html)).toBe('Hello Ann & co\n\nCard 4111 1111 1111 1111\n\ncaf&eacute; &unknown;');
  });
});

describe('htmlToText on ordinary and hostile HTML', () => {
  /** What htmlToText made of tags before the tokenizer: three regex passes (quadratic on hostile input). */
  function legacyTagPasses(html: string): string {
    return html
      .replace(
        /<\/?(?:address|article|aside|blockquote|br|dd|div|dl|dt|footer|form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|table|tbody|tfoot|thead|tr|ul)\b(?:[^>"']|"[^"]*"|'[^']*'){0,4000}>/gi,
        '\n',
      )
      .replace(/<\/?(?:td|th)\b(?:[^>"']|"[^"]*"|'[^']*'){0,4000}>/gi, ' ')
      .replace(/<(?:\/?[a-zA-Z][a-zA-Z0-9:-]*|!)(?:[^>"']|"[^"]*"|'[^']*'){0,4000}>/g, '');
  }

  it('gives the text the regex passes gave on ordinary HTML', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const html = ordinaryHtml(seed);
      // What the passes left holds no tag, so htmlToText only decodes and collapses it.
      expect(htmlToText(html), `seed ${seed}`).toBe(htmlToText(legacyTagPasses(html)));
    }
  });

  it('scans megabytes of unclosed tags and quotes and still finds the card after them', () => {
    const card = '<table><tr><td>Card</td><td>4111&nbsp;1111 1111 1111</td></tr></table>';
    for (const hostile of ['<p '.repeat(800_000), '<x '.repeat(800_000), '<p "'.padEnd(1_000_000, 'x').repeat(3), '<!'.repeat(1_000_000)]) {
      const findings = scanMessagePii({
        id: 'm',
        from: null,
        subject: null,
        date: null,
        headers: {},
        textBody: null,
        htmlBody: hostile + card,
      });
      expect(findings.map((f) => [f.kind, f.masked, f.source])).toEqual([['CARD', '**** **** **** 1111', 'html']]);
    }
  });
});

describe('scanMessagePii', () => {
  it('scans text body, HTML body as text and text attachments, tagging the source', () => {
    const message: ScannableMessage = {
      id: 'm1',
      from: 'a@example.com',
      subject: 'details',
      date: null,
      headers: {},
      textBody: 'card 4111 1111 1111 1111',
      htmlBody: '<p>IBAN <span>GB82 WEST</span> 1234 5698 7654 32</p>',
      attachments: [
        { filename: 'notes.txt', contentType: 'text/plain; charset=utf-8', content: Buffer.from('SSN 123-45-6789') },
        { filename: 'page.html', contentType: 'TEXT/HTML', content: Buffer.from('<b>+33 6 12 34 56 78</b>') },
        { filename: 'scan.pdf', contentType: 'application/pdf', content: Buffer.from('4111 1111 1111 1111') },
        { filename: null, contentType: 'text/csv' },
      ],
    };
    const findings = scanMessagePii(message);
    expect(findings).toEqual([
      { kind: 'CARD', subtype: 'VISA', masked: '**** **** **** 1111', offset: 5, source: 'text' },
      { kind: 'IBAN', subtype: 'GB', masked: '**** **** **** **** **54 32', offset: 5, source: 'html' },
      { kind: 'NATIONAL_ID', subtype: 'US_SSN', masked: '***-**-6789', offset: 4, source: 'attachment:notes.txt' },
      { kind: 'PHONE', subtype: 'INTERNATIONAL', masked: '+** * ** ** 56 78', offset: 0, source: 'attachment:page.html' },
    ]);
    expectNoRawValue(findings, ['4111 1111 1111 1111', 'GB82 WEST 1234 5698 7654 32', '123-45-6789', '+33 6 12 34 56 78']);
  });
});
