// Istio's standard metrics (istio.stats), after istio/proxy extensions/stats/plugin.{h,cc} as
// shipped through Istio 1.17. One module, two root ids: `stats_outbound` reports as the source
// (client sidecars, gateways), `stats_inbound` as the destination.
//
// Every request or connection resolves a vector of label values; each metric is defined once
// per distinct vector under a name that spells its labels out
// (`reporter=.=source;.;…;.;istio_requests_total`), and Envoy's `stats_tags` regexes turn those
// back into Prometheus labels. Resolved metric ids are cached per label vector.
import { Action, MetricType } from '../sdk/abi';
import { RootContext, StreamContext, hasStreamContext } from '../sdk/context';
import { defineMetric, getPluginConfiguration, getPropertyString, incrementMetric, logCritical, logDebug, logWarn, recordMetric, setEffectiveContext, setTickPeriodMilliseconds } from '../sdk/host';
import { NodeInfo } from '../common/flatnode';
import { JsonKind, JsonValue, jsonBool, jsonString, parseJsonObject } from '../common/json';
import { localNodeFromProperties } from '../common/node';
import { parseDuration } from '../common/duration';
import { StandardLabels, countPeerLabels, countStandardLabels, countTcpLabels, dimensionsKey, mapDimensions, mapNode, reporter } from './dimensions';
import { createExpression, deleteExpression, evaluateInt, evaluateString } from './expressions';
import { lookupPeer, Protocol, RequestInfo, populateGRPCInfo, populateHTTPRequestInfo, populateRequestInfo, populateRequestProtocol, populateTCPRequestInfo } from './request-info';

const DefaultTcpReportDurationMilliseconds: u32 = 15000;
const DefaultFieldSeparator = ';.;';
const DefaultValueSeparator = '=.=';
/** Hard-coded: Istio's `stat_prefix` option has been ignored since 1.7. */
const StatPrefix = 'istio_';

/** How a metric's value is taken from the request (a closure per metric upstream). */
namespace Extractor {
  export const One: i32 = 0;
  export const DurationMillis: i32 = 1;
  export const RequestBytes: i32 = 2;
  export const ResponseBytes: i32 = 3;
  export const RequestMessages: i32 = 4;
  export const ResponseMessages: i32 = 5;
  export const TcpSentBytes: i32 = 6;
  export const TcpReceivedBytes: i32 = 7;
  export const TcpOpened: i32 = 8;
  export const TcpClosed: i32 = 9;
  export const Expression: i32 = 10;
}

class MetricFactory {
  constructor(
    public name: string,
    public type: u32,
    public extractor: i32,
    public protocols: u32,
    public countLabels: i32,
    /** Reported mid-stream (on ticks) too, not only at the end. */
    public recurrent: bool,
    public token: u32 = 0,
  ) {}
}

const HttpOrGrpc = Protocol.HTTP | Protocol.GRPC;

function defaultMetrics(): MetricFactory[] {
  return [
    new MetricFactory('requests_total', MetricType.Counter, Extractor.One, HttpOrGrpc, countStandardLabels, false),
    new MetricFactory('request_duration_milliseconds', MetricType.Histogram, Extractor.DurationMillis, HttpOrGrpc, countStandardLabels, false),
    new MetricFactory('request_bytes', MetricType.Histogram, Extractor.RequestBytes, HttpOrGrpc, countStandardLabels, false),
    new MetricFactory('response_bytes', MetricType.Histogram, Extractor.ResponseBytes, HttpOrGrpc, countStandardLabels, false),
    new MetricFactory('request_messages_total', MetricType.Counter, Extractor.RequestMessages, Protocol.GRPC, countPeerLabels, true),
    new MetricFactory('response_messages_total', MetricType.Counter, Extractor.ResponseMessages, Protocol.GRPC, countPeerLabels, true),
    new MetricFactory('tcp_sent_bytes_total', MetricType.Counter, Extractor.TcpSentBytes, Protocol.TCP, countTcpLabels, true),
    new MetricFactory('tcp_received_bytes_total', MetricType.Counter, Extractor.TcpReceivedBytes, Protocol.TCP, countTcpLabels, true),
    new MetricFactory('tcp_connections_opened_total', MetricType.Counter, Extractor.TcpOpened, Protocol.TCP, countTcpLabels, true),
    new MetricFactory('tcp_connections_closed_total', MetricType.Counter, Extractor.TcpClosed, Protocol.TCP, countTcpLabels, false),
  ];
}

