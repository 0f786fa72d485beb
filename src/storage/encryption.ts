import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** AES-256-GCM output: ciphertext plus what is needed to open it. */
export interface Sealed {
  ciphertext: Buffer;
  iv: Buffer;
  authTag: Buffer;
}

export class DecryptionError extends Error {
  constructor() {
    super('the encrypted data failed its integrity check (tampered with, or a different key)');
    this.name = 'DecryptionError';
  }
}

/** Encrypts with a fresh random 96-bit IV, as GCM requires a unique IV per message and key. */
export function seal(key: Buffer, plaintext: Buffer): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, iv, authTag: cipher.getAuthTag() };
}

/** Decrypts and verifies; throws DecryptionError rather than ever return unauthenticated bytes. */
export function open(key: Buffer, sealed: Sealed): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv);
    decipher.setAuthTag(sealed.authTag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch {
    throw new DecryptionError();
  }
}

/** A secret string sealed into one printable token (`v1.<iv>.<tag>.<ciphertext>`), for columns. */
export function sealString(key: Buffer, secret: string): string {
  const { ciphertext, iv, authTag } = seal(key, Buffer.from(secret, 'utf8'));
  return ['v1', iv.toString('base64'), authTag.toString('base64'), ciphertext.toString('base64')].join('.');
}

export function openString(key: Buffer, token: string): string {
  const [version, iv, authTag, ciphertext] = token.split('.');
  if (version !== 'v1' || !iv || !authTag || ciphertext === undefined) throw new DecryptionError();
  return open(key, {
    iv: Buffer.from(iv, 'base64'),
    authTag: Buffer.from(authTag, 'base64'),
    ciphertext: Buffer.from(ciphertext, 'base64'),
  }).toString('utf8');
}
