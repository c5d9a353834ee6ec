// Property: whatever the labels, annotations, pod name and metadata values contain — quotes,
// backslashes, newlines, control characters, any Unicode — the bootstrap as written is valid
// JSON, Envoy's schema accepts it, and node metadata carries the inputs back unchanged. (Istio's
// text template prints these values unescaped, so a `"` in a label breaks its bootstrap.)
import fc from 'fast-check';
import t from 'tap';
import { formatDownwardApi, parseDownwardApi } from '../../config/index.js';
import { renderBootstrap, serializeBootstrap } from '../../bootstrap/index.js';
import { testInput } from '../support/bootstrap-input.js';
import { loadEnvoySchema } from '../support/envoy-schema.js';

const nasty = fc.constantFrom('"', '\\', '\n', '\r', '\t', '\u0000', '\u001f', '\u2028', "'", '<', '>', '&', '=', '{', '}', '[', ']', ',', '.', '/', 'é', 'ß', '中', '😀', 'a', 'Z', '0', ' ');
const text = fc.oneof(fc.string({ unit: nasty, maxLength: 24 }), fc.string({ unit: 'binary', maxLength: 16 }));
// Downward-API keys cannot hold `=` or a newline (the file format splits on them).
const key = fc.string({ unit: nasty, minLength: 1, maxLength: 16 }).filter((k) => !/[=\n]/.test(k));
const SPECIAL_LABELS = new Set(['pod-template-hash', 'istio-locality', 'topology.istio.io/locality']);
const stringMap = fc.dictionary(key, text, { maxKeys: 6 }).map((d) => new Map(Object.entries(d).filter(([k]) => !SPECIAL_LABELS.has(k))));

const schema = loadEnvoySchema();

t.test('any labels, annotations, IDs and metadata values give valid JSON that round-trips', async (t) => {
  let runs = 0;
  fc.assert(
    fc.property(
      stringMap,
      stringMap,
      text,
      text,
      text,
      fc.dictionary(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 8 }), text, { maxKeys: 4 }),
      (labels, annotations, podName, namespace, id, extra) => {
        // The labels and annotations go through the downward-API file format as the kubelet writes it.
        const labelsFile = parseDownwardApi(formatDownwardApi(labels));
        const annotationsFile = parseDownwardApi(formatDownwardApi(annotations));
        const metaEnv = Object.entries(extra).map(([k, v]) => [`ISTIO_META_X_${k}`, v] as [string, string]);
        const input = testInput({
          nodeId: `sidecar~10.0.0.1~${id}~cluster.local`,
          envs: [['POD_NAME', podName], ['POD_NAMESPACE', namespace], ...metaEnv],
          podLabels: labelsFile.size ? labelsFile : undefined,
          podAnnotations: annotationsFile,
        });
        const written = serializeBootstrap(renderBootstrap(input));
        const b = JSON.parse(written);
        const m = b.node.metadata;
        const asObj = (x: Map<string, string>) => (x.size ? Object.fromEntries(x) : undefined);
        t.strictSame(m.LABELS, asObj(labels));
        t.strictSame(m.ANNOTATIONS, asObj(annotations));
        t.equal(b.node.id, `sidecar~10.0.0.1~${id}~cluster.local`);
        t.equal(m.NAME, podName || undefined);
        t.equal(m.NAMESPACE, namespace || undefined);
        for (const [k, v] of Object.entries(extra)) t.equal(m[`X_${k}`], v);
        if (runs++ % 4 === 0) t.strictSame(schema.validate(b), [], 'Envoy schema accepts it');
        return true;
      },
    ),
    { numRuns: 150 },
  );
  t.ok(runs >= 150);
});
