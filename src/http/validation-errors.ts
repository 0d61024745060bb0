/**
 * The 422 of SPEC §3 in FastAPI's shape: the closed list of issue types, one issue, the error
 * that carries them to the error handler, and the translation of Ajv's errors (and of JSON that
 * does not parse) into pydantic's issues.
 */
import { AppError, ERROR_CODES } from '../shared/errors.js';
import { inspectHttpUrl } from './inspect-http-url.js';

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
  'literal_error',
  'greater_than_equal',
  'less_than_equal',
  'int_type',
  'float_type',
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
export class RequestValidationError extends AppError {
  readonly statusCode = 422;
  constructor(
    readonly detail: ValidationIssue[],
    readonly body: unknown,
  ) {
    super(ERROR_CODES.validationFailed, 'Request validation failed');
  }
}

/** What Ajv reports (the subset read here). */
export interface AjvIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
}

const LOCATION_OF: Record<string, string> = {
  body: 'body',
  params: 'path',
  querystring: 'query',
  headers: 'header',
};

/** Which Ajv error of one field pydantic would report: type before presence before length before format. */
const KEYWORD_RANK: Record<string, number> = {
  type: 0,
  required: 1,
  minLength: 2,
  pattern: 3,
  maxLength: 4,
  minimum: 4,
  maximum: 4,
  format: 5,
};

function characters(count: number): string {
  return count === 1 ? 'character' : 'characters';
}

function issueFromAjv(error: AjvIssue, location: string, data: unknown): ValidationIssue | null {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment));
  let input: unknown = data;
  for (const segment of path) {
    input =
      input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[segment] : undefined;
  }
  const loc: Array<string | number> = [location, ...path];
  switch (error.keyword) {
    case 'required':
      return {
        type: 'missing',
        loc: [...loc, String(error.params.missingProperty)],
        msg: 'Field required',
        input: input ?? null,
      };
    case 'type':
      if (path.length === 0 && (input === null || input === undefined)) {
        return { type: 'missing', loc, msg: 'Field required', input: null };
      }
      if (error.params.type === 'object') {
        return { type: 'dict_type', loc, msg: 'Input should be a valid dictionary', input };
      }
      if (error.params.type === 'string') {
        return { type: 'string_type', loc, msg: 'Input should be a valid string', input };
      }
      if (error.params.type === 'integer') {
        return { type: 'int_type', loc, msg: 'Input should be a valid integer', input };
      }
      if (error.params.type === 'number') {
        return { type: 'float_type', loc, msg: 'Input should be a valid number', input };
      }
      break;
    case 'minimum': {
      const limit = Number(error.params.limit);
      return {
        type: 'greater_than_equal',
        loc,
        msg: `Input should be greater than or equal to ${limit}`,
        input,
        ctx: { ge: limit },
      };
    }
    case 'maximum': {
      const limit = Number(error.params.limit);
      return {
        type: 'less_than_equal',
        loc,
        msg: `Input should be less than or equal to ${limit}`,
        input,
        ctx: { le: limit },
      };
    }
    case 'minLength':
    case 'pattern': {
      // A whitespace-only text is as good as empty (pydantic strips before counting).
      const minLength = error.keyword === 'minLength' ? Number(error.params.limit) : 1;
      return {
        type: 'string_too_short',
        loc,
        msg: `String should have at least ${minLength} ${characters(minLength)}`,
        input,
        ctx: { min_length: minLength },
      };
    }
    case 'maxLength': {
      const maxLength = Number(error.params.limit);
      return {
        type: 'string_too_long',
        loc,
        msg: `String should have at most ${maxLength} ${characters(maxLength)}`,
        input,
        ctx: { max_length: maxLength },
      };
    }
    case 'format': {
      if (error.params.format !== 'uri' || typeof input !== 'string') break;
      const problem = inspectHttpUrl(input);
      if (problem === null) break;
      if (problem.type === 'url_scheme') {
        return {
          type: 'url_scheme',
          loc,
          msg: "URL scheme should be 'http' or 'https'",
          input,
          ctx: { expected_schemes: "'http' or 'https'" },
        };
      }
      return {
        type: 'url_parsing',
        loc,
        msg: `Input should be a valid URL, ${problem.error}`,
        input,
        ctx: { error: problem.error },
      };
    }
  }
  return { type: 'value_error', loc, msg: 'Value error, invalid value', input };
}

/**
 * Translates Ajv's errors (collected with `allErrors`) into pydantic's issues: one per field,
 * in the order of `fieldOrder` when given.
 */
export function issuesFromAjv(
  errors: readonly AjvIssue[],
  context: string,
  data: unknown,
  fieldOrder: readonly string[] = [],
): ValidationIssue[] {
  const location = LOCATION_OF[context] ?? context;
  const best = new Map<string, { rank: number; issue: ValidationIssue }>();
  for (const error of errors) {
    const issue = issueFromAjv(error, location, data);
    if (issue === null) continue;
    const key = JSON.stringify(issue.loc);
    const rank = KEYWORD_RANK[error.keyword] ?? 9;
    const current = best.get(key);
    if (current === undefined || rank < current.rank) best.set(key, { rank, issue });
  }
  const position = (issue: ValidationIssue): number => {
    const index = fieldOrder.indexOf(String(issue.loc[1]));
    return index === -1 ? fieldOrder.length : index;
  };
  return [...best.values()].map(({ issue }) => issue).sort((a, b) => position(a) - position(b));
}

/** The 422 body of JSON that could not be parsed. */
export function jsonInvalidIssue(reason: string, position?: number): ValidationIssue {
  return {
    type: 'json_invalid',
    loc: position === undefined ? ['body'] : ['body', position],
    msg: 'JSON decode error',
    input: {},
    ctx: { error: reason },
  };
}
