/**
 * The 422 of SPEC §3 in FastAPI's shape: the closed list of issue types, one issue, and the
 * error that carries them to the error handler.
 */

/**
 * Every `type` a 422 `detail` entry can carry: pydantic's names where pydantic has one, and ours
 * for the checks it has none for. The README and the OpenAPI document list exactly these.
 */
export const VALIDATION_ERROR_TYPES = [
  'missing',
  'string_type',
  'dict_type',
  'string_too_short',
  'string_too_long',
  'too_long',
  'url_parsing',
  'url_scheme',
  'json_invalid',
  'callback_url_forbidden',
  'value_error',
] as const;

export type ValidationErrorType = (typeof VALIDATION_ERROR_TYPES)[number];

/** One entry of a 422 `detail`, as pydantic reports it. */
export interface ValidationIssue {
  type: ValidationErrorType;
  loc: Array<string | number>;
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

/** A request that failed validation: answered 422 with `detail` and the parsed `body` (or null). */
export class RequestValidationError extends Error {
  readonly statusCode = 422;
  constructor(
    readonly detail: ValidationIssue[],
    readonly body: unknown,
  ) {
    super('Request validation failed');
    this.name = 'RequestValidationError';
  }
}
