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
