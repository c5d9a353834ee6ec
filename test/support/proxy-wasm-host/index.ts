// A proxy-wasm host for tests (never shipped): see host.ts for the rules it follows.
export * from './abi.js';
export * from './host.js';
export * from './sidecar.js';
export { MetricStore, istioStatsTags, DEFAULT_BUCKETS, ISTIO_STANDARD_LABELS, type Sample } from './stats.js';
export { decodeFlatNode, encodeFlatNode, FbTable, type FlatNode } from './flatbuffers.js';
export { encodePairs, decodePairs } from './pairs.js';
export { readModuleInterface } from './wasm-binary.js';
export { parseCel, evaluateCel } from './cel.js';
