// The rule engines behind access and browser features: policy wildcards and validation, POST
// policy conditions, CORS rule matching, canned ACL grants and key grants, multipart ETags.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { ALL_USERS, cannedGrants, grantsAllow, keyAccessAllows } from '../../src/gateway/acl.js';
import { matchCorsRule } from '../../src/gateway/ops/cors.js';
import { multipartEtag } from '../../src/gateway/ops/multipart.js';
import { checkPostPolicy } from '../../src/gateway/ops/post-object.js';
import { parsePolicy, wildcardMatch } from '../../src/gateway/policy.js';

t.test('policy wildcards', async (t) => {
  t.ok(wildcardMatch('arn:aws:s3:::b/*', 'arn:aws:s3:::b/a/b.txt'));
  t.ok(wildcardMatch('s3:Get*', 's3:getobject', true));
  t.notOk(wildcardMatch('s3:Get*', 's3:PutObject', true));
  t.ok(wildcardMatch('arn:aws:s3:::b/?.txt', 'arn:aws:s3:::b/a.txt'));
  t.notOk(wildcardMatch('arn:aws:s3:::b/?.txt', 'arn:aws:s3:::b/ab.txt'));
  t.ok(wildcardMatch('a.b(c)+', 'a.b(c)+'), 'regex characters are literal');
  fc.assert(fc.property(fc.string(), (s) => wildcardMatch('*', s) && wildcardMatch(s.replace(/[*?]/g, ''), s.replace(/[*?]/g, ''))));
});

t.test('policy validation', async (t) => {
  const statement = { Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' };
  t.equal(parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: statement }), 'b').Statement.length, 1, 'a single statement object');
  const refused = (policy: unknown) => t.throws(() => parsePolicy(typeof policy === 'string' ? policy : JSON.stringify(policy), 'b'), { code: 'MalformedPolicy' });
  refused('[1]');
  refused({ Statement: [{ ...statement, Effect: 'Perhaps' }] });
  refused({ Statement: [{ ...statement, Resource: 'arn:aws:s3:::other/*' }] });
  refused({ Statement: [{ ...statement, Action: 'ec2:RunInstances' }] });
  refused({ Statement: [{ ...statement, Condition: { StringSortOf: { 's3:prefix': 'a' } } }] });
  refused({ Version: '2001-01-01', Statement: [statement] });
});

t.test('POST policy conditions', async (t) => {
  const encode = (doc: unknown) => Buffer.from(JSON.stringify(doc)).toString('base64');
  const future = new Date(Date.now() + 60_000).toISOString();
  const fields = new Map([['key', 'uploads/a.txt'], ['content-type', 'text/plain'], ['policy', 'x']]);
  const policy = encode({ expiration: future, conditions: [{ bucket: 'b' }, ['starts-with', '$key', 'uploads/'], ['eq', '$Content-Type', 'text/plain'], ['content-length-range', 1, 10]] });
  t.same(checkPostPolicy(policy, fields, 'b'), { min: 1, max: 10 });
  t.throws(() => checkPostPolicy(policy, fields, 'other'), { code: 'AccessDenied' }, 'bucket condition');
  t.throws(() => checkPostPolicy(policy, new Map([...fields, ['key', 'elsewhere/a.txt']]), 'b'), { code: 'AccessDenied' }, 'starts-with');
  t.throws(() => checkPostPolicy(policy, new Map([...fields, ['x-amz-meta-extra', '1']]), 'b'), { code: 'AccessDenied' }, 'extra field');
  t.same(checkPostPolicy(policy, new Map([...fields, ['x-ignore-me', '1']]), 'b'), { min: 1, max: 10 }, 'x-ignore- fields');
  t.throws(() => checkPostPolicy(encode({ expiration: '2000-01-01T00:00:00Z', conditions: [] }), new Map(), 'b'), { code: 'AccessDenied' }, 'expired');
  t.throws(() => checkPostPolicy('not base64 json', new Map(), 'b'), { code: 'InvalidPolicyDocument' });
});

t.test('CORS rule matching', async (t) => {
  const rules = [
    { allowedOrigins: ['https://*.example.com'], allowedMethods: ['GET', 'PUT'], allowedHeaders: ['x-amz-*'], exposeHeaders: [] },
    { allowedOrigins: ['*'], allowedMethods: ['GET'], allowedHeaders: [], exposeHeaders: [] },
  ];
  t.equal(matchCorsRule(rules, 'https://a.example.com', 'PUT', ['x-amz-date']), rules[0]);
  t.equal(matchCorsRule(rules, 'https://a.example.com', 'PUT', ['authorization']), undefined, 'headers must all be allowed');
  t.equal(matchCorsRule(rules, 'https://evil.org', 'GET', []), rules[1], 'the first rule that matches');
  t.equal(matchCorsRule(rules, 'https://evil.org', 'DELETE', []), undefined);
});

t.test('ACL grants and key grants', async (t) => {
  const owner = { id: 'owner-id', displayName: 'owner' };
  const publicRead = cannedGrants('public-read', owner);
  const anonymous = { userId: 'anonymous', displayName: 'anonymous', isRoot: false };
  const someone = { accessKeyId: 'K', userId: 'someone', displayName: 's', isRoot: false };
  t.ok(grantsAllow(publicRead, anonymous, 'READ'));
  t.notOk(grantsAllow(publicRead, anonymous, 'WRITE'));
  t.ok(grantsAllow(publicRead, { ...someone, userId: 'owner-id' }, 'WRITE_ACP'), 'the owner has FULL_CONTROL');
  t.ok(grantsAllow(cannedGrants('authenticated-read', owner), someone, 'READ'));
  t.notOk(grantsAllow(cannedGrants('authenticated-read', owner), anonymous, 'READ'));
  t.same(publicRead[1]?.grantee, { type: 'Group', uri: ALL_USERS });
  t.throws(() => cannedGrants('world-writable', owner), { code: 'InvalidArgument' });
  t.ok(keyAccessAllows('read', 's3:GetObject'));
  t.notOk(keyAccessAllows('read', 's3:PutObject'));
  t.ok(keyAccessAllows('write', 's3:DeleteObject'));
  t.notOk(keyAccessAllows('write', 's3:PutBucketPolicy'));
  t.ok(keyAccessAllows('owner', 's3:PutBucketPolicy'));
  t.notOk(keyAccessAllows(undefined, 's3:GetObject'));
});

t.test('multipart ETag is the MD5 of the binary part MD5s with the part count', async (t) => {
  const parts = ['a', 'b', 'c'].map((s) => createHash('md5').update(s).digest('hex'));
  const expected = createHash('md5').update(Buffer.concat(parts.map((p) => Buffer.from(p, 'hex')))).digest('hex');
  t.equal(multipartEtag(parts.map((p) => ({ etag: `"${p}"` }))), `"${expected}-3"`);
});
