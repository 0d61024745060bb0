/**
 * The part of the configuration that decides tracing (SPEC §11), read by `config.ts` from the
 * same environment: whether it is on, and a problem line for each bad `OTEL_*` value this
 * service depends on. Imports nothing.
 */
const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'];
const OTEL_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

/**
 * Whether tracing is on, and the problems of the `OTEL_*` values this service depends on. The
 * OpenTelemetry SDK reads them itself (and those not checked here: OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_SCHEDULE_DELAY and the rest of
 * its variables), but it would only log a bad value and carry on; here one stops start-up.
 */
export function tracingFrom(env: Readonly<Record<string, string | undefined>>, problems: string[]): boolean {
  const set = (name: string): string | null => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? null : value;
  };
  let endpoints = 0;
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
    const value = set(name);
    if (value === null) continue;
    endpoints++;
    if (!/^https?:\/\/[^\s]+$/.test(value) || !URL.canParse(value)) {
      problems.push(`${name}=${JSON.stringify(value)} is invalid: expected an http or https URL`);
    }
  }
  for (const name of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) {
    const value = set(name);
    if (value !== null && !OTLP_PROTOCOLS.includes(value)) {
      problems.push(`${name}=${JSON.stringify(value)} is invalid: expected ${OTLP_PROTOCOLS.join(' or ')}`);
    }
  }
  const sampler = set('OTEL_TRACES_SAMPLER');
  if (sampler !== null && !OTEL_SAMPLERS.includes(sampler)) {
    problems.push(
      `OTEL_TRACES_SAMPLER=${JSON.stringify(sampler)} is invalid: expected one of ${OTEL_SAMPLERS.join(', ')}`,
    );
  }
  const ratio = set('OTEL_TRACES_SAMPLER_ARG');
  if (ratio !== null && !(Number(ratio) >= 0 && Number(ratio) <= 1)) {
    problems.push(
      `OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(ratio)} is invalid: expected a number from 0 to 1`,
    );
  }
  const disabled = (set('OTEL_SDK_DISABLED') ?? 'false').toLowerCase();
  if (disabled !== 'true' && disabled !== 'false') {
    problems.push(`OTEL_SDK_DISABLED=${JSON.stringify(disabled)} is invalid: expected true or false`);
  }
  return endpoints > 0 && disabled !== 'true';
}
