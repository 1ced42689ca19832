// Cluster membership proof carried on every storage-node call: an HMAC of a timestamp under the
// cluster secret. A node port reached without the secret serves nothing.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const AUTH_METADATA_KEY = 'x-tessera-auth';
const MAX_SKEW_MS = 5 * 60_000;

export function makeClusterToken(secret: string, now = Date.now()): string {
  const ts = String(now);
  return `${ts}.${createHmac('sha256', secret).update(`tessera-node-v1:${ts}`).digest('hex')}`;
}

export function verifyClusterToken(secret: string, token: string | undefined, now = Date.now()): boolean {
  if (!token) return false;
  const dot = token.indexOf('.');
  if (dot <= 0) return false;
  const ts = Number(token.slice(0, dot));
  if (!Number.isFinite(ts) || Math.abs(now - ts) > MAX_SKEW_MS) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`tessera-node-v1:${ts}`).digest('hex'));
  const given = Buffer.from(token.slice(dot + 1));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
