// lib/errors.ts: one base for every error the agent branches on — a stable code, the cause
// chained (and worded as Go's %w), and an instanceof that holds when a class exists twice at run
// time (pilot-agent loads istio-iptables from a second bundle with its own copy of each class).
import t from 'tap';
import { AgentError, errnoCode, errorMessage } from '../../lib/errors.js';

class ParentError extends AgentError {
  static override readonly code: string = 'TEST_PARENT';
}
class ChildError extends ParentError {
  static override readonly code: string = 'TEST_CHILD';
}
class OtherError extends AgentError {
  static override readonly code: string = 'TEST_OTHER';
}

/** A second copy of ChildError's chain, as a second bundle would define it. */
function secondCopy() {
  class ParentCopy extends AgentError {
    static override readonly code: string = 'TEST_PARENT';
  }
  class ChildCopy extends ParentCopy {
    static override readonly code: string = 'TEST_CHILD';
  }
  return { ParentCopy, ChildCopy };
}

t.test('code, name and message', async (t) => {
  const e = new ChildError('something failed');
  t.equal(e.code, 'TEST_CHILD');
  t.equal(e.name, 'ChildError');
  t.equal(e.message, 'something failed');
  t.equal(e.cause, undefined);
  t.equal(new ChildError('x', { code: 'TEST_FINER' }).code, 'TEST_FINER', 'a thrower may give a finer code');
});

t.test("a cause is chained and worded as Go's %w", async (t) => {
  const cause = Object.assign(new Error('open /x: no such file'), { code: 'ENOENT' });
  const e = new ParentError('failed to read mesh config', { cause });
  t.equal(e.message, 'failed to read mesh config: open /x: no such file');
  t.equal(e.cause, cause);
  t.equal(new ParentError('reading /x failed (open /x: no such file)', { cause, appendCause: false }).message, 'reading /x failed (open /x: no such file)');
  t.equal(new ParentError('wrapped', { cause: 'a string' }).message, 'wrapped: a string');
  t.equal(errnoCode(cause), 'ENOENT');
  t.equal(errnoCode(e), undefined);
  t.equal(errorMessage(e), e.message);
  t.equal(errorMessage(42), '42');
});

t.test('instanceof follows the class chain', async (t) => {
  const e = new ChildError('x');
  t.ok(e instanceof ChildError);
  t.ok(e instanceof ParentError);
  t.ok(e instanceof AgentError);
  t.ok(e instanceof Error);
  t.notOk(e instanceof OtherError);
  t.notOk(new ParentError('x') instanceof ChildError, 'a parent is not its child');
  t.notOk(new Error('x') instanceof AgentError);
  t.notOk((null as unknown) instanceof AgentError);
});

t.test('instanceof holds across two copies of a class (two bundles)', async (t) => {
  const { ParentCopy, ChildCopy } = secondCopy();
  const fromOtherBundle = new ChildCopy('x');
  t.ok(fromOtherBundle instanceof ChildError, 'the copy of ChildError is a ChildError');
  t.ok(fromOtherBundle instanceof ParentError);
  t.notOk(fromOtherBundle instanceof OtherError);
  t.ok(new ChildError('x') instanceof ChildCopy, 'and the other way round');
  t.notOk(new ParentError('x') instanceof ChildCopy);
  t.ok(new ParentError('x') instanceof ParentCopy);
});
