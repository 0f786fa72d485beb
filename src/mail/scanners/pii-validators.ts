/**
 * Check-digit and range rules behind the PII scanner. Each takes the value with separators already
 * removed and answers whether it is a real (well-formed) identifier, not merely a run of digits.
 */

/** Luhn (mod 10) check over a digit string. */
export function passesLuhn(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i -= 1) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Card schemes by issuer prefix (IIN) and allowed lengths; the first match wins, so order matters. */
const CARD_SCHEMES: readonly { name: string; prefix: RegExp; lengths: readonly number[] }[] = [
  { name: 'AMEX', prefix: /^3[47]/, lengths: [15] },
  { name: 'DINERS', prefix: /^3(?:0[0-5]|[689])/, lengths: [14, 15, 16, 17, 18, 19] },
  { name: 'JCB', prefix: /^35(?:2[89]|[3-8]\d)/, lengths: [16, 17, 18, 19] },
  { name: 'MIR', prefix: /^220[0-4]/, lengths: [16, 17, 18, 19] },
  { name: 'MASTERCARD', prefix: /^(?:5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)/, lengths: [16] },
  {
    name: 'DISCOVER',
    prefix: /^(?:6011|64[4-9]|65|622(?:12[6-9]|1[3-9]\d|[2-8]\d\d|9[01]\d|92[0-5]))/,
    lengths: [16, 17, 18, 19],
  },
  { name: 'UNIONPAY', prefix: /^62/, lengths: [16, 17, 18, 19] },
  { name: 'VISA', prefix: /^4/, lengths: [13, 16, 19] },
  { name: 'MAESTRO', prefix: /^(?:50|5[6-8]|6\d)/, lengths: [13, 14, 15, 16, 17, 18, 19] },
];

/**
 * Card scheme of a 13–19 digit number whose prefix and length fit a known scheme, else null.
 * Does not check Luhn; see {@link passesLuhn}.
 */
export function cardScheme(digits: string): string | null {
  for (const scheme of CARD_SCHEMES) {
    if (scheme.prefix.test(digits) && scheme.lengths.includes(digits.length)) return scheme.name;
  }
  return null;
}

/**
 * IBAN length per country (ISO 13616 registry): every SEPA country plus the other common
 * registrants. A country not listed is not recognised.
 */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MR: 27,
  MT: 31,
  MU: 30,
  NL: 18,
  NO: 15,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  SA: 24,
  SC: 31,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
};

/**
 * Full IBAN check on the compact upper-case form: known country, that country's length, check
 * digits 02–98 and the ISO 7064 mod-97 remainder of 1.
 */
export function isValidIban(compact: string): boolean {
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(compact)) return false;
  const expected = IBAN_LENGTHS[compact.slice(0, 2)];
  if (expected === undefined || compact.length !== expected) return false;
  // 00, 01 and 99 are never produced by the algorithm but 01 would still pass mod 97 (01 ≡ 98).
  const check = Number(compact.slice(2, 4));
  if (check < 2 || check > 98) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const value = ch >= 'A' ? ch.charCodeAt(0) - 55 : ch.charCodeAt(0) - 48;
    // Letters expand to two digits; folding per digit keeps the number small.
    remainder = value > 9 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder === 1;
}

/**
 * US Social Security Number (9 digits) outside the never-issued ranges: area 000, 666 and 900–999,
 * group 00, serial 0000.
 */
export function isValidSsn(digits: string): boolean {
  if (!/^\d{9}$/.test(digits)) return false;
  const area = digits.slice(0, 3);
  if (area === '000' || area === '666' || area.startsWith('9')) return false;
  return digits.slice(3, 5) !== '00' && digits.slice(5) !== '0000';
}

/**
 * French NIR (numéro de sécurité sociale), 15 characters: sex (1/2, or 3/4/7/8 for provisional
 * numbers), year, month (01–12, or INSEE's 20–42 and 50–99 for an unknown month), department
 * (digits, or 2A/2B for Corsica), commune, order and a key of 97 − (first 13 digits mod 97). For
 * the key, 2A counts as 19 and 2B as 18, per INSEE.
 */
export function isValidNir(compact: string): boolean {
  const m = /^([1-478]\d{2}(?:0[1-9]|1[0-2]|[23]\d|4[0-2]|[5-9]\d))(\d{2}|2A|2B)(\d{6})(\d{2})$/.exec(compact);
  if (!m) return false;
  const department = m[2] === '2A' ? '19' : m[2] === '2B' ? '18' : (m[2] ?? '');
  const body = Number(`${m[1]}${department}${m[3]}`);
  // Thirteen digits stay below 2^53, so plain numbers are exact here.
  return 97 - (body % 97) === Number(m[4]);
}

/** Prefixes HMRC never allocates for a National Insurance number. */
const NINO_BAD_PREFIXES = new Set(['BG', 'GB', 'NK', 'KN', 'TN', 'NT', 'ZZ']);

/**
 * UK National Insurance number (compact): two letters (not D, F, I, Q, U, V; second not O; not the
 * administrative prefixes), six digits, suffix A–D.
 */
export function isValidNino(compact: string): boolean {
  if (!/^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$/.test(compact)) return false;
  return !NINO_BAD_PREFIXES.has(compact.slice(0, 2));
}
