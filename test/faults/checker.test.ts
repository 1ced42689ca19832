// The fault checker itself, on hand-made histories: it must accept everything a linearizable
// register allows (overlapping writes either way, unanswered writes landing late) and flag stale
// reads, lost writes, resurrected deletes, wrong bytes and 500s.
import t from 'tap';
import { checkErrors, checkListing, RegisterChecker } from '../lib/faults/checker.js';
import { History, type ReadOp, type WriteOp } from '../lib/faults/history.js';

function historyOf(writes: Array<Partial<WriteOp> & Pick<WriteOp, 'value' | 'invokedAt' | 'completedAt'>>): History {
  const history = new History();
  for (const w of writes) {
    if (w.value) history.newValue('k', w.value, 10 + history.values.size);
    history.writes.push({ kind: w.value ? 'put' : 'delete', key: 'k', outcome: 'ok', answered: true, status: '200', ...w });
  }
  return history;
}

const read = (value: string | null, invokedAt: number, completedAt: number): ReadOp => ({ key: 'k', value, invokedAt, completedAt, status: '200' });

t.test('sequential writes: a read sees the latest acknowledged one', async (t) => {
  const checker = new RegisterChecker(historyOf([{ value: 'a', invokedAt: 0, completedAt: 10 }, { value: 'b', invokedAt: 20, completedAt: 30 }]));
  t.equal(checker.checkValue('k', 'b', 40, 50), undefined, 'latest value accepted');
  t.equal(checker.checkValue('k', 'a', 40, 50)?.kind, 'stale-read', 'superseded value flagged');
  t.equal(checker.checkValue('k', 'a', 25, 50), undefined, 'older value accepted while the newer write is in flight');
  t.equal(checker.checkValue('k', null, 5, 8), undefined, 'absent before the first write completed');
  t.equal(checker.checkValue('k', 'a', 40, 50, true)?.kind, 'lost-write', 'a settled read missing the last write is a loss');
});

t.test('overlapping writes may land either way', async (t) => {
  const checker = new RegisterChecker(historyOf([{ value: 'a', invokedAt: 0, completedAt: 30 }, { value: 'b', invokedAt: 10, completedAt: 20 }]));
  t.equal(checker.checkValue('k', 'a', 40, 50, true), undefined, 'a accepted');
  t.equal(checker.checkValue('k', 'b', 40, 50, true), undefined, 'b accepted');
});

t.test('an unanswered write may land at any time, an answered failure only before its answer', async (t) => {
  const checker = new RegisterChecker(historyOf([
    { value: 'a', invokedAt: 0, completedAt: 10, outcome: 'unknown', answered: false, status: 'ECONNRESET' },
    { value: 'b', invokedAt: 20, completedAt: 30 },
    { value: 'c', invokedAt: 40, completedAt: 50, outcome: 'unknown', status: '503' },
    { value: 'd', invokedAt: 60, completedAt: 70 },
  ]));
  t.equal(checker.checkValue('k', 'a', 80, 90, true), undefined, 'the unanswered write may have won');
  t.equal(checker.checkValue('k', 'c', 80, 90, true)?.kind, 'lost-write', 'the 503 write cannot beat a later acknowledged one');
  t.equal(checker.checkValue('k', 'b', 80, 90, true)?.kind, 'lost-write', 'an overwritten value coming back is a loss');
});

t.test('an acknowledged delete stays deleted', async (t) => {
  const checker = new RegisterChecker(historyOf([{ value: 'a', invokedAt: 0, completedAt: 10 }, { value: null, invokedAt: 20, completedAt: 30 }]));
  t.equal(checker.checkValue('k', null, 40, 50, true), undefined, 'absent accepted');
  t.equal(checker.checkValue('k', 'a', 40, 50, true)?.kind, 'deleted-came-back', 'resurrected object flagged');
});

t.test('wrong bytes, unexpected errors and listings', async (t) => {
  const history = historyOf([{ value: 'a', invokedAt: 0, completedAt: 10 }]);
  t.equal(history.identify('k', Buffer.from('not a written value')), undefined, 'foreign bytes identify as no value');
  history.reads.push({ key: 'k', invokedAt: 20, completedAt: 30, corrupt: true, status: '200' });
  history.reads.push({ key: 'k', invokedAt: 20, completedAt: 30, status: '500' });
  const checker = new RegisterChecker(history);
  t.same(checker.checkReads().map((v) => v.kind), ['corrupt-read'], 'corrupt read flagged');
  t.same(checkErrors(history).map((v) => v.detail), ['GET answered 500'], '500 flagged, 503 and transport errors not');
  t.same(checkListing(history, [read('a', 40, 50)], [{ key: 'k', size: 10 }]), [], 'listing with the readable object passes');
  t.same(checkListing(history, [read(null, 40, 50)], [{ key: 'k', size: 10 }]).map((v) => v.kind), ['listing'], 'listed but deleted flagged');
});
