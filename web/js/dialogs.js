// Confirmation before every control call, and the token prompt, as native <dialog> elements: showModal() traps
// focus, Esc cancels, and focus returns to the button that opened them.

import { $, setText, h, append } from './dom.js';
import { token } from './api.js';

/**
 * Asks "Reload shop?" and, when no token is kept yet, for the token too.
 * Resolves to {ok: false} on cancel, or {ok: true, token} (token may be '' if left empty: the API will then
 * refuse the call with 401, and the page shows its message).
 */
export function confirmAction({ title, body, confirmLabel, danger = false }) {
  const dlg = $('#confirm-dialog');
  const input = $('#confirm-token');
  const field = $('#confirm-token-field');
  const ok = $('#confirm-ok');
  const cancel = $('#confirm-cancel');
  const form = $('#confirm-form');
  const kept = token.get();
  setText($('#confirm-title'), title);
  setText($('#confirm-body'), body);
  setText(ok, confirmLabel);
  ok.classList.toggle('btn-danger', danger);
  ok.classList.toggle('btn-primary', !danger);
  field.hidden = Boolean(kept);
  input.value = '';

  return new Promise((resolve) => {
    let answer = { ok: false };
    const onSubmit = (e) => {
      e.preventDefault();
      const t = kept || input.value.trim();
      if (!kept && t) { // entered once, kept for this tab
        token.set(t);
        document.dispatchEvent(new CustomEvent('liege:token-changed'));
      }
      answer = { ok: true, token: t };
      dlg.close('ok');
    };
    const onCancel = () => dlg.close('cancel');
    const onClose = () => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dlg.removeEventListener('close', onClose);
      resolve(answer);
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    (kept ? ok : input).focus();
  });
}

/** The header's "API token" button: set, replace or forget the token kept in sessionStorage. */
export function setupTokenDialog(onChange) {
  const dlg = $('#token-dialog');
  const input = $('#token-input');
  const button = $('#token-button');
  const status = $('#token-status');
  const help = $('#token-help');

  const refresh = () => {
    const has = Boolean(token.get());
    setText(button, has ? 'Token ✓' : 'API token');
    button.setAttribute('aria-label', has ? 'API token (set for this tab)' : 'API token (not set)');
    setText(status, has
      ? 'A token is kept for this tab. Reload, stop, start and retry use it.'
      : 'No token yet. Reading needs none; reload, stop, start and retry do.');
    onChange && onChange(has);
  };

  button.addEventListener('click', () => {
    input.value = '';
    help.replaceChildren();
    append(help, 'The emperor writes it to ', h('code', null, 'RUN_DIR/api-token'),
      ' and logs the path at start. It stays in this tab\'s session storage until the tab closes.');
    refresh();
    dlg.showModal();
    input.focus();
  });
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (t) token.set(t);
    dlg.close();
    refresh();
  });
  $('#token-forget').addEventListener('click', () => { token.clear(); dlg.close(); refresh(); });
  $('#token-cancel').addEventListener('click', () => dlg.close());
  refresh();
  return refresh;
}
