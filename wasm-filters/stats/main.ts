// Entry point of stats-filter.wasm: the ABI exports and Istio's two root ids.
import { registerRootContext } from '../sdk/context';
import { createInboundRoot, createOutboundRoot } from './plugin';

export * from '../sdk/exports';

registerRootContext('stats_outbound', createOutboundRoot);
registerRootContext('stats_inbound', createInboundRoot);
