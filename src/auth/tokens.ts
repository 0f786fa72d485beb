import { jwtVerify, SignJWT, errors } from 'jose';

export type Role = 'user' | 'admin';

/** Who is calling: the token's `sub` owns jobs and accounts; admins see everyone's. */
export interface Viewer {
  id: string;
  role: Role;
  /** Expiry, seconds since the epoch; long-lived subscriptions end when it passes. */
  exp: number;
}

export class InvalidTokenError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidTokenError';
  }
}

const encoder = new TextEncoder();

/** Signs an HS256 token with claims `sub`, `role` and `exp`. */
export async function mintToken(secret: string, claims: { sub: string; role: Role; ttlSeconds?: number }): Promise<string> {
  return new SignJWT({ role: claims.role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (claims.ttlSeconds ?? 24 * 3600))
    .sign(encoder.encode(secret));
}

/** Verifies signature, algorithm and expiry; the reason given never echoes the token. */
export async function verifyToken(secret: string, token: string): Promise<Viewer> {
  try {
    const { payload } = await jwtVerify(token, encoder.encode(secret), { algorithms: ['HS256'], requiredClaims: ['sub', 'exp'] });
    const role = payload.role;
    if (role !== 'user' && role !== 'admin') throw new InvalidTokenError('token role must be user or admin');
    if (!payload.sub) throw new InvalidTokenError('token has no subject');
    return { id: payload.sub, role, exp: payload.exp! };
  } catch (error) {
    if (error instanceof InvalidTokenError) throw error;
    if (error instanceof errors.JWTExpired) throw new InvalidTokenError('token expired');
    throw new InvalidTokenError('invalid token');
  }
}

/** The token of an `Authorization: Bearer …` header value, or null. */
export function bearerToken(header: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1]! : null;
}

/** Verified tokens kept per process. (Default: 10,000; the least recently verified go first) */
const VERIFIED_TOKENS_KEPT = 10_000;

/**
 * `verifyToken` with the verified claims kept until the token expires, so a client sending the same
 * token on every request pays for one HMAC check, not one per request. Only valid tokens are kept
 * (garbage cannot fill the cache), at most `maxEntries`, and never past their `exp`.
 */
export class TokenVerifier {
  private readonly verified = new Map<string, Viewer>();

  constructor(
    private readonly secret: string,
    private readonly maxEntries = VERIFIED_TOKENS_KEPT,
  ) {}

  async verify(token: string): Promise<Viewer> {
    const cached = this.verified.get(token);
    if (cached && cached.exp * 1000 > Date.now()) return cached;
    if (cached) this.verified.delete(token);
    const viewer = await verifyToken(this.secret, token);
    if (this.verified.size >= this.maxEntries) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, viewer);
    return viewer;
  }
}
