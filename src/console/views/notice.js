/** How a view shows an API error: a 404 of a whole endpoint says the feature is not in this service. */
import { html } from '../html.js';

export function ErrorNotice({ error, feature }) {
  if (error === null || error === undefined) return null;
  if (error.status === 404 && feature !== undefined) {
    return html`<p class="banner" role="status">${feature} is not available: this service does not offer its endpoint (404).</p>`;
  }
  return html`<p class="error" role="alert">Could not load: ${error.message}</p>`;
}
