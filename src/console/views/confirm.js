/** A modal confirmation in a native <dialog>: focus moves into it, Escape cancels. */
import { useEffect, useRef } from 'preact/hooks';
import { html } from '../html.js';

export function Confirm({ open, title, children, confirmLabel, onConfirm, onCancel }) {
  const dialog = useRef(null);
  useEffect(() => {
    const element = dialog.current;
    if (element === null) return;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);
  return html`<dialog ref=${dialog} aria-labelledby="confirm-title" onCancel=${onCancel} onClose=${() => open && onCancel()}>
    <h3 id="confirm-title">${title}</h3>
    ${children}
    <p>
      <button type="button" onClick=${onConfirm}>${confirmLabel}</button>
      ${' '}<button type="button" onClick=${onCancel} autofocus>Cancel</button>
    </p>
  </dialog>`;
}
