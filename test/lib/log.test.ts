import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { configureLogging, FatalError, LogConfigError, parseLevelList, scope } from '../../lib/log.js';

t.test('level lists parse like Istio', async (t) => {
  const r = parseLevelList('default:info,xds:debug', '--log_output_level');
  t.same(
    [...r.scopes],
    [
      ['default', 'info'],
      ['xds', 'debug'],
    ],
  );
  t.equal(r.all, undefined);
  t.equal(parseLevelList('warn', 'x').all, 'warn');
  t.throws(() => parseLevelList('default:verbose', '--log_output_level'), LogConfigError);
});

t.test('scoped levels, text and JSON formats, file targets', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'log-'));
  const file = join(dir, 'agent.log');
  configureLogging({ outputLevels: 'default:warn,xds:debug', targets: [file] });
  scope('default').info('hidden');
  scope('default').warn('shown');
  scope('xds').debug('xds detail');
  scope('grpc').error('grpc is none by default');
  configureLogging({ outputLevels: 'info', asJson: true, targets: [file] });
  scope('sds').info('json line', { resource: 'default' });
  configureLogging({ targets: ['stdout'] });
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\twarn\tshown$/);
  t.match(lines[1]!, /\tdebug\txds\txds detail$/);
  const rec = JSON.parse(lines[2]!);
  t.same({ level: rec.level, scope: rec.scope, msg: rec.msg, resource: rec.resource }, { level: 'info', scope: 'sds', msg: 'json line', resource: 'default' });
});

t.test('fatal throws FatalError for the CLI to map to exit 1', async (t) => {
  configureLogging({ outputLevels: 'none' });
  t.throws(() => scope('default').fatal('boom'), FatalError);
  configureLogging({});
});