/** The value to record; mid-stream deltas are consumed (the next report starts from zero). */
function extract(f: MetricFactory, info: RequestInfo): u64 {
  switch (f.extractor) {
    case Extractor.One:
      return 1;
    case Extractor.DurationMillis:
      return <u64>(info.duration / 1000000);
    case Extractor.RequestBytes:
      return <u64>info.requestSize;
    case Extractor.ResponseBytes:
      return <u64>info.responseSize;
    case Extractor.RequestMessages: {
      const out = info.requestMessageCount - info.lastRequestMessageCount;
      info.lastRequestMessageCount = info.requestMessageCount;
      return out;
    }
    case Extractor.ResponseMessages: {
      const out = info.responseMessageCount - info.lastResponseMessageCount;
      info.lastResponseMessageCount = info.responseMessageCount;
      return out;
    }
    case Extractor.TcpSentBytes: {
      const out = info.tcpSentBytes;
      info.tcpSentBytes = 0;
      return out;
    }
    case Extractor.TcpReceivedBytes: {
      const out = info.tcpReceivedBytes;
      info.tcpReceivedBytes = 0;
      return out;
    }
    case Extractor.TcpOpened: {
      const out = info.tcpConnectionsOpened;
      info.tcpConnectionsOpened = 0;
      return out;
    }
    case Extractor.TcpClosed:
      return info.tcpConnectionsClosed;
    case Extractor.Expression: {
      const r = evaluateInt(f.token);
      if (!r.ok) logDebug('failed to evaluate expression for metric ' + f.name);
      return <u64>r.value;
    }
  }
  return 0;
}

/** A metric resolved for one label vector. */
class SimpleStat {
  constructor(
    public metricId: u32,
    public factory: MetricFactory,
  ) {}

  record(info: RequestInfo): void {
    const value = extract(this.factory, info);
    // Counters never record zero.
    if (this.factory.type == MetricType.Counter && value == 0) return;
    recordMetric(this.metricId, value);
  }
}

/** Creates SimpleStats for a metric from label vectors, defining each full name once. */
class StatGen {
  private ids: Map<string, u32> = new Map<string, u32>();

  constructor(
    public factory: MetricFactory,
    public tags: string[],
    public indexes: i32[],
    public fieldSeparator: string,
    public valueSeparator: string,
  ) {}

  matchesProtocol(protocol: u32): bool {
    return (this.factory.protocols & protocol) != 0;
  }

  resolve(instance: string[]): SimpleStat | null {
    let n = '';
    for (let i = 0; i < this.tags.length; i++) n += this.tags[i] + this.valueSeparator + instance[this.indexes[i]] + this.fieldSeparator;
    n += StatPrefix + this.factory.name;
    if (this.ids.has(n)) return new SimpleStat(this.ids.get(n), this.factory);
    const id = defineMetric(this.factory.type, n);
    if (id < 0) {
      logWarn('cannot define metric ' + n);
      return null;
    }
    this.ids.set(n, <u32>id);
    return new SimpleStat(<u32>id, this.factory);
  }
}

/** A metric named the C++ SDK way: `<tag>.<value>.` per tag, then the name. */
function defineTaggedMetric(type: u32, name: string, tags: string[], values: string[]): i64 {
  let n = '';
  for (let i = 0; i < tags.length; i++) n += tags[i] + '.' + values[i] + '.';
  return defineMetric(type, n + name);
}

class ExpressionInfo {
  constructor(
    public token: u32,
    public expression: string,
  ) {}
}

const Removed: i32 = -1;

