/**
 * The JSON body parser: the only content type the API accepts. Refuses, with a 422
 * `json_invalid` before anything is parsed into objects, malformed JSON, bodies nested deeper
 * than `MAX_JSON_DEPTH`, and keys that could poison prototypes; an empty body is `missing`.
 */
import type { FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { jsonInvalidIssue, RequestValidationError } from './validation-errors.js';

/** Keys that could poison prototypes: a body holding one is refused whole. */
const FORBIDDEN_KEYS = { protoAction: 'error', constructorAction: 'error' } as const;
/** What secure-json-parse throws for such a key. */
const FORBIDDEN_KEY_MESSAGE = 'Object contains forbidden prototype property';
/** Deepest nesting of arrays and objects accepted; deeper bodies would exhaust the stack downstream. */
const MAX_JSON_DEPTH = 64;

/** Whether `text` opens more than `limit` arrays or objects inside one another (strings skipped). */
function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c)
        index++; // a backslash escapes the next character
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) {
      inString = true;
    } else if (code === 0x7b || code === 0x5b) {
      if (++depth > limit) return true;
    } else if (code === 0x7d || code === 0x5d) {
      depth--;
    }
  }
  return false;
}

/**
 * Parses JSON bodies. Malformed JSON and keys that could poison prototypes (`__proto__`, or a
 * `constructor` carrying `prototype`) are answered 422 `json_invalid`, never parsed into objects.
 */
export function parseJsonBody(
  _request: FastifyRequest,
  text: string,
  done: (error: Error | null, body?: unknown) => void,
) {
  if (text.length === 0) {
    done(
      new RequestValidationError(
        [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }],
        null,
      ),
    );
    return;
  }
  if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
    done(
      new RequestValidationError(
        [jsonInvalidIssue(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`)],
        null,
      ),
    );
    return;
  }
  try {
    // Plain JSON.parse; the whole object is scanned only when the text holds a suspect key.
    done(null, secureJson.parse(text, undefined, FORBIDDEN_KEYS));
  } catch (error) {
    if (error instanceof SyntaxError && error.message === FORBIDDEN_KEY_MESSAGE) {
      done(new RequestValidationError([jsonInvalidIssue(error.message)], null));
      return;
    }
    const message = error instanceof Error ? error.message : 'Invalid JSON';
    const position = /at position (\d+)/.exec(message)?.[1];
    done(
      new RequestValidationError(
        [jsonInvalidIssue(message, position === undefined ? undefined : Number(position))],
        null,
      ),
    );
  }
}
