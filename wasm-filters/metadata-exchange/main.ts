// Entry point of metadata-exchange-filter.wasm: the ABI exports, and the one root context
// (Istio configures this filter without a root_id).
import { registerRootContext } from '../sdk/context';
import { createMetadataExchangeRoot } from './plugin';

export * from '../sdk/exports';

registerRootContext('', createMetadataExchangeRoot);