export class StatsRoot extends RootContext {
  readonly outbound: bool;
  readonly peerMetadataIdKey: string;
  readonly peerMetadataKey: string;
  useHostHeaderFallback: bool = true;
  private initialized: bool = false;
  private localNode: NodeInfo = new NodeInfo();
  private istioDimensions: string[] = [];
  private expressions: ExpressionInfo[] = [];
  private inputExpressions: Map<string, i32> = new Map<string, i32>();
  private intExpressions: u32[] = [];
  private stats: StatGen[] = [];
  private metrics: Map<string, SimpleStat[]> = new Map<string, SimpleStat[]>();
  private requestQueue: Map<u32, StatsStream> = new Map<u32, StatsStream>();
  private cacheHits: i64;
  private cacheMisses: i64;
  private cacheHitsAccumulator: i64 = 0;

  constructor(id: u32, rootId: string, outbound: bool) {
    super(id, rootId);
    this.outbound = outbound;
    this.peerMetadataIdKey = outbound ? 'upstream_peer_id' : 'downstream_peer_id';
    this.peerMetadataKey = outbound ? 'upstream_peer' : 'downstream_peer';
    this.cacheHits = defineTaggedMetric(MetricType.Counter, 'metric_cache_count', ['wasm_filter', 'cache'], ['stats_filter', 'hit']);
    this.cacheMisses = defineTaggedMetric(MetricType.Counter, 'metric_cache_count', ['wasm_filter', 'cache'], ['stats_filter', 'miss']);
  }

  /** A configuration error leaves the plugin uninitialized (it reports nothing) but never rejects it: that would crash Envoy. */
  onConfigure(size: u32): bool {
    this.initialized = this.configure(size);
    return true;
  }

  private configure(size: u32): bool {
    const text = String.UTF8.decode(getPluginConfiguration(size));
    this.localNode = localNodeFromProperties();
    const json = parseJsonObject(text);
    if (json === null) {
      logWarn('cannot parse plugin configuration JSON string: ' + text);
      return false;
    }
    this.useHostHeaderFallback = jsonBool(json, 'disable_host_header_fallback') != 1;
    this.initializeDimensions(json);

    let tickMillis = DefaultTcpReportDurationMilliseconds;
    const duration = jsonString(json, 'tcp_reporting_duration');
    if (duration !== null) {
      const d = parseDuration(duration);
      if (d.ok) tickMillis = <u32>d.millis;
      else logWarn("failed to parse 'tcp_reporting_duration': " + duration);
    }
    setTickPeriodMilliseconds(tickMillis);
    return true;
  }

