// A node's LevelDB key bytes are its on-disk format: they must stay exactly what the layout in
// meta-keys.ts describes, whatever the names hold (multi-byte UTF-8 included), and names with NUL
// are refused since NUL ends a part.
import fc from 'fast-check';
import t from 'tap';
import { StoreError } from '../../src/common/errors.js';
import { Space, prefixKey, recordKey } from '../../src/storage-node/meta-keys.js';

const layout = (space: string, parts: string[]) => Buffer.concat([
  Buffer.from(space), ...parts.flatMap((p) => [Buffer.of(0), Buffer.from(p, 'utf8')]), Buffer.of(0),
]);

t.test('record keys are space 0 part 0 part ... 0, and prefixes stop at the partial part', async (t) => {
  t.same(recordKey(Space.Tombstone, 'bucket', 'dir/ключ', 'null'), layout('t', ['bucket', 'dir/ключ', 'null']));
  t.same(prefixKey(Space.Object, ['bucket'], 'dir/'), Buffer.from('o\0bucket\0dir/'));
  t.same(prefixKey(Space.Upload, ['bucket', 'key']), Buffer.from('u\0bucket\0key\0'));
  const name = fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !s.includes('\0'));
  fc.assert(fc.property(fc.array(name, { minLength: 1, maxLength: 4 }), (parts) => {
    t.same(recordKey(Space.Kept, ...parts), layout('k', parts));
  }));
});

function refusal(build: () => Buffer): string {
  try {
    build();
    return 'accepted';
  } catch (err) {
    return err instanceof StoreError ? err.kind : String(err);
  }
}

t.test('a name with NUL is refused as an invalid argument', async (t) => {
  t.equal(refusal(() => recordKey(Space.Tombstone, 'bucket', 'a\0b', 'null')), 'InvalidArgument');
  t.equal(refusal(() => prefixKey(Space.Object, ['bucket'], 'p\0')), 'InvalidArgument');
});
