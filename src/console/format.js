/** Small display helpers shared by the views. */
export function when(iso) {
  if (iso === null || iso === undefined) return '–';
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function ago(iso) {
  if (iso === null || iso === undefined) return '–';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

export function percent(rate) {
  return rate === null || rate === undefined ? '–' : `${Math.round(rate * 1000) / 10} %`;
}

export function ms(value) {
  return value === null || value === undefined ? '–' : `${Math.round(value)} ms`;
}

/** A `datetime-local` input's value as ISO, or undefined. */
export function isoOfLocal(value) {
  if (!value) return undefined;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
}

/** An ISO time as a `datetime-local` input's value. */
export function localOfIso(iso) {
  if (!iso) return '';
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())}T${pad(time.getHours())}:${pad(time.getMinutes())}`;
}
