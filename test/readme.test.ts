// The README's promises: the environment tables match the registries, and `npm start`'s entry
// starts and stops the agent cleanly.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { envTablesMarkdown, replaceEnvSection } from '../agent/dev/env-doc.js';
import { spawnCli } from './support/cli.js';
import { projectRoot } from './support/paths.js';

t.test('README environment tables are generated from the registries (run `npm run docs`)', async (t) => {
  const readme = readFileSync(resolve(projectRoot, 'README.md'), 'utf8');
  t.equal(readme, replaceEnvSection(readme, await envTablesMarkdown()));
});

t.test('npm start entry: starts in out/local and stops cleanly on SIGINT', async (t) => {
  const run = spawnCli([], {
    bin: resolve(projectRoot, 'dist/agent/dev/start-local.js'),
    env: { PATH: `${mkdtempSync(join(tmpdir(), 'nopath-'))}:/usr/bin:/bin` },
  });
  await run.waitFor(/runs without Envoy/);
  t.match(run.output().stdout, /no envoy on PATH/);
  t.equal(
    run
      .output()
      .stdout.split('\n')
      .filter((l) => /without Envoy/.test(l)).length,
    1,
    'one line: the agent runs without Envoy',
  );
  run.child.kill('SIGINT');
  const r = await run.exited;
  t.equal(r.code, 0);
  t.match(r.stdout, /Agent draining: received signal: SIGINT/);
});
