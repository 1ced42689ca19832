// Every operation in the S3 service model that botocore (the machine's python3) ships must reach
// its own handler or be refused as NotImplemented — never be served as a different operation (a
// RenameObject answered as an empty PutObject, say). The model is the clients' own description of
// the API, so operations AWS adds later are checked as soon as the clients know them.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { S3Error } from '../../src/gateway/errors.js';
import { ALL_OPERATIONS } from '../../src/gateway/ops/index.js';
import { OperationTable, resolveAddress } from '../../src/gateway/router.js';

interface ModelOperation {
  name: string;
  method: string;
  uri: string;
  /** Headers the model marks as required (x-amz-copy-source selects CopyObject, say). */
  requiredHeaders: string[];
  /** Query parameters the model marks as required (uploadId selects UploadPart, say). */
  requiredQuery: string[];
  /** Served on another endpoint (the S3 Express control plane, Object Lambda), not by a bucket store. */
  elsewhere: boolean;
}

const DUMP_MODEL = `
import botocore.session, json
model = botocore.session.get_session().get_service_model('s3')
ops = []
for name in model.operation_names:
    op = model.operation_model(name)
    shape = op.input_shape
    def required(location):
        return [] if shape is None else [
            member.serialization.get('name') for key, member in shape.members.items()
            if key in shape.required_members and member.serialization.get('location') == location]
    context = [p.name for p in op.static_context_parameters]
    ops.append({'name': name, 'method': op.http['method'], 'uri': op.http['requestUri'],
                'requiredHeaders': required('header'), 'requiredQuery': required('querystring'),
                'elsewhere': 'UseS3ExpressControlEndpoint' in context or 'UseObjectLambdaEndpoint' in context})
print(json.dumps(ops))
`;

/** Names the gateway gives operations that the model lists under an older or a newer alias. */
const ALIASES: Record<string, string> = {
  GetBucketLifecycle: 'GetBucketLifecycleConfiguration',
  PutBucketLifecycle: 'PutBucketLifecycleConfiguration',
  GetBucketNotification: 'GetBucketNotificationConfiguration',
  PutBucketNotification: 'PutBucketNotificationConfiguration',
};

/** `/{Bucket}/{Key+}?uploads&x-id=Foo` filled in with sample names, plus the required query members. */
function sampleUrl(operation: ModelOperation): string {
  const [path, query = ''] = operation.uri.split('?');
  const filled = path!.replace('{Bucket}', 'bucket').replace('{Key+}', 'some/key');
  const params = [
    ...query.split('&').filter((p) => p !== '' && !p.startsWith('x-id=')).map((p) => (p.includes('=') ? p : `${p}=`)),
    ...operation.requiredQuery.map((name) => `${name}=1`),
  ].join('&');
  return params ? `${filled}?${params}` : filled;
}

function selected(table: OperationTable, operation: ModelOperation): string {
  const url = sampleUrl(operation);
  const headers = new Map(operation.requiredHeaders.map((name) => [name.toLowerCase(), 'sample'] as const));
  try {
    return table.select(operation.method, resolveAddress(url, undefined), (name) => headers.get(name)).name;
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
}

t.test('each S3 operation in the clients\' model routes to itself or to NotImplemented', async (t) => {
  const model = JSON.parse(execFileSync('python3', ['-c', DUMP_MODEL], { encoding: 'utf8' })) as ModelOperation[];
  t.ok(model.length > 90, `botocore's model lists ${model.length} operations`);
  const table = new OperationTable().register(ALL_OPERATIONS);
  const wrong = model.filter((operation) => !operation.elsewhere).flatMap((operation) => {
    const got = selected(table, operation);
    const expected = ALIASES[operation.name] ?? operation.name;
    return got === expected || got === 'NotImplemented' ? [] : [`${operation.name} (${operation.method} ${operation.uri}) -> ${got}`];
  });
  t.same(wrong, [], 'no operation is served as another');
  const rename = model.find((operation) => operation.name === 'RenameObject');
  if (rename) t.equal(selected(table, rename), 'NotImplemented', 'RenameObject is refused, not stored as an empty object');
});
