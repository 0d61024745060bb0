/**
 * Where the benchmark's traced deployments export to: an OTLP/HTTP endpoint on 127.0.0.1 that
 * answers every export with success at once and only counts requests and bytes (the cost being
 * measured is the service's, not a collector's).
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpSink {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  /** Export requests and body bytes received since the last `take()`, then zeroed. */
  take(): { exports: number; bytes: number };
  close(): Promise<void>;
}

export async function startOtlpSink(): Promise<OtlpSink> {
  let exports = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      exports += 1;
      // An empty ExportTraceServiceResponse in either encoding: full success.
      res.writeHead(200, { 'content-type': String(req.headers['content-type'] ?? 'application/x-protobuf') });
      res.end(String(req.headers['content-type']).startsWith('application/json') ? '{}' : undefined);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    take() {
      const taken = { exports, bytes };
      exports = 0;
      bytes = 0;
      return taken;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
