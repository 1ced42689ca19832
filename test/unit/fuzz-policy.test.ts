// Property-based test of the bucket-policy parser (PutBucketPolicy bodies come from the network):
// any input is a valid policy or MalformedPolicy, never an exception that would become a 500.
import fc from 'fast-check';
import t from 'tap';
import { S3Error } from '../../src/gateway/errors.js';
import { parsePolicy } from '../../src/gateway/policy.js';

function parsesOrMalformed(text: string): boolean {
  try {
    parsePolicy(text, 'bucket');
    return true;
  } catch (err) {
    if (err instanceof S3Error && err.code === 'MalformedPolicy') return true;
    throw err;
  }
}

t.test('bucket policies: any JSON is a valid policy or MalformedPolicy', async (t) => {
  const policyish = fc.record({
    Version: fc.option(fc.constantFrom('2012-10-17', '2008-10-17', 'x')),
    Statement: fc.oneof(fc.anything(), fc.array(fc.record({
      Effect: fc.oneof(fc.constantFrom('Allow', 'Deny'), fc.anything()),
      Principal: fc.oneof(fc.constant('*'), fc.anything()),
      Action: fc.oneof(fc.constantFrom('s3:GetObject', 's3:*', '*'), fc.anything()),
      Resource: fc.oneof(fc.constantFrom('arn:aws:s3:::bucket/*', 'arn:aws:s3:::other/*'), fc.anything()),
      Condition: fc.option(fc.dictionary(fc.constantFrom('IpAddress', 'StringEquals', 'Bool', 'Bogus'), fc.anything())),
    }, { requiredKeys: [] }), { maxLength: 3 })),
  }, { requiredKeys: [] });
  fc.assert(fc.property(fc.oneof(policyish.map((p) => JSON.stringify(p)), fc.json(), fc.string({ maxLength: 200 })), parsesOrMalformed), { numRuns: 500 });
});

