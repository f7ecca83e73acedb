// Pages for what went wrong: each says what the visitor can do about it.

import { h, replace, link, signInHref } from '../dom.js';
import { ApiError } from '../api.js';

function signInHint(context) {
  return context && context.user
    ? null
    : h('p', {}, 'If it is private, ', link(signInHref(), 'sign in'), ' with a token that may see it.');
}

export function notFound(main, context) {
  replace(main,
    h('h1', { text: 'Page not found' }),
    h('p', { text: 'Nothing is here, or it is not visible to you. Check the path.' }),
    signInHint(context),
    h('p', {}, link('/explore', 'Browse projects')));
}

/** Draws the page for an error an API call or a page threw. */
export function showError(main, error, context) {
  if (!(error instanceof ApiError)) {
    replace(main, h('h1', { text: 'Something went wrong' }),
      h('p', { text: String(error && error.message ? error.message : error) }),
      h('p', {}, 'Reload the page; if it keeps happening, check the registry\'s log.'));
    return;
  }
  if (error.status === 401) {
    replace(main, h('h1', { text: 'Sign in required' }),
      h('p', { text: context && context.user
        ? 'Your token was refused: it may have expired or been revoked.'
        : 'This page needs a token.' }),
      h('p', {}, link(signInHref(), 'Sign in'), ' with a personal or access token.'));
    return;
  }
  if (error.status === 403) {
    replace(main, h('h1', { text: 'Access denied' }),
      h('p', { text: `The registry answered: ${error.message}.` }),
      h('p', { text: 'Your token does not allow this. Ask a maintainer (or the group\'s owner) for access.' }),
      h('p', {}, link(packagesHref(), 'Back to the packages')));
    return;
  }
  if (error.status === 404) {
    replace(main, h('h1', { text: 'Not found' }),
      h('p', { text: `The registry answered: ${error.message}. Check the path.` }),
      signInHint(context),
      h('p', {}, link('/explore', 'Browse projects')));
    return;
  }
  replace(main, h('h1', { text: `Error ${error.status}` }),
    h('p', { text: error.message }));
}

/** The packages page of the project or group this page belongs to (the
 * part of the path before `/-/`), or the project list. */
function packagesHref() {
  const path = window.location.pathname;
  const at = path.indexOf('/-/');
  return at > 0 ? `${path.slice(0, at)}/-/packages` : '/explore';
}

/** An error shown inside a page (a form that failed), not instead of it. */
export function errorNotice(error) {
  let advice = '';
  if (error instanceof ApiError) {
    if (error.status === 401) advice = ' Sign in again.';
    if (error.status === 403) advice = ' Ask a maintainer for access.';
  }
  return h('div', { class: 'notice error', role: 'alert' },
    h('strong', { text: 'Failed: ' }), `${error.message}.${advice}`);
}