  private initializeDimensions(j: JsonValue): void {
    this.cleanupExpressions();
    // Resolved metrics belong to the previous label layout (upstream keeps them across a
    // reconfiguration of the same root; Envoy gives each configuration a new root anyway).
    this.metrics.clear();

    const factories = new Map<string, MetricFactory>();
    const factoryOrder: string[] = [];
    const metricTags = new Map<string, string[]>();
    const metricIndexes = new Map<string, Map<string, i32>>();

    const defaults = defaultMetrics();
    for (let i = 0; i < defaults.length; i++) {
      const f = defaults[i];
      factories.set(f.name, f);
      factoryOrder.push(f.name);
      metricTags.set(f.name, StandardLabels.slice(0, f.countLabels));
      const idx = new Map<string, i32>();
      for (let k = 0; k < f.countLabels; k++) idx.set(StandardLabels[k], k);
      metricIndexes.set(f.name, idx);
    }

    // Custom metrics (an existing name is overridden).
    const definitions = j.get('definitions');
    if (definitions !== null) {
      if (definitions.kind != JsonKind.Array) logWarn("failed to parse 'definitions'");
      else {
        for (let i = 0; i < definitions.items.length; i++) {
          const d = definitions.items[i];
          const name = d.kind == JsonKind.Object ? jsonString(d, 'name') : null;
          const value = d.kind == JsonKind.Object ? jsonString(d, 'value') : null;
          if (name === null || value === null || name.length == 0 || value.length == 0) {
            logWarn("empty name or value in 'definitions'");
            logWarn("failed to parse 'definitions'");
            break;
          }
          const token = this.addIntExpression(value);
          if (token < 0) {
            logWarn('failed to construct expression: ' + value);
            logWarn("failed to parse 'definitions'");
            break;
          }
          const type = jsonString(d, 'type');
          let metricType = MetricType.Counter;
          if (type !== null && type == 'GAUGE') metricType = MetricType.Gauge;
          else if (type !== null && type == 'HISTOGRAM') metricType = MetricType.Histogram;
          if (!factories.has(name)) factoryOrder.push(name);
          factories.set(name, new MetricFactory(name, metricType, Extractor.Expression, HttpOrGrpc, 0, false, <u32>token));
          if (!metricTags.has(name)) metricTags.set(name, []);
          if (!metricIndexes.has(name)) metricIndexes.set(name, new Map<string, i32>());
        }
      }
    }

    // Label overrides, in order; an entry without a name applies to every metric.
    const metrics = j.get('metrics');
    if (metrics !== null) {
      if (metrics.kind != JsonKind.Array) logWarn("failed to parse 'metrics'");
      else {
        for (let i = 0; i < metrics.items.length; i++) {
          if (!this.applyMetricOverride(metrics.items[i], factories, factoryOrder, metricTags, metricIndexes)) {
            logWarn("failed to parse 'metrics'");
            break;
          }
        }
      }
    }

    // Local labels do not change: fill them once.
    const dims = new Array<string>(countStandardLabels + this.expressions.length);
    for (let i = 0; i < dims.length; i++) dims[i] = '';
    dims[reporter] = this.outbound ? 'source' : 'destination';
    mapNode(dims, this.outbound, this.localNode);
    this.istioDimensions = dims;

    const fs = jsonString(j, 'field_separator');
    const vs = jsonString(j, 'value_separator');
    const fieldSeparator = fs === null ? DefaultFieldSeparator : fs;
    const valueSeparator = vs === null ? DefaultValueSeparator : vs;

    this.stats = [];
    for (let i = 0; i < factoryOrder.length; i++) {
      const name = factoryOrder[i];
      if (!factories.has(name)) continue;
      const tags = metricTags.get(name);
      const indexes = metricIndexes.get(name);
      const keptTags: string[] = [];
      const keptIndexes: i32[] = [];
      for (let k = 0; k < tags.length; k++) {
        const index = indexes.has(tags[k]) ? indexes.get(tags[k]) : Removed;
        if (index == Removed) continue;
        keptTags.push(tags[k]);
        keptIndexes.push(index);
      }
      this.stats.push(new StatGen(factories.get(name), keptTags, keptIndexes, fieldSeparator, valueSeparator));
    }

    // istio_build{component="proxy",tag="<version>"} = 1; the ';' keeps a dotted version inside the tag regex.
    const version = this.localNode.istioVersion;
    const tag = (version === null || version.length == 0 ? 'unknown' : version) + ';';
    const build = defineTaggedMetric(MetricType.Gauge, StatPrefix + 'build', ['component', 'tag'], ['proxy', tag]);
    if (build >= 0) recordMetric(<u32>build, 1);
  }

