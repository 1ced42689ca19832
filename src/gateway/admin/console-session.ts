// Console sign-in: the browser posts an access key and secret once to /_tessera/console/login; the
// gateway checks them against the same keys S3 requests are signed with and answers with a
// session cookie (HttpOnly, SameSite=Strict, scoped to /_tessera/console). The secret never stays
// in the page. Console requests that act (S3 calls, logout) must also carry the header
// `x-tessera-console: 1`, which a cross-site form cannot send.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AccessKeyProvider, Principal } from '../auth/keys.js';

export const SESSION_COOKIE = 'tessera_console';
export const CONSOLE_HEADER = 'x-tessera-console';
const IDLE_MS = 60 * 60_000;
const MAX_SESSIONS = 10_000;
/** Failed sign-ins allowed per client address per window, against guessing secrets. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 60_000;

interface Session {
  principal: Principal;
  expires: number;
}

export class ConsoleSessions {
  private readonly sessions = new Map<string, Session>();
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(private readonly keys: AccessKeyProvider, private readonly secureCookie: boolean) {}

  /** True while `client` has failed to sign in too often lately. */
  throttled(client: string): boolean {
    const entry = this.failures.get(client);
    return entry !== undefined && entry.resetAt > Date.now() && entry.count >= MAX_FAILURES;
  }

  /** A session id for valid credentials, undefined otherwise (same answer for unknown key and wrong secret). */
  async login(client: string, accessKeyId: string, secretAccessKey: string): Promise<string | undefined> {
    const key = await this.keys.lookup(accessKeyId);
    const given = Buffer.from(secretAccessKey);
    const expected = Buffer.from(key?.secretAccessKey ?? '');
    if (!key || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      this.recordFailure(client);
      return undefined;
    }
    this.dropExpired();
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, { principal: key.principal, expires: Date.now() + IDLE_MS });
    return id;
  }

  logout(request: FastifyRequest): void {
    const id = sessionIdOf(request);
    if (id) this.sessions.delete(id);
  }

  /** The signed-in principal; each use extends the session. */
  principalOf(request: FastifyRequest): Principal | undefined {
    const id = sessionIdOf(request);
    const session = id ? this.sessions.get(id) : undefined;
    if (!session || session.expires < Date.now()) return undefined;
    session.expires = Date.now() + IDLE_MS;
    return session.principal;
  }

  cookie(id: string | undefined): string {
    const value = id ?? '';
    const lifetime = id ? `Max-Age=${IDLE_MS / 1000}` : 'Max-Age=0';
    return `${SESSION_COOKIE}=${value}; Path=/_tessera/console; HttpOnly; SameSite=Strict; ${lifetime}${this.secureCookie ? '; Secure' : ''}`;
  }

  private recordFailure(client: string): void {
    const now = Date.now();
    if (this.failures.size > MAX_SESSIONS) this.failures.clear();
    const entry = this.failures.get(client);
    if (!entry || entry.resetAt <= now) this.failures.set(client, { count: 1, resetAt: now + FAILURE_WINDOW_MS });
    else entry.count++;
  }

  private dropExpired(): void {
    const now = Date.now();
    for (const [id, session] of this.sessions) if (session.expires < now) this.sessions.delete(id);
  }
}

function sessionIdOf(request: FastifyRequest): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === SESSION_COOKIE) return value.join('=') || undefined;
  }
  return undefined;
}

/** True when a request that acts came from the console page itself. */
export function fromConsolePage(request: FastifyRequest): boolean {
  return request.headers[CONSOLE_HEADER] === '1';
}
