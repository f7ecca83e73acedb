// Sign in: paste a token. It is checked with `GET /user` and kept only in
// this browser (localStorage) until "Sign out".

import { h, replace, field, notice } from '../dom.js';
import { api, setToken, forgetToken, ApiError } from '../api.js';

export function render(main, _route, context) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'stack' },
    field('Token', input, 'A personal or project/group access token (glpat-…). It stays in this browser and is sent only to this registry\'s API.'),
    h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit', text: 'Sign in' })),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    setToken(value);
    try {
      await api('/api/v4/user');
    } catch (error) {
      forgetToken();
      const why = error instanceof ApiError && error.status === 401
        ? 'The registry refused this token: it is invalid, expired or revoked, or it is a deploy or job token, which cannot sign in.'
        : error.message;
      replace(status, notice('error', 'Not signed in.', why));
      return;
    }
    input.value = '';
    await context.onSignIn();
    context.navigate(localPath(context.query.get('return_to')), { replaceState: true });
  });
  replace(main,
    h('h1', { text: 'Sign in' }),
    context.user ? notice('ok', `Signed in as ${context.user.username}.`, 'A new token replaces it.') : null,
    form);
  input.focus();
}

/** Only a path of this site, never another origin. */
function localPath(value) {
  return value && value.startsWith('/') && !value.startsWith('//') ? value : '/';
}