  /** One `metrics[]` entry; false stops processing the list (a malformed entry). */
  private applyMetricOverride(metric: JsonValue, factories: Map<string, MetricFactory>, factoryOrder: string[], metricTags: Map<string, string[]>, metricIndexes: Map<string, Map<string, i32>>): bool {
    if (metric.kind != JsonKind.Object) return false;
    const dimensions = metric.get('dimensions');
    let tags: string[] = [];
    if (dimensions !== null) {
      if (dimensions.kind != JsonKind.Object) {
        logWarn("failed to parse 'metric.dimensions'");
        return false;
      }
      // Sorted, to keep the order of appended labels deterministic.
      tags = dimensions.sortedKeys();
    }
    const nameValue = jsonString(metric, 'name');
    const name = nameValue === null ? '' : nameValue;
    const drop = jsonBool(metric, 'drop') == 1;
    const toRemove = metric.get('tags_to_remove');
    for (let i = 0; i < factoryOrder.length; i++) {
      const factoryName = factoryOrder[i];
      if (!factories.has(factoryName)) continue;
      if (name.length > 0 && name != factoryName) continue;
      if (drop) {
        factories.delete(factoryName);
        continue;
      }
      const indexes = metricIndexes.get(factoryName);
      if (toRemove !== null) {
        if (toRemove.kind != JsonKind.Array) {
          logWarn("failed to parse 'tags_to_remove'");
          return false;
        }
        for (let k = 0; k < toRemove.items.length; k++) {
          const t = toRemove.items[k];
          if (t.kind != JsonKind.String) {
            logWarn('unexpected tag to remove');
            logWarn("failed to parse 'tags_to_remove'");
            return false;
          }
          if (indexes.has(t.str)) indexes.set(t.str, Removed);
        }
      }
      for (let k = 0; k < tags.length; k++) {
        const expr = changetype<JsonValue>(dimensions).get(tags[k]);
        if (expr === null || expr.kind != JsonKind.String) {
          logWarn("failed to parse 'dimensions' value");
          return false;
        }
        const exprIndex = this.addStringExpression(expr.str);
        const value = exprIndex < 0 ? Removed : countStandardLabels + exprIndex;
        if (indexes.has(tags[k])) indexes.set(tags[k], value);
        else {
          metricTags.get(factoryName).push(tags[k]);
          indexes.set(tags[k], value);
        }
      }
    }
    return true;
  }

  /** The label-vector slot of a string expression (shared by equal texts), or -1 when it does not compile. */
  private addStringExpression(input: string): i32 {
    if (this.inputExpressions.has(input)) return this.inputExpressions.get(input);
    const token = createExpression(input);
    if (token < 0) {
      logWarn('cannot create an expression: ' + input);
      return -1;
    }
    const index = this.expressions.length;
    this.inputExpressions.set(input, index);
    this.expressions.push(new ExpressionInfo(<u32>token, input));
    return index;
  }

  private addIntExpression(input: string): i64 {
    const token = createExpression(input);
    if (token < 0) {
      logWarn('cannot create a value expression: ' + input);
      return -1;
    }
    this.intExpressions.push(<u32>token);
    return token;
  }

  private cleanupExpressions(): void {
    for (let i = 0; i < this.expressions.length; i++) deleteExpression(this.expressions[i].token);
    this.expressions = [];
    this.inputExpressions.clear();
    for (let i = 0; i < this.intExpressions.length; i++) deleteExpression(this.intExpressions[i]);
    this.intExpressions = [];
  }

  onDone(): bool {
    this.cleanupExpressions();
    if (this.requestQueue.size > 0) logCritical('Request queue is not empty, dropping requests: ' + this.requestQueue.size.toString());
    return true;
  }

