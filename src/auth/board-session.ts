import { createHash, createHmac } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';

/** How long the queue board's session cookie lasts. */
export const BOARD_SESSION_SECONDS = 15 * 60;

const AUDIENCE = 'jobwire:queue-board';

/**
 * The board session is signed with a key derived from JWT_SECRET, not with JWT_SECRET itself, so a
 * stolen board cookie is not a bearer token for the GraphQL API.
 */
function sessionKey(secret: string): Uint8Array {
  return createHmac('sha256', secret).update('jobwire queue board session').digest();
}

/** A short-lived session for the queue board, minted after an admin token was checked. */
export async function mintBoardSession(secret: string, adminId: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(adminId)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + BOARD_SESSION_SECONDS)
    .sign(sessionKey(secret));
}

/** The admin id of a valid board session, or null. */
export async function verifyBoardSession(secret: string, session: string): Promise<string | null> {
  try {
    const { payload } = await jwtVerify(session, sessionKey(secret), {
      algorithms: ['HS256'],
      audience: AUDIENCE,
      requiredClaims: ['sub', 'exp'],
    });
    return payload.sub ?? null;
  } catch {
    return null;
  }
}

/**
 * A fingerprint of a token, to remember that it was used without storing the token. Each part is
 * decoded and encoded again first: the JWT library accepts padding and stray whitespace, so
 * `<token>=` must count as the same token.
 */
export function tokenFingerprint(token: string): string {
  const canonical = token
    .trim()
    .split('.')
    .map((part) => Buffer.from(part, 'base64url').toString('base64url'))
    .join('.');
  return createHash('sha256').update(canonical).digest('hex');
}
