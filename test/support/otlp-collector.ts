/**
 * A small OTLP/HTTP trace receiver for tests, on 127.0.0.1: it takes what the service's exporter
 * POSTs to `/v1/traces`, in protobuf (the default, decoded with protobufjs from the trace messages
 * of opentelemetry-proto below) or JSON (`http/json`), and keeps every span in one flat shape.
 */
import { EventEmitter, once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';

/**
 * The messages of `opentelemetry/proto/collector/trace/v1/trace_service.proto` and what they use
 * (trace, resource and common v1), with the field numbers of opentelemetry-proto. Fields the
 * tests do not read are left out; protobuf skips them.
 */
const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  repeated Event events = 11;
  repeated Link links = 13;
  Status status = 15;
  fixed32 flags = 16;
  message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
  message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; }
}
message Status { string message = 2; int32 code = 3; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
`;

const REQUEST = protobuf.parse(OTLP_TRACE_PROTO).root.lookupType('otlp.ExportTraceServiceRequest');

export type AttributeValue = string | number | boolean | AttributeValue[] | null;

/** A span as the tests read it. */
export interface CollectedSpan {
  traceId: string;
  spanId: string;
  /** `''` for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP's numbers: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  /** Span events (an exception recorded, ...), each with its attributes. */
  events: Array<{ name: string; attributes: Record<string, AttributeValue> }>;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  /** `service.name` of the resource that sent it. */
  service: string;
  resource: Record<string, AttributeValue>;
  scope: string;
}

export const SPAN_KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

export interface OtlpCollector {
  /** `http://127.0.0.1:<port>`: what OTEL_EXPORTER_OTLP_ENDPOINT is set to. */
  url: string;
  spans: CollectedSpan[];
  /** Content types of the export requests received, in order. */
  contentTypes: string[];
  /** Resolves once `predicate` holds over every span received (checked on each export). */
  waitUntil(predicate: (spans: CollectedSpan[]) => boolean, timeoutMs?: number): Promise<CollectedSpan[]>;
  /** The spans of one trace. */
  trace(traceId: string): CollectedSpan[];
  close(): Promise<void>;
}

/** Loose shapes of the decoded messages (protobufjs `toObject` and OTLP/JSON share them). */
interface AnyValueShape {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValueShape[] };
  kvlistValue?: { values?: KeyValueShape[] };
  bytesValue?: string;
}
interface KeyValueShape {
  key: string;
  value?: AnyValueShape;
}
interface SpanShape {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: KeyValueShape[];
  events?: Array<{ name?: string; attributes?: KeyValueShape[] }>;
  status?: { code?: number; message?: string };
}
interface RequestShape {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValueShape[] };
    scopeSpans?: Array<{ scope?: { name?: string }; spans?: SpanShape[] }>;
  }>;
}

function anyValue(value: AnyValueShape | undefined): AttributeValue {
  if (value === undefined) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(anyValue);
  if (value.bytesValue !== undefined) return value.bytesValue;
  return null;
}

function attributesOf(list: KeyValueShape[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((entry) => [entry.key, anyValue(entry.value)]));
}

/** Ids arrive as base64 (protobuf `bytes` through toObject) or hex (OTLP/JSON). */
function idOf(text: string | undefined, json: boolean): string {
  if (text === undefined || text === '') return '';
  return json ? text.toLowerCase() : Buffer.from(text, 'base64').toString('hex');
}

function flatten(request: RequestShape, json: boolean): CollectedSpan[] {
  const spans: CollectedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributesOf(resourceSpans.resource?.attributes);
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        spans.push({
          traceId: idOf(span.traceId, json),
          spanId: idOf(span.spanId, json),
          parentSpanId: idOf(span.parentSpanId, json),
          name: span.name ?? '',
          kind: span.kind ?? 0,
          startNs: BigInt(span.startTimeUnixNano ?? 0),
          endNs: BigInt(span.endTimeUnixNano ?? 0),
          attributes: attributesOf(span.attributes),
          events: (span.events ?? []).map((event) => ({
            name: event.name ?? '',
            attributes: attributesOf(event.attributes),
          })),
          statusCode: span.status?.code ?? 0,
          statusMessage: span.status?.message ?? '',
          service: String(resource['service.name'] ?? ''),
          resource,
          scope: scopeSpans.scope?.name ?? '',
        });
      }
    }
  }
  return spans;
}

function decode(body: Buffer, contentType: string): CollectedSpan[] {
  if (contentType.startsWith('application/json')) {
    return flatten(JSON.parse(body.toString('utf8')) as RequestShape, true);
  }
  const message = REQUEST.decode(body);
  const object = REQUEST.toObject(message, { longs: String, bytes: String, defaults: false });
  return flatten(object as RequestShape, false);
}

export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: CollectedSpan[] = [];
  const contentTypes: string[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);

  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const contentType = String(request.headers['content-type'] ?? '');
      try {
        if (request.method !== 'POST' || request.url !== '/v1/traces') {
          response.writeHead(404).end();
          return;
        }
        let body = Buffer.concat(chunks);
        if (request.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        contentTypes.push(contentType);
        spans.push(...decode(body, contentType));
        events.emit('spans');
        // An empty ExportTraceServiceResponse: full success.
        if (contentType.startsWith('application/json')) {
          response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } else {
          response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        }
      } catch (error) {
        response.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  const waitUntil = (predicate: (all: CollectedSpan[]) => boolean, timeoutMs = 30_000) =>
    new Promise<CollectedSpan[]>((resolve, reject) => {
      const check = (): void => {
        if (!predicate(spans)) return;
        clearTimeout(timer);
        events.off('spans', check);
        resolve(spans);
      };
      const timer = setTimeout(() => {
        events.off('spans', check);
        const names = spans.map((span) => span.name).join(', ');
        reject(new Error(`the collector's spans did not match within ${timeoutMs} ms; got: ${names}`));
      }, timeoutMs);
      events.on('spans', check);
      check();
    });

  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    waitUntil,
    trace: (traceId) => spans.filter((span) => span.traceId === traceId),
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