  /** Periodic report of streams still open (TCP bytes and connections, gRPC message counts). */
  onTick(): void {
    const ids = this.requestQueue.keys();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!hasStreamContext(id) || !this.requestQueue.has(id)) continue;
      setEffectiveContext(id);
      this.report(this.requestQueue.get(id).info, false);
    }
  }

  addToRequestQueue(id: u32, stream: StatsStream): void {
    this.requestQueue.set(id, stream);
  }

  deleteFromRequestQueue(id: u32): void {
    this.requestQueue.delete(id);
  }

  report(info: RequestInfo, endStream: bool): void {
    if (!this.initialized) {
      logDebug('stats plugin not initialized properly (wrong json config?)');
      return;
    }
    const peer = lookupPeer(this.peerMetadataIdKey, this.peerMetadataKey, !this.outbound);
    if (info.requestProtocol == Protocol.TCP) {
      // TCP metadata arrives in-band: report nothing mid-stream until it has (or never will).
      if (peer.maybeWaiting() && !endStream) return;
      populateTCPRequestInfo(this.outbound, info);
    } else if (endStream) {
      populateHTTPRequestInfo(this.outbound, this.useHostHeaderFallback, info);
    } else {
      // Ticks have no access to the request or response headers.
      populateRequestInfo(this.outbound, this.useHostHeaderFallback, info);
      if (info.requestProtocol == Protocol.GRPC) populateGRPCInfo(info);
    }

    const dims = this.istioDimensions;
    mapDimensions(dims, this.outbound, peer.node, info);
    for (let i = 0; i < this.expressions.length; i++) {
      const v = evaluateString(this.expressions[i].token);
      if (v === null) logDebug('Failed to evaluate expression: <' + this.expressions[i].expression + '>');
      dims[countStandardLabels + i] = v === null ? 'unknown' : v;
    }

    const key = dimensionsKey(dims);
    if (this.metrics.has(key)) {
      const stats = this.metrics.get(key);
      for (let i = 0; i < stats.length; i++) if (endStream || stats[i].factory.recurrent) stats[i].record(info);
      this.cacheHitsAccumulator++;
      if (this.cacheHitsAccumulator == 100) {
        if (this.cacheHits >= 0) incrementMetric(<u32>this.cacheHits, this.cacheHitsAccumulator);
        this.cacheHitsAccumulator = 0;
      }
      return;
    }
    const stats: SimpleStat[] = [];
    for (let i = 0; i < this.stats.length; i++) {
      const gen = this.stats[i];
      if (!gen.matchesProtocol(info.requestProtocol)) continue;
      const stat = gen.resolve(dims);
      if (stat === null) continue;
      if (endStream || stat.factory.recurrent) stat.record(info);
      stats.push(stat);
    }
    if (this.cacheMisses >= 0) incrementMetric(<u32>this.cacheMisses, 1);
    this.metrics.set(key, stats);
  }

  createStream(id: u32): StreamContext {
    return new StatsStream(id, this);
  }
}

export class StatsStream extends StreamContext {
  readonly info: RequestInfo = new RequestInfo();

  private get stats(): StatsRoot {
    return changetype<StatsRoot>(this.root);
  }

  /** HTTP streams start with headers; the host header is only readable now and at the end. */
  onRequestHeaders(_headers: u32, _endOfStream: bool): u32 {
    populateRequestProtocol(this.info);
    if (this.stats.useHostHeaderFallback) {
      const host = getPropertyString(['request', 'host']);
      if (host !== null) this.info.urlHost = host;
    }
    return Action.Continue;
  }

  /** Peer metadata (if any) is in filter state once response headers pass: report from now on. */
  onResponseHeaders(_headers: u32, _endOfStream: bool): u32 {
    this.stats.addToRequestQueue(this.id, this);
    return Action.Continue;
  }

  onNewConnection(): u32 {
    this.info.requestProtocol = Protocol.TCP;
    this.info.tcpConnectionsOpened++;
    this.stats.addToRequestQueue(this.id, this);
    return Action.Continue;
  }

  onDownstreamData(size: u32, _endOfStream: bool): u32 {
    this.info.tcpReceivedBytes += size;
    return Action.Continue;
  }

  onUpstreamData(size: u32, _endOfStream: bool): u32 {
    this.info.tcpSentBytes += size;
    return Action.Continue;
  }

  /** The final report of an HTTP stream or TCP connection. */
  onLog(): void {
    this.stats.deleteFromRequestQueue(this.id);
    if (this.info.requestProtocol == Protocol.TCP) this.info.tcpConnectionsClosed++;
    this.stats.report(this.info, true);
  }

  onDelete(): void {
    // Upstream relies on on_log having dequeued the stream; a stream deleted without it must
    // not be reported from a later tick.
    this.stats.deleteFromRequestQueue(this.id);
  }
}

export function createOutboundRoot(id: u32, rootId: string): RootContext {
  return new StatsRoot(id, rootId, true);
}

export function createInboundRoot(id: u32, rootId: string): RootContext {
  return new StatsRoot(id, rootId, false);
}
