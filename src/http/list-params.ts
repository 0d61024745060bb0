/** The paging parameters of the console's listings (SPEC §12): `limit` and `cursor`, checked. */
import { ERROR_CODES, HttpError } from '../shared/errors.js';
import { isValidCursor } from '../store/task-lists.js';
import { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX } from './list-schemas.js';

/** A limit query parameter as a number, or a 422-worthy error. */
export function parseLimit(text: string | undefined): number {
  if (text === undefined) return LIST_LIMIT_DEFAULT;
  const limit = Number(text);
  if (limit < 1 || limit > LIST_LIMIT_MAX) {
    throw new HttpError(422, `limit must be between 1 and ${LIST_LIMIT_MAX}`, ERROR_CODES.validationFailed);
  }
  return limit;
}

/** The cursor, `null` when absent; a 400 when this listing did not write it. */
export function checkCursor(kind: 'tasks' | 'conversations', cursor: string | undefined): string | null {
  if (cursor === undefined) return null;
  if (!isValidCursor(kind, cursor)) throw new HttpError(400, 'Invalid cursor', ERROR_CODES.validationFailed);
  return cursor;
}
